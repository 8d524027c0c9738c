/* evm_l2: the bridge transport to the L2 settlement chain (Ethereum JSON-RPC).
 *
 * The plugin registers the transport "evm_l2". The kernel's bridge opens one peer per YAML
 * bridge peer using it (address = the L2 node's http:// URL, options = per-peer overrides of
 * this plugin's config block) and hands it outbox messages; see README.md for the payload,
 * the guarantees and the failure behaviour, and peer.c for the transaction life cycle.
 *
 * RPC methods: l2_call (reader; read-only eth_call with ABI encoding and decoding) and
 * l2_status (reader; peers, nonces, in-flight transactions). */
#include "evm_l2.h"

#include <ado_eth/abi.h>
#include <ado_eth/address.h>
#include <ado_eth/common.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct ado_schema schema[] = {
    {.key = "chain_id", .type = ADO_T_INT, .help = "the L2's chain id (checked with eth_chainId)"},
    {.key = "key_file", .type = ADO_T_STRING, .help = "file holding the hex signing key (0600)"},
    {.key = "key",
     .type = ADO_T_STRING,
     .flags = ADO_F_SECRET,
     .help = "hex signing key, normally ${ENV_VAR}"},
    {.key = "confirmations",
     .type = ADO_T_INT,
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 10000,
     .help = "confirmations before a message is acked (default 2)"},
    {.key = "poll_interval", .type = ADO_T_DURATION, .help = "head/receipt polling (default 1s)"},
    {.key = "stuck_timeout",
     .type = ADO_T_DURATION,
     .help = "replace a tx unmined for this long with higher fees (default 60s)"},
    {.key = "rpc_timeout", .type = ADO_T_DURATION, .help = "per JSON-RPC request (default 10s)"},
    {.key = "gas_limit", .type = ADO_T_INT, .help = "gas limit when the payload gives none"},
    {.key = "max_inflight", .type = ADO_T_INT, .help = "unconfirmed txs per peer (default 4096)"},
    {.key = "priority_percentile",
     .type = ADO_T_INT,
     .flags = ADO_F_RANGE,
     .min = 0,
     .max = 100,
     .help = "eth_feeHistory reward percentile (default 50)"},
    {.key = "max_fee_per_gas", .type = ADO_T_STRING, .help = "fee cap, wei or \"<n>gwei\""},
    {.key = "max_priority_fee_per_gas", .type = ADO_T_STRING, .help = "priority fee cap"},
    {.key = "min_priority_fee_per_gas", .type = ADO_T_STRING, .help = "priority fee floor"},
    {.key = "contracts", .type = ADO_T_ANY, .help = "alias -> address"},
    {.key = "calls", .type = ADO_T_ANY, .help = "name -> {to, signature, gas_limit}"},
    {.key = "events", .type = ADO_T_ANY, .help = "[{contract, signature}] published on the bus"},
    {.key = "events_from_block", .type = ADO_T_INT, .help = "first block to scan (default head)"},
    ADO_SCHEMA_END,
};

/* ---- transport ops ----------------------------------------------------------------------- */

static int op_peer_open(void *arg, const char *peer, const char *layer, const char *address,
                        const char *public_key, const char *options) {
    struct evm *e = arg;
    (void)layer, (void)public_key;
    if (evm_peer_find(e, peer))
        return ADO_EEXIST;
    struct evm_peer *p = NULL;
    char why[256];
    int rc = evm_peer_open(e, peer, address, options, &p, why);
    if (rc < 0) {
        e->api->log(e->ctx, ADO_LOG_ERROR, "peer %s: %s", peer, why);
        e->api->bridge_peer_state(e->ctx, peer, 0, why);
        e->api->set_degraded(e->ctx, why);
    }
    return rc;
}

static void op_peer_close(void *arg, const char *peer) {
    struct evm *e = arg;
    struct evm_peer *p = evm_peer_find(e, peer);
    if (p)
        evm_peer_close(p);
}

static int op_send(void *arg, const char *peer, const struct ado_bridge_msg *msg) {
    struct evm *e = arg;
    struct evm_peer *p = evm_peer_find(e, peer);
    return p ? evm_peer_send(p, msg) : ADO_ENOTFOUND;
}

struct query {
    void (*done)(void *, int, const char *);
    void *cbarg;
};

static void on_query(void *arg, int status, const char *body, size_t len) {
    struct query *q = arg;
    (void)len;
    if (status < 0)
        q->done(q->cbarg, status, NULL);
    else
        q->done(q->cbarg, 0, body);
    free(q);
}

