#include "vec.h"

#include "ado/errors.h"
#include "ado_eth/address.h"
#include "ado_eth/tx.h"

Test(address, eip55_and_pubkey_derivation_match_ethers) {
    json_t *j = vec_load(0, "address.json");
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(j, "addresses"), i, a) {
        const char *lower = json_string_value(json_object_get(a, "lower"));
        const char *cs = json_string_value(json_object_get(a, "checksum"));
        uint8_t raw[20], fromkey[20];
        char out[ADO_ETH_ADDRESS_TEXTLEN];
        cr_assert_eq(ado_eth_address_parse(lower, strlen(lower), raw), 0);
        ado_eth_address_checksum(raw, out);
        cr_assert_str_eq(out, cs);
        cr_assert(ado_eth_address_is_checksummed(cs));
        cr_assert_eq(ado_eth_address_parse(cs, strlen(cs), raw), 0);
        size_t pl;
        uint8_t *pub = vec_hex(json_string_value(json_object_get(a, "publicKey")), &pl);
        cr_assert_eq(ado_eth_address_from_pubkey(pub, pl, fromkey), 0);
        cr_assert_arr_eq(fromkey, raw, 20);
        free(pub);
        /* Flip the case of one letter: the checksum must fail. */
        char bad[ADO_ETH_ADDRESS_TEXTLEN];
        strcpy(bad, cs);
        for (int k = 2; k < 42; k++) {
            if ((bad[k] >= 'a' && bad[k] <= 'f') || (bad[k] >= 'A' && bad[k] <= 'F')) {
                bad[k] ^= 0x20;
                break;
            }
        }
        if (strcmp(bad, cs) != 0) {
            cr_assert(!ado_eth_address_is_checksummed(bad));
            cr_assert_eq(ado_eth_address_parse(bad, 42, raw), ADO_EINVAL);
        }
    }
    json_array_foreach(json_object_get(j, "personal"), i, a) {
        const char *msg = json_string_value(json_object_get(a, "message"));
        uint8_t h[32];
        ado_eth_personal_hash((const uint8_t *)msg, strlen(msg), h);
        char *hex = vec_tohex(h, 32);
        cr_assert_str_eq(hex, json_string_value(json_object_get(a, "hash")));
        free(hex);
    }
    json_decref(j);
}

Test(address, rejects_bad_text) {
    uint8_t raw[20];
    const char *bad[] = {"", "0x", "0x123", "0xzz00000000000000000000000000000000000000",
                         "0x00000000000000000000000000000000000000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(ado_eth_address_parse(bad[i], strlen(bad[i]), raw), ADO_EINVAL);
}
