/* evm_l2: one L2 endpoint (see evm_l2.h).
 *
 * Life of a message: send() signs a type-2 transaction with the next nonce and writes its
 * record (raw tx, hashes, nonce, fees, message seq) and the next nonce into the store in the
 * caller's turn transaction. Only once that is durable is the transaction broadcast, so a
 * crash can never leave a broadcast transaction the store does not know about. A restart
 * loads the records and re-broadcasts them (the L2 node answers "already known" or mines
 * them once). Every tick (one batched JSON-RPC request) reads the head, the fees, the
 * account's nonces and the receipts of every in-flight hash, then: acks at `confirmations`,
 * fails a revert (with its reason), re-broadcasts after a reorg, and replaces a transaction
 * stuck longer than `stuck_timeout` with both fees raised by 12.5 % (same nonce). */
#include "evm_l2.h"

#include <ado_eth/address.h>
#include <ado_eth/common.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ----------------------------------------------------------------------- */

/* v + v/8 + 1 (a bump of more than 12.5 %, so more than the 10 % nodes require). */
static void u256_bump(struct ado_u256 *out, const struct ado_u256 *v) {
    struct ado_u256 e = *v, one;
    for (int i = 0; i < 4; i++)
        e.w[i] = (v->w[i] >> 3) | (i < 3 ? v->w[i + 1] << 61 : 0);
    ado_u256_from_u64(&one, 1);
    ado_u256_add(out, v, &e);
    ado_u256_add(out, out, &one);
}

static const struct ado_u256 *u256_max(const struct ado_u256 *a, const struct ado_u256 *b) {
    return ado_u256_cmp(a, b) >= 0 ? a : b;
}

void evm_metric(struct evm_peer *p, const char *name, double delta) {
    char labels[160];
    snprintf(labels, sizeof labels, "peer=\"%s\"", p->name);
    p->e->api->metric_add(p->e->ctx, name, labels, delta);
}

void evm_gauge(struct evm_peer *p, const char *name, double value) {
    char labels[160];
    snprintf(labels, sizeof labels, "peer=\"%s\"", p->name);
    p->e->api->metric_set(p->e->ctx, name, labels, value);
}

