/* adoeth: RLP (Recursive Length Prefix) encoding and decoding.
 *
 * Encoding appends to a caller-owned growable buffer. Decoding borrows the input: items point
 * into it and are valid as long as it is. Thread-safe; no global state. */
#ifndef ADO_ETH_RLP_H
#define ADO_ETH_RLP_H

#include "ado_eth/u256.h"

#include <stddef.h>
#include <stdint.h>

/* Output buffer. Zero-initialise it ({0}); data is malloc'd, owned by the buffer, and freed by
 * ado_rlp_buf_free (or taken by the caller, who then frees it). */
struct ado_rlp_buf {
    uint8_t *data;
    size_t len, cap;
};

/* Frees b->data and zeroes b. */
void ado_rlp_buf_free(struct ado_rlp_buf *b);

/* Appends the byte string d[0..n) (borrowed). Returns 0 or ADO_ENOMEM. */
int ado_rlp_put_bytes(struct ado_rlp_buf *b, const uint8_t *d, size_t n);

/* Appends an unsigned integer given as n big-endian bytes, minimal: leading zeros are
 * stripped, zero is the empty string. Returns 0 or ADO_ENOMEM. */
int ado_rlp_put_uint_be(struct ado_rlp_buf *b, const uint8_t *be, size_t n);

/* Appends a 64-bit / 256-bit unsigned integer (minimal big-endian). Returns 0 or ADO_ENOMEM. */
int ado_rlp_put_u64(struct ado_rlp_buf *b, uint64_t v);
int ado_rlp_put_u256(struct ado_rlp_buf *b, const struct ado_u256 *v);

/* Starts a list: stores in *mark where its payload begins. Items appended afterwards until the
 * matching ado_rlp_list_end form the list (lists nest). Returns 0. */
int ado_rlp_list_begin(struct ado_rlp_buf *b, size_t *mark);

/* Ends the list begun at mark: inserts its header before the payload. Returns 0, ADO_EINVAL
 * (mark beyond the buffer) or ADO_ENOMEM. */
int ado_rlp_list_end(struct ado_rlp_buf *b, size_t mark);

/* A decoded item: a byte string or a list, with its payload (borrowed from the input). */
struct ado_rlp_item {
    int is_list;
    const uint8_t *data; /* payload: the bytes, or the encoded items of the list */
    size_t len;
};

/* Decodes the item at the start of in[0..len) and stores in *consumed its encoded size.
 * Canonical form is enforced (single bytes below 0x80 unwrapped, minimal lengths).
 * Returns 0, or ADO_EINVAL (truncated or non-canonical input). */
int ado_rlp_decode(const uint8_t *in, size_t len, struct ado_rlp_item *item, size_t *consumed);

/* Iterates a list: *offset starts at 0; each call stores the next element in *item.
 * Returns 1 with an item, 0 at the end of the list, ADO_EINVAL on malformed data or if list is
 * not a list. */
int ado_rlp_list_next(const struct ado_rlp_item *list, size_t *offset, struct ado_rlp_item *item);

/* Reads a byte-string item as a canonical unsigned integer (no leading zero, at most 32 bytes).
 * Returns 0 or ADO_EINVAL. */
int ado_rlp_item_u256(const struct ado_rlp_item *item, struct ado_u256 *out);

/* Same for a value that must fit in 64 bits. Returns 0 or ADO_EINVAL. */
int ado_rlp_item_u64(const struct ado_rlp_item *item, uint64_t *out);

#endif
