/* Keccak-256: 64-bit lanes held in 25 locals, one fully unrolled round per iteration. */
#include "ado_eth/keccak.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ADO_KECCAK_X8 1 /* 8-way AVX-512 batch path, chosen at run time */
#endif

#define ROL64(x, n) (((x) << (n)) | ((x) >> (64 - (n))))

static const uint64_t RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* Generated: theta, rho+pi into b, chi back into a, iota. Lane index is x + 5y. */
#define KECCAK_ROUND(rc)                                                                           \
    do {                                                                                           \
        c0 = a00 ^ a05 ^ a10 ^ a15 ^ a20;                                                          \
        c1 = a01 ^ a06 ^ a11 ^ a16 ^ a21;                                                          \
        c2 = a02 ^ a07 ^ a12 ^ a17 ^ a22;                                                          \
        c3 = a03 ^ a08 ^ a13 ^ a18 ^ a23;                                                          \
        c4 = a04 ^ a09 ^ a14 ^ a19 ^ a24;                                                          \
        d0 = c4 ^ ROL64(c1, 1);                                                                    \
        d1 = c0 ^ ROL64(c2, 1);                                                                    \
        d2 = c1 ^ ROL64(c3, 1);                                                                    \
        d3 = c2 ^ ROL64(c4, 1);                                                                    \
        d4 = c3 ^ ROL64(c0, 1);                                                                    \
        b00 = a00 ^ d0;                                                                            \
        b10 = ROL64(a01 ^ d1, 1);                                                                  \
        b20 = ROL64(a02 ^ d2, 62);                                                                 \
        b05 = ROL64(a03 ^ d3, 28);                                                                 \
        b15 = ROL64(a04 ^ d4, 27);                                                                 \
        b16 = ROL64(a05 ^ d0, 36);                                                                 \
        b01 = ROL64(a06 ^ d1, 44);                                                                 \
        b11 = ROL64(a07 ^ d2, 6);                                                                  \
        b21 = ROL64(a08 ^ d3, 55);                                                                 \
        b06 = ROL64(a09 ^ d4, 20);                                                                 \
        b07 = ROL64(a10 ^ d0, 3);                                                                  \
        b17 = ROL64(a11 ^ d1, 10);                                                                 \
        b02 = ROL64(a12 ^ d2, 43);                                                                 \
        b12 = ROL64(a13 ^ d3, 25);                                                                 \
        b22 = ROL64(a14 ^ d4, 39);                                                                 \
        b23 = ROL64(a15 ^ d0, 41);                                                                 \
        b08 = ROL64(a16 ^ d1, 45);                                                                 \
        b18 = ROL64(a17 ^ d2, 15);                                                                 \
        b03 = ROL64(a18 ^ d3, 21);                                                                 \
        b13 = ROL64(a19 ^ d4, 8);                                                                  \
        b14 = ROL64(a20 ^ d0, 18);                                                                 \
        b24 = ROL64(a21 ^ d1, 2);                                                                  \
        b09 = ROL64(a22 ^ d2, 61);                                                                 \
        b19 = ROL64(a23 ^ d3, 56);                                                                 \
        b04 = ROL64(a24 ^ d4, 14);                                                                 \
        a00 = b00 ^ (~b01 & b02);                                                                  \
        a01 = b01 ^ (~b02 & b03);                                                                  \
        a02 = b02 ^ (~b03 & b04);                                                                  \
        a03 = b03 ^ (~b04 & b00);                                                                  \
        a04 = b04 ^ (~b00 & b01);                                                                  \
        a05 = b05 ^ (~b06 & b07);                                                                  \
        a06 = b06 ^ (~b07 & b08);                                                                  \
        a07 = b07 ^ (~b08 & b09);                                                                  \
        a08 = b08 ^ (~b09 & b05);                                                                  \
        a09 = b09 ^ (~b05 & b06);                                                                  \
        a10 = b10 ^ (~b11 & b12);                                                                  \
        a11 = b11 ^ (~b12 & b13);                                                                  \
        a12 = b12 ^ (~b13 & b14);                                                                  \
        a13 = b13 ^ (~b14 & b10);                                                                  \
        a14 = b14 ^ (~b10 & b11);                                                                  \
        a15 = b15 ^ (~b16 & b17);                                                                  \
        a16 = b16 ^ (~b17 & b18);                                                                  \
        a17 = b17 ^ (~b18 & b19);                                                                  \
        a18 = b18 ^ (~b19 & b15);                                                                  \
        a19 = b19 ^ (~b15 & b16);                                                                  \
        a20 = b20 ^ (~b21 & b22);                                                                  \
        a21 = b21 ^ (~b22 & b23);                                                                  \
        a22 = b22 ^ (~b23 & b24);                                                                  \
        a23 = b23 ^ (~b24 & b20);                                                                  \
        a24 = b24 ^ (~b20 & b21);                                                                  \
        a00 ^= (rc);                                                                               \
    } while (0)