static void set_state(struct evm_peer *p, int up, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_state(struct evm_peer *p, int up, const char *fmt, ...) {
    char why[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
    }
    int changed = p->up != up || strcmp(p->reason, why) != 0;
    p->up = up;
    snprintf(p->reason, sizeof p->reason, "%s", why);
    if (!changed)
        return;
    p->e->api->log(p->e->ctx, up ? ADO_LOG_INFO : ADO_LOG_WARN, "peer %s %s%s%s", p->name,
                   up ? "up" : "down", why[0] ? ": " : "", why);
    p->e->api->bridge_peer_state(p->e->ctx, p->name, up, why[0] ? why : NULL);
    if (!up)
        p->e->api->set_degraded(p->e->ctx, why);
    else
        p->e->api->set_degraded(p->e->ctx, NULL);
}

/* ---- signing ----------------------------------------------------------------------------- */

static int tx_sign(struct evm_peer *p, struct evm_tx *t) {
    struct ado_eth_tx1559 tx = {
        .chain_id = p->chain_id,
        .nonce = t->nonce,
        .max_priority_fee_per_gas = t->prio,
        .max_fee_per_gas = t->max_fee,
        .gas_limit = t->gas_limit,
        .has_to = t->has_to,
        .value = t->value,
        .data = t->data,
        .data_len = t->data_len,
    };
    memcpy(tx.to, t->to, 20);
    uint8_t *raw = NULL, hash[32];
    size_t rlen = 0;
    int rc = ado_eth_tx1559_sign(p->signer, &tx, &raw, &rlen, hash);
    if (rc < 0)
        return rc;
    char *hex = malloc(rlen * 2 + 3);
    if (!hex) {
        free(raw);
        return ADO_ENOMEM;
    }
    memcpy(hex, "0x", 2);
    ado_eth_hex_encode(raw, rlen, hex + 2);
    free(raw);
    free(t->raw_hex);
    t->raw_hex = hex;
    if (t->nhash == EVM_MAX_HASHES) { /* keep the newest ones */
        memmove(t->hashes[0], t->hashes[1], (EVM_MAX_HASHES - 1) * EVM_HASH_HEX);
        t->nhash--;
    }
    t->hashes[t->nhash][0] = '0';
    t->hashes[t->nhash][1] = 'x';
    ado_eth_hex_encode(hash, 32, t->hashes[t->nhash] + 2);
    t->nhash++;
    return 0;
}

/* Fees for a new transaction: priority = the fee history's percentile clamped to
 * [prio_min, prio_cap]; max fee = 2 x next base fee + priority, at most fee_cap. */
static void fees_now(struct evm_peer *p, struct ado_u256 *max_fee, struct ado_u256 *prio) {
    *prio = *u256_max(&p->prio_fee, &p->prio_min);
    if (ado_u256_cmp(prio, &p->prio_cap) > 0)
        *prio = p->prio_cap;
    ado_u256_mul_u64(max_fee, &p->base_fee, 2);
    ado_u256_add(max_fee, max_fee, prio);
    if (ado_u256_cmp(max_fee, &p->fee_cap) > 0)
        *max_fee = p->fee_cap;
    if (ado_u256_cmp(prio, max_fee) > 0)
        *prio = *max_fee;
}

/* What the calldata itself costs at most: the EIP-7623 floor, 10 gas per zero byte and 40 per
 * other byte (above the standard 4 / 16). Added to the default gas limit, which then budgets
 * the execution only: a 120 KiB publishChunk needs ~5M gas, and a node refuses (geth:
 * "intrinsic gas too low") or drops (anvil) a transaction whose limit does not cover it. */
static uint64_t calldata_gas(const uint8_t *data, size_t len) {
    uint64_t gas = 0;
    for (size_t i = 0; i < len; i++)
        gas += data[i] ? 40 : 10;
    return gas;
}

/* ---- broadcast --------------------------------------------------------------------------- */

struct bcast {
    struct evm_peer *p;
    size_t n;
    uint64_t *nonces;
};

static int benign_send_error(const char *m) {
    static const char *const ok[] = {
        "already known",    "known transaction", "nonce too low",  "underpriced",
        "already imported", "AlreadyKnown",      "already exists", NULL};
    for (int i = 0; ok[i]; i++)
        if (strcasestr(m, ok[i]))
            return 1;
    return 0;
}

static void on_bcast(void *arg, int status, const char *body, size_t len) {
    struct bcast *b = arg;
    struct evm_peer *p = b->p;
    if (status == ADO_ECLOSED)
        goto out;
    if (status < 0) {
        evm_metric(p, "evm_l2_rpc_errors_total", 1);
        for (size_t i = 0; i < b->n; i++) {
            struct evm_tx *t = evm_tx_by_nonce(p, b->nonces[i]);
            if (t)
                t->broadcast = 0; /* next tick tries again */
        }
        goto out;
    }
    json_t *arr = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r) {
        json_int_t id = json_integer_value(json_object_get(r, "id"));
        if (id < 0 || (size_t)id >= b->n)
            continue;
        struct evm_tx *t = evm_tx_by_nonce(p, b->nonces[id]);
        if (!t)
            continue;
        json_t *err = json_object_get(r, "error");
        if (!err || json_is_null(err)) {
            if (t->nhash == 1 && !t->have_rcpt)
                evm_metric(p, "evm_l2_txs_sent_total", 1);
            continue;
        }
        const char *m = jrpc_error_message(err);
        if (benign_send_error(m))
            continue;
        /* Refused for good (funds, gas, size...): give the nonce back if it is the last. */
        char why[300];
        snprintf(why, sizeof why, "L2 node refused the transaction: %s", m);
        p->e->api->log(p->e->ctx, ADO_LOG_WARN, "peer %s seq %" PRIu64 " nonce %" PRIu64 ": %s",
                       p->name, t->seq, t->nonce, why);
        uint64_t seq = t->seq, nonce = t->nonce;
        evm_tx_remove(p, t);
        if (nonce + 1 == p->next_nonce) {
            p->next_nonce = nonce;
            evm_nonce_save(p);
        }
        p->e->api->bridge_failed(p->e->ctx, p->name, seq, why);
    }
    if (!arr)
        evm_metric(p, "evm_l2_rpc_errors_total", 1);
    json_decref(arr);
out:
    free(b->nonces);
    free(b);
}

/* Broadcast every durable transaction not yet handed to the L2 node, in one batch. */
static void broadcast_chunk(struct evm_peer *p, size_t n);

static void broadcast_pending(struct evm_peer *p) {
    if (!p->chain_ok || !p->nonce_ok)
        return;
    size_t n = 0;
    for (struct evm_tx *t = p->txs; t; t = t->next)
        n += t->durable && !t->broadcast && !t->finishing;
    while (n) {
        size_t k = n > EVM_BCAST_BATCH ? EVM_BCAST_BATCH : n;
        broadcast_chunk(p, k);
        n -= k;
    }
}

/* One batch of the next n durable transactions not yet broadcast. */
static void broadcast_chunk(struct evm_peer *p, size_t n) {
    struct bcast *b = calloc(1, sizeof *b);
    json_t *arr = json_array();
    if (!b || !arr || !(b->nonces = calloc(n, sizeof *b->nonces))) {
        free(b);
        json_decref(arr);
        return;
    }
    b->p = p;
    uint64_t now = p->e->api->now_ms(p->e->ctx);
    for (struct evm_tx *t = p->txs; t && b->n < n; t = t->next) {
        if (!t->durable || t->broadcast || t->finishing)
            continue;
        json_array_append_new(arr, json_pack("{s:s,s:I,s:s,s:[s]}", "jsonrpc", "2.0", "id",
                                             (json_int_t)b->n, "method", "eth_sendRawTransaction",
                                             "params", t->raw_hex));
        b->nonces[b->n++] = t->nonce;
        t->broadcast = 1;
        t->sent_ms = now;
    }
    char *body = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!body || jrpc_post(p->rpc, body, strlen(body), on_bcast, b) < 0) {
        for (size_t i = 0; i < b->n; i++) {
            struct evm_tx *t = evm_tx_by_nonce(p, b->nonces[i]);
            if (t)
                t->broadcast = 0;
        }
        free(b->nonces);
        free(b);
    }
    free(body);
}