static int op_query(void *arg, const char *peer, const char *request, size_t len,
                    uint64_t timeout_ms, void (*done)(void *, int, const char *), void *cbarg) {
    struct evm *e = arg;
    (void)timeout_ms; /* the peer's rpc_timeout applies */
    struct evm_peer *p = evm_peer_find(e, peer);
    if (!p)
        return ADO_ENOTFOUND;
    /* Read-only: refuse anything that would sign or send. */
    if (strstr(request, "eth_sendRawTransaction") || strstr(request, "eth_sendTransaction") ||
        strstr(request, "eth_sign"))
        return ADO_EPERM;
    struct query *q = malloc(sizeof *q);
    if (!q)
        return ADO_ENOMEM;
    q->done = done;
    q->cbarg = cbarg;
    int rc = jrpc_post(p->rpc, request, len, on_query, q);
    if (rc < 0)
        free(q);
    return rc;
}

static const struct ado_transport transport = {
    .size = sizeof(struct ado_transport),
    .peer_open = op_peer_open,
    .peer_close = op_peer_close,
    .send = op_send,
    .query = op_query,
};

/* ---- RPC: l2_call, l2_status ------------------------------------------------------------- */

struct l2call {
    struct evm *e;
    ado_call *call;
    char *returns;
};

static void on_l2_call(void *arg, int status, json_t *result, json_t *error) {
    struct l2call *c = arg;
    const struct ado_api *api = c->e->api;
    if (status == 0 && json_is_string(result)) {
        json_t *out = json_pack("{s:O}", "result", result);
        if (c->returns) {
            const char *h = json_string_value(result);
            size_t hl = strlen(h), n = 0;
            uint8_t *b = malloc(hl / 2 + 1);
            char *dec = NULL;
            struct ado_eth_error ee = {{0}};
            if (b && ado_eth_hex_decode(h, hl, b, hl / 2 + 1, &n) == 0 &&
                ado_abi_decode_json(c->returns, b, n, &dec, &ee) == 0)
                json_object_set_new(out, "decoded", json_loads(dec, 0, NULL));
            else
                json_object_set_new(out, "decode_error", json_string(ee.msg));
            free(b);
            free(dec);
        }
        char *txt = json_dumps(out, JSON_COMPACT);
        json_decref(out);
        if (txt)
            api->rpc_reply(c->call, txt, strlen(txt));
        else
            api->rpc_error(c->call, -32603, "out of memory", NULL);
        free(txt);
    } else if (status == ADO_EPLUGIN && error) {
        const char *data = jrpc_error_data(error);
        char reason[300], dj[400];
        if (data)
            evm_revert_reason(data, reason, sizeof reason);
        else
            snprintf(reason, sizeof reason, "%s", jrpc_error_message(error));
        snprintf(dj, sizeof dj, "\"%s\"", data ? data : "");
        api->rpc_error(c->call, 3, reason, data ? dj : NULL);
    } else if (status != ADO_ECLOSED) {
        api->rpc_error(c->call, -32000, "L2 node unreachable", NULL);
    } else {
        api->rpc_error(c->call, -32000, "peer closed", NULL);
    }
    free(c->returns);
    free(c);
}

static struct evm_peer *pick_peer(struct evm *e, json_t *params) {
    const char *name = json_string_value(json_object_get(params, "peer"));
    if (name)
        return evm_peer_find(e, name);
    return e->peers;
}

