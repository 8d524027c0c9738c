/* evm_l2: what a peer keeps in the plugin's store (db "evm_l2"), keys prefixed by the peer:
 *   <peer>/n              next nonce (decimal)
 *   <peer>/t/<nonce:020>  in-flight tx record (JSON: seq, nonce, to, value, gas, fees, calldata,
 *                         raw tx, every hash signed for the nonce)
 *   <peer>/a/<seq:020>    confirmed message seq -> tx hash
 *   <peer>/e, <peer>/s/…  event scan cursor, published logs (events.c)
 * and the in-memory list of in-flight txs in nonce order. All writes go into the caller's turn
 * transaction. */
#include "evm_l2.h"

#include <ado_eth/address.h>
#include <ado_eth/common.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void evm_u256_hex(const struct ado_u256 *v, char out[70]) {
    uint8_t be[32];
    ado_u256_to_be32(v, be);
    char h[65];
    ado_eth_hex_encode(be, 32, h);
    const char *p = h;
    while (*p == '0' && p[1])
        p++;
    snprintf(out, 70, "0x%s", p);
}

int evm_tx_key(const struct evm_peer *p, uint64_t nonce, char *out, size_t cap) {
    return snprintf(out, cap, "%s/t/%020" PRIu64, p->name, nonce);
}

int evm_nonce_save(struct evm_peer *p) {
    char k[160], v[32];
    int kl = snprintf(k, sizeof k, "%s/n", p->name);
    int vl = snprintf(v, sizeof v, "%" PRIu64, p->next_nonce);
    evm_gauge(p, "evm_l2_nonce", (double)p->next_nonce);
    return p->e->api->store_put(p->e->ctx, p->e->db, k, (size_t)kl, v, (size_t)vl);
}

int evm_tx_save(struct evm_peer *p, struct evm_tx *t) {
    t->wgen = ++p->wgen;
    char to[43] = "", val[70], fee[70], prio[70];
    if (t->has_to)
        ado_eth_address_lower(t->to, to);
    evm_u256_hex(&t->value, val);
    evm_u256_hex(&t->max_fee, fee);
    evm_u256_hex(&t->prio, prio);
    char *data = malloc(t->data_len * 2 + 3);
    if (!data)
        return ADO_ENOMEM;
    memcpy(data, "0x", 2);
    ado_eth_hex_encode(t->data, t->data_len, data + 2);
    json_t *h = json_array();
    for (int i = 0; i < t->nhash; i++)
        json_array_append_new(h, json_string(t->hashes[i]));
    json_t *o =
        json_pack("{s:I,s:I,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:o}", "seq", (json_int_t)t->seq, "nonce",
                  (json_int_t)t->nonce, "to", to, "value", val, "gas", (json_int_t)t->gas_limit,
                  "max_fee", fee, "prio", prio, "data", data, "raw", t->raw_hex, "hashes", h);
    free(data);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!txt)
        return ADO_ENOMEM;
    char k[160];
    int kl = evm_tx_key(p, t->nonce, k, sizeof k);
    int rc = p->e->api->store_put(p->e->ctx, p->e->db, k, (size_t)kl, txt, strlen(txt));
    free(txt);
    return rc;
}

void evm_tx_free(struct evm_tx *t) {
    free(t->data);
    free(t->raw_hex);
    free(t);
}

/* Insert in nonce order. */
void evm_tx_insert(struct evm_peer *p, struct evm_tx *t) {
    struct evm_tx **pp = &p->txs;
    while (*pp && (*pp)->nonce < t->nonce)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    p->ntx++;
    evm_gauge(p, "evm_l2_inflight", (double)p->ntx);
}

