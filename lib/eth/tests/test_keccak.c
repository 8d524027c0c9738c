#include "vec.h"

#include "ado_eth/keccak.h"

Test(keccak, matches_shared_vectors_one_shot_and_incremental) {
    json_t *j = vec_load(1, "keccak256.json");
    json_t *vs = json_object_get(j, "vectors");
    cr_assert(json_array_size(vs) > 0);
    size_t i;
    json_t *v;
    json_array_foreach(vs, i, v) {
        size_t len;
        uint8_t *in = vec_hex(json_string_value(json_object_get(v, "input")), &len);
        cr_assert_eq(len, (size_t)json_integer_value(json_object_get(v, "length")));
        const char *want = json_string_value(json_object_get(v, "keccak256"));
        uint8_t out[32];
        char hex[65];
        ado_keccak256(in, len, out);
        ado_eth_hex_encode(out, 32, hex);
        cr_assert_str_eq(hex, want, "one-shot %s", json_string_value(json_object_get(v, "name")));
        /* Incremental, in uneven pieces (1, 7, 135, ...) crossing the rate boundary. */
        struct ado_keccak k;
        ado_keccak_init(&k);
        size_t off = 0, step = 1;
        while (off < len) {
            size_t n = len - off < step ? len - off : step;
            ado_keccak_update(&k, in + off, n);
            off += n;
            step = step * 7 + 1;
        }
        ado_keccak_final(&k, out);
        ado_eth_hex_encode(out, 32, hex);
        cr_assert_str_eq(hex, want, "incremental %s",
                         json_string_value(json_object_get(v, "name")));
        free(in);
    }
    json_decref(j);
}

Test(keccak, pair_equals_hash_of_concatenation) {
    uint8_t a[32], b[32], ab[64], x[32], y[32];
    for (int i = 0; i < 32; i++)
        a[i] = (uint8_t)(i * 13 + 1), b[i] = (uint8_t)(255 - i * 3);
    memcpy(ab, a, 32);
    memcpy(ab + 32, b, 32);
    ado_keccak256(ab, 64, x);
    ado_keccak256_pair(a, b, y);
    cr_assert_arr_eq(x, y, 32);
}
