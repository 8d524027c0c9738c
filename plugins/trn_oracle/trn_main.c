/* trn_oracle: the TRN usage oracle. Gasless content operations on L3 with instant local
 * state, balances mirrored from L2 deposits, and per-epoch Merkle settlement to the L2's
 * TRNSettlement contract through the bridge. See README.md.
 *
 * This file: the descriptor, the config schema, and the lifecycle. */
#include "trn.h"

#include <ado_eth/address.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct ado_schema epoch_fields[] = {
    {.key = "period",
     .type = ADO_T_DURATION,
     .default_value = "24h",
     .flags = ADO_F_RANGE,
     .min = 100,
     .max = 366LL * 86400000,
     .help = "length of a settlement epoch"},
    {.key = "first",
     .type = ADO_T_INT,
     .default_value = "0",
     .flags = ADO_F_RANGE,
     .min = 0,
     .max = INT64_MAX,
     .help = "number of the first epoch (TRNSettlement's firstEpoch)"},
    ADO_SCHEMA_END,
};

static const struct ado_schema rates_fields[] = {
    {.key = "view_reward",
     .type = ADO_T_STRING,
     .default_value = "1000000000000000",
     .help = "what one view earns the content's creator, paid by the treasury (base units)"},
    {.key = "view_cost",
     .type = ADO_T_STRING,
     .default_value = "0",
     .help = "what one view costs the viewer, paid to the treasury (base units)"},
    {.key = "boost_fee",
     .type = ADO_T_STRING,
     .default_value = "0",
     .help = "flat fee of a boost on top of its amount, paid to the treasury (base units)"},
    ADO_SCHEMA_END,
};

static const struct ado_schema gas_fields[] = {
    {.key = "per_operation",
     .type = ADO_T_STRING,
     .default_value = "0",
     .help = "invisible gas of one operation, charged to the treasury (base units)"},
    {.key = "l2_fee_per_tx",
     .type = ADO_T_STRING,
     .default_value = "0",
     .help = "L2 fee of one settlement transaction, charged to the treasury (base units)"},
    ADO_SCHEMA_END,
};

static const struct ado_schema l2_fields[] = {
    {.key = "peer",
     .type = ADO_T_STRING,
     .default_value = "l2",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 63,
     .help = "bridge peer of the L2 (bridge.peers[].name)"},
    {.key = "submit",
     .type = ADO_T_BOOL,
     .default_value = "true",
     .help = "send roots and data to the peer (false: epochs close locally only)"},
    {.key = "contract",
     .type = ADO_T_STRING,
     .default_value = "settlement",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 100,
     .help = "TRNSettlement: an address or an evm_l2 contracts alias"},
    {.key = "deposits_contract",
     .type = ADO_T_STRING,
     .default_value = "",
     .help = "only count Deposited events of this contract (address or alias; empty: any)"},
    {.key = "deposit_event",
     .type = ADO_T_STRING,
     .default_value = "Deposited",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 63,
     .help = "name of the L2 deposit event"},
    {.key = "max_epoch_total",
     .type = ADO_T_STRING,
     .default_value = "0",
     .help = "most the L2 can pay for one epoch (the mint throttle's cap); 0: no limit"},
    {.key = "chunk_size",
     .type = ADO_T_SIZE,
     .default_value = "120KiB",
     .flags = ADO_F_RANGE,
     .min = 1024,
     .max = TRN_MAX_CHUNK,
     .help = "bytes of activity data per publishChunk"},
    ADO_SCHEMA_END,
};

static const struct ado_schema tuning_fields[] = {
    {.key = "compression_quality",
     .type = ADO_T_INT,
     .default_value = "5",
     .flags = ADO_F_RANGE,
     .min = 0,
     .max = 11,
     .help = "Brotli quality of the activity data"},
    {.key = "proof_cache",
     .type = ADO_T_INT,
     .default_value = "2",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 64,
     .help = "epoch trees kept in memory for trn_proof"},
    {.key = "close_delay",
     .type = ADO_T_DURATION,
     .default_value = "0",
     .help = "testing only: hold each close on the worker this long (crash tests)"},
    ADO_SCHEMA_END,
};

