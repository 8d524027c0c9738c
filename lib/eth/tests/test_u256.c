#include "vec.h"

#include "ado/errors.h"
#include "ado_eth/u256.h"

Test(u256, decimal_and_hex_round_trip_at_the_limits) {
    /* 2^256-1 in decimal comes from the ethers vectors (BigInt in JavaScript). */
    json_t *j = vec_load(0, "abi.json");
    const char *max_dec = json_string_value(json_array_get(
        json_object_get(json_array_get(json_object_get(j, "cases"), 0), "values"), 2));
    struct ado_u256 a, b;
    char txt[ADO_U256_DEC_MAX];
    cr_assert_eq(ado_u256_parse_str(&a, max_dec), 0);
    cr_assert_eq(ado_u256_parse_str(
                     &b, "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
                 0);
    cr_assert_eq(ado_u256_cmp(&a, &b), 0);
    cr_assert_eq(ado_u256_to_dec(&a, txt, sizeof txt), (int)strlen(max_dec));
    cr_assert_str_eq(txt, max_dec);
    cr_assert_eq(ado_u256_bits(&a), 256);
    /* One more overflows, in text and in arithmetic. */
    char over[100];
    snprintf(over, sizeof over, "%s", max_dec);
    over[strlen(over) - 1]++;
    cr_assert_eq(ado_u256_parse_str(&b, over), ADO_ELIMIT);
    struct ado_u256 one, r;
    ado_u256_from_u64(&one, 1);
    cr_assert_eq(ado_u256_add(&r, &a, &one), ADO_ELIMIT);
    cr_assert(ado_u256_is_zero(&r));
    cr_assert_eq(ado_u256_sub(&r, &r, &one), ADO_ELIMIT);
    cr_assert_eq(ado_u256_cmp(&r, &a), 0);
    json_decref(j);
}

Test(u256, arithmetic_agrees_with_native_64_bit) {
    uint64_t xs[] = {0, 1, 9, 10, 999999999999ULL, 10000000000000000000ULL, UINT64_MAX};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        for (size_t k = 0; k < sizeof xs / sizeof xs[0]; k++) {
            struct ado_u256 a, b, s;
            char t1[ADO_U256_DEC_MAX], t2[32];
            ado_u256_from_u64(&a, xs[i]);
            ado_u256_from_u64(&b, xs[k]);
            cr_assert_eq(ado_u256_cmp(&a, &b), xs[i] < xs[k] ? -1 : xs[i] > xs[k]);
            cr_assert_eq(ado_u256_sub(&s, &a, &b), xs[i] >= xs[k] ? 0 : ADO_ELIMIT);
            if (xs[i] >= xs[k]) {
                ado_u256_to_dec(&s, t1, sizeof t1);
                snprintf(t2, sizeof t2, "%llu", (unsigned long long)(xs[i] - xs[k]));
                cr_assert_str_eq(t1, t2);
            }
            cr_assert_eq(ado_u256_add(&s, &a, &b), 0);
            cr_assert_eq(ado_u256_sub(&s, &s, &b), 0);
            cr_assert_eq(ado_u256_cmp(&s, &a), 0);
        }
        struct ado_u256 p;
        char t1[ADO_U256_DEC_MAX], t2[32];
        snprintf(t2, sizeof t2, "%llu", (unsigned long long)xs[i]);
        cr_assert_eq(ado_u256_parse_str(&p, t2), 0);
        ado_u256_to_dec(&p, t1, sizeof t1);
        cr_assert_str_eq(t1, t2);
        uint8_t be[32];
        ado_u256_to_be32(&p, be);
        struct ado_u256 q;
        ado_u256_from_be32(&q, be);
        cr_assert_eq(ado_u256_cmp(&p, &q), 0);
    }
}

Test(u256, rejects_malformed_text) {
    struct ado_u256 a;
    const char *bad[] = {"", "0x", "-1", " 1", "1 ", "0xg", "1e3", "+5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(ado_u256_parse_str(&a, bad[i]), ADO_EINVAL, "'%s'", bad[i]);
    char small[3];
    ado_u256_from_u64(&a, 1234);
    cr_assert_eq(ado_u256_to_dec(&a, small, sizeof small), ADO_EINVAL);
}
