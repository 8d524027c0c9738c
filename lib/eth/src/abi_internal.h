/* Private: parsed ABI types and JSON-driven encoding, shared by abi.c and merkle.c. */
#ifndef ADO_ETH_ABI_INTERNAL_H
#define ADO_ETH_ABI_INTERNAL_H

#include "ado_eth/common.h"
#include "buf.h"

#include <jansson.h>

enum abi_kind {
    AK_UINT,
    AK_INT,
    AK_ADDRESS,
    AK_BOOL,
    AK_FBYTES,
    AK_BYTES,
    AK_STRING,
    AK_ARRAY,
    AK_TUPLE
};

struct abi_type {
    enum abi_kind kind;
    int size;                /* bits (u)intN, N of bytesN, array length or -1 if dynamic */
    struct abi_type *elem;   /* AK_ARRAY */
    struct abi_type **comps; /* AK_TUPLE */
    size_t ncomps;
};

/* Parses a comma-separated list of types (names after a type are skipped) up to the end of
 * text or a closing ')' at depth 0. Returns a tuple type holding the list, or NULL (err set). */
struct abi_type *abi_parse_list(const char *text, struct ado_eth_error *err);
void abi_type_free(struct abi_type *t);
/* Appends the canonical text of t ("uint256", "(address,bool)[]") to b. */
int abi_type_canonical(const struct abi_type *t, struct ebuf *b);
/* Appends the ABI encoding of v as t (for a tuple: its components). */
int abi_encode_value(const struct abi_type *t, json_t *v, struct ebuf *b,
                     struct ado_eth_error *err);
void abi_seterr(struct ado_eth_error *err, const char *fmt, ...);

#endif
