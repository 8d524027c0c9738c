/* Benchmarks of lib/eth: Keccak-256 of 64-byte inputs, secp256k1 signatures, and building +
 * signing an EIP-1559 transaction. Single thread. Prints one line per figure. */
#include "ado_eth/keccak.h"
#include "ado_eth/tx.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void) {
    uint8_t buf[64] = {1}, key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i + 1);

    /* Keccak-256 over 64-byte messages, chained so the compiler cannot skip work. */
    size_t n = 4000000;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
        ado_keccak256(buf, 64, buf);
    double dt = now_s() - t0;
    printf("keccak256 64B: %.2f M hashes/s (%.0f ns/hash) [%02x]\n", (double)n / dt / 1e6,
           dt / (double)n * 1e9, buf[0]);

    size_t big = 64 << 20;
    static uint8_t mb[1 << 20];
    memset(mb, 7, sizeof mb);
    t0 = now_s();
    struct ado_keccak k;
    ado_keccak_init(&k);
    for (size_t i = 0; i < big / sizeof mb; i++)
        ado_keccak_update(&k, mb, sizeof mb);
    ado_keccak_final(&k, buf);
    dt = now_s() - t0;
    printf("keccak256 bulk: %.0f MB/s\n", (double)big / dt / 1e6);

    struct ado_eth_signer *s = NULL;
    if (ado_eth_signer_new(key, &s) != 0)
        return 1;
    uint8_t sig[65];
    n = 20000;
    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        buf[0] = (uint8_t)i;
        buf[1] = (uint8_t)(i >> 8);
        if (ado_eth_sign_hash(s, buf, sig))
            return 1;
    }
    dt = now_s() - t0;
    printf("secp256k1 sign (recoverable): %.0f signatures/s (%.1f us each)\n", (double)n / dt,
           dt / (double)n * 1e6);

    uint8_t data[196];
    memset(data, 0xab, sizeof data);
    struct ado_eth_tx1559 tx = {
        .chain_id = 42161, .gas_limit = 200000, .has_to = 1, .data = data, .data_len = sizeof data};
    ado_u256_from_u64(&tx.max_priority_fee_per_gas, 1500000000);
    ado_u256_from_u64(&tx.max_fee_per_gas, 30000000000ULL);
    memset(tx.to, 0x11, 20);
    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        uint8_t *raw;
        size_t len;
        uint8_t h[32];
        tx.nonce = i;
        if (ado_eth_tx1559_sign(s, &tx, &raw, &len, h))
            return 1;
        free(raw);
    }
    dt = now_s() - t0;
    printf("EIP-1559 tx RLP+hash+sign (196-byte data): %.0f tx/s\n", (double)n / dt);
    ado_eth_signer_free(s);
    return 0;
}