struct durable_arg {
    struct evm *e;
    char peer[128];
    uint64_t gen; /* records written with a generation <= gen are durable */
};

static int flush_timer(ado_ctx *ctx, void *arg) {
    struct evm_peer *p = arg;
    p->flush_pending = 0;
    p->flush_timer = 0;
    size_t n = p->nreacks;
    p->nreacks = 0;
    for (size_t i = 0; i < n; i++)
        p->e->api->bridge_acked(ctx, p->name, p->reacks[i]);
    broadcast_pending(p);
    return 0;
}

static void flush_soon(struct evm_peer *p) {
    if (p->flush_pending)
        return;
    p->flush_pending = 1;
    if (p->e->api->timer_start(p->e->ctx, 0, 0, flush_timer, p, &p->flush_timer) < 0) {
        p->flush_pending = 0;
        p->flush_timer = 0;
    }
}

static void on_durable(ado_ctx *ctx, int status, void *arg) {
    struct durable_arg *d = arg;
    struct evm_peer *p = d->e->stopping ? NULL : evm_peer_find(d->e, d->peer);
    uint64_t gen = d->gen;
    free(d);
    if (!p)
        return;
    if (status < 0) {
        /* The records are lost: so are the messages' hand-offs; the bridge retries them. */
        p->e->api->log(ctx, ADO_LOG_ERROR, "peer %s: in-flight records failed to commit", p->name);
        for (struct evm_tx *t = p->txs, *nx; t; t = nx) {
            nx = t->next;
            if (!t->durable && t->wgen <= gen) {
                uint64_t seq = t->seq;
                evm_tx_remove(p, t);
                p->e->api->bridge_failed(ctx, p->name, seq, "store commit failed");
            }
        }
        return;
    }
    for (struct evm_tx *t = p->txs; t; t = t->next)
        if (t->wgen <= gen)
            t->durable = 1;
    /* Every durable callback of this commit runs in this turn: broadcast once, from a
     * zero-delay timer, so that a burst of messages goes out as one batch. */
    flush_soon(p);
    if (!p->flush_pending)
        broadcast_pending(p);
}

/* Ask to broadcast once the turn's writes are durable. The records written before this call
 * are the ones made durable (the kernel commits the whole turn at once). */
static int request_durable(struct evm_peer *p) {
    struct durable_arg *d = calloc(1, sizeof *d);
    if (!d)
        return ADO_ENOMEM;
    d->e = p->e;
    snprintf(d->peer, sizeof d->peer, "%s", p->name);
    d->gen = p->wgen;
    int rc = p->e->api->store_on_durable(p->e->ctx, on_durable, d);
    if (rc < 0)
        free(d);
    return rc;
}

/* ---- send -------------------------------------------------------------------------------- */

int evm_peer_send(struct evm_peer *p, const struct ado_bridge_msg *msg) {
    struct evm *e = p->e;
    if (!p->up || !p->chain_ok || !p->nonce_ok || !p->fees_ok)
        return ADO_ECLOSED;
    if (evm_tx_by_seq(p, msg->seq))
        return 0; /* already on the wire (a re-send after a restart): await it */
    if (evm_acked_was(p, msg->seq)) {
        /* Confirmed before: ack again (from a timer, after send returns), send nothing. */
        if (p->nreacks == p->reacks_cap) {
            size_t cap = p->reacks_cap ? p->reacks_cap * 2 : 16;
            uint64_t *r = realloc(p->reacks, cap * sizeof *r);
            if (!r)
                return ADO_ENOMEM;
            p->reacks = r;
            p->reacks_cap = cap;
        }
        p->reacks[p->nreacks++] = msg->seq;
        flush_soon(p);
        return 0;
    }
    if (p->ntx >= p->max_inflight)
        return ADO_EBUSY;
    struct evm_tx *t = calloc(1, sizeof *t);
    if (!t)
        return ADO_ENOMEM;
    char why[256] = "";
    int rc = evm_payload_parse(p, msg->payload, msg->len, t->to, &t->data, &t->data_len, &t->value,
                               &t->gas_limit, why);
    if (rc < 0) {
        e->api->log(e->ctx, ADO_LOG_WARN, "peer %s seq %" PRIu64 ": bad payload: %s", p->name,
                    msg->seq, why);
        evm_tx_free(t);
        return ADO_EINVAL;
    }
    if (!t->gas_limit)
        t->gas_limit = p->default_gas + calldata_gas(t->data, t->data_len);
    t->has_to = 1;
    t->seq = msg->seq;
    t->nonce = p->next_nonce;
    fees_now(p, &t->max_fee, &t->prio);
    rc = tx_sign(p, t);
    if (rc == 0) {
        p->next_nonce++;
        rc = evm_tx_save(p, t);
    }
    if (rc == 0)
        rc = evm_nonce_save(p);
    if (rc == 0)
        rc = request_durable(p);
    if (rc < 0) {
        /* The turn may still commit what was put: drop it in this same turn. */
        char k[160];
        int kl = evm_tx_key(p, t->nonce, k, sizeof k);
        e->api->store_del(e->ctx, e->db, k, (size_t)kl);
        if (p->next_nonce == t->nonce + 1)
            p->next_nonce = t->nonce;
        evm_nonce_save(p);
        evm_tx_free(t);
        return rc;
    }
    evm_tx_insert(p, t);
    return 0;
}

