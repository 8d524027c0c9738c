/* adoeth: Keccak-256 as used by Ethereum (original Keccak padding 0x01, not NIST SHA3-256).
 *
 * All functions are pure and thread-safe; a context may be used by one thread at a time. */
#ifndef ADO_ETH_KECCAK_H
#define ADO_ETH_KECCAK_H

#include <stddef.h>
#include <stdint.h>

#define ADO_KECCAK256_LEN  32  /* digest size, bytes */
#define ADO_KECCAK256_RATE 136 /* sponge rate, bytes */

/* Incremental hashing state. Embedded by the caller (no heap); fields are private. */
struct ado_keccak {
    uint64_t st[25];
    size_t pos; /* bytes absorbed into the current block */
};

/* Keccak-f[1600] permutation of 25 little-endian lanes, in place. */
void ado_keccak_f1600(uint64_t st[25]);

/* Resets ctx to the empty message. */
void ado_keccak_init(struct ado_keccak *ctx);

/* Absorbs len bytes of data (borrowed, may be NULL when len is 0). */
void ado_keccak_update(struct ado_keccak *ctx, const void *data, size_t len);

/* Pads, squeezes the 32-byte digest into out, and leaves ctx unusable until the next init. */
void ado_keccak_final(struct ado_keccak *ctx, uint8_t out[ADO_KECCAK256_LEN]);

/* One-shot Keccak-256 of len bytes of data into out (out may alias data). */
void ado_keccak256(const void *data, size_t len, uint8_t out[ADO_KECCAK256_LEN]);

/* Keccak-256 of a ‖ b where both are 32 bytes (Merkle node hash helper). */
void ado_keccak256_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[ADO_KECCAK256_LEN]);

/* Keccak-256 of n messages of the same length len: msgs[k] (len bytes, borrowed) hashes into
 * out[k] (32 bytes; may alias msgs[k]). For len below ADO_KECCAK256_RATE (one block) and n of 8
 * or more, 8 messages are hashed at once where the CPU has AVX-512F (chosen at run time); the
 * digests are always those of ado_keccak256. */
void ado_keccak256_batch(const uint8_t *const *msgs, size_t len, uint8_t *const *out, size_t n);

/* Same as ado_keccak256_batch with out[k] = keccak256(keccak256(msgs[k])) (the double hash of
 * StandardMerkleTree leaves). */
void ado_keccak256d_batch(const uint8_t *const *msgs, size_t len, uint8_t *const *out, size_t n);

#endif