static const struct ado_schema schema[] = {
    {.key = "treasury",
     .type = ADO_T_STRING,
     .flags = ADO_F_REQUIRED,
     .help = "the DAO treasury account: pays gas and view rewards, receives fees"},
    {.key = "epoch", .type = ADO_T_MAP, .fields = epoch_fields},
    {.key = "rates", .type = ADO_T_MAP, .fields = rates_fields},
    {.key = "gas", .type = ADO_T_MAP, .fields = gas_fields},
    {.key = "l2", .type = ADO_T_MAP, .fields = l2_fields},
    {.key = "tuning", .type = ADO_T_MAP, .fields = tuning_fields},
    ADO_SCHEMA_END,
};

static int read_amount(struct trn *s, const char *path, struct ado_u256 *out) {
    const char *text;
    int rc = s->api->config_string(s->ctx, path, &text);
    if (rc == 0)
        rc = ado_u256_parse_str(out, text);
    if (rc < 0)
        s->api->log(s->ctx, ADO_LOG_ERROR,
                    "config %s: expected an integer amount in base units (decimal or 0x)", path);
    return rc < 0 ? ADO_ECONFIG : 0;
}

static int read_config(struct trn *s) {
    const struct ado_api *a = s->api;
    const char *treasury;
    int64_t first, submit = 0;
    int b;
    int rc = a->config_string(s->ctx, "treasury", &treasury);
    if (rc == 0 && ado_eth_address_parse(treasury, strlen(treasury), s->treasury) < 0) {
        a->log(s->ctx, ADO_LOG_ERROR, "config treasury: not an address: %s", treasury);
        return ADO_ECONFIG;
    }
    if (rc == 0)
        rc = a->config_int(s->ctx, "epoch.period", &s->period_ms);
    if (rc == 0)
        rc = a->config_int(s->ctx, "epoch.first", &first);
    if (rc == 0)
        s->first_epoch = (uint64_t)first;
    if (rc == 0)
        rc = read_amount(s, "rates.view_reward", &s->view_reward);
    if (rc == 0)
        rc = read_amount(s, "rates.view_cost", &s->view_cost);
    if (rc == 0)
        rc = read_amount(s, "rates.boost_fee", &s->boost_fee);
    if (rc == 0)
        rc = read_amount(s, "gas.per_operation", &s->gas_per_op);
    if (rc == 0)
        rc = read_amount(s, "gas.l2_fee_per_tx", &s->l2_fee_per_tx);
    if (rc == 0)
        rc = read_amount(s, "l2.max_epoch_total", &s->max_total);
    if (rc == 0)
        rc = a->config_string(s->ctx, "l2.peer", &s->peer);
    if (rc == 0 && (rc = a->config_bool(s->ctx, "l2.submit", &b)) == 0)
        submit = b;
    s->submit = (int)submit;
    if (rc == 0)
        rc = a->config_string(s->ctx, "l2.contract", &s->contract);
    if (rc == 0)
        rc = a->config_string(s->ctx, "l2.deposits_contract", &s->deposits_contract);
    uint8_t dep[20];
    if (rc == 0 && *s->deposits_contract &&
        ado_eth_address_parse(s->deposits_contract, strlen(s->deposits_contract), dep) < 0) {
        /* Deposit events carry the contract's address: anything else would match none. */
        a->log(s->ctx, ADO_LOG_ERROR,
               "config l2.deposits_contract: not an address (evm_l2 aliases are not resolved "
               "here): %s",
               s->deposits_contract);
        return ADO_ECONFIG;
    }
    if (rc == 0)
        rc = a->config_string(s->ctx, "l2.deposit_event", &s->deposit_event);
    if (rc == 0)
        rc = a->config_int(s->ctx, "l2.chunk_size", &s->chunk_size);
    if (rc == 0)
        rc = a->config_int(s->ctx, "tuning.compression_quality", &s->quality);
    if (rc == 0)
        rc = a->config_int(s->ctx, "tuning.proof_cache", &s->proof_cache);
    if (rc == 0)
        rc = a->config_int(s->ctx, "tuning.close_delay", &s->close_delay_ms);
    return rc;
}

