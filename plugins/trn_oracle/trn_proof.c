/* trn_oracle: proofs and epoch data over RPC.
 *
 * Trees are not stored: the leaves of every closed epoch stay in the store (earned db), and a
 * tree is rebuilt from them on the worker pool when a proof of an epoch not in the cache is
 * asked for (about a second for a million accounts). The rebuilt root must equal the stored
 * one. The few most recent trees stay cached (l2.proof_cache). */
#include "trn.h"

#include <ado_eth/address.h>
#include <ado_eth/keccak.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct waiter {
    ado_call *call;
    uint8_t account[20];
    struct waiter *next;
};

struct trn_tree_slot {
    struct trn *s;
    uint64_t epoch;
    struct ado_merkle *m;  /* NULL while building */
    const uint8_t *leaves; /* sorted by address: owned, or the tree's own copy */
    uint8_t *owned;        /* what slot_free frees (NULL when leaves is the tree's) */
    size_t n;
    int rc;
    uint64_t used;
    struct waiter *waiters;
    struct trn_tree_slot *next;
};

static void slot_free(struct trn_tree_slot *t) {
    ado_merkle_free(t->m);
    free(t->owned);
    free(t);
}

void trn_tree_cache_free(struct trn *s) {
    /* Slots still building are owned by their worker job and freed by its done callback. */
    struct trn_tree_slot **pp = &s->trees;
    while (*pp) {
        struct trn_tree_slot *t = *pp;
        if (!t->m) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        slot_free(t);
    }
}

/* Drop the least recently used built trees beyond the configured count. */
static void cache_trim(struct trn *s) {
    for (;;) {
        size_t built = 0;
        struct trn_tree_slot *lru = NULL;
        for (struct trn_tree_slot *t = s->trees; t; t = t->next)
            if (t->m) {
                built++;
                if (!lru || t->used < lru->used)
                    lru = t;
            }
        if (built <= (size_t)s->proof_cache || !lru)
            return;
        for (struct trn_tree_slot **pp = &s->trees; *pp; pp = &(*pp)->next)
            if (*pp == lru) {
                *pp = lru->next;
                break;
            }
        slot_free(lru);
    }
}

/* A use stamp for the LRU. */
static uint64_t tick_counter(struct trn *s) {
    return ++s->tree_uses;
}

void trn_tree_cache_put(struct trn *s, uint64_t epoch, struct ado_merkle *m, uint8_t *leaves,
                        size_t n) {
    for (struct trn_tree_slot *o = s->trees; o; o = o->next)
        if (o->epoch == epoch && o->m) { /* already cached (a close resumed after its root) */
            ado_merkle_free(m);
            free(leaves);
            return;
        }
    struct trn_tree_slot *t = calloc(1, sizeof *t);
    if (!t) {
        ado_merkle_free(m);
        free(leaves);
        return;
    }
    t->s = s, t->epoch = epoch, t->m = m, t->n = n;
    t->owned = leaves;
    t->leaves = leaves ? leaves : ado_merkle_bin(m);
    t->used = tick_counter(s);
    t->next = s->trees;
    s->trees = t;
    cache_trim(s);
}

/* Index of account in the sorted leaves, or -1. */
static long leaf_index(const struct trn_tree_slot *t, const uint8_t account[20]) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(t->leaves + mid * TRN_LEAF_LEN, account, 20);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void answer(struct trn *s, struct trn_tree_slot *t, ado_call *call,
                   const uint8_t account[20]) {
    char aa[ADO_ETH_ADDRESS_TEXTLEN];
    ado_eth_address_checksum(account, aa);
    long i = leaf_index(t, account);
    static const uint8_t zero[32];
    if (i < 0 || memcmp(t->leaves + (size_t)i * TRN_LEAF_LEN + 20, zero, 32) == 0) {
        char d[160];
        snprintf(d, sizeof d, "{\"epoch\":%llu,\"account\":\"%s\"}", (unsigned long long)t->epoch,
                 aa);
        s->api->rpc_error(call, TRN_ERR_NOLEAF, "the account earned nothing in that epoch", d);
        return;
    }
    uint8_t proof[ADO_MERKLE_MAX_PROOF][32], leaf[32], root[32];
    size_t len = 0;
    ado_merkle_proof(t->m, (size_t)i, proof, ADO_MERKLE_MAX_PROOF, &len);
    ado_merkle_leaf_hash(t->m, (size_t)i, leaf);
    ado_merkle_root(t->m, root);
    struct ado_u256 amount;
    ado_u256_from_be32(&amount, t->leaves + (size_t)i * TRN_LEAF_LEN + 20);
    char am[ADO_U256_DEC_MAX], lh[67], rh[67];
    trn_dec(&amount, am);
    trn_hex32(leaf, lh);
    trn_hex32(root, rh);
    char out[400 + ADO_MERKLE_MAX_PROOF * 70];
    int n = snprintf(out, sizeof out,
                     "{\"epoch\":%llu,\"account\":\"%s\",\"amount\":\"%s\",\"leaf\":\"%s\","
                     "\"root\":\"%s\",\"proof\":[",
                     (unsigned long long)t->epoch, aa, am, lh, rh);
    for (size_t k = 0; k < len; k++) {
        char h[67];
        trn_hex32(proof[k], h);
        n += snprintf(out + n, sizeof out - (size_t)n, "%s\"%s\"", k ? "," : "", h);
    }
    n += snprintf(out + n, sizeof out - (size_t)n, "]}");
    s->api->rpc_reply(call, out, (size_t)n);
}