/* ---- the tick ---------------------------------------------------------------------------- */

static void subscribe(struct evm_peer *p);

struct tick {
    struct evm_peer *p;
    size_t n;                     /* receipt queries */
    uint64_t *nonces;             /* nonce of query i */
    char (*hashes)[EVM_HASH_HEX]; /* hash of query i */
    int full;                     /* chain checks included */
};

enum { ID_CHAIN = 0, ID_HEAD, ID_FEES, ID_LATEST, ID_PENDING, ID_RCPT0 };

static void push(json_t *arr, int id, const char *method, json_t *params) {
    json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:o}", "jsonrpc", "2.0", "id", id, "method",
                                         method, "params", params));
}

static void tick_free(struct tick *k) {
    free(k->nonces);
    free(k->hashes);
    free(k);
}

static void tick_failed(struct evm_peer *p, const char *what) {
    evm_metric(p, "evm_l2_rpc_errors_total", 1);
    if (++p->fail_streak >= 2 && p->chain_ok) {
        /* Re-check chain id and nonces once it answers again: it may be another node. */
        p->chain_ok = 0;
        p->nonce_ok = 0;
        set_state(p, 0, "L2 node %s unreachable: %s", p->url, what);
    } else if (p->fail_streak >= 2 && !p->up) {
        set_state(p, 0, "L2 node %s unreachable: %s", p->url, what);
    }
}

struct revert_ctx {
    struct evm *e;
    char peer[128];
    uint64_t nonce;
};

static void finish_revert(struct evm_peer *p, struct evm_tx *t, const char *reason) {
    char why[400];
    snprintf(why, sizeof why, "transaction %s reverted in block %" PRIu64 ": %s",
             t->hashes[t->nhash - 1], t->rcpt_block, reason);
    uint64_t seq = t->seq;
    p->e->api->log(p->e->ctx, ADO_LOG_WARN, "peer %s seq %" PRIu64 ": %s", p->name, seq, why);
    evm_metric(p, "evm_l2_txs_reverted_total", 1);
    evm_tx_remove(p, t);
    p->e->api->bridge_failed(p->e->ctx, p->name, seq, why);
}

static void on_replay(void *arg, int status, json_t *result, json_t *error) {
    struct revert_ctx *rc = arg;
    struct evm_peer *p = status == ADO_ECLOSED ? NULL : evm_peer_find(rc->e, rc->peer);
    struct evm_tx *t = p ? evm_tx_by_nonce(p, rc->nonce) : NULL;
    free(rc);
    if (!t)
        return;
    char reason[300] = "no reason given";
    const char *data = error ? jrpc_error_data(error) : NULL;
    if (data)
        evm_revert_reason(data, reason, sizeof reason);
    else if (error)
        snprintf(reason, sizeof reason, "%s", jrpc_error_message(error));
    else if (status == 0 && result)
        snprintf(reason, sizeof reason, "reverted (the replay did not revert: out of gas?)");
    finish_revert(p, t, reason);
}

/* Replay the reverted call at its block's parent state to learn the reason. */
static void start_revert(struct evm_peer *p, struct evm_tx *t) {
    t->finishing = 1;
    struct revert_ctx *rc = calloc(1, sizeof *rc);
    char to[43], val[70], gas[32], blk[32];
    char *data = malloc(t->data_len * 2 + 3);
    if (!rc || !data) {
        free(rc);
        free(data);
        finish_revert(p, t, "reverted");
        return;
    }
    rc->e = p->e;
    snprintf(rc->peer, sizeof rc->peer, "%s", p->name);
    rc->nonce = t->nonce;
    ado_eth_address_lower(t->to, to);
    evm_u256_hex(&t->value, val);
    snprintf(gas, sizeof gas, "0x%" PRIx64, t->gas_limit);
    snprintf(blk, sizeof blk, "0x%" PRIx64, t->rcpt_block ? t->rcpt_block - 1 : 0);
    memcpy(data, "0x", 2);
    ado_eth_hex_encode(t->data, t->data_len, data + 2);
    json_t *params = json_pack("[{s:s,s:s,s:s,s:s,s:s},s]", "from", p->addr_hex, "to", to, "data",
                               data, "value", val, "gas", gas, blk);
    free(data);
    if (jrpc_call(p->rpc, "eth_call", params, on_replay, rc) < 0) {
        free(rc);
        finish_revert(p, t, "reverted");
    }
}

