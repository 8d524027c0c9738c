/* trn_oracle: epoch settlement.
 *
 * Closing epoch N happens in two loop callbacks around one worker job:
 *   1. freeze (one transaction): read N's leaves, ops and content from the store, reconcile
 *      the ledger, then mark N "closing" and open N+1. New operations go to N+1 from here on.
 *   2. two worker jobs, pure work on the frozen copies: first the Merkle tree (on 2 threads);
 *      when it is done its root goes into the "closing" record, and the second job builds the
 *      activity data (encode, Brotli, chunk hashes, dataHash). Once the root is durable the
 *      tree serves proofs (TRN_EPOCH_F_ROOT) without waiting for the data, which only the L2
 *      submission needs. The data job starts after the tree so that it does not take the
 *      cores the tree needs (2 cores: running both at once made the root ~2x later).
 *   3. commit (one transaction, when both jobs are done and the root is durable): the epoch
 *      record (root, totals, data hash), the compressed data chunks, the treasury's L2 fees,
 *      and the bridge messages (submitRoot + one publishChunk per chunk) all go into the same
 *      loop turn's transaction.
 * A crash between 1 and 3 leaves N "closing" with everything needed to redo 2 and 3 from the
 * store (Brotli and the tree are deterministic), so nothing is lost and, since 3 is atomic and
 * only runs for a "closing" epoch, nothing is sent twice. */
#include "trn.h"

#include <ado_eth/address.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct trn_close {
    struct trn *s;
    uint64_t epoch;
    ado_call *calls[8]; /* admin calls waiting for this close */
    int ncalls;
    /* read on the loop */
    uint8_t *leaves;
    size_t nleaves, leaves_cap;
    struct ado_u256 total;
    uint8_t *ops;
    size_t nops, ops_cap;
    struct trn_content *contents;
    size_t ncontents;
    struct ado_u256 view_reward, view_cost, boost_fee;
    int quality;
    size_t chunk_size;
    int64_t delay_ms;
    /* made by the workers: the tree job (tree_rc, tree, root) and the data job (rc, data) */
    int rc, tree_rc, built;
    int running; /* worker jobs not finished */
    int tree_done, data_done;
    int root_waiting; /* the root's record is waiting to be durable */
    int root_durable; /* ... and is: the tree is in the proof cache */
    struct ado_merkle *tree;
    uint8_t *data;
    size_t data_len, raw_len;
    uint8_t root[32], data_hash[32];
    uint32_t encode_ms, compress_ms, tree_ms;
};

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void close_free(struct trn_close *c) {
    if (!c)
        return;
    free(c->leaves);
    free(c->ops);
    for (size_t i = 0; i < c->ncontents; i++)
        free(c->contents[i].id);
    free(c->contents);
    ado_merkle_free(c->tree);
    free(c->data);
    free(c);
}

static void close_fail_calls(struct trn_close *c, int code, const char *msg, const char *data) {
    for (int i = 0; i < c->ncalls; i++)
        c->s->api->rpc_error(c->calls[i], code, msg, data);
    c->ncalls = 0;
}

/* ---- epoch records ---- */

int trn_epoch_get(struct trn *s, uint64_t epoch, struct trn_epoch_rec *out) {
    uint8_t key[8];
    trn_be64(epoch, key);
    const void *v;
    size_t len;
    int rc = s->api->store_get(s->ctx, s->db.epochs, key, 8, &v, &len);
    if (rc < 0)
        return rc;
    if (len != sizeof *out)
        return ADO_EIO;
    memcpy(out, v, sizeof *out);
    return 0;
}

int trn_epoch_put(struct trn *s, const struct trn_epoch_rec *rec) {
    uint8_t key[8];
    trn_be64(rec->epoch, key);
    return s->api->store_put(s->ctx, s->db.epochs, key, 8, rec, sizeof *rec);
}

const char *trn_status_name(const struct trn *s, const struct trn_epoch_rec *e) {
    switch (e->status) {
    case TRN_EPOCH_OPEN:
        return "open";
    case TRN_EPOCH_CLOSING:
    case TRN_EPOCH_CLOSED:
        return "closed";
    case TRN_EPOCH_SUBMITTING:
    case TRN_EPOCH_SUBMITTED:
        if (e->final_at_s && s->api->wall_ms(s->ctx) / 1000 >= e->final_at_s)
            return "final";
        return "submitted";
    case TRN_EPOCH_VETOED:
        return "vetoed";
    }
    return "unknown";
}

/* ---- 1. collect and freeze ---- */

struct scan {
    struct trn_close *c;
    uint8_t prefix[8];
    int err;
};

static int scan_leaf(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct scan *sc = arg;
    struct trn_close *c = sc->c;
    if (klen != 28 || memcmp(key, sc->prefix, 8) != 0)
        return 1;
    if (vlen != 32) {
        sc->err = ADO_EIO;
        return 1;
    }
    static const uint8_t zero[32];
    if (memcmp(val, zero, 32) == 0)
        return 0; /* nothing earned: no leaf (claim() refuses zero) */
    if (c->nleaves == c->leaves_cap) {
        size_t cap = c->leaves_cap ? c->leaves_cap * 2 : 1024;
        uint8_t *p = realloc(c->leaves, cap * TRN_LEAF_LEN);
        if (!p) {
            sc->err = ADO_ENOMEM;
            return 1;
        }
        c->leaves = p;
        c->leaves_cap = cap;
    }
    uint8_t *p = c->leaves;
    memcpy(p + c->nleaves * TRN_LEAF_LEN, (const uint8_t *)key + 8, 20);
    memcpy(p + c->nleaves * TRN_LEAF_LEN + 20, val, 32);
    c->nleaves++;
    struct ado_u256 a;
    ado_u256_from_be32(&a, val);
    ado_u256_add(&c->total, &c->total, &a);
    return 0;
}