static void rebuild_work(void *arg) {
    struct trn_tree_slot *t = arg;
    t->rc = ado_merkle_build_addr_u256(t->leaves, t->n, 2, &t->m);
}

static void rebuild_done(ado_ctx *ctx, int status, void *arg) {
    struct trn_tree_slot *t = arg;
    struct trn *s = t->s;
    struct trn_epoch_rec e;
    uint8_t root[32];
    int ok = status == 0 && t->rc == 0 && trn_epoch_get(s, t->epoch, &e) == 0;
    if (ok) {
        ado_merkle_root(t->m, root);
        if (memcmp(root, e.root, 32) != 0) {
            s->api->log(ctx, ADO_LOG_ERROR,
                        "epoch %llu: the tree rebuilt from the store has another root than the "
                        "settled one: stored leaves are damaged",
                        (unsigned long long)t->epoch);
            s->api->set_degraded(ctx, "stored leaves do not match a settled root");
            ok = 0;
        }
    }
    if (ok) { /* the tree keeps its own copy of the leaves: drop ours */
        free(t->owned);
        t->owned = NULL;
        t->leaves = ado_merkle_bin(t->m);
    }
    struct waiter *w = t->waiters;
    t->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        if (ok)
            answer(s, t, w->call, w->account);
        else
            s->api->rpc_error(w->call, TRN_ERR_INTERNAL, "the epoch's tree could not be rebuilt",
                              NULL);
        free(w);
        w = next;
    }
    if (!ok) {
        for (struct trn_tree_slot **pp = &s->trees; *pp; pp = &(*pp)->next)
            if (*pp == t) {
                *pp = t->next;
                break;
            }
        slot_free(t);
        return;
    }
    cache_trim(s);
}