/* Replace a stuck transaction: same nonce, both fees up by more than 10 %. */
static void replace_stuck(struct evm_peer *p, struct evm_tx *t, uint64_t now) {
    struct ado_u256 fee, prio, cur_fee, cur_prio;
    u256_bump(&fee, &t->max_fee);
    u256_bump(&prio, &t->prio);
    fees_now(p, &cur_fee, &cur_prio);
    fee = *u256_max(&fee, &cur_fee);
    prio = *u256_max(&prio, &cur_prio);
    if (ado_u256_cmp(&prio, &fee) > 0)
        fee = prio;
    if (ado_u256_cmp(&fee, &p->fee_cap) > 0) {
        /* The cap leaves no room for a valid replacement: re-broadcast the same one. */
        p->e->api->log(p->e->ctx, ADO_LOG_WARN,
                       "peer %s nonce %" PRIu64 " stuck but max_fee_per_gas cap reached", p->name,
                       t->nonce);
        t->broadcast = 0;
        t->sent_ms = now;
        return;
    }
    struct ado_u256 old_fee = t->max_fee, old_prio = t->prio;
    t->max_fee = fee;
    t->prio = prio;
    if (tx_sign(p, t) < 0 || evm_tx_save(p, t) < 0 || request_durable(p) < 0) {
        t->max_fee = old_fee;
        t->prio = old_prio;
        return;
    }
    t->durable = 0;
    t->broadcast = 0;
    t->sent_ms = now;
    evm_metric(p, "evm_l2_txs_replaced_total", 1);
    p->n_replaced++;
    p->e->api->log(p->e->ctx, ADO_LOG_INFO,
                   "peer %s nonce %" PRIu64 " stuck: replaced by %s with higher fees", p->name,
                   t->nonce, t->hashes[t->nhash - 1]);
}

/* One tx's receipts from this tick: r is the receipt found for any of its hashes, or NULL. */
static void tx_update(struct evm_peer *p, struct evm_tx *t, json_t *r, uint64_t now) {
    if (t->finishing)
        return;
    t->gone = !r && !t->have_rcpt && t->broadcast && t->nonce < p->latest_count ? t->gone + 1 : 0;
    if (!r) {
        if (t->have_rcpt) {
            /* Its block left the canonical chain: send it again (same raw tx, same nonce). */
            t->have_rcpt = 0;
            t->broadcast = 0;
            evm_metric(p, "evm_l2_reorgs_total", 1);
            p->n_reorgs++;
            p->e->api->log(p->e->ctx, ADO_LOG_WARN,
                           "peer %s nonce %" PRIu64 ": receipt gone (reorg), re-sending", p->name,
                           t->nonce);
            return;
        }
        if (t->broadcast && now - t->sent_ms >= p->stuck_ms)
            replace_stuck(p, t, now);
        return;
    }
    uint64_t blk = 0;
    const char *bh = json_string_value(json_object_get(r, "blockHash"));
    uint64_t st = 0;
    if (evm_hex_u64(json_object_get(r, "blockNumber"), &blk) < 0 || !bh ||
        evm_hex_u64(json_object_get(r, "status"), &st) < 0)
        return; /* pending receipt or malformed: look again next tick */
    if (t->have_rcpt && (t->rcpt_block != blk || strcmp(t->rcpt_block_hash, bh) != 0)) {
        evm_metric(p, "evm_l2_reorgs_total", 1);
        p->n_reorgs++;
        p->e->api->log(p->e->ctx, ADO_LOG_WARN,
                       "peer %s nonce %" PRIu64 ": now in block %" PRIu64 " (reorg)", p->name,
                       t->nonce, blk);
    }
    t->have_rcpt = 1;
    t->rcpt_block = blk;
    t->rcpt_status = (int)st;
    snprintf(t->rcpt_block_hash, sizeof t->rcpt_block_hash, "%s", bh);
    if (p->head + 1 < blk + p->confirmations)
        return;
    if (st == 1) {
        uint64_t seq = t->seq;
        evm_metric(p, "evm_l2_txs_confirmed_total", 1);
        evm_acked_mark(p, t);
        evm_tx_remove(p, t);
        p->e->api->bridge_acked(p->e->ctx, p->name, seq);
    } else {
        start_revert(p, t);
    }
}