static int scan_op(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct scan *sc = arg;
    struct trn_close *c = sc->c;
    if (klen != 16 || memcmp(key, sc->prefix, 8) != 0)
        return 1;
    if (vlen != TRN_OP_LEN) {
        sc->err = ADO_EIO;
        return 1;
    }
    if (c->nops == c->ops_cap) {
        size_t cap = c->ops_cap ? c->ops_cap * 2 : 1024;
        uint8_t *p = realloc(c->ops, cap * TRN_OP_LEN);
        if (!p) {
            sc->err = ADO_ENOMEM;
            return 1;
        }
        c->ops = p;
        c->ops_cap = cap;
    }
    memcpy(c->ops + c->nops++ * TRN_OP_LEN, val, TRN_OP_LEN);
    return 0;
}

int trn_collect_leaves(struct trn *s, uint64_t epoch, uint8_t **leaves, size_t *n,
                       struct ado_u256 *total) {
    struct trn_close c = {.s = s};
    struct scan sc = {.c = &c};
    trn_be64(epoch, sc.prefix);
    int rc = s->api->store_iter(s->ctx, s->db.earned, sc.prefix, 8, scan_leaf, &sc);
    if (rc == 0)
        rc = sc.err;
    if (rc == 0 && c.nleaves == 0) {
        /* An epoch where nobody earned still settles (epochs reach the contract in order):
         * one leaf (treasury, 0), which nobody can claim. */
        c.leaves = calloc(1, TRN_LEAF_LEN);
        if (!c.leaves)
            rc = ADO_ENOMEM;
        else
            memcpy(c.leaves, s->treasury, 20), c.nleaves = 1;
    }
    if (rc < 0) {
        free(c.leaves);
        return rc;
    }
    *leaves = c.leaves;
    *n = c.nleaves;
    *total = c.total;
    return 0;
}

struct content_scan {
    struct trn_close *c;
    const uint8_t *seen;
    size_t nbits, want;
    int err;
};

static int scan_content(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct content_scan *cs = arg;
    struct trn_close *c = cs->c;
    if (klen != 4)
        return 0;
    const uint8_t *k = key;
    size_t num = (size_t)k[0] << 24 | (size_t)k[1] << 16 | (size_t)k[2] << 8 | k[3];
    if (num >= cs->nbits || !(cs->seen[num / 8] & (1u << num % 8)))
        return 0;
    if (vlen <= 20 || c->ncontents == cs->want) {
        cs->err = ADO_EIO;
        return 1;
    }
    struct trn_content *ct = &c->contents[c->ncontents];
    ct->num = (uint32_t)num;
    memcpy(ct->creator, val, 20);
    ct->id_len = vlen - 20;
    ct->id = malloc(ct->id_len + 1);
    if (!ct->id) {
        cs->err = ADO_ENOMEM;
        return 1;
    }
    memcpy(ct->id, (const uint8_t *)val + 20, ct->id_len);
    ct->id[ct->id_len] = 0;
    c->ncontents++;
    return c->ncontents == cs->want; /* 1 stops the scan */
}

/* Every content an op of the epoch names, with its creator and id. */
static int collect_contents(struct trn *s, struct trn_close *c) {
    size_t nbits = (size_t)s->t.contents + 1;
    uint8_t *seen = calloc((nbits + 7) / 8, 1);
    if (!seen)
        return ADO_ENOMEM;
    size_t count = 0;
    for (size_t i = 0; i < c->nops; i++) {
        struct trn_op op;
        trn_op_unpack(c->ops + i * TRN_OP_LEN, &op);
        if (op.content && op.content < nbits && !(seen[op.content / 8] & (1u << op.content % 8))) {
            seen[op.content / 8] |= (uint8_t)(1u << op.content % 8);
            count++;
        }
    }
    int rc = 0;
    c->contents = calloc(count ? count : 1, sizeof *c->contents);
    if (!c->contents)
        rc = ADO_ENOMEM;
    if (rc == 0 && count > nbits / 8) { /* most of them: one sequential scan beats lookups */
        struct content_scan cs = {.c = c, .seen = seen, .nbits = nbits, .want = count};
        rc = s->api->store_iter(s->ctx, s->db.contentn, NULL, 0, scan_content, &cs);
        if (rc == 0)
            rc = cs.err ? cs.err : (c->ncontents == count ? 0 : ADO_EIO);
        free(seen);
        return rc;
    }
    for (size_t num = 1; num < nbits && rc == 0; num++) {
        if (!(seen[num / 8] & (1u << num % 8)))
            continue;
        uint8_t key[4] = {(uint8_t)(num >> 24), (uint8_t)(num >> 16), (uint8_t)(num >> 8),
                          (uint8_t)num};
        const void *v;
        size_t len;
        rc = s->api->store_get(s->ctx, s->db.contentn, key, 4, &v, &len);
        if (rc == 0 && len <= 20)
            rc = ADO_EIO;
        if (rc < 0)
            break;
        struct trn_content *ct = &c->contents[c->ncontents];
        ct->num = (uint32_t)num;
        memcpy(ct->creator, v, 20);
        ct->id_len = len - 20;
        ct->id = malloc(ct->id_len + 1);
        if (!ct->id) {
            rc = ADO_ENOMEM;
            break;
        }
        memcpy(ct->id, (const uint8_t *)v + 20, ct->id_len);
        ct->id[ct->id_len] = 0;
        c->ncontents++;
    }
    free(seen);
    return rc;
}