/* Unlink, delete the record, free. */
void evm_tx_remove(struct evm_peer *p, struct evm_tx *t) {
    for (struct evm_tx **pp = &p->txs; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    p->ntx--;
    char k[160];
    int kl = evm_tx_key(p, t->nonce, k, sizeof k);
    p->e->api->store_del(p->e->ctx, p->e->db, k, (size_t)kl);
    evm_gauge(p, "evm_l2_inflight", (double)p->ntx);
    evm_tx_free(t);
}

struct evm_tx *evm_tx_by_nonce(struct evm_peer *p, uint64_t nonce) {
    for (struct evm_tx *t = p->txs; t; t = t->next)
        if (t->nonce == nonce)
            return t;
    return NULL;
}

struct evm_tx *evm_tx_by_seq(struct evm_peer *p, uint64_t seq) {
    for (struct evm_tx *t = p->txs; t; t = t->next)
        if (t->seq == seq)
            return t;
    return NULL;
}

static int tx_from_json(json_t *o, struct evm_tx **out) {
    struct evm_tx *t = calloc(1, sizeof *t);
    if (!t)
        return ADO_ENOMEM;
    json_int_t seq, nonce, gas;
    const char *to, *val, *fee, *prio, *data, *raw;
    json_t *h;
    if (json_unpack(o, "{s:I,s:I,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:o}", "seq", &seq, "nonce", &nonce,
                    "to", &to, "value", &val, "gas", &gas, "max_fee", &fee, "prio", &prio, "data",
                    &data, "raw", &raw, "hashes", &h) != 0)
        goto fail;
    t->seq = (uint64_t)seq;
    t->nonce = (uint64_t)nonce;
    t->gas_limit = (uint64_t)gas;
    t->has_to = *to != 0;
    if ((t->has_to && ado_eth_address_parse(to, strlen(to), t->to) < 0) ||
        ado_u256_parse_str(&t->value, val) < 0 || ado_u256_parse_str(&t->max_fee, fee) < 0 ||
        ado_u256_parse_str(&t->prio, prio) < 0)
        goto fail;
    size_t dl = strlen(data);
    t->data = malloc(dl / 2 + 1);
    t->raw_hex = strdup(raw);
    if (!t->data || !t->raw_hex ||
        ado_eth_hex_decode(data, dl, t->data, dl / 2 + 1, &t->data_len) < 0)
        goto fail;
    size_t i;
    json_t *x;
    json_array_foreach(h, i, x) {
        if (t->nhash < EVM_MAX_HASHES && json_is_string(x))
            snprintf(t->hashes[t->nhash++], EVM_HASH_HEX, "%s", json_string_value(x));
    }
    if (t->nhash == 0)
        goto fail;
    t->durable = 1;
    *out = t;
    return 0;
fail:
    evm_tx_free(t);
    return ADO_EINVAL;
}

struct load_ctx {
    struct evm_peer *p;
    size_t plen;
    char prefix[160];
    int bad;
};

static int load_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct load_ctx *lc = arg;
    if (klen < lc->plen || memcmp(key, lc->prefix, lc->plen) != 0)
        return 1;
    json_t *o = json_loadb(val, vlen, 0, NULL);
    struct evm_tx *t = NULL;
    if (!o || tx_from_json(o, &t) < 0)
        lc->bad++;
    else
        evm_tx_insert(lc->p, t);
    json_decref(o);
    return 0;
}

int evm_state_load(struct evm_peer *p) {
    struct evm *e = p->e;
    char k[160];
    int kl = snprintf(k, sizeof k, "%s/n", p->name);
    const void *v;
    size_t vl;
    if (e->api->store_get(e->ctx, e->db, k, (size_t)kl, &v, &vl) == 0 && vl < 30) {
        char num[32];
        memcpy(num, v, vl);
        num[vl] = 0;
        p->next_nonce = strtoull(num, NULL, 10);
    }
    struct load_ctx lc = {.p = p};
    lc.plen = (size_t)snprintf(lc.prefix, sizeof lc.prefix, "%s/t/", p->name);
    int rc = e->api->store_iter(e->ctx, e->db, lc.prefix, lc.plen, load_one, &lc);
    if (lc.bad)
        e->api->log(e->ctx, ADO_LOG_ERROR, "peer %s: %d unreadable in-flight records", p->name,
                    lc.bad);
    if (p->ntx)
        e->api->log(e->ctx, ADO_LOG_INFO, "peer %s: %zu transactions in flight from before",
                    p->name, p->ntx);
    return rc;
}

/* Confirmed messages are remembered by seq, so that a message the bridge sends again after
 * its ack was lost or late (ack timeout, dead letter retried) is acked, not sent twice. */
static int ack_key(const struct evm_peer *p, uint64_t seq, char *out, size_t cap) {
    return snprintf(out, cap, "%s/a/%020" PRIu64, p->name, seq);
}

void evm_acked_mark(struct evm_peer *p, struct evm_tx *t) {
    char k[160];
    int kl = ack_key(p, t->seq, k, sizeof k);
    p->e->api->store_put(p->e->ctx, p->e->db, k, (size_t)kl, t->hashes[t->nhash - 1],
                         strlen(t->hashes[t->nhash - 1]));
}

int evm_acked_was(struct evm_peer *p, uint64_t seq) {
    char k[160];
    int kl = ack_key(p, seq, k, sizeof k);
    const void *v;
    size_t vl;
    return p->e->api->store_get(p->e->ctx, p->e->db, k, (size_t)kl, &v, &vl) == 0;
}
