#include "vec.h"

#include "ado/errors.h"
#include "ado_eth/rlp.h"

Test(rlp, byte_strings_round_trip_across_header_forms) {
    size_t lens[] = {0, 1, 2, 55, 56, 255, 256, 70000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int first = 0; first < 256; first += 127) {
            size_t n = lens[i];
            uint8_t *d = malloc(n + 1);
            for (size_t k = 0; k < n; k++)
                d[k] = (uint8_t)(k == 0 ? (size_t)first : k * 7);
            struct ado_rlp_buf b = {0};
            cr_assert_eq(ado_rlp_put_bytes(&b, d, n), 0);
            size_t want_hdr = (n == 1 && first < 0x80) ? 0
                              : n <= 55                ? 1
                              : n < 256                ? 2
                              : n < 65536              ? 3
                                                       : 4;
            cr_assert_eq(b.len, n + want_hdr, "len %zu", n);
            struct ado_rlp_item it;
            size_t used;
            cr_assert_eq(ado_rlp_decode(b.data, b.len, &it, &used), 0);
            cr_assert_eq(used, b.len);
            cr_assert(!it.is_list);
            cr_assert_eq(it.len, n);
            if (n)
                cr_assert_arr_eq(it.data, d, n);
            cr_assert_eq(ado_rlp_decode(b.data, b.len - 1, &it, &used), ADO_EINVAL);
            ado_rlp_buf_free(&b);
            free(d);
        }
    }
}

Test(rlp, nested_lists_and_integers) {
    struct ado_rlp_buf b = {0};
    size_t outer, inner;
    struct ado_u256 big;
    cr_assert_eq(ado_u256_parse_str(&big, "0x0100000000000000000000000000000000"), 0);
    ado_rlp_list_begin(&b, &outer);
    ado_rlp_put_u64(&b, 0);
    ado_rlp_put_u64(&b, 127);
    ado_rlp_put_u64(&b, 128);
    ado_rlp_put_u256(&b, &big);
    ado_rlp_list_begin(&b, &inner);
    for (int i = 0; i < 30; i++)
        ado_rlp_put_u64(&b, 1000 + (uint64_t)i);
    cr_assert_eq(ado_rlp_list_end(&b, inner), 0);
    cr_assert_eq(ado_rlp_list_end(&b, outer), 0);

    struct ado_rlp_item l, it;
    size_t used, off = 0;
    cr_assert_eq(ado_rlp_decode(b.data, b.len, &l, &used), 0);
    cr_assert(l.is_list);
    cr_assert_eq(used, b.len);
    uint64_t v;
    struct ado_u256 u;
    cr_assert_eq(ado_rlp_list_next(&l, &off, &it), 1);
    cr_assert_eq(it.len, 0, "zero is the empty string");
    cr_assert_eq(ado_rlp_list_next(&l, &off, &it), 1);
    cr_assert_eq(ado_rlp_item_u64(&it, &v), 0);
    cr_assert_eq(v, 127);
    cr_assert_eq(ado_rlp_list_next(&l, &off, &it), 1);
    cr_assert_eq(ado_rlp_item_u64(&it, &v), 0);
    cr_assert_eq(v, 128);
    cr_assert_eq(ado_rlp_list_next(&l, &off, &it), 1);
    cr_assert_eq(ado_rlp_item_u256(&it, &u), 0);
    cr_assert_eq(ado_u256_cmp(&u, &big), 0);
    cr_assert_eq(ado_rlp_item_u64(&it, &v), ADO_EINVAL);
    cr_assert_eq(ado_rlp_list_next(&l, &off, &it), 1);
    cr_assert(it.is_list);
    size_t o2 = 0, count = 0;
    struct ado_rlp_item e;
    while (ado_rlp_list_next(&it, &o2, &e) == 1) {
        cr_assert_eq(ado_rlp_item_u64(&e, &v), 0);
        cr_assert_eq(v, 1000 + count++);
    }
    cr_assert_eq(count, 30);
    cr_assert_eq(ado_rlp_list_next(&l, &off, &it), 0);
    ado_rlp_buf_free(&b);
}

Test(rlp, rejects_non_canonical_forms) {
    struct ado_rlp_item it;
    size_t used;
    const uint8_t single[] = {0x81, 0x05};          /* byte below 0x80 wrapped */
    const uint8_t longshort[] = {0xb8, 0x02, 1, 2}; /* long form for a short string */
    const uint8_t lead0[] = {0xb9, 0x00, 0x40};     /* leading zero in the length */
    cr_assert_eq(ado_rlp_decode(single, sizeof single, &it, &used), ADO_EINVAL);
    cr_assert_eq(ado_rlp_decode(longshort, sizeof longshort, &it, &used), ADO_EINVAL);
    cr_assert_eq(ado_rlp_decode(lead0, sizeof lead0, &it, &used), ADO_EINVAL);
    const uint8_t zero_int[] = {0x82, 0x00, 0x01};
    cr_assert_eq(ado_rlp_decode(zero_int, sizeof zero_int, &it, &used), 0);
    struct ado_u256 u;
    cr_assert_eq(ado_rlp_item_u256(&it, &u), ADO_EINVAL);
}

/* The raw transactions signed by ethers decode as a type byte and a 12-item list. */
Test(rlp, decodes_ethers_transactions) {
    json_t *j = vec_load(0, "tx.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "cases"), i, c) {
        size_t len, used, off = 0, n = 0;
        uint8_t *raw = vec_hex(json_string_value(json_object_get(c, "raw")), &len);
        struct ado_rlp_item l, it;
        cr_assert_eq(raw[0], 2);
        cr_assert_eq(ado_rlp_decode(raw + 1, len - 1, &l, &used), 0);
        cr_assert_eq(used, len - 1);
        while (ado_rlp_list_next(&l, &off, &it) == 1)
            n++;
        cr_assert_eq(n, 12);
        free(raw);
    }
    json_decref(j);
}
