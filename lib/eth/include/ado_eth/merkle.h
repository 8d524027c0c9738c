/* adoeth: OpenZeppelin StandardMerkleTree (@openzeppelin/merkle-tree 1.0.8), bit-compatible.
 *
 * leaf = keccak256(keccak256(abi.encode(leafEncoding, value))); leaves sorted ascending
 * (stable); flat array tree[0..2n-2] with the k-th smallest leaf at tree[2n-2-k] and
 * tree[i] = keccak256(sorted(tree[2i+1], tree[2i+2])). Proofs are computed on demand from the
 * array (nothing is materialised per leaf besides its tree index).
 *
 * A built tree is immutable: any number of threads may read it concurrently. Building uses up
 * to `threads` POSIX threads internally and joins them before returning. */
#ifndef ADO_ETH_MERKLE_H
#define ADO_ETH_MERKLE_H

#include "ado_eth/common.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ADO_MERKLE_MAX_LEAVES (1u << 30)
#define ADO_MERKLE_MAX_PROOF  31 /* longest proof for ADO_MERKLE_MAX_LEAVES leaves */
#define ADO_MERKLE_ADDR_U256  52 /* bytes of one binary (address, uint256) leaf */

struct ado_merkle;

/* Builds the tree of n leaves of encoding ["address","uint256"] given in binary: leaves points
 * to n records of 52 bytes (20-byte address ‖ 32-byte big-endian amount), borrowed and copied.
 * threads: worker threads for leaf and node hashing (0 means 2). On success *out is a new tree
 * the caller releases with ado_merkle_free. Returns 0, ADO_EINVAL (n is 0 or above
 * ADO_MERKLE_MAX_LEAVES, NULL pointers), ADO_ENOMEM, or ADO_EIO (a thread could not start). */
int ado_merkle_build_addr_u256(const uint8_t *leaves, size_t n, int threads,
                               struct ado_merkle **out);

/* Builds the tree of StandardMerkleTree.of(values, leafEncoding): encoding holds nenc type
 * strings (borrowed, copied), values_json is a JSON array of n values, each a JSON array of nenc
 * elements (see ado_eth/abi.h for accepted value forms; bool also takes "true"/"false").
 * Values are kept as given for ado_merkle_dump. *out as above. Returns 0, ADO_EINVAL (bad
 * type, JSON, value; err says which value), ADO_ENOMEM or ADO_EIO. */
int ado_merkle_of_json(const char *const *encoding, size_t nenc, const char *values_json,
                       int threads, struct ado_merkle **out, struct ado_eth_error *err);

/* Releases a tree (NULL is accepted). */
void ado_merkle_free(struct ado_merkle *m);

/* Number of values (leaves). */
size_t ado_merkle_count(const struct ado_merkle *m);

/* The n binary (address, uint256) records a tree of ado_merkle_build_addr_u256 was built from
 * (its own copy, in input order, ADO_MERKLE_ADDR_U256 bytes each; owned by m), or NULL for a
 * tree built from JSON. */
const uint8_t *ado_merkle_bin(const struct ado_merkle *m);

/* Copies the root (tree[0]) into out. */
void ado_merkle_root(const struct ado_merkle *m, uint8_t out[32]);

/* Pointer to the flat tree array of 2n-1 hashes (owned by m, valid until ado_merkle_free). */
const uint8_t (*ado_merkle_tree(const struct ado_merkle *m))[32];

/* Tree index of value number value_index (input order). Returns 0 or ADO_EINVAL (range). */
int ado_merkle_tree_index(const struct ado_merkle *m, size_t value_index, size_t *tree_index);

/* Copies the leaf hash of value number value_index into out. Returns 0 or ADO_EINVAL. */
int ado_merkle_leaf_hash(const struct ado_merkle *m, size_t value_index, uint8_t out[32]);

/* Writes the proof of value number value_index (sibling hashes, leaf to root) into proof, which
 * has room for cap hashes (ADO_MERKLE_MAX_PROOF always suffices); *len receives the count.
 * Returns 0, ADO_EINVAL (index out of range) or ADO_ELIMIT (cap too small). */
int ado_merkle_proof(const struct ado_merkle *m, size_t value_index, uint8_t (*proof)[32],
                     size_t cap, size_t *len);

/* Returns 1 if folding the node hash over proof (len hashes) from leaf gives root, else 0. */
int ado_merkle_verify(const uint8_t root[32], const uint8_t leaf[32], const uint8_t (*proof)[32],
                      size_t len);

/* Leaf hash of one (address, uint256) value: keccak256(keccak256(addr ‖ amount)) with the
 * address left-padded to 32 bytes. */
void ado_merkle_leaf_addr_u256(const uint8_t addr[20], const uint8_t amount[32], uint8_t out[32]);

/* Leaf hash of one value given as JSON text (an array of nenc elements) for encoding.
 * Returns 0, ADO_EINVAL or ADO_ENOMEM. */
int ado_merkle_leaf_json(const char *const *encoding, size_t nenc, const char *value_json,
                         uint8_t out[32], struct ado_eth_error *err);

/* Node hash: keccak256 of the two 32-byte children, the smaller (unsigned big-endian) first. */
void ado_merkle_node_hash(const uint8_t a[32], const uint8_t b[32], uint8_t out[32]);

/* Writes JSON.stringify(tree.dump()) (format "standard-v1", leafEncoding, tree, values with
 * value and treeIndex), compact, no trailing newline, to f. Binary trees render addresses as
 * lowercase hex and amounts as decimal strings. Returns 0, ADO_EIO (write failed) or ADO_ENOMEM. */
int ado_merkle_dump_file(const struct ado_merkle *m, FILE *f);

/* Same as ado_merkle_dump_file into a malloc'd NUL-terminated string *out (the caller frees it)
 * of *out_len bytes (out_len may be NULL). Returns 0, ADO_ENOMEM or ADO_EIO. */
int ado_merkle_dump(const struct ado_merkle *m, char **out, size_t *out_len);

#endif
