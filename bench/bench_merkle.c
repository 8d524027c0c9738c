/* Benchmark of the StandardMerkleTree over (address, uint256) leaves given in binary:
 * time from the leaves to a tree whose root and every proof are retrievable, and the cost of
 * fetching all proofs. Usage: bench_merkle [N [threads]] (defaults: 1000000 and 100000, 2). */
#include "ado_eth/merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(size_t n, int threads) {
    uint8_t *bin = malloc(n * ADO_MERKLE_ADDR_U256);
    if (!bin)
        return 1;
    uint64_t s = 0x9e3779b97f4a7c15ULL ^ n;
    for (size_t i = 0; i < n * ADO_MERKLE_ADDR_U256; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        bin[i] = (uint8_t)s;
    }
    for (size_t i = 0; i < n; i++) /* realistic amounts: the top 20 bytes are zero */
        memset(bin + i * ADO_MERKLE_ADDR_U256 + 20, 0, 20);
    double best = 1e9;
    struct ado_merkle *m = NULL;
    for (int rep = 0; rep < 3; rep++) {
        ado_merkle_free(m);
        m = NULL;
        double t0 = now_s();
        if (ado_merkle_build_addr_u256(bin, n, threads, &m))
            return 1;
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    double t0 = now_s();
    uint8_t proof[ADO_MERKLE_MAX_PROOF][32], root[32], leaf[32];
    size_t len, total = 0, ok = 0;
    ado_merkle_root(m, root);
    for (size_t i = 0; i < n; i++) {
        if (ado_merkle_proof(m, i, proof, ADO_MERKLE_MAX_PROOF, &len))
            return 1;
        total += len;
    }
    double tp = now_s() - t0;
    t0 = now_s();
    for (size_t i = 0; i < n; i += 10) {
        ado_merkle_proof(m, i, proof, ADO_MERKLE_MAX_PROOF, &len);
        ado_merkle_leaf_hash(m, i, leaf);
        ok += (size_t)ado_merkle_verify(root, leaf, (const uint8_t(*)[32])proof, len);
    }
    double tv = now_s() - t0;
    printf("n=%zu threads=%d: build (leaf hashing, sort, tree) best of 3: %.1f ms; "
           "all %zu proofs fetched in %.1f ms (avg %.1f hashes); verify %.2f us/proof (%zu ok)\n",
           n, threads, best * 1e3, n, tp * 1e3, (double)total / (double)n,
           tv / (double)((n + 9) / 10) * 1e6, ok);
    ado_merkle_free(m);
    free(bin);
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (argc > 1)
        return run((size_t)strtoull(argv[1], NULL, 10), threads);
    return run(1000000, threads) || run(100000, threads);
}
