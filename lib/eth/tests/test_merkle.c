#include "vec.h"

#include "ado/errors.h"
#include "ado_eth/address.h"
#include "ado_eth/merkle.h"
#include "ado_eth/u256.h"

static void hexcmp(const uint8_t h[32], json_t *want, const char *what) {
    char *s = vec_tohex(h, 32);
    cr_assert_str_eq(s, json_string_value(want), "%s", what);
    free(s);
}

/* Checks a tree against a vector with tree/values/leafHashes/proofs fields. */
static void check_against(struct ado_merkle *m, json_t *j) {
    json_t *tree = json_object_get(j, "tree");
    size_t n = json_array_size(json_object_get(j, "values"));
    cr_assert_eq(ado_merkle_count(m), n);
    cr_assert_eq(json_array_size(tree), 2 * n - 1);
    const uint8_t(*t)[32] = ado_merkle_tree(m);
    for (size_t i = 0; i < 2 * n - 1; i++)
        hexcmp(t[i], json_array_get(tree, i), "tree node");
    uint8_t root[32];
    ado_merkle_root(m, root);
    if (json_object_get(j, "root"))
        hexcmp(root, json_object_get(j, "root"), "root");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(json_object_get(j, "values"), i);
        size_t ti;
        cr_assert_eq(ado_merkle_tree_index(m, i, &ti), 0);
        cr_assert_eq(ti, (size_t)json_integer_value(json_object_get(v, "treeIndex")));
    }
    json_t *proofs = json_object_get(j, "proofs");
    size_t k;
    json_t *p;
    json_array_foreach(proofs, k, p) {
        size_t idx = (size_t)json_integer_value(json_object_get(p, "index"));
        uint8_t pr[ADO_MERKLE_MAX_PROOF][32], leaf[32];
        size_t len;
        cr_assert_eq(ado_merkle_proof(m, idx, pr, ADO_MERKLE_MAX_PROOF, &len), 0);
        json_t *want = json_object_get(p, "proof");
        cr_assert_eq(len, json_array_size(want));
        for (size_t q = 0; q < len; q++)
            hexcmp(pr[q], json_array_get(want, q), "proof element");
        cr_assert_eq(ado_merkle_leaf_hash(m, idx, leaf), 0);
        hexcmp(leaf, json_object_get(p, "leafHash"), "leaf hash");
        cr_assert(ado_merkle_verify(root, leaf, (const uint8_t(*)[32])pr, len));
        if (len > 0) {
            pr[0][5] ^= 1;
            cr_assert(!ado_merkle_verify(root, leaf, (const uint8_t(*)[32])pr, len));
        }
    }
}

/* Dump text of the vector's own standard-v1 fields, as JSON.stringify would write it. */
static char *expected_dump(json_t *j) {
    json_t *d = json_object();
    json_object_set(d, "format", json_object_get(j, "format"));
    json_object_set(d, "leafEncoding", json_object_get(j, "leafEncoding"));
    json_object_set(d, "tree", json_object_get(j, "tree"));
    json_object_set(d, "values", json_object_get(j, "values"));
    char *s = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(d);
    return s;
}

static const int SIZES[] = {1, 2, 3, 5, 8, 100};

Test(merkle, binary_address_uint256_matches_shared_vectors) {
    for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++) {
        char name[96];
        snprintf(name, sizeof name, "merkle/standard-address-uint256-n%d.json", SIZES[s]);
        json_t *j = vec_load(1, name);
        json_t *vals = json_object_get(j, "values");
        size_t n = json_array_size(vals);
        uint8_t *bin = malloc(n * ADO_MERKLE_ADDR_U256);
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_object_get(json_array_get(vals, i), "value");
            const char *a = json_string_value(json_array_get(v, 0));
            struct ado_u256 u;
            cr_assert_eq(ado_eth_address_parse(a, strlen(a), bin + i * 52), 0);
            cr_assert_eq(ado_u256_parse_str(&u, json_string_value(json_array_get(v, 1))), 0);
            ado_u256_to_be32(&u, bin + i * 52 + 20);
        }
        for (int threads = 1; threads <= 2; threads++) {
            struct ado_merkle *m = NULL;
            cr_assert_eq(ado_merkle_build_addr_u256(bin, n, threads, &m), 0);
            check_against(m, j);
            char *dump = NULL, *want = expected_dump(j);
            cr_assert_eq(ado_merkle_dump(m, &dump, NULL), 0);
            cr_assert_str_eq(dump, want, "dump n=%zu", n);
            free(dump);
            free(want);
            ado_merkle_free(m);
        }
        free(bin);
        json_decref(j);
    }
}