static void tick_apply(struct evm_peer *p, struct tick *k, json_t **by_id, size_t nid) {
    struct evm *e = p->e;
    uint64_t v;
    if (k->full) {
        if (evm_hex_u64(by_id[ID_CHAIN] ? json_object_get(by_id[ID_CHAIN], "result") : NULL, &v) <
            0) {
            tick_failed(p, "no eth_chainId answer");
            return;
        }
        p->remote_chain_id = v;
        if (v != p->chain_id) {
            set_state(p, 0,
                      "chain id mismatch: the L2 node at %s is chain %" PRIu64
                      ", the config expects %" PRIu64 "; not sending",
                      p->url, v, p->chain_id);
            return;
        }
        p->chain_ok = 1;
    }
    json_t *head = by_id[ID_HEAD] ? json_object_get(by_id[ID_HEAD], "result") : NULL;
    json_t *fees = by_id[ID_FEES] ? json_object_get(by_id[ID_FEES], "result") : NULL;
    json_t *lat = by_id[ID_LATEST] ? json_object_get(by_id[ID_LATEST], "result") : NULL;
    json_t *pen = by_id[ID_PENDING] ? json_object_get(by_id[ID_PENDING], "result") : NULL;
    uint64_t pending = 0;
    if (evm_hex_u64(head, &p->head) < 0 || evm_hex_u64(lat, &p->latest_count) < 0 ||
        evm_hex_u64(pen, &pending) < 0) {
        tick_failed(p, "bad answer to eth_blockNumber / eth_getTransactionCount");
        return;
    }
    p->fail_streak = 0;
    evm_gauge(p, "evm_l2_last_block", (double)p->head);
    json_t *bases = json_object_get(fees, "baseFeePerGas");
    json_t *rewards = json_object_get(fees, "reward");
    if (json_array_size(bases) > 0 &&
        evm_hex_u256(json_array_get(bases, json_array_size(bases) - 1), &p->base_fee) == 0) {
        /* The median of the recent blocks' percentile rewards. */
        struct ado_u256 rs[16];
        size_t nr = 0, i;
        json_t *row;
        json_array_foreach(rewards, i, row) {
            if (nr < 16 && evm_hex_u256(json_array_get(row, 0), &rs[nr]) == 0)
                nr++;
        }
        for (size_t a = 1; a < nr; a++)
            for (size_t b = a; b > 0 && ado_u256_cmp(&rs[b - 1], &rs[b]) > 0; b--) {
                struct ado_u256 x = rs[b];
                rs[b] = rs[b - 1];
                rs[b - 1] = x;
            }
        if (nr)
            p->prio_fee = rs[nr / 2];
        else
            ado_u256_from_u64(&p->prio_fee, 0);
        p->fees_ok = 1;
    }
    if (!p->nonce_ok) {
        /* After (re)connecting: trust the node's pending count when nothing is in flight;
         * otherwise never go below what we signed, and send everything again. */
        uint64_t before = p->next_nonce;
        if (p->ntx == 0)
            p->next_nonce = pending;
        else if (pending > p->next_nonce)
            p->next_nonce = pending;
        for (struct evm_tx *t = p->txs; t; t = t->next)
            t->broadcast = 0;
        p->nonce_ok = 1;
        if (before != p->next_nonce || p->ntx == 0)
            evm_nonce_save(p);
        e->api->log(e->ctx, ADO_LOG_INFO,
                    "peer %s: chain %" PRIu64 ", account %s, next nonce %" PRIu64
                    ", %zu in flight, head %" PRIu64,
                    p->name, p->chain_id, p->addr_hex, p->next_nonce, p->ntx, p->head);
    }
    if (p->fees_ok) {
        set_state(p, 1, NULL);
        subscribe(p);
    }
    /* Receipts: the first receipt found among a tx's hashes counts. */
    uint64_t now = e->api->now_ms(e->ctx);
    size_t i = 0;
    while (i < k->n) {
        uint64_t nonce = k->nonces[i];
        json_t *found = NULL;
        size_t j = i;
        for (; j < k->n && k->nonces[j] == nonce; j++) {
            json_t *r = ID_RCPT0 + j < nid && by_id[ID_RCPT0 + j]
                            ? json_object_get(by_id[ID_RCPT0 + j], "result")
                            : NULL;
            if (r && json_is_object(r) && !found)
                found = r;
        }
        struct evm_tx *t = evm_tx_by_nonce(p, nonce);
        if (t)
            tx_update(p, t, found, now);
        i = j;
    }
    /* A nonce taken by a transaction we do not know (same key used elsewhere): no receipt for
     * any of its hashes while the account's mined count is past it, on three ticks in a row
     * (a batch's answers are not one snapshot: a receipt may lag the count). */
    for (struct evm_tx *t = p->txs, *nx; t; t = nx) {
        nx = t->next;
        if (t->gone < 3)
            continue;
        uint64_t seq = t->seq;
        char why[200];
        snprintf(why, sizeof why, "nonce %" PRIu64 " was used by another transaction", t->nonce);
        evm_tx_remove(p, t);
        e->api->bridge_failed(e->ctx, p->name, seq, why);
    }
    if (p->ntx == 0 && p->next_nonce != pending && pending == p->latest_count) {
        e->api->log(e->ctx, ADO_LOG_WARN, "peer %s: nonce resync %" PRIu64 " -> %" PRIu64, p->name,
                    p->next_nonce, pending);
        p->next_nonce = pending;
        evm_nonce_save(p);
    }
    broadcast_pending(p);
    evm_events_poll(p);
}

static void on_tick_reply(void *arg, int status, const char *body, size_t len) {
    struct tick *k = arg;
    struct evm_peer *p = k->p;
    if (status == ADO_ECLOSED) {
        tick_free(k);
        return;
    }
    p->ticking = 0;
    if (status < 0) {
        tick_failed(p, status == ADO_ETIMEDOUT ? "timed out" : "connection failed");
        tick_free(k);
        return;
    }
    json_t *arr = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    size_t nid = ID_RCPT0 + k->n;
    json_t **by_id = calloc(nid, sizeof *by_id);
    if (!arr || !json_is_array(arr) || !by_id) {
        tick_failed(p, "not a JSON-RPC batch answer");
    } else {
        size_t i;
        json_t *r;
        json_array_foreach(arr, i, r) {
            json_int_t id = json_integer_value(json_object_get(r, "id"));
            if (id >= 0 && (size_t)id < nid)
                by_id[id] = r;
        }
        tick_apply(p, k, by_id, nid);
    }
    free(by_id);
    json_decref(arr);
    tick_free(k);
}