static struct trn_close *collect(struct trn *s, uint64_t epoch, int *rcp) {
    struct trn_close *c = calloc(1, sizeof *c);
    int rc = c ? 0 : ADO_ENOMEM;
    if (rc == 0) {
        c->s = s;
        c->epoch = epoch;
        c->view_reward = s->view_reward, c->view_cost = s->view_cost;
        c->boost_fee = s->boost_fee;
        c->quality = (int)s->quality;
        c->chunk_size = (size_t)s->chunk_size;
        c->delay_ms = s->close_delay_ms;
        rc = trn_collect_leaves(s, epoch, &c->leaves, &c->nleaves, &c->total);
    }
    if (rc == 0) {
        struct scan sc = {.c = c};
        trn_be64(epoch, sc.prefix);
        rc = s->api->store_iter(s->ctx, s->db.ops, sc.prefix, 8, scan_op, &sc);
        if (rc == 0)
            rc = sc.err;
    }
    if (rc == 0)
        rc = collect_contents(s, c);
    if (rc < 0) {
        close_free(c);
        c = NULL;
    }
    *rcp = rc;
    return c;
}

/* Sum of every stored balance. */
static int sum_balance(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct ado_u256 *sum = arg, a;
    (void)key, (void)klen;
    if (vlen != 32)
        return 1;
    ado_u256_from_be32(&a, val);
    ado_u256_add(sum, sum, &a);
    return 0;
}

/* Reconciliation: what L3 settles must be what L2 can pay. Returns 0, or writes why into
 * why (JSON) and returns -1. */
static int reconcile(struct trn *s, const struct trn_close *c, char *why, size_t cap) {
    struct ado_u256 scanned, rhs;
    ado_u256_from_u64(&scanned, 0);
    if (s->api->store_iter(s->ctx, s->db.bal, NULL, 0, sum_balance, &scanned) < 0) {
        snprintf(why, cap, "{\"check\":\"balances\",\"detail\":\"store scan failed\"}");
        return -1;
    }
    char a[ADO_U256_DEC_MAX], b[ADO_U256_DEC_MAX], d[ADO_U256_DEC_MAX];
    if (ado_u256_cmp(&scanned, &s->t.balances) != 0) {
        trn_dec(&scanned, a), trn_dec(&s->t.balances, b);
        snprintf(why, cap, "{\"check\":\"balances\",\"stored\":\"%s\",\"ledger\":\"%s\"}", a, b);
        return -1;
    }
    rhs = s->t.balances; /* deposits == balances + earned_all + burned + gas */
    int over = ado_u256_add(&rhs, &rhs, &s->t.earned_all);
    over |= ado_u256_add(&rhs, &rhs, &s->t.burned);
    over |= ado_u256_add(&rhs, &rhs, &s->t.gas);
    if (over || ado_u256_cmp(&rhs, &s->t.deposits) != 0) {
        trn_dec(&s->t.deposits, a), trn_dec(&rhs, b);
        snprintf(why, cap,
                 "{\"check\":\"supply\",\"l2_deposits\":\"%s\","
                 "\"l3_balances_earned_burned_gas\":\"%s\"}",
                 a, b);
        return -1;
    }
    if (ado_u256_cmp(&c->total, &s->t.epoch_total) != 0) {
        trn_dec(&c->total, a), trn_dec(&s->t.epoch_total, b);
        snprintf(why, cap, "{\"check\":\"epoch_total\",\"leaves\":\"%s\",\"ledger\":\"%s\"}", a, b);
        return -1;
    }
    if (!ado_u256_is_zero(&s->max_total) && ado_u256_cmp(&c->total, &s->max_total) > 0) {
        trn_dec(&c->total, a), trn_dec(&s->max_total, d);
        snprintf(why, cap, "{\"check\":\"l2_capacity\",\"total\":\"%s\",\"max_total\":\"%s\"}", a,
                 d);
        return -1;
    }
    return 0;
}

/* ---- 2. the worker ---- */

