/* trn_oracle: private declarations shared by the plugin's files.
 *
 * trn_main.c    descriptor, schema, config, start/stop, the epoch timer
 * trn_ledger.c  balances, content, the four operations, deposits, trn_balance
 * trn_epoch.c   epoch close (collect → worker → commit + outbox), L2 events, trn_epoch
 * trn_proof.c   tree cache, trn_proof, trn_epochData
 *
 * Everything here runs on the loop thread except what trn_epoch.c hands to the worker pool. */
#ifndef TRN_H
#define TRN_H

#include <ado/ado.h>
#include <ado_eth/common.h>
#include <ado_eth/merkle.h>
#include <ado_eth/u256.h>
#include <jansson.h>

#include "trn_activity.h"

/* JSON-RPC error codes of the plugin (-32602 is used for malformed params). */
enum trn_rpc_error {
    TRN_ERR_BALANCE = 1001,  /* the operation would take an account below zero */
    TRN_ERR_CONTENT = 1002,  /* unknown content */
    TRN_ERR_EXISTS = 1003,   /* content already registered */
    TRN_ERR_TREASURY = 1004, /* the treasury cannot pay the gas (or the view reward) */
    TRN_ERR_EPOCH = 1005,    /* unknown epoch, or not closed yet */
    TRN_ERR_NOLEAF = 1006,   /* the account has nothing in that epoch */
    TRN_ERR_HALTED = 1007,   /* settlement stopped: reconciliation mismatch */
    TRN_ERR_BUSY = 1008,     /* an epoch close is already running */
    TRN_ERR_INTERNAL = -32603,
    TRN_ERR_PARAMS = -32602,
};

enum trn_epoch_status {
    TRN_EPOCH_OPEN = 0,
    TRN_EPOCH_CLOSING = 1,    /* frozen; tree and data being built (re-derived after a crash) */
    TRN_EPOCH_CLOSED = 2,     /* built and stored; nothing sent (l2.submit false) */
    TRN_EPOCH_SUBMITTING = 3, /* in the outbox, some messages not accepted by it yet */
    TRN_EPOCH_SUBMITTED = 4,  /* every message in the outbox */
    TRN_EPOCH_VETOED = 5,     /* L2 governance vetoed the root */
};

/* Store layout: named databases of the plugin (keys big-endian so they sort). */
struct trn_dbs {
    ado_db state;    /* "totals" → struct trn_totals_rec */
    ado_db bal;      /* address(20) → balance (32 BE) */
    ado_db content;  /* id text → number (4 BE) ‖ creator (20) */
    ado_db contentn; /* number (4 BE) → creator (20) ‖ id text */
    ado_db earned;   /* epoch (8) ‖ address (20) → amount earned in the epoch (32 BE) */
    ado_db ops;      /* epoch (8) ‖ seq (8) → op record (TRN_OP_LEN) */
    ado_db epochs;   /* epoch (8) → struct trn_epoch_rec */
    ado_db data;     /* epoch (8) ‖ chunk (4) → compressed data chunk */
    ado_db deposits; /* tx hash text ‖ ":" ‖ log index → 1 (dedupe of L2 events) */
};

/* Ledger totals, persisted under state/"totals" in every transaction that moves money.
 * Invariant (checked at each close):
 *   deposits == sum(balances) + earned_all + burned + gas */
struct trn_totals {
    struct ado_u256 deposits;    /* every deposit observed on L2 */
    struct ado_u256 balances;    /* sum of all L3 balances */
    struct ado_u256 earned_all;  /* everything earned, all epochs (settled or open) */
    struct ado_u256 burned;      /* burned on L3 */
    struct ado_u256 gas;         /* invisible gas and L2 fees paid by the treasury */
    struct ado_u256 epoch_total; /* earned in the open epoch */
    uint64_t epoch;              /* the open epoch */
    uint64_t opened_ms;          /* wall clock when it opened */
    uint64_t op_seq;             /* ops logged in the open epoch */
    uint64_t contents;           /* content numbers given so far */
};

/* One epoch's record in the epochs database (fixed layout, this machine's byte order). */
struct trn_epoch_rec {
    uint32_t version; /* 1 */
    uint32_t status;  /* enum trn_epoch_status */
    uint64_t epoch, opened_ms, closed_ms;
    uint64_t nops, nleaves, raw_size, data_size;
    uint32_t chunks, sent; /* data chunks; bridge messages accepted by the outbox */
    uint64_t final_at_s;   /* from L2 DataComplete (0 = unknown) */
    uint32_t encode_ms, compress_ms, tree_ms; /* worker timings of the last build */
    uint32_t flags;                           /* TRN_EPOCH_F_* */
    uint8_t total[32], root[32], data_hash[32];
    char l2_tx[68];    /* RootSubmitted transaction hash, or "" */
    char final_tx[68]; /* DataComplete transaction hash, or "" */
    char msg_id[96];   /* bridge id of the submitRoot message, or "" */
};

