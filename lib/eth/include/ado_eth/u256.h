/* adoeth: 256-bit unsigned integers (token amounts, gas prices, ABI words).
 *
 * A value is four 64-bit limbs, least significant first. All functions are pure and
 * thread-safe; nothing allocates. */
#ifndef ADO_ETH_U256_H
#define ADO_ETH_U256_H

#include <stddef.h>
#include <stdint.h>

struct ado_u256 {
    uint64_t w[4]; /* w[0] is the least significant limb */
};

/* Longest decimal text of a u256 (78 digits) plus the terminating NUL. */
#define ADO_U256_DEC_MAX 79

/* Sets *out to v. */
void ado_u256_from_u64(struct ado_u256 *out, uint64_t v);

/* Parses text of length len (no NUL needed): decimal digits, or "0x"/"0X" followed by 1..64
 * hex digits. No sign, no spaces, no empty text. Returns 0, or ADO_EINVAL on a bad character
 * or an empty number, ADO_ELIMIT when the value does not fit in 256 bits. */
int ado_u256_parse(struct ado_u256 *out, const char *text, size_t len);

/* Same as ado_u256_parse for a NUL-terminated string. */
int ado_u256_parse_str(struct ado_u256 *out, const char *text);

/* Reads 32 big-endian bytes. */
void ado_u256_from_be32(struct ado_u256 *out, const uint8_t in[32]);

/* Writes 32 big-endian bytes. */
void ado_u256_to_be32(const struct ado_u256 *v, uint8_t out[32]);

/* Writes v as decimal text into out (size bytes, NUL-terminated; ADO_U256_DEC_MAX always
 * suffices). Returns the text length, or ADO_EINVAL if size is too small. */
int ado_u256_to_dec(const struct ado_u256 *v, char *out, size_t size);

/* *out = a + b. Returns 0, or ADO_ELIMIT on overflow (then *out holds the wrapped sum).
 * out may alias a or b. */
int ado_u256_add(struct ado_u256 *out, const struct ado_u256 *a, const struct ado_u256 *b);

/* *out = a - b. Returns 0, or ADO_ELIMIT when b > a (then *out holds the wrapped difference).
 * out may alias a or b. */
int ado_u256_sub(struct ado_u256 *out, const struct ado_u256 *a, const struct ado_u256 *b);

/* *out = a * m for a 64-bit m. Returns 0 or ADO_ELIMIT on overflow. out may alias a. */
int ado_u256_mul_u64(struct ado_u256 *out, const struct ado_u256 *a, uint64_t m);

/* Returns -1, 0 or 1 as a is less than, equal to or greater than b. */
int ado_u256_cmp(const struct ado_u256 *a, const struct ado_u256 *b);

/* Returns 1 when v is zero, 0 otherwise. */
int ado_u256_is_zero(const struct ado_u256 *v);

/* Number of significant bits of v (0 for zero, 256 for the maximum). */
int ado_u256_bits(const struct ado_u256 *v);

#endif