void ado_keccak_f1600(uint64_t st[25]) {
    uint64_t a00 = st[0], a01 = st[1], a02 = st[2], a03 = st[3], a04 = st[4];
    uint64_t a05 = st[5], a06 = st[6], a07 = st[7], a08 = st[8], a09 = st[9];
    uint64_t a10 = st[10], a11 = st[11], a12 = st[12], a13 = st[13], a14 = st[14];
    uint64_t a15 = st[15], a16 = st[16], a17 = st[17], a18 = st[18], a19 = st[19];
    uint64_t a20 = st[20], a21 = st[21], a22 = st[22], a23 = st[23], a24 = st[24];
    uint64_t b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12;
    uint64_t b13, b14, b15, b16, b17, b18, b19, b20, b21, b22, b23, b24;
    uint64_t c0, c1, c2, c3, c4, d0, d1, d2, d3, d4;
    for (int r = 0; r < 24; r += 2) {
        KECCAK_ROUND(RC[r]);
        KECCAK_ROUND(RC[r + 1]);
    }
    st[0] = a00, st[1] = a01, st[2] = a02, st[3] = a03, st[4] = a04;
    st[5] = a05, st[6] = a06, st[7] = a07, st[8] = a08, st[9] = a09;
    st[10] = a10, st[11] = a11, st[12] = a12, st[13] = a13, st[14] = a14;
    st[15] = a15, st[16] = a16, st[17] = a17, st[18] = a18, st[19] = a19;
    st[20] = a20, st[21] = a21, st[22] = a22, st[23] = a23, st[24] = a24;
}