static void data_work(void *arg) {
    struct trn_close *c = arg;
    struct trn_activity a = {.epoch = c->epoch,
                             .view_reward = c->view_reward,
                             .view_cost = c->view_cost,
                             .boost_fee = c->boost_fee,
                             .ops = c->ops,
                             .nops = c->nops,
                             .contents = c->contents,
                             .ncontents = c->ncontents,
                             .leaves = c->leaves,
                             .nleaves = c->nleaves};
    uint8_t *raw = NULL;
    uint64_t t0 = mono_ms();
    c->rc = trn_activity_encode(&a, &raw, &c->raw_len);
    uint64_t t1 = mono_ms();
    if (c->rc == 0)
        c->rc = trn_brotli_compress(raw, c->raw_len, c->quality, &c->data, &c->data_len);
    free(raw);
    if (c->rc == 0)
        trn_data_hash(c->data, c->data_len, c->chunk_size, NULL, c->data_hash);
    c->encode_ms = (uint32_t)(t1 - t0);
    c->compress_ms = (uint32_t)(mono_ms() - t1);
    if (c->delay_ms > 0) { /* testing only: widen the window for crash tests */
        struct timespec ts = {c->delay_ms / 1000, (c->delay_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void tree_work(void *arg) {
    struct trn_close *c = arg;
    uint64_t t0 = mono_ms();
    c->tree_rc = ado_merkle_build_addr_u256(c->leaves, c->nleaves, 2, &c->tree);
    if (c->tree_rc == 0)
        ado_merkle_root(c->tree, c->root);
    c->tree_ms = (uint32_t)(mono_ms() - t0);
}

/* ---- 3. commit and send ---- */

static int bridge_msg(struct trn *s, const struct trn_epoch_rec *e, uint32_t i) {
    char *payload = NULL;
    size_t len = 0;
    int rc = 0;
    if (i == 0) {
        char root[67], hash[67], total[ADO_U256_DEC_MAX];
        trn_hex32(e->root, root);
        trn_hex32(e->data_hash, hash);
        struct ado_u256 t;
        ado_u256_from_be32(&t, e->total);
        trn_dec(&t, total);
        payload = malloc(512);
        if (!payload)
            return ADO_ENOMEM;
        len = (size_t)snprintf(payload, 512,
                               "{\"to\":\"%s\",\"signature\":\"submitRoot(uint64,bytes32,uint256,"
                               "bytes32,uint32)\",\"args\":[\"%llu\",\"%s\",\"%s\",\"%s\",%u]}",
                               s->contract, (unsigned long long)e->epoch, root, total, hash,
                               e->chunks);
    } else {
        uint8_t key[12];
        trn_be64(e->epoch, key);
        uint32_t idx = i - 1;
        key[8] = (uint8_t)(idx >> 24), key[9] = (uint8_t)(idx >> 16);
        key[10] = (uint8_t)(idx >> 8), key[11] = (uint8_t)idx;
        const void *v;
        size_t vlen;
        rc = s->api->store_get(s->ctx, s->db.data, key, 12, &v, &vlen);
        if (rc < 0)
            return rc;
        size_t cap = 2 * vlen + 300;
        payload = malloc(cap);
        if (!payload)
            return ADO_ENOMEM;
        int n = snprintf(payload, cap,
                         "{\"to\":\"%s\",\"signature\":\"publishChunk(uint64,uint32,bytes)\","
                         "\"args\":[\"%llu\",%u,\"0x",
                         s->contract, (unsigned long long)e->epoch, idx);
        ado_eth_hex_encode(v, vlen, payload + n);
        len = (size_t)n + 2 * vlen;
        len += (size_t)snprintf(payload + len, cap - len, "\"]}");
    }
    char id[96];
    rc = s->api->bridge_send(s->ctx, s->peer, i == 0 ? "trn.submitRoot" : "trn.publishChunk",
                             payload, len, id, sizeof id);
    free(payload);
    if (rc == 0 && i == 0)
        snprintf(((struct trn_epoch_rec *)e)->msg_id, sizeof e->msg_id, "%s", id);
    return rc;
}

/* Hand the epoch's messages not yet in the outbox to the bridge, in order. */
static int send_pending(struct trn *s, struct trn_epoch_rec *e) {
    int rc = 0;
    uint32_t before = e->sent;
    while (e->sent < 1 + e->chunks) {
        rc = bridge_msg(s, e, e->sent);
        if (rc < 0)
            break;
        e->sent++;
    }
    if (e->sent == 1 + e->chunks)
        e->status = TRN_EPOCH_SUBMITTED;
    if (rc < 0) {
        s->api->log(s->ctx, ADO_LOG_WARN,
                    "epoch %llu: the outbox refused message %u of %u (%s); retrying each tick",
                    (unsigned long long)e->epoch, e->sent + 1, 1 + e->chunks, s->api->strerror(rc));
        s->api->metric_add(s->ctx, "trn_outbox_refused_total", NULL, 1);
    }
    if (e->sent != before) {
        s->api->metric_add(s->ctx, "trn_bridge_messages_total", NULL, e->sent - before);
        return trn_epoch_put(s, e);
    }
    return rc;
}

static int rec_json(struct trn *s, const struct trn_epoch_rec *e, char *out, size_t cap) {
    char root[67], hash[67], total[ADO_U256_DEC_MAX], fin[32] = "null";
    struct ado_u256 t;
    ado_u256_from_be32(&t, e->total);
    trn_dec(&t, total);
    trn_hex32(e->root, root);
    trn_hex32(e->data_hash, hash);
    if (e->final_at_s)
        snprintf(fin, sizeof fin, "%llu", (unsigned long long)e->final_at_s);
    int built = e->status >= TRN_EPOCH_CLOSED;
    int rooted = built || (e->flags & TRN_EPOCH_F_ROOT);
    return snprintf(
        out, cap,
        "{\"epoch\":%llu,\"status\":\"%s\",\"opened_ms\":%llu,\"closed_ms\":%llu,\"ops\":%llu,"
        "\"leaves\":%llu,\"total\":\"%s\",\"root\":%s%s%s,\"data_hash\":%s%s%s,"
        "\"raw_size\":%llu,\"data_size\":%llu,\"chunks\":%u,\"messages\":%u,\"messages_sent\":%u,"
        "\"bridge_id\":%s%s%s,\"l2_tx\":%s%s%s,\"final_at\":%s,\"final_tx\":%s%s%s,"
        "\"build_ms\":{\"encode\":%u,\"compress\":%u,\"tree\":%u}}",
        (unsigned long long)e->epoch, trn_status_name(s, e), (unsigned long long)e->opened_ms,
        (unsigned long long)e->closed_ms, (unsigned long long)e->nops,
        (unsigned long long)e->nleaves, total, rooted ? "\"" : "", rooted ? root : "null",
        rooted ? "\"" : "", built ? "\"" : "", built ? hash : "null", built ? "\"" : "",
        (unsigned long long)e->raw_size, (unsigned long long)e->data_size, e->chunks,
        s->submit ? 1 + e->chunks : 0, e->sent, e->msg_id[0] ? "\"" : "",
        e->msg_id[0] ? e->msg_id : "null", e->msg_id[0] ? "\"" : "", e->l2_tx[0] ? "\"" : "",
        e->l2_tx[0] ? e->l2_tx : "null", e->l2_tx[0] ? "\"" : "", fin, e->final_tx[0] ? "\"" : "",
        e->final_tx[0] ? e->final_tx : "null", e->final_tx[0] ? "\"" : "", e->encode_ms,
        e->compress_ms, e->tree_ms);
}

static void commit_durable(ado_ctx *ctx, int status, void *arg) {
    struct trn_close *c = arg;
    struct trn *s = c->s;
    struct trn_epoch_rec e;
    if (status < 0 || trn_epoch_get(s, c->epoch, &e) < 0) {
        s->api->log(ctx, ADO_LOG_ERROR, "epoch %llu: the close did not commit; retrying",
                    (unsigned long long)c->epoch);
        close_fail_calls(c, TRN_ERR_INTERNAL, "the close did not commit", NULL);
        trn_load_totals(s); /* the turn was lost: back to what is on disk */
        s->close = NULL;
        close_free(c);
        return;
    }
    char out[2048];
    int n = rec_json(s, &e, out, sizeof out);
    for (int i = 0; i < c->ncalls; i++)
        s->api->rpc_reply(c->calls[i], out, (size_t)n);
    c->ncalls = 0;
    s->api->bus_publish(ctx, "trn.epoch.closed", out, (size_t)n);
    s->api->log(ctx, ADO_LOG_INFO,
                "epoch %llu closed: %llu leaves, %llu ops, data %llu -> %llu bytes in %u chunks",
                (unsigned long long)e.epoch, (unsigned long long)e.nleaves,
                (unsigned long long)e.nops, (unsigned long long)e.raw_size,
                (unsigned long long)e.data_size, e.chunks);
    s->api->metric_add(ctx, "trn_epochs_closed_total", NULL, 1);
    s->api->metric_set(ctx, "trn_epoch_leaves", NULL, (double)e.nleaves);
    s->api->metric_set(ctx, "trn_epoch_data_bytes", NULL, (double)e.data_size);
    s->close = NULL; /* the tree went to the proof cache when its root was durable */
    close_free(c);
}

/* Write the built epoch, its data and its messages in this callback's transaction. */
static void commit_close(struct trn *s, struct trn_close *c) {
    struct trn_epoch_rec e;
    int rc = trn_epoch_get(s, c->epoch, &e);
    if (rc < 0 || e.status != TRN_EPOCH_CLOSING) {
        /* Already committed (should not happen: one close at a time). */
        close_fail_calls(c, TRN_ERR_BUSY, "epoch already closed", NULL);
        s->close = NULL;
        close_free(c);
        return;
    }
    uint32_t chunks = (uint32_t)trn_chunk_count(c->data_len, c->chunk_size);
    struct ado_u256 fee, t_bal;
    ado_u256_from_u64(&fee, 0);
    if (s->submit && ado_u256_mul_u64(&fee, &s->l2_fee_per_tx, 1 + (uint64_t)chunks) < 0)
        rc = ADO_ELIMIT;
    if (rc == 0)
        rc = trn_balance_get(s, s->treasury, &t_bal);
    if (rc == 0 && ado_u256_cmp(&t_bal, &fee) < 0) {
        char need[ADO_U256_DEC_MAX], have[ADO_U256_DEC_MAX], d[300];
        trn_dec(&fee, need), trn_dec(&t_bal, have);
        snprintf(d, sizeof d, "{\"l2_fees\":\"%s\",\"treasury\":\"%s\"}", need, have);
        s->api->log(s->ctx, ADO_LOG_ERROR,
                    "SETTLEMENT WAITING: epoch %llu: the treasury cannot pay the L2 fees %s",
                    (unsigned long long)c->epoch, d);
        s->api->set_degraded(s->ctx, "the treasury cannot pay the L2 fees of settlement");
        close_fail_calls(c, TRN_ERR_TREASURY, "the treasury cannot pay the L2 fees", d);
        return; /* kept built; the tick retries */
    }
    e.closed_ms = e.closed_ms ? e.closed_ms : s->api->wall_ms(s->ctx);
    e.nleaves = c->nleaves;
    e.nops = c->nops;
    e.raw_size = c->raw_len;
    e.data_size = c->data_len;
    e.chunks = chunks;
    e.sent = 0;
    e.encode_ms = c->encode_ms, e.compress_ms = c->compress_ms, e.tree_ms = c->tree_ms;
    memcpy(e.root, c->root, 32);
    memcpy(e.data_hash, c->data_hash, 32);
    e.status = s->submit ? TRN_EPOCH_SUBMITTING : TRN_EPOCH_CLOSED;
    for (uint32_t i = 0; i < chunks && rc == 0; i++) {
        uint8_t key[12];
        trn_be64(c->epoch, key);
        key[8] = (uint8_t)(i >> 24), key[9] = (uint8_t)(i >> 16), key[10] = (uint8_t)(i >> 8);
        key[11] = (uint8_t)i;
        size_t off = (size_t)i * c->chunk_size;
        size_t sz = c->data_len - off < c->chunk_size ? c->data_len - off : c->chunk_size;
        rc = s->api->store_put(s->ctx, s->db.data, key, 12, c->data + off, sz);
    }
    if (rc == 0 && !ado_u256_is_zero(&fee)) {
        ado_u256_sub(&t_bal, &t_bal, &fee);
        ado_u256_sub(&s->t.balances, &s->t.balances, &fee);
        ado_u256_add(&s->t.gas, &s->t.gas, &fee);
        rc = trn_balance_put(s, s->treasury, &t_bal);
        if (rc == 0)
            rc = trn_save_totals(s);
    }
    if (rc == 0)
        rc = trn_epoch_put(s, &e);
    if (rc == 0 && s->submit)
        send_pending(s, &e); /* what the outbox refuses is resent by the tick */
    if (rc == 0)
        rc = s->api->store_on_durable(s->ctx, commit_durable, c);
    if (rc < 0) {
        s->api->log(s->ctx, ADO_LOG_ERROR, "epoch %llu: commit failed: %s",
                    (unsigned long long)c->epoch, s->api->strerror(rc));
        close_fail_calls(c, TRN_ERR_INTERNAL, "commit failed", NULL);
        s->close = NULL;
        close_free(c);
    }
}

/* Where a close goes next after one of its steps: a failure ends it once no job or
 * callback still holds it; success commits once both jobs are done and the root is durable. */
static void close_step(struct trn_close *c) {
    struct trn *s = c->s;
    int rc = c->tree_rc < 0 ? c->tree_rc : c->rc;
    if (rc < 0 || (c->tree_done && c->data_done && !c->root_durable && !c->root_waiting)) {
        if (c->running || c->root_waiting)
            return;
        if (rc != ADO_ECLOSED)
            s->api->log(s->ctx, ADO_LOG_ERROR, "epoch %llu: building failed: %s",
                        (unsigned long long)c->epoch, s->api->strerror(rc < 0 ? rc : ADO_EIO));
        close_fail_calls(c, TRN_ERR_INTERNAL, "building the epoch failed", NULL);
        s->close = NULL;
        close_free(c);
        return;
    }
    if (c->tree_done && c->data_done && c->root_durable && !c->built) {
        c->built = 1;
        s->api->set_degraded(s->ctx, NULL);
        commit_close(s, c);
    }
}

/* The root's record is durable: the tree serves proofs from now on. */
static void root_durable(ado_ctx *ctx, int status, void *arg) {
    struct trn_close *c = arg;
    struct trn *s = c->s;
    (void)ctx;
    c->root_waiting = 0;
    struct trn_epoch_rec e;
    int rc = status < 0 ? status : trn_epoch_get(s, c->epoch, &e);
    if (rc == 0 && e.status == TRN_EPOCH_CLOSING && memcmp(e.root, c->root, 32) == 0) {
        trn_tree_cache_put(s, c->epoch, c->tree, NULL, c->nleaves);
        c->tree = NULL;
        c->root_durable = 1;
        e.flags |= TRN_EPOCH_F_ROOT; /* durable with the next commit; proofs need the cache */
        rc = trn_epoch_put(s, &e);
    }
    if (rc < 0 && c->tree_rc == 0)
        c->tree_rc = rc;
    close_step(c);
}

static void data_done(ado_ctx *ctx, int status, void *arg);

static void tree_done(ado_ctx *ctx, int status, void *arg) {
    struct trn_close *c = arg;
    struct trn *s = c->s;
    (void)ctx;
    c->running--;
    c->tree_done = 1;
    if (status < 0 && c->tree_rc == 0)
        c->tree_rc = status;
    if (c->tree_rc == 0 && c->rc == 0) { /* the root goes into the "closing" record */
        struct trn_epoch_rec e;
        int rc = trn_epoch_get(s, c->epoch, &e);
        if (rc == 0 && e.status != TRN_EPOCH_CLOSING)
            rc = ADO_ESTATE;
        if (rc == 0) {
            memcpy(e.root, c->root, 32);
            e.tree_ms = c->tree_ms;
            rc = trn_epoch_put(s, &e);
        }
        if (rc == 0)
            rc = s->api->store_on_durable(s->ctx, root_durable, c);
        if (rc == 0)
            c->root_waiting = 1;
        else
            c->tree_rc = rc;
    }
    if (c->tree_rc == 0) { /* now the data */
        int rc = s->api->work_submit(s->ctx, data_work, data_done, c);
        if (rc == 0)
            c->running++;
        else
            c->rc = rc, c->data_done = 1;
    } else {
        c->data_done = 1; /* never started */
    }
    close_step(c);
}

static void data_done(ado_ctx *ctx, int status, void *arg) {
    struct trn_close *c = arg;
    (void)ctx;
    c->running--;
    c->data_done = 1;
    if (status < 0 && c->rc == 0)
        c->rc = status;
    close_step(c);
}

/* Hands the close's first job (the tree) to the worker pool; tree_done starts the second. */
static int submit_jobs(struct trn *s, struct trn_close *c) {
    int rc = s->api->work_submit(s->ctx, tree_work, tree_done, c);
    if (rc < 0)
        return rc;
    c->running = 1;
    s->close = c;
    return 0;
}

static int build(struct trn *s, uint64_t epoch, ado_call *call) {
    int rc;
    struct trn_close *c = collect(s, epoch, &rc);
    if (!c)
        return rc;
    if (call)
        c->calls[c->ncalls++] = call;
    rc = submit_jobs(s, c);
    if (rc < 0) {
        c->ncalls = 0;
        s->close = NULL;
        close_free(c);
    }
    return rc;
}

int trn_close_start(struct trn *s, ado_call *call) {
    char d[600];
    if (s->close) {
        snprintf(d, sizeof d, "{\"closing\":%llu}", (unsigned long long)s->close->epoch);
        if (call)
            s->api->rpc_error(call, TRN_ERR_BUSY, "an epoch close is already running", d);
        return ADO_EBUSY;
    }
    uint64_t epoch = s->t.epoch;
    int rc;
    struct trn_close *c = collect(s, epoch, &rc);
    if (!c) {
        if (call)
            s->api->rpc_error(call, TRN_ERR_INTERNAL, s->api->strerror(rc), NULL);
        return rc;
    }
    char why[480];
    if (reconcile(s, c, why, sizeof why) < 0) {
        close_free(c);
        s->halted = 1;
        s->api->log(s->ctx, ADO_LOG_ERROR,
                    "SETTLEMENT STOPPED: reconciliation failed for epoch %llu: %s; nothing is "
                    "settled until an operator fixes it and calls trn_closeEpoch",
                    (unsigned long long)epoch, why);
        s->api->set_degraded(s->ctx, "settlement stopped: reconciliation mismatch");
        s->api->metric_add(s->ctx, "trn_reconcile_failures_total", NULL, 1);
        s->api->metric_set(s->ctx, "trn_settlement_halted", NULL, 1);
        if (call)
            s->api->rpc_error(call, TRN_ERR_HALTED,
                              "settlement stopped: L3 and L2 do not reconcile", why);
        return ADO_ESTATE;
    }
    if (s->halted) {
        s->halted = 0;
        s->api->set_degraded(s->ctx, NULL);
        s->api->metric_set(s->ctx, "trn_settlement_halted", NULL, 0);
        s->api->log(s->ctx, ADO_LOG_INFO, "reconciliation passes again: settlement resumes");
    }
    /* Freeze: N becomes "closing" and N+1 opens, in this callback's transaction. */
    struct trn_epoch_rec e = {.version = 1,
                              .status = TRN_EPOCH_CLOSING,
                              .epoch = epoch,
                              .opened_ms = s->t.opened_ms,
                              .closed_ms = s->api->wall_ms(s->ctx),
                              .nops = c->nops,
                              .nleaves = c->nleaves};
    ado_u256_to_be32(&c->total, e.total);
    rc = trn_epoch_put(s, &e);
    if (rc == 0) {
        struct trn_totals saved = s->t;
        s->t.epoch = epoch + 1;
        s->t.opened_ms = e.closed_ms;
        s->t.op_seq = 0;
        ado_u256_from_u64(&s->t.epoch_total, 0);
        rc = trn_save_totals(s);
        if (rc < 0)
            s->t = saved;
    }
    if (rc == 0) {
        if (call)
            c->calls[c->ncalls++] = call;
        rc = submit_jobs(s, c);
        if (rc < 0) /* stays "closing": the tick retries */
            c->ncalls = 0, s->close = NULL;
    }
    if (rc < 0) {
        if (call)
            s->api->rpc_error(call, TRN_ERR_INTERNAL, s->api->strerror(rc), NULL);
        if (s->close != c)
            close_free(c);
    }
    return rc;
}

/* ---- recovery and the tick ---- */

struct pend {
    uint64_t closing, submitting[8];
    int has_closing, nsub;
};

static int scan_pending(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct pend *p = arg;
    (void)key, (void)klen;
    if (vlen != sizeof(struct trn_epoch_rec))
        return 0;
    struct trn_epoch_rec e;
    memcpy(&e, val, sizeof e);
    if (e.status == TRN_EPOCH_CLOSING && !p->has_closing)
        p->closing = e.epoch, p->has_closing = 1;
    if (e.status == TRN_EPOCH_SUBMITTING && p->nsub < 8)
        p->submitting[p->nsub++] = e.epoch;
    return 0;
}

int trn_epoch_recover(struct trn *s) {
    struct pend p = {0};
    int rc = s->api->store_iter(s->ctx, s->db.epochs, NULL, 0, scan_pending, &p);
    if (rc < 0)
        return rc;
    for (int i = 0; i < p.nsub; i++) {
        struct trn_epoch_rec e;
        if (trn_epoch_get(s, p.submitting[i], &e) == 0 && s->submit)
            send_pending(s, &e);
    }
    if (p.has_closing && !s->close) {
        s->api->log(s->ctx, ADO_LOG_WARN,
                    "epoch %llu was closing when the node stopped: rebuilding it from the store",
                    (unsigned long long)p.closing);
        s->api->metric_add(s->ctx, "trn_close_resumed_total", NULL, 1);
        rc = build(s, p.closing, NULL);
    }
    return rc;
}

void trn_epoch_tick(struct trn *s) {
    if (s->close) {
        if (s->close->built)
            commit_close(s, s->close); /* waiting for the treasury: try again */
        return;
    }
    trn_epoch_recover(s);
    if (!s->close && !s->halted &&
        s->api->wall_ms(s->ctx) >= s->t.opened_ms + (uint64_t)s->period_ms)
        trn_close_start(s, NULL);
}

void trn_epoch_stop(struct trn *s) {
    /* A close still on the worker is finished (or cancelled) by the kernel before fini, and
     * its done callback frees it; calls waiting on it were answered by the kernel. */
    (void)s;
}

/* ---- L2 events: RootSubmitted, DataComplete, RootVetoed ---- */

static int l2_epoch(json_t *ev, struct trn *s, struct trn_epoch_rec *e) {
    uint64_t epoch;
    if (trn_get_u64(json_object_get(ev, "args"), "epoch", &epoch) < 0)
        return ADO_EINVAL;
    return trn_epoch_get(s, epoch, e);
}

static int get_b32(json_t *args, const char *key, uint8_t out[32]) {
    const char *t = json_string_value(json_object_get(args, key));
    size_t n;
    return t && ado_eth_hex_decode(t, strlen(t), out, 32, &n) == 0 && n == 32 ? 0 : ADO_EINVAL;
}

static void copy_tx(json_t *ev, char *out, size_t cap) {
    const char *tx = json_string_value(json_object_get(ev, "tx"));
    snprintf(out, cap, "%s", tx ? tx : "");
}

static int on_root_submitted(ado_ctx *ctx, const char *topic, const void *data, size_t len,
                             void *arg) {
    struct trn *s = arg;
    (void)topic;
    json_t *ev = trn_l2_event(data, len);
    struct trn_epoch_rec e;
    if (!ev || l2_epoch(ev, s, &e) < 0) {
        json_decref(ev);
        return 0; /* not one of ours */
    }
    json_t *args = json_object_get(ev, "args");
    uint8_t root[32], hash[32];
    struct ado_u256 total, ours;
    ado_u256_from_be32(&ours, e.total);
    if (get_b32(args, "root", root) < 0 || get_b32(args, "dataHash", hash) < 0 ||
        trn_get_amount(args, "total", &total) < 0 || memcmp(root, e.root, 32) != 0 ||
        memcmp(hash, e.data_hash, 32) != 0 || ado_u256_cmp(&total, &ours) != 0) {
        s->api->log(ctx, ADO_LOG_ERROR,
                    "L2 MISMATCH: epoch %llu on L2 does not carry our root/total/dataHash",
                    (unsigned long long)e.epoch);
        s->api->set_degraded(ctx, "the L2 root of an epoch differs from ours");
        s->api->metric_add(ctx, "trn_l2_mismatch_total", NULL, 1);
    }
    copy_tx(ev, e.l2_tx, sizeof e.l2_tx);
    int rc = trn_epoch_put(s, &e);
    json_decref(ev);
    return rc;
}

static int on_data_complete(ado_ctx *ctx, const char *topic, const void *data, size_t len,
                            void *arg) {
    struct trn *s = arg;
    (void)topic, (void)ctx;
    json_t *ev = trn_l2_event(data, len);
    struct trn_epoch_rec e;
    uint64_t fin;
    if (!ev || l2_epoch(ev, s, &e) < 0 ||
        trn_get_u64(json_object_get(ev, "args"), "finalAt", &fin) < 0) {
        json_decref(ev);
        return 0;
    }
    e.final_at_s = fin;
    copy_tx(ev, e.final_tx, sizeof e.final_tx);
    if (e.status == TRN_EPOCH_SUBMITTING)
        e.status = TRN_EPOCH_SUBMITTED;
    int rc = trn_epoch_put(s, &e);
    json_decref(ev);
    return rc;
}

static int on_vetoed(ado_ctx *ctx, const char *topic, const void *data, size_t len, void *arg) {
    struct trn *s = arg;
    (void)topic;
    json_t *ev = trn_l2_event(data, len);
    struct trn_epoch_rec e;
    if (!ev || l2_epoch(ev, s, &e) < 0) {
        json_decref(ev);
        return 0;
    }
    e.status = TRN_EPOCH_VETOED;
    e.final_at_s = 0;
    s->api->log(ctx, ADO_LOG_ERROR, "EPOCH VETOED on L2: epoch %llu; trn_resubmit resends it",
                (unsigned long long)e.epoch);
    s->api->set_degraded(ctx, "an epoch was vetoed on L2");
    s->api->metric_add(ctx, "trn_epochs_vetoed_total", NULL, 1);
    int rc = trn_epoch_put(s, &e);
    json_decref(ev);
    return rc;
}

int trn_subscribe_l2(struct trn *s) {
    static const struct {
        const char *event;
        ado_bus_fn fn;
    } subs[] = {{"RootSubmitted", on_root_submitted},
                {"DataComplete", on_data_complete},
                {"RootVetoed", on_vetoed}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char pat[200];
        snprintf(pat, sizeof pat, "bridge.in.%s.%s", s->peer, subs[i].event);
        int rc = s->api->bus_subscribe(s->ctx, pat, subs[i].fn, s, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- RPC: trn_epoch, trn_closeEpoch, trn_resubmit ---- */

static void rpc_epoch(ado_ctx *ctx, ado_call *call, const char *params, size_t plen, void *arg) {
    struct trn *s = arg;
    (void)ctx;
    uint64_t epoch = s->t.epoch;
    json_t *o = json_loadb(params, plen, JSON_DECODE_ANY, NULL);
    int rc = json_is_object(o) ? trn_get_u64(o, "epoch", &epoch) : 0;
    json_decref(o);
    if (rc == ADO_EINVAL) {
        trn_bad_param(s, call, "epoch", rc, "expected a non-negative integer");
        return;
    }
    char out[2048];
    int n;
    if (epoch == s->t.epoch) {
        char total[ADO_U256_DEC_MAX];
        trn_dec(&s->t.epoch_total, total);
        n = snprintf(out, sizeof out,
                     "{\"epoch\":%llu,\"status\":\"open\",\"opened_ms\":%llu,\"closes_ms\":%llu,"
                     "\"ops\":%llu,\"total\":\"%s\",\"halted\":%s}",
                     (unsigned long long)epoch, (unsigned long long)s->t.opened_ms,
                     (unsigned long long)(s->t.opened_ms + (uint64_t)s->period_ms),
                     (unsigned long long)s->t.op_seq, total, s->halted ? "true" : "false");
        s->api->rpc_reply(call, out, (size_t)n);
        return;
    }
    struct trn_epoch_rec e;
    if (trn_epoch_get(s, epoch, &e) < 0) {
        snprintf(out, sizeof out, "{\"epoch\":%llu}", (unsigned long long)epoch);
        s->api->rpc_error(call, TRN_ERR_EPOCH, "unknown epoch", out);
        return;
    }
    n = rec_json(s, &e, out, sizeof out);
    s->api->rpc_reply(call, out, (size_t)n);
}

static void rpc_close(ado_ctx *ctx, ado_call *call, const char *params, size_t plen, void *arg) {
    (void)ctx, (void)params, (void)plen;
    trn_close_start(arg, call);
}

static void rpc_resubmit(ado_ctx *ctx, ado_call *call, const char *params, size_t plen, void *arg) {
    struct trn *s = arg;
    (void)ctx;
    json_t *o = trn_params(s, call, params, plen);
    if (!o)
        return;
    uint64_t epoch;
    int rc = trn_get_u64(o, "epoch", &epoch);
    json_decref(o);
    if (rc < 0) {
        trn_bad_param(s, call, "epoch", rc, "expected a non-negative integer");
        return;
    }
    struct trn_epoch_rec e;
    if (trn_epoch_get(s, epoch, &e) < 0 || e.status != TRN_EPOCH_VETOED || !s->submit) {
        s->api->rpc_error(call, TRN_ERR_EPOCH, "only a vetoed epoch can be resubmitted", NULL);
        return;
    }
    e.status = TRN_EPOCH_SUBMITTING;
    e.sent = 0;
    e.l2_tx[0] = e.final_tx[0] = 0;
    rc = send_pending(s, &e);
    if (rc == 0)
        rc = trn_epoch_put(s, &e);
    if (rc < 0) {
        s->api->rpc_error(call, TRN_ERR_INTERNAL, s->api->strerror(rc), NULL);
        return;
    }
    s->api->set_degraded(s->ctx, NULL);
    char out[2048];
    int n = rec_json(s, &e, out, sizeof out);
    s->api->rpc_reply(call, out, (size_t)n);
}

int trn_register_epoch_rpc(struct trn *s) {
    const struct ado_api *a = s->api;
    int rc = a->rpc_register(s->ctx, "trn_epoch", "reader",
                             "Status, root, totals and L2 transaction of {epoch?}", rpc_epoch, s);
    if (rc == 0)
        rc =
            a->rpc_register(s->ctx, "trn_closeEpoch", "admin",
                            "Close the open epoch now; answers once it is committed", rpc_close, s);
    if (rc == 0)
        rc = a->rpc_register(s->ctx, "trn_resubmit", "admin",
                             "Send a vetoed {epoch} to the L2 again", rpc_resubmit, s);
    return rc;
}