/* Builds from the JSON API; vectors are the shared ones plus the generated mixed-type ones. */
static void check_json_vector(int shared, const char *name) {
    json_t *j = vec_load(shared, name);
    json_t *enc = json_object_get(j, "leafEncoding");
    const char *types[16];
    size_t nenc = json_array_size(enc);
    cr_assert(nenc > 0 && nenc <= 16);
    for (size_t i = 0; i < nenc; i++)
        types[i] = json_string_value(json_array_get(enc, i));
    json_t *in = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "values"), i, v)
        json_array_append(in, json_object_get(v, "value"));
    char *intext = json_dumps(in, JSON_COMPACT);
    struct ado_merkle *m = NULL;
    struct ado_eth_error err = {{0}};
    cr_assert_eq(ado_merkle_of_json(types, nenc, intext, 2, &m, &err), 0, "%s: %s", name, err.msg);
    check_against(m, j);
    char *dump = NULL, *want = json_object_get(j, "dump")
                                   ? strdup(json_string_value(json_object_get(j, "dump")))
                                   : expected_dump(j);
    cr_assert_eq(ado_merkle_dump(m, &dump, NULL), 0);
    cr_assert_str_eq(dump, want, "dump of %s", name);
    free(dump);
    free(want);
    ado_merkle_free(m);
    free(intext);
    json_decref(in);
    json_decref(j);
}

Test(merkle, json_api_matches_shared_vectors) {
    check_json_vector(1, "merkle/standard-address-uint256-n8.json");
    check_json_vector(1, "merkle/standard-address-uint256-n100.json");
}

Test(merkle, rejects_empty_and_bad_values) {
    const char *enc[] = {"address", "uint256"};
    struct ado_merkle *m = NULL;
    struct ado_eth_error err = {{0}};
    cr_assert_eq(ado_merkle_of_json(enc, 2, "[]", 1, &m, &err), ADO_EINVAL);
    cr_assert_eq(ado_merkle_of_json(enc, 2, "[[\"0x12\",\"-1\"]]", 1, &m, &err), ADO_EINVAL);
    cr_assert(strstr(err.msg, "value 0") != NULL, "%s", err.msg);
    const char *bad[] = {"address", "uint257"};
    cr_assert_eq(ado_merkle_of_json(bad, 2, "[[\"0x12\",\"1\"]]", 1, &m, &err), ADO_EINVAL);
    cr_assert_eq(ado_merkle_build_addr_u256((const uint8_t *)"", 0, 1, &m), ADO_EINVAL);
}

/* Large random tree: the parallel build equals the serial one, and every proof verifies. */
Test(merkle, parallel_build_equals_serial_and_proofs_verify) {
    size_t n = 20000;
    uint8_t *bin = malloc(n * 52);
    uint32_t s = 12345;
    for (size_t i = 0; i < n * 52; i++) {
        s = s * 1103515245u + 12345u;
        bin[i] = (uint8_t)(s >> 16);
    }
    memcpy(bin + 52 * 7, bin + 52 * 3, 52); /* a duplicate value */
    struct ado_merkle *a = NULL, *b = NULL;
    cr_assert_eq(ado_merkle_build_addr_u256(bin, n, 1, &a), 0);
    cr_assert_eq(ado_merkle_build_addr_u256(bin, n, 2, &b), 0);
    cr_assert_arr_eq(ado_merkle_tree(a), ado_merkle_tree(b), (2 * n - 1) * 32);
    uint8_t root[32];
    ado_merkle_root(a, root);
    const uint8_t(*t)[32] = ado_merkle_tree(a);
    for (size_t i = 0; i + 1 < n; i++) /* leaves sorted ascending from the end */
        cr_assert(memcmp(t[2 * n - 2 - i], t[2 * n - 3 - i], 32) <= 0);
    size_t t3, t7;
    ado_merkle_tree_index(a, 3, &t3);
    ado_merkle_tree_index(a, 7, &t7);
    cr_assert_eq(t7 + 1, t3, "stable order for identical leaves");
    for (size_t i = 0; i < n; i++) {
        uint8_t pr[ADO_MERKLE_MAX_PROOF][32], leaf[32];
        size_t len;
        cr_assert_eq(ado_merkle_proof(a, i, pr, ADO_MERKLE_MAX_PROOF, &len), 0);
        ado_merkle_leaf_addr_u256(bin + i * 52, bin + i * 52 + 20, leaf);
        cr_assert(ado_merkle_verify(root, leaf, (const uint8_t(*)[32])pr, len));
    }
    ado_merkle_free(a);
    ado_merkle_free(b);
    free(bin);
}

Test(merkle, mixed_types_match_openzeppelin_dumps) {
    check_json_vector(0, "merkle-mixed-n1.json");
    check_json_vector(0, "merkle-mixed-n2.json");
    check_json_vector(0, "merkle-mixed-n7.json");
    check_json_vector(0, "merkle-mixed-n50.json");
}

Test(merkle, leaf_json_equals_tree_leaf) {
    json_t *j = vec_load(0, "merkle-mixed-n7.json");
    const char *enc[] = {"address", "bool", "uint8", "int256", "bytes32", "string"};
    for (size_t i = 0; i < 7; i++) {
        json_t *p = json_array_get(json_object_get(j, "proofs"), i);
        char *v =
            json_dumps(json_object_get(json_array_get(json_object_get(j, "values"), i), "value"),
                       JSON_COMPACT);
        uint8_t leaf[32];
        cr_assert_eq(ado_merkle_leaf_json(enc, 6, v, leaf, NULL), 0);
        hexcmp(leaf, json_object_get(p, "leafHash"), "leaf");
        free(v);
    }
    json_decref(j);
}