static int open_dbs(struct trn *s) {
    static const struct {
        const char *name;
        size_t off;
    } dbs[] = {
        {"state", offsetof(struct trn_dbs, state)},
        {"bal", offsetof(struct trn_dbs, bal)},
        {"content", offsetof(struct trn_dbs, content)},
        {"contentn", offsetof(struct trn_dbs, contentn)},
        {"earned", offsetof(struct trn_dbs, earned)},
        {"ops", offsetof(struct trn_dbs, ops)},
        {"epochs", offsetof(struct trn_dbs, epochs)},
        {"data", offsetof(struct trn_dbs, data)},
        {"deposits", offsetof(struct trn_dbs, deposits)},
    };
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        int rc =
            s->api->store_open_db(s->ctx, dbs[i].name, (ado_db *)((char *)&s->db + dbs[i].off));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int trn_init(ado_ctx *ctx, const struct ado_api *api, void **state) {
    struct trn *s = calloc(1, sizeof *s);
    if (!s)
        return ADO_ENOMEM;
    s->ctx = ctx;
    s->api = api;
    int rc = read_config(s);
    if (rc == 0)
        rc = open_dbs(s);
    if (rc == 0)
        rc = trn_load_totals(s);
    if (rc < 0) {
        api->log(ctx, ADO_LOG_ERROR, "init failed: %s", api->strerror(rc));
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}

static int on_tick(ado_ctx *ctx, void *arg) {
    (void)ctx;
    trn_epoch_tick(arg);
    return 0;
}

static int trn_start(ado_ctx *ctx, void *state) {
    struct trn *s = state;
    const struct ado_api *a = s->api;
    int rc = trn_register_ledger_rpc(s);
    if (rc == 0)
        rc = trn_register_epoch_rpc(s);
    if (rc == 0)
        rc = trn_register_proof_rpc(s);
    if (rc == 0)
        rc = trn_subscribe_deposits(s);
    if (rc == 0)
        rc = trn_subscribe_l2(s);
    uint64_t every = s->period_ms < 1000 ? (uint64_t)s->period_ms : 1000;
    if (rc == 0)
        rc = a->timer_start(ctx, every, every, on_tick, s, &s->timer);
    if (rc == 0)
        rc = trn_epoch_recover(s);
    if (rc == 0) {
        char t[ADO_ETH_ADDRESS_TEXTLEN];
        ado_eth_address_checksum(s->treasury, t);
        a->log(ctx, ADO_LOG_INFO, "ready: epoch %llu open, period %lldms, treasury %s, %s %s",
               (unsigned long long)s->t.epoch, (long long)s->period_ms, t,
               s->submit ? "settling to peer" : "closing locally, peer", s->peer);
    }
    return rc;
}

static void trn_stop(ado_ctx *ctx, void *state) {
    struct trn *s = state;
    s->api->timer_stop(ctx, s->timer);
    trn_epoch_stop(s);
}

static void trn_fini(ado_ctx *ctx, void *state) {
    struct trn *s = state;
    (void)ctx;
    trn_tree_cache_free(s);
    free(s);
}

static const char *const trn_requires[] = {NULL};

ADO_PLUGIN_DEFINE(.name = "trn_oracle", .version = "1.0.0",
                  .description = "TRN usage oracle: gasless content operations, L2 settlement",
                  .requires = trn_requires, .schema = schema, .init = trn_init, .start = trn_start,
                  .stop = trn_stop, .fini = trn_fini);
