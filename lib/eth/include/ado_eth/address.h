/* adoeth: Ethereum addresses (EIP-55 checksums, derivation from secp256k1 public keys).
 * All functions are pure and thread-safe. */
#ifndef ADO_ETH_ADDRESS_H
#define ADO_ETH_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

#define ADO_ETH_ADDRESS_LEN     20
#define ADO_ETH_ADDRESS_TEXTLEN 43 /* "0x" + 40 hex + NUL */

/* Writes the EIP-55 checksummed form ("0x" + 40 mixed-case hex, NUL-terminated) of addr. */
void ado_eth_address_checksum(const uint8_t addr[20], char out[ADO_ETH_ADDRESS_TEXTLEN]);

/* Writes the lowercase form ("0x" + 40 hex, NUL-terminated) of addr. */
void ado_eth_address_lower(const uint8_t addr[20], char out[ADO_ETH_ADDRESS_TEXTLEN]);

/* Parses an address of len chars: 40 hex digits with an optional "0x" prefix. All-lowercase
 * and all-uppercase text is accepted as is; mixed case must be a valid EIP-55 checksum.
 * Returns 0, or ADO_EINVAL (bad length, bad digit, wrong checksum). */
int ado_eth_address_parse(const char *text, size_t len, uint8_t out[20]);

/* Returns 1 if text (NUL-terminated) is "0x" + 40 hex digits in exact EIP-55 case, 0 if not. */
int ado_eth_address_is_checksummed(const char *text);

/* Derives the address of an uncompressed secp256k1 public key: 65 bytes starting with 0x04,
 * or the 64 bytes X ‖ Y. Returns 0, or ADO_EINVAL on another length or prefix. */
int ado_eth_address_from_pubkey(const uint8_t *pub, size_t len, uint8_t out[20]);

#endif