/* trn_epoch_rec.flags: the root of a "closing" epoch is durable and its proofs are served
 * (the activity data and the outbox messages follow in the commit that makes it "closed"). */
#define TRN_EPOCH_F_ROOT 1u

struct trn_close;     /* an epoch close in progress (trn_epoch.c) */
struct trn_tree_slot; /* a cached tree (trn_proof.c) */

struct trn {
    ado_ctx *ctx;
    const struct ado_api *api;
    struct trn_dbs db;
    struct trn_totals t;

    /* config */
    uint8_t treasury[20];
    int64_t period_ms;
    uint64_t first_epoch;
    struct ado_u256 view_reward, view_cost, boost_fee, gas_per_op, l2_fee_per_tx, max_total;
    const char *peer;              /* bridge peer of the L2 */
    int submit;                    /* 1: send roots and data to the peer */
    const char *contract;          /* TRNSettlement address or evm_l2 alias */
    const char *deposits_contract; /* "" = any contract */
    const char *deposit_event;
    int64_t chunk_size, quality, close_delay_ms, proof_cache;

    uint64_t timer;
    int halted;              /* reconciliation failed: no settlement until an admin retries */
    struct trn_close *close; /* at most one close at a time */
    struct trn_tree_slot *trees;
    uint64_t tree_uses; /* LRU stamp of the tree cache */
};

/* ---- helpers (trn_ledger.c) ---- */
void trn_be64(uint64_t v, uint8_t out[8]);
uint64_t trn_rd64(const uint8_t in[8]);
int trn_save_totals(struct trn *s);
int trn_load_totals(struct trn *s);
/* Balance of addr (0 when absent). */
int trn_balance_get(struct trn *s, const uint8_t addr[20], struct ado_u256 *out);
int trn_balance_put(struct trn *s, const uint8_t addr[20], const struct ado_u256 *v);
/* Text helpers for results: decimal and 0x-hex. */
void trn_dec(const struct ado_u256 *v, char out[ADO_U256_DEC_MAX]);
void trn_hex32(const uint8_t in[32], char out[67]);
/* Params: the call's params as a JSON object, or NULL after answering -32602. Caller decrefs. */
json_t *trn_params(struct trn *s, ado_call *call, const char *params, size_t len);
/* Fields of params: 0, ADO_ENOTFOUND (absent) or ADO_EINVAL (malformed). Amounts are decimal
 * or 0x-hex strings, or non-negative JSON integers, in the uint256 range. */
int trn_get_addr(json_t *o, const char *key, uint8_t out[20]);
/* trn_get_addr, answering the call with invalid params (naming `key`) when it fails. */
int trn_need_addr(struct trn *s, ado_call *call, json_t *o, const char *key, uint8_t out[20]);
int trn_get_amount(json_t *o, const char *key, struct ado_u256 *out);
int trn_get_u64(json_t *o, const char *key, uint64_t *out);
/* Answer -32602 naming the field and why (missing or malformed, from rc). */
void trn_bad_param(struct trn *s, ado_call *call, const char *key, int rc, const char *what);
int trn_register_ledger_rpc(struct trn *s);
int trn_subscribe_deposits(struct trn *s);
/* The L2 event object of a bus payload (see trn_ledger.c), a new reference, or NULL. */
json_t *trn_l2_event(const void *data, size_t len);
int trn_contract_matches(json_t *ev, const char *want);

/* ---- epochs (trn_epoch.c) ---- */
int trn_epoch_get(struct trn *s, uint64_t epoch, struct trn_epoch_rec *out);
int trn_epoch_put(struct trn *s, const struct trn_epoch_rec *rec);
/* Start closing the open epoch (timer or admin). call may be NULL. */
int trn_close_start(struct trn *s, ado_call *call);
/* At start: resume a close interrupted by a crash and resend what the outbox refused. */
int trn_epoch_recover(struct trn *s);
/* Timer tick: period elapsed → close; resend pending messages. */
void trn_epoch_tick(struct trn *s);
void trn_epoch_stop(struct trn *s);
int trn_register_epoch_rpc(struct trn *s);
int trn_subscribe_l2(struct trn *s);
const char *trn_status_name(const struct trn *s, const struct trn_epoch_rec *e);

/* ---- proofs (trn_proof.c) ---- */
/* Read the stored leaves of a closed epoch (sorted by address), summing them into total. */
int trn_collect_leaves(struct trn *s, uint64_t epoch, uint8_t **leaves, size_t *n,
                       struct ado_u256 *total);
/* Give a freshly built tree to the cache (takes ownership of m and leaves). leaves may be NULL:
 * the tree's own copy of its values (ado_merkle_bin, sorted by address) is used. */
void trn_tree_cache_put(struct trn *s, uint64_t epoch, struct ado_merkle *m, uint8_t *leaves,
                        size_t n);
void trn_tree_cache_free(struct trn *s);
int trn_register_proof_rpc(struct trn *s);

#endif