static inline uint64_t load64le(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void store64le(uint8_t *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

/* XORs one byte into the state at byte offset off. */
static inline void xor_byte(uint64_t st[25], size_t off, uint8_t b) {
    st[off >> 3] ^= (uint64_t)b << (8 * (off & 7));
}

void ado_keccak_init(struct ado_keccak *ctx) {
    memset(ctx, 0, sizeof *ctx);
}

void ado_keccak_update(struct ado_keccak *ctx, const void *data, size_t len) {
    const uint8_t *p = data;
    /* Finish a partial block byte by byte. */
    while (len > 0 && (ctx->pos != 0 || len < ADO_KECCAK256_RATE)) {
        xor_byte(ctx->st, ctx->pos++, *p++);
        len--;
        if (ctx->pos == ADO_KECCAK256_RATE) {
            ado_keccak_f1600(ctx->st);
            ctx->pos = 0;
        }
    }
    /* Whole blocks, lane by lane. */
    while (len >= ADO_KECCAK256_RATE) {
        for (int i = 0; i < ADO_KECCAK256_RATE / 8; i++)
            ctx->st[i] ^= load64le(p + 8 * i);
        ado_keccak_f1600(ctx->st);
        p += ADO_KECCAK256_RATE;
        len -= ADO_KECCAK256_RATE;
    }
    while (len > 0) {
        xor_byte(ctx->st, ctx->pos++, *p++);
        len--;
    }
}

void ado_keccak_final(struct ado_keccak *ctx, uint8_t out[ADO_KECCAK256_LEN]) {
    xor_byte(ctx->st, ctx->pos, 0x01);
    xor_byte(ctx->st, ADO_KECCAK256_RATE - 1, 0x80);
    ado_keccak_f1600(ctx->st);
    for (int i = 0; i < 4; i++)
        store64le(out + 8 * i, ctx->st[i]);
}

void ado_keccak256(const void *data, size_t len, uint8_t out[ADO_KECCAK256_LEN]) {
    uint64_t st[25] = {0};
    const uint8_t *p = data;
    while (len >= ADO_KECCAK256_RATE) {
        for (int i = 0; i < ADO_KECCAK256_RATE / 8; i++)
            st[i] ^= load64le(p + 8 * i);
        ado_keccak_f1600(st);
        p += ADO_KECCAK256_RATE;
        len -= ADO_KECCAK256_RATE;
    }
    size_t w = len / 8;
    for (size_t i = 0; i < w; i++)
        st[i] ^= load64le(p + 8 * i);
    for (size_t i = w * 8; i < len; i++)
        xor_byte(st, i, p[i]);
    xor_byte(st, len, 0x01);
    xor_byte(st, ADO_KECCAK256_RATE - 1, 0x80);
    ado_keccak_f1600(st);
    for (int i = 0; i < 4; i++)
        store64le(out + 8 * i, st[i]);
}

void ado_keccak256_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[ADO_KECCAK256_LEN]) {
    uint64_t st[25] = {0};
    for (int i = 0; i < 4; i++) {
        st[i] = load64le(a + 8 * i);
        st[4 + i] = load64le(b + 8 * i);
    }
    st[8] = 0x01;
    st[16] = 0x8000000000000000ULL;
    ado_keccak_f1600(st);
    for (int i = 0; i < 4; i++)
        store64le(out + 8 * i, st[i]);
}

/* ---- batches of one-block messages ----
 *
 * Hashing many short messages (Merkle leaves and nodes) is bound by the permutation. With
 * AVX-512 the permutation runs on 8 states at once, one message per 64-bit element: lane
 * rotations are vprolq and the 3-input XORs and chi are vpternlogq. Without AVX-512 the
 * messages are hashed one by one. Both give the same digests. */

/* One-block absorb of a message of len < RATE bytes into a zeroed state, with the padding. */
static void absorb_one(uint64_t st[25], const uint8_t *p, size_t len) {
    size_t w = len / 8;
    for (size_t i = 0; i < w; i++)
        st[i] = load64le(p + 8 * i);
    for (size_t i = w * 8; i < len; i++)
        xor_byte(st, i, p[i]);
    xor_byte(st, len, 0x01);
    xor_byte(st, ADO_KECCAK256_RATE - 1, 0x80);
}

static void batch_scalar(const uint8_t *const *msgs, size_t len, uint8_t *const *out, size_t n,
                         int twice) {
    for (size_t k = 0; k < n; k++) {
        uint64_t st[25] = {0};
        absorb_one(st, msgs[k], len);
        ado_keccak_f1600(st);
        if (twice) {
            for (int i = 4; i < 25; i++)
                st[i] = 0;
            st[4] = 0x01;
            st[16] = 0x8000000000000000ULL;
            ado_keccak_f1600(st);
        }
        for (int i = 0; i < 4; i++)
            store64le(out[k] + 8 * i, st[i]);
    }
}

#ifdef ADO_KECCAK_X8

#define X8            __attribute__((target("avx512f"))) static
#define V             __m512i
#define XOR3(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)
#define CHI(a, b, c)  _mm512_ternarylogic_epi64((a), (b), (c), 0xD2) /* a ^ (~b & c) */
#define ROLV(x, n)    _mm512_rol_epi64((x), (n))

#define KECCAK_ROUND_X8(rc)                                                                        \
    do {                                                                                           \
        c0 = XOR3(XOR3(a00, a05, a10), a15, a20);                                                  \
        c1 = XOR3(XOR3(a01, a06, a11), a16, a21);                                                  \
        c2 = XOR3(XOR3(a02, a07, a12), a17, a22);                                                  \
        c3 = XOR3(XOR3(a03, a08, a13), a18, a23);                                                  \
        c4 = XOR3(XOR3(a04, a09, a14), a19, a24);                                                  \
        d0 = _mm512_xor_si512(c4, ROLV(c1, 1));                                                    \
        d1 = _mm512_xor_si512(c0, ROLV(c2, 1));                                                    \
        d2 = _mm512_xor_si512(c1, ROLV(c3, 1));                                                    \
        d3 = _mm512_xor_si512(c2, ROLV(c4, 1));                                                    \
        d4 = _mm512_xor_si512(c3, ROLV(c0, 1));                                                    \
        b00 = _mm512_xor_si512(a00, d0);                                                           \
        b10 = ROLV(_mm512_xor_si512(a01, d1), 1);                                                  \
        b20 = ROLV(_mm512_xor_si512(a02, d2), 62);                                                 \
        b05 = ROLV(_mm512_xor_si512(a03, d3), 28);                                                 \
        b15 = ROLV(_mm512_xor_si512(a04, d4), 27);                                                 \
        b16 = ROLV(_mm512_xor_si512(a05, d0), 36);                                                 \
        b01 = ROLV(_mm512_xor_si512(a06, d1), 44);                                                 \
        b11 = ROLV(_mm512_xor_si512(a07, d2), 6);                                                  \
        b21 = ROLV(_mm512_xor_si512(a08, d3), 55);                                                 \
        b06 = ROLV(_mm512_xor_si512(a09, d4), 20);                                                 \
        b07 = ROLV(_mm512_xor_si512(a10, d0), 3);                                                  \
        b17 = ROLV(_mm512_xor_si512(a11, d1), 10);                                                 \
        b02 = ROLV(_mm512_xor_si512(a12, d2), 43);                                                 \
        b12 = ROLV(_mm512_xor_si512(a13, d3), 25);                                                 \
        b22 = ROLV(_mm512_xor_si512(a14, d4), 39);                                                 \
        b23 = ROLV(_mm512_xor_si512(a15, d0), 41);                                                 \
        b08 = ROLV(_mm512_xor_si512(a16, d1), 45);                                                 \
        b18 = ROLV(_mm512_xor_si512(a17, d2), 15);                                                 \
        b03 = ROLV(_mm512_xor_si512(a18, d3), 21);                                                 \
        b13 = ROLV(_mm512_xor_si512(a19, d4), 8);                                                  \
        b14 = ROLV(_mm512_xor_si512(a20, d0), 18);                                                 \
        b24 = ROLV(_mm512_xor_si512(a21, d1), 2);                                                  \
        b09 = ROLV(_mm512_xor_si512(a22, d2), 61);                                                 \
        b19 = ROLV(_mm512_xor_si512(a23, d3), 56);                                                 \
        b04 = ROLV(_mm512_xor_si512(a24, d4), 14);                                                 \
        a00 = CHI(b00, b01, b02);                                                                  \
        a01 = CHI(b01, b02, b03);                                                                  \
        a02 = CHI(b02, b03, b04);                                                                  \
        a03 = CHI(b03, b04, b00);                                                                  \
        a04 = CHI(b04, b00, b01);                                                                  \
        a05 = CHI(b05, b06, b07);                                                                  \
        a06 = CHI(b06, b07, b08);                                                                  \
        a07 = CHI(b07, b08, b09);                                                                  \
        a08 = CHI(b08, b09, b05);                                                                  \
        a09 = CHI(b09, b05, b06);                                                                  \
        a10 = CHI(b10, b11, b12);                                                                  \
        a11 = CHI(b11, b12, b13);                                                                  \
        a12 = CHI(b12, b13, b14);                                                                  \
        a13 = CHI(b13, b14, b10);                                                                  \
        a14 = CHI(b14, b10, b11);                                                                  \
        a15 = CHI(b15, b16, b17);                                                                  \
        a16 = CHI(b16, b17, b18);                                                                  \
        a17 = CHI(b17, b18, b19);                                                                  \
        a18 = CHI(b18, b19, b15);                                                                  \
        a19 = CHI(b19, b15, b16);                                                                  \
        a20 = CHI(b20, b21, b22);                                                                  \
        a21 = CHI(b21, b22, b23);                                                                  \
        a22 = CHI(b22, b23, b24);                                                                  \
        a23 = CHI(b23, b24, b20);                                                                  \
        a24 = CHI(b24, b20, b21);                                                                  \
        a00 = _mm512_xor_si512(a00, _mm512_set1_epi64((long long)(rc)));                           \
    } while (0)

/* Keccak-f[1600] on 8 states: st[lane] holds lane `lane` of the 8 states. */
X8 void f1600_x8(V st[25]) {
    V a00 = st[0], a01 = st[1], a02 = st[2], a03 = st[3], a04 = st[4];
    V a05 = st[5], a06 = st[6], a07 = st[7], a08 = st[8], a09 = st[9];
    V a10 = st[10], a11 = st[11], a12 = st[12], a13 = st[13], a14 = st[14];
    V a15 = st[15], a16 = st[16], a17 = st[17], a18 = st[18], a19 = st[19];
    V a20 = st[20], a21 = st[21], a22 = st[22], a23 = st[23], a24 = st[24];
    V b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12;
    V b13, b14, b15, b16, b17, b18, b19, b20, b21, b22, b23, b24;
    V c0, c1, c2, c3, c4, d0, d1, d2, d3, d4;
    for (int r = 0; r < 24; r++)
        KECCAK_ROUND_X8(RC[r]);
    st[0] = a00, st[1] = a01, st[2] = a02, st[3] = a03, st[4] = a04;
    st[5] = a05, st[6] = a06, st[7] = a07, st[8] = a08, st[9] = a09;
    st[10] = a10, st[11] = a11, st[12] = a12, st[13] = a13, st[14] = a14;
    st[15] = a15, st[16] = a16, st[17] = a17, st[18] = a18, st[19] = a19;
    st[20] = a20, st[21] = a21, st[22] = a22, st[23] = a23, st[24] = a24;
}

/* Hashes messages msgs[0..7] of len bytes (one block) into out[0..7]. */
X8 void hash8(const uint8_t *const *msgs, size_t len, uint8_t *const *out, int twice) {
    V st[25];
    uint64_t w[25][8] __attribute__((aligned(64)));
    for (int k = 0; k < 8; k++) {
        uint64_t one[25] = {0};
        absorb_one(one, msgs[k], len);
        for (int i = 0; i < 17; i++)
            w[i][k] = one[i];
    }
    for (int i = 0; i < 17; i++)
        st[i] = _mm512_load_si512((const void *)w[i]);
    for (int i = 17; i < 25; i++)
        st[i] = _mm512_setzero_si512();
    f1600_x8(st);
    if (twice) {
        for (int i = 4; i < 25; i++)
            st[i] = _mm512_setzero_si512();
        st[4] = _mm512_set1_epi64(0x01);
        st[16] = _mm512_set1_epi64((long long)0x8000000000000000ULL);
        f1600_x8(st);
    }
    for (int i = 0; i < 4; i++)
        _mm512_store_si512((void *)w[i], st[i]);
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < 4; i++)
            store64le(out[k] + 8 * i, w[i][k]);
}

static int have_x8(void) {
    return __builtin_cpu_supports("avx512f");
}
#endif

static void batch(const uint8_t *const *msgs, size_t len, uint8_t *const *out, size_t n,
                  int twice) {
    if (len >= ADO_KECCAK256_RATE) { /* not one block: the general path */
        for (size_t k = 0; k < n; k++) {
            ado_keccak256(msgs[k], len, out[k]);
            if (twice)
                ado_keccak256(out[k], 32, out[k]);
        }
        return;
    }
    size_t k = 0;
#ifdef ADO_KECCAK_X8
    if (n >= 8 && have_x8())
        for (; k + 8 <= n; k += 8)
            hash8(msgs + k, len, out + k, twice);
#endif
    batch_scalar(msgs + k, len, out + k, n - k, twice);
}

void ado_keccak256_batch(const uint8_t *const *msgs, size_t len, uint8_t *const *out, size_t n) {
    batch(msgs, len, out, n, 0);
}

void ado_keccak256d_batch(const uint8_t *const *msgs, size_t len, uint8_t *const *out, size_t n) {
    batch(msgs, len, out, n, 1);
}
