/* trn-activity-v1 encoding, Brotli round trip, chunking and the data hash rule of
 * TRNSettlement (pure functions, no node). */
#include <criterion/criterion.h>

#include <ado/errors.h>
#include <ado_eth/keccak.h>
#include <stdlib.h>
#include <string.h>

#include "trn_activity.h"

static void op(uint8_t *buf, size_t i, uint8_t type, uint32_t content, uint8_t acct, uint64_t amt) {
    struct trn_op o = {.type = type, .content = content};
    memset(o.account, acct, 20);
    memset(o.amount, 0, 32);
    for (int k = 0; k < 8; k++)
        o.amount[31 - k] = (uint8_t)(amt >> (8 * k));
    trn_op_pack(&o, buf + i * TRN_OP_LEN);
}

Test(trn_activity, encodes_and_decodes_the_leaves_and_survives_brotli) {
    uint8_t ops[6 * TRN_OP_LEN];
    op(ops, 0, TRN_OP_REGISTER, 7, 0xaa, 0);
    op(ops, 1, TRN_OP_VIEW, 7, 0xbb, 0);
    op(ops, 2, TRN_OP_VIEW, 7, 0xcc, 0);
    op(ops, 3, TRN_OP_BOOST, 7, 0xbb, 100);
    op(ops, 4, TRN_OP_BURN, 0, 0xcc, 5);
    op(ops, 5, TRN_OP_BURN_FOR, 7, 0xbb, 1);
    struct trn_content c = {.num = 7, .id = "video-7", .id_len = 7};
    memset(c.creator, 0xaa, 20);
    uint8_t leaves[TRN_LEAF_LEN] = {0};
    memset(leaves, 0xaa, 20);
    leaves[51] = 120;
    struct trn_activity a = {.epoch = 42,
                             .ops = ops,
                             .nops = 6,
                             .contents = &c,
                             .ncontents = 1,
                             .leaves = leaves,
                             .nleaves = 1};
    ado_u256_from_u64(&a.view_reward, 10);
    uint8_t *raw, *z, *back, *dl;
    size_t rawlen, zlen, backlen, n, nops;
    uint64_t epoch;
    cr_assert_eq(trn_activity_encode(&a, &raw, &rawlen), 0);
    cr_assert_eq(memcmp(raw, "TRNA\x01", 5), 0);
    cr_assert_eq(trn_brotli_compress(raw, rawlen, 11, &z, &zlen), 0);
    cr_assert_eq(trn_brotli_decompress(z, zlen, 1 << 20, &back, &backlen), 0);
    cr_assert_eq(backlen, rawlen);
    cr_assert_eq(memcmp(back, raw, rawlen), 0);
    cr_assert_eq(trn_activity_decode_leaves(back, backlen, &epoch, &nops, &dl, &n), 0);
    cr_assert_eq(epoch, 42);
    cr_assert_eq(nops, 6);
    cr_assert_eq(n, 1);
    cr_assert_eq(memcmp(dl, leaves, TRN_LEAF_LEN), 0);
    /* Every truncation is refused, never read past the end. */
    for (size_t cut = 0; cut < rawlen; cut++) {
        uint8_t *l2;
        size_t n2, o2;
        uint64_t e2;
        cr_assert_eq(trn_activity_decode_leaves(raw, cut, &e2, &o2, &l2, &n2), ADO_EINVAL);
    }
    /* Brotli output is deterministic (a crash-restarted close rebuilds the same bytes). */
    uint8_t *z2;
    size_t z2len;
    cr_assert_eq(trn_brotli_compress(raw, rawlen, 11, &z2, &z2len), 0);
    cr_assert_eq(z2len, zlen);
    cr_assert_eq(memcmp(z, z2, zlen), 0);
    free(raw), free(z), free(z2), free(back), free(dl);
}

Test(trn_activity, an_op_naming_missing_content_is_refused) {
    uint8_t ops[TRN_OP_LEN];
    op(ops, 0, TRN_OP_VIEW, 9, 0xbb, 0);
    struct trn_activity a = {.ops = ops, .nops = 1};
    uint8_t *raw;
    size_t len;
    cr_assert_eq(trn_activity_encode(&a, &raw, &len), ADO_EINVAL);
}

Test(trn_activity, corrupt_or_oversized_brotli_is_refused) {
    uint8_t junk[64];
    for (int i = 0; i < 64; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    uint8_t *out;
    size_t n;
    cr_assert_eq(trn_brotli_decompress(junk, sizeof junk, 1 << 20, &out, &n), ADO_EINVAL);
    uint8_t *big = calloc(1, 1 << 20), *z;
    size_t zlen;
    cr_assert_eq(trn_brotli_compress(big, 1 << 20, 5, &z, &zlen), 0);
    cr_assert_lt(zlen, 1000);
    cr_assert_eq(trn_brotli_decompress(z, zlen, 4096, &out, &n), ADO_ELIMIT);
    cr_assert_eq(trn_brotli_decompress(z, zlen - 1, 1 << 21, &out, &n), ADO_EINVAL);
    free(big), free(z);
}

Test(trn_activity, chunks_and_data_hash_follow_the_contract) {
    cr_assert_eq(trn_chunk_count(0, TRN_MAX_CHUNK), 0);
    cr_assert_eq(trn_chunk_count(1, TRN_MAX_CHUNK), 1);
    cr_assert_eq(trn_chunk_count(TRN_MAX_CHUNK, TRN_MAX_CHUNK), 1);
    cr_assert_eq(trn_chunk_count(TRN_MAX_CHUNK + 1, TRN_MAX_CHUNK), 2);
    cr_assert_eq(trn_chunk_count(300 * 1024, TRN_MAX_CHUNK), 3);
    /* No data: keccak256("") */
    uint8_t h[32], want[32];
    trn_data_hash(NULL, 0, TRN_MAX_CHUNK, NULL, h);
    ado_keccak256("", 0, want);
    cr_assert_eq(memcmp(h, want, 32), 0);
    /* 2.5 chunks: keccak(keccak(c0) ‖ keccak(c1) ‖ keccak(c2)) */
    size_t len = 2 * 1000 + 500;
    uint8_t *d = malloc(len), cat[96], hs[3][32];
    for (size_t i = 0; i < len; i++)
        d[i] = (uint8_t)(i * 7);
    ado_keccak256(d, 1000, cat);
    ado_keccak256(d + 1000, 1000, cat + 32);
    ado_keccak256(d + 2000, 500, cat + 64);
    ado_keccak256(cat, 96, want);
    trn_data_hash(d, len, 1000, hs, h);
    cr_assert_eq(memcmp(h, want, 32), 0);
    cr_assert_eq(memcmp(hs[2], cat + 64, 32), 0);
    free(d);
}