static void rpc_l2_call(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    struct evm *e = arg;
    (void)ctx;
    json_t *o = json_loadb(params, len, 0, NULL);
    struct evm_peer *p = pick_peer(e, o);
    const char *to = json_string_value(json_object_get(o, "to"));
    const char *sig = json_string_value(json_object_get(o, "signature"));
    const char *ret = json_string_value(json_object_get(o, "returns"));
    const char *blk = json_string_value(json_object_get(o, "block"));
    json_t *args = json_object_get(o, "args");
    uint8_t addr[20], *data = NULL;
    size_t dl = 0;
    struct ado_eth_error ee = {{0}};
    char *args_s = NULL;
    if (!p) {
        e->api->rpc_error(call, -32000, "no such L2 peer (is the bridge peer open?)", NULL);
        goto out;
    }
    if (!to || !sig || evm_resolve_address(p, to, addr) < 0) {
        e->api->rpc_error(call, -32602, "want {to: address|alias, signature, args?, returns?}",
                          NULL);
        goto out;
    }
    args_s = args ? json_dumps(args, JSON_COMPACT) : strdup("[]");
    if (!args_s || ado_abi_encode_call(sig, args_s, &data, &dl, &ee) < 0) {
        e->api->rpc_error(call, -32602, ee.msg[0] ? ee.msg : "cannot encode", NULL);
        goto out;
    }
    char *hex = malloc(dl * 2 + 3), a[43];
    struct l2call *c = calloc(1, sizeof *c);
    if (!hex || !c) {
        free(hex);
        free(c);
        e->api->rpc_error(call, -32603, "out of memory", NULL);
        goto out;
    }
    memcpy(hex, "0x", 2);
    ado_eth_hex_encode(data, dl, hex + 2);
    ado_eth_address_lower(addr, a);
    c->e = e;
    c->call = call;
    if (ret) {
        /* "(uint256,bool)" or "uint256,bool" */
        size_t rl = strlen(ret);
        c->returns = ret[0] == '(' && ret[rl - 1] == ')' ? strndup(ret + 1, rl - 2) : strdup(ret);
    }
    json_t *prm = json_pack("[{s:s,s:s},s]", "to", a, "data", hex, blk ? blk : "latest");
    free(hex);
    if (jrpc_call(p->rpc, "eth_call", prm, on_l2_call, c) < 0) {
        free(c->returns);
        free(c);
        e->api->rpc_error(call, -32603, "cannot queue the request", NULL);
    }
out:
    free(args_s);
    free(data);
    json_decref(o);
}

static void rpc_l2_status(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    struct evm *e = arg;
    (void)ctx, (void)params, (void)len;
    json_t *arr = json_array();
    for (struct evm_peer *p = e->peers; p; p = p->next)
        json_array_append_new(arr, evm_peer_status(p));
    char *txt = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (txt)
        e->api->rpc_reply(call, txt, strlen(txt));
    else
        e->api->rpc_error(call, -32603, "out of memory", NULL);
    free(txt);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static int evm_init(ado_ctx *ctx, const struct ado_api *api, void **state) {
    struct evm *e = calloc(1, sizeof *e);
    if (!e)
        return ADO_ENOMEM;
    e->ctx = ctx;
    e->api = api;
    char *txt = NULL;
    int rc = api->config_json(ctx, "", &txt);
    if (rc == 0) {
        e->cfg = json_loads(txt, 0, NULL);
        api->free(ctx, txt);
        if (!e->cfg || !json_is_object(e->cfg))
            rc = ADO_ECONFIG;
    }
    /* A key given at the plugin level is checked now, so that a bad one stops the node. */
    if (rc == 0 && (json_object_get(e->cfg, "key") || json_object_get(e->cfg, "key_file"))) {
        uint8_t key[32];
        char why[256];
        rc = evm_load_key(e->cfg, key, why);
        memset(key, 0, sizeof key);
        if (rc < 0)
            api->log(ctx, ADO_LOG_ERROR, "%s", why);
    }
    if (rc == 0)
        rc = api->store_open_db(ctx, "evm_l2", &e->db);
    if (rc == 0)
        rc = api->bridge_transport_register(ctx, "evm_l2", &transport, e);
    if (rc < 0) {
        json_decref(e->cfg);
        free(e);
        return rc;
    }
    *state = e;
    return 0;
}

static int evm_start(ado_ctx *ctx, void *state) {
    struct evm *e = state;
    int rc = e->api->rpc_register(ctx, "l2_call", "reader",
                                  "read-only eth_call on the L2: {to, signature, args, returns?, "
                                  "peer?, block?}",
                                  rpc_l2_call, e);
    if (rc == 0)
        rc = e->api->rpc_register(ctx, "l2_status", "reader",
                                  "L2 peers: chain, account, nonce, head, in-flight txs",
                                  rpc_l2_status, e);
    return rc;
}

static void evm_stop(ado_ctx *ctx, void *state) {
    struct evm *e = state;
    (void)ctx;
    e->stopping = 1;
    while (e->peers)
        evm_peer_close(e->peers);
}

static void evm_fini(ado_ctx *ctx, void *state) {
    struct evm *e = state;
    (void)ctx;
    while (e->peers)
        evm_peer_close(e->peers);
    json_decref(e->cfg);
    free(e);
}

ADO_PLUGIN_DEFINE(.name = "evm_l2", .version = "0.1.0",
                  .description = "bridge transport to the L2 over Ethereum JSON-RPC",
                  .schema = schema, .init = evm_init, .start = evm_start, .stop = evm_stop,
                  .fini = evm_fini);
