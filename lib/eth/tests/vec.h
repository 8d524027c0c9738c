/* Test helpers: locate and load JSON vectors, hex conversion. Header-only, tests only. */
#ifndef ADO_ETH_TEST_VEC_H
#define ADO_ETH_TEST_VEC_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ado_eth/common.h"

/* Loads a JSON file from the shared vectors folder (ADO_SHARED_DIR, else
 * ADO_SOURCE_DIR/../shared) when shared is nonzero, else from lib/eth/tests/vectors. */
static inline json_t *vec_load(int shared, const char *rel) {
    char path[1024];
    const char *env = getenv(shared ? "ADO_SHARED_DIR" : "ADO_SOURCE_DIR");
    const char *src = getenv("ADO_SOURCE_DIR") ? getenv("ADO_SOURCE_DIR") : ADO_SOURCE_DIR;
    if (shared && env)
        snprintf(path, sizeof path, "%s/vectors/%s", env, rel);
    else if (shared)
        snprintf(path, sizeof path, "%s/../shared/vectors/%s", src, rel);
    else
        snprintf(path, sizeof path, "%s/lib/eth/tests/vectors/%s", src, rel);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert(j != NULL, "cannot load %s: %s", path, je.text);
    return j;
}

/* Decodes hex (optional 0x) into a malloc'd buffer; *len receives the size. */
static inline uint8_t *vec_hex(const char *hex, size_t *len) {
    size_t tl = strlen(hex);
    uint8_t *b = malloc(tl / 2 + 1);
    cr_assert(b != NULL);
    cr_assert(ado_eth_hex_decode(hex, tl, b, tl / 2 + 1, len) == 0, "bad hex %.40s", hex);
    return b;
}

/* "0x" + lowercase hex of len bytes in a static-per-call malloc'd string (caller frees). */
static inline char *vec_tohex(const uint8_t *b, size_t len) {
    char *s = malloc(2 * len + 3);
    cr_assert(s != NULL);
    s[0] = '0', s[1] = 'x';
    ado_eth_hex_encode(b, len, s + 2);
    return s;
}

#endif
