#include "ado_eth/tx.h"

#include "ado/errors.h"
#include "ado_eth/address.h"
#include "ado_eth/keccak.h"
#include "ado_eth/rlp.h"

#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct ado_eth_signer {
    secp256k1_context *ctx;
    uint8_t key[32];
    uint8_t pub[65];
    uint8_t addr[20];
};

static void wipe(void *p, size_t n) {
    volatile uint8_t *v = p;
    while (n--)
        *v++ = 0;
}

int ado_eth_signer_new(const uint8_t key[32], struct ado_eth_signer **out) {
    struct ado_eth_signer *s = calloc(1, sizeof *s);
    uint8_t seed[32];
    secp256k1_pubkey pk;
    size_t plen = 65;
    if (!s)
        return ADO_ENOMEM;
    s->ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (!s->ctx) {
        free(s);
        return ADO_ENOMEM;
    }
    /* Blinding against side channels; signatures stay deterministic. */
    if (getrandom(seed, sizeof seed, 0) == (ssize_t)sizeof seed &&
        !secp256k1_context_randomize(s->ctx, seed)) {
        /* Cannot fail for a fresh context; an unblinded context still signs correctly. */
    }
    wipe(seed, sizeof seed);
    memcpy(s->key, key, 32);
    if (!secp256k1_ec_seckey_verify(s->ctx, s->key) ||
        !secp256k1_ec_pubkey_create(s->ctx, &pk, s->key)) {
        ado_eth_signer_free(s);
        return ADO_EINVAL;
    }
    secp256k1_ec_pubkey_serialize(s->ctx, s->pub, &plen, &pk, SECP256K1_EC_UNCOMPRESSED);
    ado_eth_address_from_pubkey(s->pub, 65, s->addr);
    *out = s;
    return 0;
}

void ado_eth_signer_free(struct ado_eth_signer *s) {
    if (!s)
        return;
    wipe(s->key, sizeof s->key);
    if (s->ctx)
        secp256k1_context_destroy(s->ctx);
    free(s);
}

void ado_eth_signer_address(const struct ado_eth_signer *s, uint8_t out[20]) {
    memcpy(out, s->addr, 20);
}

void ado_eth_signer_pubkey(const struct ado_eth_signer *s, uint8_t out[65]) {
    memcpy(out, s->pub, 65);
}

int ado_eth_sign_hash(const struct ado_eth_signer *s, const uint8_t hash[32], uint8_t sig[65]) {
    secp256k1_ecdsa_recoverable_signature rs;
    int recid = 0;
    if (!secp256k1_ecdsa_sign_recoverable(s->ctx, &rs, hash, s->key, NULL, NULL))
        return ADO_EINVAL;
    secp256k1_ecdsa_recoverable_signature_serialize_compact(s->ctx, sig, &recid, &rs);
    sig[64] = (uint8_t)recid;
    return 0;
}

int ado_eth_recover(const uint8_t hash[32], const uint8_t sig[65], uint8_t addr[20]) {
    secp256k1_ecdsa_recoverable_signature rs;
    secp256k1_pubkey pk;
    uint8_t pub[65];
    size_t plen = 65;
    int v = sig[64] >= 27 ? sig[64] - 27 : sig[64];
    if (v < 0 || v > 1)
        return ADO_EINVAL;
    if (!secp256k1_ecdsa_recoverable_signature_parse_compact(secp256k1_context_static, &rs, sig,
                                                             v) ||
        !secp256k1_ecdsa_recover(secp256k1_context_static, &pk, &rs, hash))
        return ADO_EINVAL;
    secp256k1_ec_pubkey_serialize(secp256k1_context_static, pub, &plen, &pk,
                                  SECP256K1_EC_UNCOMPRESSED);
    return ado_eth_address_from_pubkey(pub, 65, addr);
}

void ado_eth_personal_hash(const uint8_t *msg, size_t len, uint8_t out[32]) {
    char prefix[64];
    struct ado_keccak k;
    int n = snprintf(prefix, sizeof prefix,
                     "\x19"
                     "Ethereum Signed Message:\n%zu",
                     len);
    ado_keccak_init(&k);
    ado_keccak_update(&k, prefix, (size_t)n);
    ado_keccak_update(&k, msg, len);
    ado_keccak_final(&k, out);
}

