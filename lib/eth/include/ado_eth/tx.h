/* adoeth: secp256k1 signing (libsecp256k1) and EIP-1559 (type 2) transactions.
 *
 * Signatures are deterministic (RFC 6979) and low-S, so they equal those of ethers v6 for the
 * same key and digest. */
#ifndef ADO_ETH_TX_H
#define ADO_ETH_TX_H

#include "ado_eth/u256.h"

#include <stddef.h>
#include <stdint.h>

struct ado_eth_signer;

/* Creates a signer for the 32-byte private key key (copied; the signer wipes its copy on
 * free). The signer may be used from several threads at once (signing only reads it).
 * Returns 0, ADO_EINVAL (key zero or not below the curve order) or ADO_ENOMEM. */
int ado_eth_signer_new(const uint8_t key[32], struct ado_eth_signer **out);

/* Wipes and frees a signer (NULL is accepted). */
void ado_eth_signer_free(struct ado_eth_signer *s);

/* Copies the signer's address (20 bytes). */
void ado_eth_signer_address(const struct ado_eth_signer *s, uint8_t out[20]);

/* Copies the signer's uncompressed public key (0x04 ‖ X ‖ Y, 65 bytes). */
void ado_eth_signer_pubkey(const struct ado_eth_signer *s, uint8_t out[65]);

/* Signs a 32-byte digest: sig = r ‖ s ‖ v with v the recovery id (0 or 1).
 * Returns 0 or ADO_EINVAL (libsecp256k1 refused, which does not happen for a valid key). */
int ado_eth_sign_hash(const struct ado_eth_signer *s, const uint8_t hash[32], uint8_t sig[65]);

/* Recovers the signing address from a digest and a 65-byte r ‖ s ‖ v signature (v is 0, 1,
 * 27 or 28). Returns 0 or ADO_EINVAL. */
int ado_eth_recover(const uint8_t hash[32], const uint8_t sig[65], uint8_t addr[20]);

/* EIP-191 personal_sign digest: keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ msg). */
void ado_eth_personal_hash(const uint8_t *msg, size_t len, uint8_t out[32]);

/* An EIP-1559 transaction. data is borrowed. The access list is always encoded empty. */
struct ado_eth_tx1559 {
    uint64_t chain_id;
    uint64_t nonce;
    struct ado_u256 max_priority_fee_per_gas; /* wei */
    struct ado_u256 max_fee_per_gas;          /* wei */
    uint64_t gas_limit;
    int has_to; /* 0: contract creation (empty "to") */
    uint8_t to[20];
    struct ado_u256 value; /* wei */
    const uint8_t *data;
    size_t data_len;
};

/* The digest to sign: keccak256(0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas,
 * maxFeePerGas, gasLimit, to, value, data, accessList])). Returns 0 or ADO_ENOMEM. */
int ado_eth_tx1559_signing_hash(const struct ado_eth_tx1559 *tx, uint8_t out[32]);

/* Signs tx with s. *raw receives the malloc'd raw transaction (0x02 ‖ rlp([..., yParity, r,
 * s])) of *raw_len bytes, ready for eth_sendRawTransaction; the caller frees it. tx_hash (may be
 * NULL) receives keccak256(raw). Returns 0, ADO_EINVAL or ADO_ENOMEM. */
int ado_eth_tx1559_sign(const struct ado_eth_signer *s, const struct ado_eth_tx1559 *tx,
                        uint8_t **raw, size_t *raw_len, uint8_t tx_hash[32]);

/* Parses a raw signed type-2 transaction (raw is borrowed; tx->data points into it). The
 * access list must be empty. sig (may be NULL) receives r ‖ s ‖ yParity. Returns 0 or
 * ADO_EINVAL. */
int ado_eth_tx1559_decode(const uint8_t *raw, size_t len, struct ado_eth_tx1559 *tx,
                          uint8_t sig[65]);

#endif
