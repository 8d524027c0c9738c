/* adoeth: Solidity contract ABI encoding and decoding, function selectors, event topics.
 *
 * Types are written as in Solidity signatures: address, bool, uintN/intN (8..256, "uint" is
 * uint256), bytesN (1..32), bytes, string, T[] and T[k] arrays, and tuples "(T1,T2)" (also
 * "tuple(T1,T2)"). A type list is comma-separated; a word after a type (a parameter name or
 * "indexed") is ignored, so "transfer(address to, uint256 amount)" works.
 *
 * Values are JSON: a JSON array with one element per type. address: "0x" + 40 hex (mixed case
 * must be a valid EIP-55 checksum); bool: true/false or the strings "true"/"false"; uintN/intN:
 * a JSON integer or a string, decimal or "0x" hex, with an optional '-' for intN; bytesN: hex of
 * at most N bytes, right-padded with zeros (as @metamask/abi-utils does; ethers wants exactly N);
 * bytes: hex text; string: a JSON string (UTF-8); arrays and tuples: JSON arrays.
 *
 * Decoded values use the same convention: integers as decimal strings, addresses in EIP-55
 * form, bytes as lowercase "0x" hex.
 *
 * All functions are thread-safe and keep no state. err (may be NULL) receives a message. */
#ifndef ADO_ETH_ABI_H
#define ADO_ETH_ABI_H

#include "ado_eth/common.h"

#include <stddef.h>
#include <stdint.h>

/* Encodes values_json (a JSON array, one element per type) as abi.encode(types...).
 * On success *out is a malloc'd buffer of *out_len bytes that the caller frees.
 * Returns 0, ADO_EINVAL (bad type text, bad JSON, value of the wrong shape or out of range),
 * or ADO_ENOMEM. */
int ado_abi_encode_json(const char *types, const char *values_json, uint8_t **out, size_t *out_len,
                        struct ado_eth_error *err);

/* Encodes a call: the 4-byte selector of signature ("name(types)") followed by the encoding of
 * args_json as the signature's parameter types. *out is malloc'd, the caller frees it.
 * Returns 0, ADO_EINVAL or ADO_ENOMEM. */
int ado_abi_encode_call(const char *signature, const char *args_json, uint8_t **out,
                        size_t *out_len, struct ado_eth_error *err);

/* Decodes len bytes of data (borrowed) as abi.decode(data, (types...)) into a compact JSON
 * array text *json_out (malloc'd, the caller frees it). Trailing bytes are ignored.
 * Returns 0, ADO_EINVAL (bad type text, data too short, bad offsets, values out of range for
 * their type, invalid UTF-8 in a string) or ADO_ENOMEM. */
int ado_abi_decode_json(const char *types, const uint8_t *data, size_t len, char **json_out,
                        struct ado_eth_error *err);

/* Writes the canonical form of signature ("f(uint a, (address,bool)[] b)" →
 * "f(uint256,(address,bool)[])") to *out (malloc'd NUL-terminated, the caller frees it).
 * Returns 0, ADO_EINVAL or ADO_ENOMEM. */
int ado_abi_canonical_signature(const char *signature, char **out, struct ado_eth_error *err);

/* Function selector: the first 4 bytes of keccak256(canonical signature).
 * Returns 0, ADO_EINVAL or ADO_ENOMEM. */
int ado_abi_selector(const char *signature, uint8_t out[4], struct ado_eth_error *err);

/* Event topic0: keccak256(canonical signature), e.g. "Transfer(address,address,uint256)".
 * Returns 0, ADO_EINVAL or ADO_ENOMEM. */
int ado_abi_event_topic(const char *signature, uint8_t out[32], struct ado_eth_error *err);

#endif
