/* Benchmark of the StandardMerkleTree over (address, uint256) leaves given in binary:
 * time from the leaves to a tree whose root and every proof are retrievable, and the cost of
 * fetching all proofs. Usage: bench_merkle [N [threads]] (defaults: 1000000 and 100000, 2). */
#include "ado_eth/keccak.h"
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

static int cmp32(const void *a, const void *b) {
    return memcmp(a, b, 32);
}

/* The root computed the plain way (one hash at a time, qsort, level by level), to check the
 * batched build against. */
static int reference_root(const uint8_t *bin, size_t n, uint8_t root[32]) {
    if (n == 0 || n > ADO_MERKLE_MAX_LEAVES)
        return 1;
    uint8_t(*t)[32] = malloc((2 * n - 1) * 32);
    if (!t)
        return 1;
    for (size_t i = 0; i < n; i++)
        ado_merkle_leaf_addr_u256(bin + i * ADO_MERKLE_ADDR_U256,
                                  bin + i * ADO_MERKLE_ADDR_U256 + 20, t[n - 1 + i]);
    qsort(t[n - 1], n, 32, cmp32);
    for (size_t i = 0; i < n / 2; i++) { /* smallest at tree[2n-2]: reverse the sorted leaves */
        uint8_t x[32];
        memcpy(x, t[n - 1 + i], 32);
        memcpy(t[n - 1 + i], t[2 * n - 2 - i], 32);
        memcpy(t[2 * n - 2 - i], x, 32);
    }
    for (size_t i = n - 1; i-- > 0;)
        ado_merkle_node_hash(t[2 * i + 1], t[2 * i + 2], t[i]);
    memcpy(root, t[0], 32);
    free(t);
    return 0;
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
    uint8_t want[32];
    t0 = now_s();
    int bad = reference_root(bin, n, want);
    double tr = now_s() - t0;
    if (bad || memcmp(want, root, 32) != 0) {
        fprintf(stderr, "n=%zu: the root differs from the one-hash-at-a-time reference\n", n);
        return 1;
    }
    printf("n=%zu threads=%d: build (leaf hashing, sort, tree) best of 3: %.1f ms; "
           "all %zu proofs fetched in %.1f ms (avg %.1f hashes); verify %.2f us/proof (%zu ok); "
           "root equals the plain one-hash-at-a-time reference (%.0f ms, 1 thread)\n",
           n, threads, best * 1e3, n, tp * 1e3, (double)total / (double)n,
           tv / (double)((n + 9) / 10) * 1e6, ok, tr * 1e3);
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