static int on_timer(ado_ctx *ctx, void *arg);

/* ---- WebSocket subscriptions: wake-ups ------------------------------------------------ */

/* A new head or a log of interest: run a tick now instead of at the next poll. Receipts,
 * confirmations and events are still read by the tick (it also sees reorgs). */
static void on_notify(void *arg, json_t *msg) {
    struct evm_peer *p = arg;
    const char *m = json_string_value(json_object_get(msg, "method"));
    if (!m || strcmp(m, "eth_subscription") != 0)
        return;
    p->n_notifications++;
    if (!p->ticking && !p->closed)
        on_timer(p->e->ctx, p);
}

static void on_subscribed(void *arg, int status, json_t *result, json_t *error) {
    struct evm_peer *p = arg;
    if (status == ADO_ECLOSED)
        return;
    if (status < 0 || !json_is_string(result)) {
        p->sub_gen = 0; /* try again on the next tick */
        p->e->api->log(p->e->ctx, ADO_LOG_WARN, "peer %s: eth_subscribe failed: %s", p->name,
                       error ? jrpc_error_message(error) : "no answer");
    }
}

/* Over ws://, subscribe to newHeads (and to the events' logs) once per connection. */
static void subscribe(struct evm_peer *p) {
    if (!jrpc_is_ws(p->rpc) || p->sub_gen == jrpc_generation(p->rpc))
        return;
    p->sub_gen = jrpc_generation(p->rpc);
    jrpc_call(p->rpc, "eth_subscribe", json_pack("[s]", "newHeads"), on_subscribed, p);
    if (!p->nevents)
        return;
    json_t *addrs = json_array(), *t0s = json_array();
    int all = 0;
    for (size_t i = 0; i < p->nevents; i++) {
        char h[67] = "0x", a[43];
        ado_eth_hex_encode(p->events[i].topic0, 32, h + 2);
        json_array_append_new(t0s, json_string(h));
        if (p->events[i].has_addr) {
            ado_eth_address_lower(p->events[i].addr, a);
            json_array_append_new(addrs, json_string(a));
        } else {
            all = 1;
        }
    }
    json_t *f = json_pack("{s:[o]}", "topics", t0s);
    if (f && !all)
        json_object_set(f, "address", addrs);
    json_decref(addrs);
    if (f)
        jrpc_call(p->rpc, "eth_subscribe", json_pack("[s,o]", "logs", f), on_subscribed, p);
}

static int on_timer(ado_ctx *ctx, void *arg) {
    struct evm_peer *p = arg;
    (void)ctx;
    if (p->ticking || p->closed)
        return 0;
    struct tick *k = calloc(1, sizeof *k);
    json_t *arr = json_array();
    if (!k || !arr)
        goto fail;
    k->p = p;
    size_t n = 0, ntx = 0;
    for (struct evm_tx *t = p->txs; t && ntx < EVM_RCPT_PER_TICK; t = t->next)
        if (t->broadcast || t->have_rcpt) {
            n += (size_t)t->nhash;
            ntx++;
        }
    if (n) {
        k->nonces = calloc(n, sizeof *k->nonces);
        k->hashes = calloc(n, sizeof *k->hashes);
        if (!k->nonces || !k->hashes)
            goto fail;
    }
    k->full = !p->chain_ok;
    if (k->full)
        push(arr, ID_CHAIN, "eth_chainId", json_array());
    push(arr, ID_HEAD, "eth_blockNumber", json_array());
    push(arr, ID_FEES, "eth_feeHistory",
         json_pack("[s,s,[i]]", "0x5", "latest", p->prio_percentile));
    push(arr, ID_LATEST, "eth_getTransactionCount", json_pack("[s,s]", p->addr_hex, "latest"));
    push(arr, ID_PENDING, "eth_getTransactionCount", json_pack("[s,s]", p->addr_hex, "pending"));
    ntx = 0;
    for (struct evm_tx *t = p->txs; t && ntx < EVM_RCPT_PER_TICK; t = t->next) {
        if (!t->broadcast && !t->have_rcpt)
            continue;
        ntx++;
        for (int h = 0; h < t->nhash; h++) {
            k->nonces[k->n] = t->nonce;
            memcpy(k->hashes[k->n], t->hashes[h], EVM_HASH_HEX);
            push(arr, (int)(ID_RCPT0 + k->n), "eth_getTransactionReceipt",
                 json_pack("[s]", t->hashes[h]));
            k->n++;
        }
    }
    char *body = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    arr = NULL;
    if (!body || jrpc_post(p->rpc, body, strlen(body), on_tick_reply, k) < 0) {
        free(body);
        goto fail;
    }
    free(body);
    p->ticking = 1;
    return 0;
fail:
    json_decref(arr);
    if (k)
        tick_free(k);
    return ADO_ENOMEM;
}

/* ---- open / close ------------------------------------------------------------------------ */