/* Appends 0x02 and the fields (without the signature) as list items; the list stays open. */
static int put_fields(struct ado_rlp_buf *b, const struct ado_eth_tx1559 *tx, size_t *mark) {
    size_t al;
    uint8_t type = 0x02;
    if (!tx || (tx->data_len && !tx->data))
        return ADO_EINVAL;
    if (ado_rlp_put_bytes(b, &type, 1) || /* 0x02 is below 0x80: one raw byte */
        ado_rlp_list_begin(b, mark) || ado_rlp_put_u64(b, tx->chain_id) ||
        ado_rlp_put_u64(b, tx->nonce) || ado_rlp_put_u256(b, &tx->max_priority_fee_per_gas) ||
        ado_rlp_put_u256(b, &tx->max_fee_per_gas) || ado_rlp_put_u64(b, tx->gas_limit) ||
        ado_rlp_put_bytes(b, tx->to, tx->has_to ? 20 : 0) || ado_rlp_put_u256(b, &tx->value) ||
        ado_rlp_put_bytes(b, tx->data, tx->data_len) || ado_rlp_list_begin(b, &al) ||
        ado_rlp_list_end(b, al))
        return ADO_ENOMEM;
    return 0;
}

int ado_eth_tx1559_signing_hash(const struct ado_eth_tx1559 *tx, uint8_t out[32]) {
    struct ado_rlp_buf b = {0};
    size_t mark;
    int rc = put_fields(&b, tx, &mark);
    if (rc == 0 && (rc = ado_rlp_list_end(&b, mark)) == 0)
        ado_keccak256(b.data, b.len, out);
    ado_rlp_buf_free(&b);
    return rc;
}

int ado_eth_tx1559_sign(const struct ado_eth_signer *s, const struct ado_eth_tx1559 *tx,
                        uint8_t **raw, size_t *raw_len, uint8_t tx_hash[32]) {
    struct ado_rlp_buf b = {0};
    size_t mark;
    uint8_t h[32], sig[65];
    if (!s || !raw || !raw_len)
        return ADO_EINVAL;
    int rc = put_fields(&b, tx, &mark);
    if (rc)
        goto done;
    /* Hash the unsigned form, then reopen the same list and append yParity, r, s. */
    size_t body = b.len;
    if ((rc = ado_rlp_list_end(&b, mark)))
        goto done;
    ado_keccak256(b.data, b.len, h);
    memmove(b.data + mark, b.data + mark + (b.len - body), body - mark);
    b.len = body;
    if ((rc = ado_eth_sign_hash(s, h, sig)))
        goto done;
    if (ado_rlp_put_u64(&b, sig[64]) || ado_rlp_put_uint_be(&b, sig, 32) ||
        ado_rlp_put_uint_be(&b, sig + 32, 32) || ado_rlp_list_end(&b, mark)) {
        rc = ADO_ENOMEM;
        goto done;
    }
    if (tx_hash)
        ado_keccak256(b.data, b.len, tx_hash);
    *raw = b.data;
    *raw_len = b.len;
    b.data = NULL;
done:
    ado_rlp_buf_free(&b);
    return rc;
}

int ado_eth_tx1559_decode(const uint8_t *raw, size_t len, struct ado_eth_tx1559 *tx,
                          uint8_t sig[65]) {
    struct ado_rlp_item list, it[12];
    size_t used, off = 0;
    int n = 0, r;
    if (!raw || len < 2 || raw[0] != 0x02 || ado_rlp_decode(raw + 1, len - 1, &list, &used) ||
        !list.is_list || used != len - 1)
        return ADO_EINVAL;
    struct ado_rlp_item cur;
    while ((r = ado_rlp_list_next(&list, &off, &cur)) == 1) {
        if (n == 12)
            return ADO_EINVAL;
        it[n++] = cur;
    }
    if (r < 0 || n != 12)
        return ADO_EINVAL;
    memset(tx, 0, sizeof *tx);
    uint64_t v;
    struct ado_u256 rr, ss;
    if (ado_rlp_item_u64(&it[0], &tx->chain_id) || ado_rlp_item_u64(&it[1], &tx->nonce) ||
        ado_rlp_item_u256(&it[2], &tx->max_priority_fee_per_gas) ||
        ado_rlp_item_u256(&it[3], &tx->max_fee_per_gas) ||
        ado_rlp_item_u64(&it[4], &tx->gas_limit) || it[5].is_list ||
        (it[5].len != 0 && it[5].len != 20) || ado_rlp_item_u256(&it[6], &tx->value) ||
        it[7].is_list || !it[8].is_list || it[8].len != 0 || ado_rlp_item_u64(&it[9], &v) ||
        v > 1 || ado_rlp_item_u256(&it[10], &rr) || ado_rlp_item_u256(&it[11], &ss))
        return ADO_EINVAL;
    tx->has_to = it[5].len == 20;
    if (tx->has_to)
        memcpy(tx->to, it[5].data, 20);
    tx->data = it[7].data;
    tx->data_len = it[7].len;
    if (sig) {
        ado_u256_to_be32(&rr, sig);
        ado_u256_to_be32(&ss, sig + 32);
        sig[64] = (uint8_t)v;
    }
    return 0;
}
