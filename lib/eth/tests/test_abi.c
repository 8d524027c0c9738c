#include "vec.h"

#include "ado/errors.h"
#include "ado_eth/abi.h"

static char *enc_hex(const uint8_t *b, size_t n) {
    return vec_tohex(b, n);
}

Test(abi, encodes_like_ethers_abicoder) {
    json_t *j = vec_load(0, "abi.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "cases"), i, c) {
        const char *types = json_string_value(json_object_get(c, "types"));
        char *vals = json_dumps(json_object_get(c, "values"), JSON_COMPACT);
        uint8_t *out = NULL;
        size_t len = 0;
        struct ado_eth_error err = {{0}};
        cr_assert_eq(ado_abi_encode_json(types, vals, &out, &len, &err), 0, "%s: %s", types,
                     err.msg);
        char *hex = enc_hex(out, len);
        cr_assert_str_eq(hex, json_string_value(json_object_get(c, "encoded")), "%s", types);
        free(hex);
        free(out);
        free(vals);
    }
    json_decref(j);
}

Test(abi, decodes_like_ethers_abicoder) {
    json_t *j = vec_load(0, "abi.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "cases"), i, c) {
        const char *types = json_string_value(json_object_get(c, "types"));
        size_t len;
        uint8_t *data = vec_hex(json_string_value(json_object_get(c, "encoded")), &len);
        char *out = NULL;
        struct ado_eth_error err = {{0}};
        cr_assert_eq(ado_abi_decode_json(types, data, len, &out, &err), 0, "%s: %s", types,
                     err.msg);
        json_t *got = json_loads(out, 0, NULL);
        cr_assert(json_equal(got, json_object_get(c, "decoded")), "%s: %s", types, out);
        /* Every truncation of the data must be refused, never read out of bounds. */
        for (size_t cut = 0; cut < len; cut += 31) {
            char *o2 = NULL;
            int rc = ado_abi_decode_json(types, data, cut, &o2, NULL);
            cr_assert(rc == ADO_EINVAL || rc == 0);
            free(o2);
        }
        json_decref(got);
        free(out);
        free(data);
    }
    json_decref(j);
}

Test(abi, selectors_topics_and_calls_match_ethers) {
    json_t *j = vec_load(0, "abi.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "selectors"), i, c) {
        uint8_t sel[4];
        cr_assert_eq(
            ado_abi_selector(json_string_value(json_object_get(c, "signature")), sel, NULL), 0);
        char *hex = enc_hex(sel, 4);
        cr_assert_str_eq(hex, json_string_value(json_object_get(c, "selector")));
        free(hex);
    }
    json_array_foreach(json_object_get(j, "events"), i, c) {
        uint8_t t[32];
        cr_assert_eq(
            ado_abi_event_topic(json_string_value(json_object_get(c, "signature")), t, NULL), 0);
        char *hex = enc_hex(t, 32);
        cr_assert_str_eq(hex, json_string_value(json_object_get(c, "topic")));
        free(hex);
    }
    json_array_foreach(json_object_get(j, "calls"), i, c) {
        char *args = json_dumps(json_object_get(c, "args"), JSON_COMPACT);
        uint8_t *out;
        size_t len;
        cr_assert_eq(ado_abi_encode_call(json_string_value(json_object_get(c, "signature")), args,
                                         &out, &len, NULL),
                     0);
        char *hex = enc_hex(out, len);
        cr_assert_str_eq(hex, json_string_value(json_object_get(c, "data")));
        free(hex);
        free(out);
        free(args);
    }
    json_decref(j);
}

Test(abi, canonical_signature_drops_names_and_expands_aliases) {
    char *s = NULL;
    uint8_t a[4], b[4];
    cr_assert_eq(ado_abi_canonical_signature(
                     " claim(uint id, address indexed to, tuple(uint,bytes)[] xs) ", &s, NULL),
                 0);
    cr_assert_str_eq(s, "claim(uint256,address,(uint256,bytes)[])");
    free(s);
    cr_assert_eq(ado_abi_selector("transfer(address to, uint amount)", a, NULL), 0);
    cr_assert_eq(ado_abi_selector("transfer(address,uint256)", b, NULL), 0);
    cr_assert_arr_eq(a, b, 4);
}

Test(abi, rejects_bad_types_and_values) {
    uint8_t *out = NULL;
    size_t len;
    struct ado_eth_error err = {{0}};
    cr_assert_eq(ado_abi_encode_json("uint7", "[1]", &out, &len, &err), ADO_EINVAL);
    cr_assert(strstr(err.msg, "uint7") != NULL, "%s", err.msg);
    cr_assert_eq(ado_abi_encode_json("bytes33", "[\"0x00\"]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("uint8", "[256]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("int8", "[\"-129\"]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("int8", "[128]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("uint256", "[\"-1\"]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("uint256", "[\"12a\"]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("address", "[\"0x12\"]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("bool", "[1]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("uint256,bool", "[1]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("uint256[2]", "[[1,2,3]]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("(uint256", "[[1]]", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_encode_json("uint256", "[1", &out, &len, NULL), ADO_EINVAL);
    cr_assert_eq(ado_abi_selector("nope", (uint8_t[4]){0}, NULL), ADO_EINVAL);
}

Test(abi, rejects_malicious_offsets_and_lengths) {
    uint8_t d[96] = {0};
    char *out = NULL;
    d[31] = 0x20;             /* offset of the bytes value */
    memset(d + 32, 0xff, 32); /* absurd length */
    cr_assert_eq(ado_abi_decode_json("bytes", d, sizeof d, &out, NULL), ADO_EINVAL);
    memset(d + 32, 0, 32);
    d[63] = 0x40; /* array of 64 elements in 32 remaining bytes */
    cr_assert_eq(ado_abi_decode_json("uint256[]", d, sizeof d, &out, NULL), ADO_EINVAL);
    d[31] = 0xe0; /* offset beyond the data */
    cr_assert_eq(ado_abi_decode_json("string", d, sizeof d, &out, NULL), ADO_EINVAL);
}