struct evm_peer *evm_peer_find(struct evm *e, const char *name) {
    for (struct evm_peer *p = e->peers; p; p = p->next)
        if (!strcmp(p->name, name))
            return p;
    return NULL;
}

static void peer_free(struct evm_peer *p) {
    if (!p)
        return;
    p->closed = 1;
    jrpc_free(p->rpc); /* calls pending callbacks back with ADO_ECLOSED */
    while (p->txs) {
        struct evm_tx *t = p->txs;
        p->txs = t->next;
        evm_tx_free(t);
    }
    evm_events_free(p);
    free(p->reacks);
    ado_eth_signer_free(p->signer);
    json_decref(p->cfg);
    free(p->name);
    free(p->url);
    free(p);
}

int evm_peer_open(struct evm *e, const char *name, const char *url, const char *options,
                  struct evm_peer **out, char why[256]) {
    why[0] = 0;
    struct evm_peer *p = calloc(1, sizeof *p);
    if (!p)
        return ADO_ENOMEM;
    p->e = e;
    p->name = strdup(name);
    p->url = strdup(url);
    p->cfg = json_deep_copy(e->cfg);
    json_t *opt = options && *options ? json_loads(options, 0, NULL) : NULL;
    if (!p->name || !p->url || !p->cfg) {
        json_decref(opt);
        peer_free(p);
        return ADO_ENOMEM;
    }
    if (opt && json_is_object(opt))
        json_object_update(p->cfg, opt); /* the peer's options win */
    json_decref(opt);
    int rc = evm_settings_read(p, why);
    uint8_t key[32];
    if (rc == 0)
        rc = evm_load_key(p->cfg, key, why);
    if (rc == 0) {
        rc = ado_eth_signer_new(key, &p->signer);
        memset(key, 0, sizeof key);
        if (rc < 0)
            snprintf(why, 256, "the signing key is not a valid secp256k1 key");
    }
    /* Drop secrets from the peer's copy of its settings. */
    json_object_del(p->cfg, "key");
    if (rc == 0)
        rc = evm_events_parse(p, why);
    if (rc == 0) {
        uint64_t tmo;
        evm_cfg_ms(p->cfg, "rpc_timeout", 10000, &tmo);
        rc = jrpc_new(e->api->uv_loop(e->ctx), url, 4, tmo, &p->rpc);
        if (rc == ADO_EINVAL)
            snprintf(why, 256,
                     "bad L2 URL %.150s (want http://host:port[/path] or ws://host:port[/path]; "
                     "no TLS: use a local TLS proxy)",
                     url);
        if (rc == 0)
            jrpc_on_notify(p->rpc, on_notify, p);
    }
    if (rc < 0) {
        peer_free(p);
        return rc < 0 ? rc : ADO_ECONFIG;
    }
    ado_eth_signer_address(p->signer, p->addr);
    ado_eth_address_checksum(p->addr, p->addr_hex);
    rc = evm_state_load(p);
    if (rc == 0)
        rc = e->api->timer_start(e->ctx, 0, p->poll_ms, on_timer, p, &p->timer);
    if (rc < 0) {
        snprintf(why, 256, "could not load its state or start polling: %s", e->api->strerror(rc));
        peer_free(p);
        return rc;
    }
    p->next = e->peers;
    e->peers = p;
    e->api->log(e->ctx, ADO_LOG_INFO,
                "peer %s: %s chain %" PRIu64 " as %s, %" PRIu64 " confirmations", name, url,
                p->chain_id, p->addr_hex, p->confirmations);
    *out = p;
    return 0;
}

void evm_peer_close(struct evm_peer *p) {
    struct evm *e = p->e;
    for (struct evm_peer **pp = &e->peers; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    if (p->timer)
        e->api->timer_stop(e->ctx, p->timer);
    if (p->flush_pending && p->flush_timer)
        e->api->timer_stop(e->ctx, p->flush_timer);
    peer_free(p);
}

json_t *evm_peer_status(struct evm_peer *p) {
    char fee[70], prio[70];
    evm_u256_hex(&p->base_fee, fee);
    evm_u256_hex(&p->prio_fee, prio);
    json_t *txs = json_array();
    for (struct evm_tx *t = p->txs; t; t = t->next)
        json_array_append_new(txs, json_pack("{s:I,s:I,s:s,s:i,s:b,s:I}", "seq", (json_int_t)t->seq,
                                             "nonce", (json_int_t)t->nonce, "hash",
                                             t->hashes[t->nhash - 1], "hashes", t->nhash, "mined",
                                             t->have_rcpt, "block", (json_int_t)t->rcpt_block));
    return json_pack("{s:s,s:s,s:b,s:s,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:s,s:s,s:o}", "peer", p->name,
                     "url", p->url, "up", p->up, "reason", p->reason, "chain_id",
                     (json_int_t)p->chain_id, "remote_chain_id", (json_int_t)p->remote_chain_id,
                     "account", p->addr_hex, "next_nonce", (json_int_t)p->next_nonce, "head",
                     (json_int_t)p->head, "reorgs", (json_int_t)p->n_reorgs, "replaced",
                     (json_int_t)p->n_replaced, "base_fee", fee, "priority_fee", prio, "inflight",
                     txs);
}
