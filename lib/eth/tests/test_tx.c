#include "vec.h"

#include "ado/errors.h"
#include "ado_eth/address.h"
#include "ado_eth/tx.h"

static void u256_of(json_t *v, struct ado_u256 *out) {
    cr_assert_eq(ado_u256_parse_str(out, json_string_value(v)), 0);
}

Test(tx, eip1559_signed_bytes_equal_ethers) {
    json_t *j = vec_load(0, "tx.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "cases"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        size_t kl, dl, rl;
        uint8_t *key = vec_hex(json_string_value(json_object_get(c, "privateKey")), &kl);
        uint8_t *data = vec_hex(json_string_value(json_object_get(c, "data")), &dl);
        uint8_t *want = vec_hex(json_string_value(json_object_get(c, "raw")), &rl);
        struct ado_eth_signer *s = NULL;
        cr_assert_eq(ado_eth_signer_new(key, &s), 0);
        uint8_t addr[20];
        char atxt[ADO_ETH_ADDRESS_TEXTLEN];
        ado_eth_signer_address(s, addr);
        ado_eth_address_checksum(addr, atxt);
        cr_assert_str_eq(atxt, json_string_value(json_object_get(c, "from")), "%s", name);

        struct ado_eth_tx1559 tx = {0};
        tx.chain_id = (uint64_t)json_integer_value(json_object_get(c, "chainId"));
        tx.nonce = (uint64_t)json_integer_value(json_object_get(c, "nonce"));
        tx.gas_limit = (uint64_t)json_integer_value(json_object_get(c, "gasLimit"));
        u256_of(json_object_get(c, "maxPriorityFeePerGas"), &tx.max_priority_fee_per_gas);
        u256_of(json_object_get(c, "maxFeePerGas"), &tx.max_fee_per_gas);
        u256_of(json_object_get(c, "value"), &tx.value);
        json_t *to = json_object_get(c, "to");
        if (json_is_string(to)) {
            tx.has_to = 1;
            cr_assert_eq(ado_eth_address_parse(json_string_value(to), 42, tx.to), 0);
        }
        tx.data = data;
        tx.data_len = dl;

        uint8_t h[32], txh[32];
        cr_assert_eq(ado_eth_tx1559_signing_hash(&tx, h), 0);
        char *hex = vec_tohex(h, 32);
        cr_assert_str_eq(hex, json_string_value(json_object_get(c, "unsignedHash")), "%s", name);
        free(hex);

        uint8_t *raw = NULL;
        size_t len = 0;
        cr_assert_eq(ado_eth_tx1559_sign(s, &tx, &raw, &len, txh), 0);
        cr_assert_eq(len, rl, "%s: length %zu vs %zu", name, len, rl);
        cr_assert_arr_eq(raw, want, rl, "%s: raw bytes differ", name);
        hex = vec_tohex(txh, 32);
        cr_assert_str_eq(hex, json_string_value(json_object_get(c, "hash")), "%s", name);
        free(hex);

        /* Decode and recover the sender. */
        struct ado_eth_tx1559 back;
        uint8_t sig[65], rec[20];
        cr_assert_eq(ado_eth_tx1559_decode(raw, len, &back, sig), 0);
        cr_assert_eq(back.nonce, tx.nonce);
        cr_assert_eq(back.data_len, tx.data_len);
        cr_assert_eq(back.has_to, tx.has_to);
        cr_assert_eq(ado_u256_cmp(&back.value, &tx.value), 0);
        cr_assert_eq(ado_eth_recover(h, sig, rec), 0);
        cr_assert_arr_eq(rec, addr, 20);
        /* A corrupted raw transaction does not decode. */
        cr_assert_eq(ado_eth_tx1559_decode(raw, len - 1, &back, NULL), ADO_EINVAL);
        free(raw);
        ado_eth_signer_free(s);
        free(key);
        free(data);
        free(want);
    }
    json_decref(j);
}

Test(tx, signer_rejects_invalid_keys) {
    uint8_t zero[32] = {0}, max[32];
    memset(max, 0xff, 32);
    struct ado_eth_signer *s = NULL;
    cr_assert_eq(ado_eth_signer_new(zero, &s), ADO_EINVAL);
    cr_assert_eq(ado_eth_signer_new(max, &s), ADO_EINVAL);
}