static void rpc_proof(ado_ctx *ctx, ado_call *call, const char *params, size_t plen, void *arg) {
    struct trn *s = arg;
    (void)ctx;
    json_t *o = trn_params(s, call, params, plen);
    if (!o)
        return;
    uint64_t epoch;
    uint8_t account[20];
    int rc = trn_get_u64(o, "epoch", &epoch);
    if (rc < 0) {
        json_decref(o);
        trn_bad_param(s, call, "epoch", rc, "expected a non-negative integer");
        return;
    }
    rc = trn_need_addr(s, call, o, "account", account);
    json_decref(o);
    if (rc < 0)
        return;
    struct trn_epoch_rec e;
    if (trn_epoch_get(s, epoch, &e) < 0 ||
        (e.status < TRN_EPOCH_CLOSED && !(e.flags & TRN_EPOCH_F_ROOT))) {
        char d[64];
        snprintf(d, sizeof d, "{\"epoch\":%llu}", (unsigned long long)epoch);
        s->api->rpc_error(call, TRN_ERR_EPOCH, "the epoch is not closed yet", d);
        return;
    }
    struct trn_tree_slot *t = s->trees;
    while (t && t->epoch != epoch)
        t = t->next;
    if (t && t->m) {
        t->used = tick_counter(s);
        answer(s, t, call, account);
        return;
    }
    struct waiter *w = malloc(sizeof *w);
    if (!w) {
        s->api->rpc_error(call, TRN_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    w->call = call;
    w->next = NULL;
    memcpy(w->account, account, 20);
    if (t) { /* being rebuilt: wait for it */
        w->next = t->waiters;
        t->waiters = w;
        return;
    }
    t = calloc(1, sizeof *t);
    struct ado_u256 total;
    rc = t ? trn_collect_leaves(s, epoch, &t->owned, &t->n, &total) : ADO_ENOMEM;
    if (rc == 0) {
        t->leaves = t->owned;
        t->s = s, t->epoch = epoch, t->used = tick_counter(s);
        t->waiters = w;
        rc = s->api->work_submit(s->ctx, rebuild_work, rebuild_done, t);
    }
    if (rc < 0) {
        s->api->rpc_error(call, TRN_ERR_INTERNAL, s->api->strerror(rc), NULL);
        free(w);
        if (t)
            free(t->owned);
        free(t);
        return;
    }
    t->next = s->trees;
    s->trees = t;
}

/* ---- trn_epochData ---- */

static void b64(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

static void rpc_epoch_data(ado_ctx *ctx, ado_call *call, const char *params, size_t plen,
                           void *arg) {
    struct trn *s = arg;
    (void)ctx;
    json_t *o = trn_params(s, call, params, plen);
    if (!o)
        return;
    uint64_t epoch, only = UINT64_MAX;
    int rc = trn_get_u64(o, "epoch", &epoch);
    int rc2 = trn_get_u64(o, "chunk", &only);
    const char *enc = json_string_value(json_object_get(o, "encoding"));
    int base64 = enc && strcmp(enc, "base64") == 0;
    int bad_enc = enc && !base64 && strcmp(enc, "hex") != 0;
    json_decref(o);
    if (rc < 0 || rc2 == ADO_EINVAL || bad_enc) {
        trn_bad_param(s, call,
                      rc < 0              ? "epoch"
                      : rc2 == ADO_EINVAL ? "chunk"
                                          : "encoding",
                      rc < 0 ? rc : ADO_EINVAL,
                      bad_enc ? "\"hex\" or \"base64\"" : "expected a non-negative integer");
        return;
    }
    struct trn_epoch_rec e;
    if (trn_epoch_get(s, epoch, &e) < 0 || e.status < TRN_EPOCH_CLOSED) {
        s->api->rpc_error(call, TRN_ERR_EPOCH, "the epoch is not closed yet", NULL);
        return;
    }
    if (only != UINT64_MAX && only >= e.chunks) {
        trn_bad_param(s, call, "chunk", ADO_EINVAL, "no such chunk");
        return;
    }
    size_t total = only == UINT64_MAX ? e.data_size : 0, off = 0;
    uint8_t *data = NULL;
    char *out = NULL, *chunks = malloc(120 * (size_t)e.chunks + 16);
    int clen = chunks ? snprintf(chunks, 16, "[") : 0;
    rc = chunks ? 0 : ADO_ENOMEM;
    if (rc == 0 && !(data = malloc(total ? total : TRN_MAX_CHUNK)))
        rc = ADO_ENOMEM;
    for (uint32_t i = 0; i < e.chunks && rc == 0; i++) {
        uint8_t key[12], h[32];
        char hx[67];
        trn_be64(epoch, key);
        key[8] = (uint8_t)(i >> 24), key[9] = (uint8_t)(i >> 16), key[10] = (uint8_t)(i >> 8);
        key[11] = (uint8_t)i;
        const void *v;
        size_t vlen;
        rc = s->api->store_get(s->ctx, s->db.data, key, 12, &v, &vlen);
        if (rc < 0)
            break;
        ado_keccak256(v, vlen, h);
        trn_hex32(h, hx);
        clen += snprintf(chunks + clen, 120, "%s{\"index\":%u,\"size\":%zu,\"hash\":\"%s\"}",
                         i ? "," : "", i, vlen, hx);
        if (only == UINT64_MAX || only == i) {
            if (off + vlen > (total ? total : TRN_MAX_CHUNK)) {
                rc = ADO_EIO;
                break;
            }
            memcpy(data + off, v, vlen);
            off += vlen;
        }
    }
    if (rc == 0) {
        snprintf(chunks + clen, 4, "]");
        size_t cap = 2 * off + 120 * (size_t)e.chunks + 600;
        out = malloc(cap);
        if (!out)
            rc = ADO_ENOMEM;
    }
    if (rc < 0) {
        s->api->rpc_error(call, TRN_ERR_INTERNAL, "reading the epoch's data failed", NULL);
        free(data), free(chunks);
        return;
    }
    char hash[67], chunkf[24] = "null";
    trn_hex32(e.data_hash, hash);
    if (only != UINT64_MAX)
        snprintf(chunkf, sizeof chunkf, "%llu", (unsigned long long)only);
    int n = sprintf(out,
                    "{\"epoch\":%llu,\"format\":\"trn-activity-v1\",\"compression\":\"brotli\","
                    "\"raw_size\":%llu,\"size\":%llu,\"data_hash\":\"%s\",\"chunk_size\":%lld,"
                    "\"chunks\":%s,\"chunk\":%s,\"encoding\":\"%s\",\"data\":\"%s",
                    (unsigned long long)epoch, (unsigned long long)e.raw_size,
                    (unsigned long long)e.data_size, hash, (long long)s->chunk_size, chunks, chunkf,
                    base64 ? "base64" : "hex", base64 ? "" : "0x");
    if (base64)
        b64(data, off, out + n);
    else
        ado_eth_hex_encode(data, off, out + n);
    n += (int)strlen(out + n);
    n += sprintf(out + n, "\"}");
    s->api->rpc_reply(call, out, (size_t)n);
    free(out), free(data), free(chunks);
}

int trn_register_proof_rpc(struct trn *s) {
    int rc = s->api->rpc_register(s->ctx, "trn_proof", "reader",
                                  "{epoch, account} -> {amount, proof} for TRNSettlement.claim",
                                  rpc_proof, s);
    if (rc == 0)
        rc = s->api->rpc_register(s->ctx, "trn_epochData", "reader",
                                  "The Brotli-compressed activity data of {epoch, chunk?, "
                                  "encoding?}",
                                  rpc_epoch_data, s);
    return rc;
}
