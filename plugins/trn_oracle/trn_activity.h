/* trn_oracle: the epoch's activity data (format "trn-activity-v1") and its chunking.
 *
 * Pure functions, no kernel calls: they run on a worker thread at epoch close, in the tests
 * and in bench/bench_trn.c. The byte layout is documented in README.md ("Activity data").
 * Every function returns 0 or a negative ADO_E* code and frees what it took on failure. */
#ifndef TRN_ACTIVITY_H
#define TRN_ACTIVITY_H

#include <stddef.h>
#include <stdint.h>

#include <ado_eth/u256.h>

#define TRN_ACT_MAGIC   "TRNA"
#define TRN_ACT_VERSION 1
#define TRN_LEAF_LEN    52      /* address (20) ‖ uint256 big-endian (32), as lib/eth wants */
#define TRN_OP_LEN      57      /* one op record, see struct trn_op */
#define TRN_MAX_CHUNK   122880u /* TRNSettlement.MAX_CHUNK_SIZE (120 KiB) */

enum trn_op_type {
    TRN_OP_REGISTER = 1, /* content registered: account = creator */
    TRN_OP_VIEW = 2,     /* account = viewer */
    TRN_OP_BOOST = 3,    /* account = booster, amount */
    TRN_OP_BURN = 4,     /* account, amount, no content */
    TRN_OP_BURN_FOR = 5, /* account, amount, content */
};

/* One operation as the ledger logs it (TRN_OP_LEN bytes in the store and in buffers):
 * type (1) ‖ content number (4, big-endian; 0 = none) ‖ account (20) ‖ amount (32, BE). */
struct trn_op {
    uint8_t type;
    uint32_t content; /* global content number, from 1 */
    uint8_t account[20];
    uint8_t amount[32];
};

void trn_op_pack(const struct trn_op *op, uint8_t out[TRN_OP_LEN]);
void trn_op_unpack(const uint8_t in[TRN_OP_LEN], struct trn_op *op);

/* A content referenced by the epoch's ops: its number, its creator and its id text. */
struct trn_content {
    uint32_t num;
    uint8_t creator[20];
    char *id; /* owned by whoever owns the array */
    size_t id_len;
};

/* What an epoch's data holds before encoding. Every pointer is borrowed. */
struct trn_activity {
    uint64_t epoch;
    struct ado_u256 view_reward, view_cost, boost_fee;
    const uint8_t *ops; /* nops records of TRN_OP_LEN bytes, in the order they happened */
    size_t nops;
    const struct trn_content *contents; /* every content an op names (any order) */
    size_t ncontents;
    const uint8_t *leaves; /* nleaves records of TRN_LEAF_LEN bytes (the Merkle leaves) */
    size_t nleaves;
};

/* Encodes `a` in the trn-activity-v1 layout into a malloc'd buffer *out of *out_len bytes.
 * Returns 0, ADO_EINVAL (an op names a content missing from a->contents) or ADO_ENOMEM. */
int trn_activity_encode(const struct trn_activity *a, uint8_t **out, size_t *out_len);

/* Decoded leaves of a trn-activity-v1 buffer: *leaves is a malloc'd array of *n records of
 * TRN_LEAF_LEN bytes in the encoded order; *epoch the epoch number; *nops the op count.
 * Returns 0, ADO_EINVAL (malformed) or ADO_ENOMEM. */
int trn_activity_decode_leaves(const uint8_t *buf, size_t len, uint64_t *epoch, size_t *nops,
                               uint8_t **leaves, size_t *n);

/* Brotli: compress `in` at `quality` (0..11, window 24) into a malloc'd *out. Returns 0,
 * ADO_EINVAL or ADO_ENOMEM. Output is deterministic for the same input and quality. */
int trn_brotli_compress(const uint8_t *in, size_t len, int quality, uint8_t **out, size_t *out_len);

/* Brotli: decompress into a malloc'd *out, at most `max` bytes. Returns 0, ADO_EINVAL (corrupt
 * input), ADO_ELIMIT (larger than max) or ADO_ENOMEM. */
int trn_brotli_decompress(const uint8_t *in, size_t len, size_t max, uint8_t **out,
                          size_t *out_len);

/* Number of chunks of at most `chunk` bytes for `len` bytes (0 for len 0). */
size_t trn_chunk_count(size_t len, size_t chunk);

/* dataHash as TRNSettlement checks it: keccak256 of the concatenated keccak256 of each chunk
 * of `data` cut every `chunk` bytes (keccak256("") for no data). Chunk hashes go to
 * hashes[0..count-1] when hashes is not NULL. */
void trn_data_hash(const uint8_t *data, size_t len, size_t chunk, uint8_t (*hashes)[32],
                   uint8_t out[32]);

#endif
