#include "ado_eth/u256.h"

#include "ado/errors.h"

#include <string.h>

void ado_u256_from_u64(struct ado_u256 *out, uint64_t v) {
    out->w[0] = v;
    out->w[1] = out->w[2] = out->w[3] = 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ado_u256_parse(struct ado_u256 *out, const char *text, size_t len) {
    struct ado_u256 v = {{0, 0, 0, 0}};
    if (!text || len == 0)
        return ADO_EINVAL;
    if (len > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text += 2;
        len -= 2;
        while (len > 1 && text[0] == '0')
            text++, len--;
        for (size_t i = 0; i < len; i++)
            if (hexval(text[i]) < 0)
                return ADO_EINVAL;
        if (len > 64)
            return ADO_ELIMIT;
        for (size_t i = 0; i < len; i++) {
            size_t bit = 4 * (len - 1 - i);
            v.w[bit / 64] |= (uint64_t)hexval(text[i]) << (bit % 64);
        }
        *out = v;
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return ADO_EINVAL;
        struct ado_u256 d;
        ado_u256_from_u64(&d, (uint64_t)(text[i] - '0'));
        if (ado_u256_mul_u64(&v, &v, 10) || ado_u256_add(&v, &v, &d))
            return ADO_ELIMIT;
    }
    *out = v;
    return 0;
}

int ado_u256_parse_str(struct ado_u256 *out, const char *text) {
    if (!text)
        return ADO_EINVAL;
    return ado_u256_parse(out, text, strlen(text));
}

void ado_u256_from_be32(struct ado_u256 *out, const uint8_t in[32]) {
    for (int i = 0; i < 4; i++) {
        uint64_t x = 0;
        for (int j = 0; j < 8; j++)
            x = (x << 8) | in[8 * (3 - i) + j];
        out->w[i] = x;
    }
}

void ado_u256_to_be32(const struct ado_u256 *v, uint8_t out[32]) {
    for (int i = 0; i < 4; i++) {
        uint64_t x = v->w[i];
        for (int j = 7; j >= 0; j--) {
            out[8 * (3 - i) + j] = (uint8_t)x;
            x >>= 8;
        }
    }
}

/* Divides v by d in place and returns the remainder. */
static uint64_t divmod_u64(struct ado_u256 *v, uint64_t d) {
    unsigned __int128 rem = 0;
    for (int i = 3; i >= 0; i--) {
        unsigned __int128 cur = (rem << 64) | v->w[i];
        v->w[i] = (uint64_t)(cur / d);
        rem = cur % d;
    }
    return (uint64_t)rem;
}

int ado_u256_to_dec(const struct ado_u256 *v, char *out, size_t size) {
    char tmp[ADO_U256_DEC_MAX];
    size_t n = 0;
    struct ado_u256 x = *v;
    /* Peel off 19 decimal digits at a time. */
    do {
        uint64_t chunk = divmod_u64(&x, 10000000000000000000ULL);
        int last = ado_u256_is_zero(&x);
        for (int i = 0; i < 19 && (!last || chunk || i == 0); i++) {
            tmp[n++] = (char)('0' + chunk % 10);
            chunk /= 10;
        }
    } while (!ado_u256_is_zero(&x));
    if (size < n + 1)
        return ADO_EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return (int)n;
}

int ado_u256_add(struct ado_u256 *out, const struct ado_u256 *a, const struct ado_u256 *b) {
    unsigned __int128 c = 0;
    struct ado_u256 r;
    for (int i = 0; i < 4; i++) {
        c += (unsigned __int128)a->w[i] + b->w[i];
        r.w[i] = (uint64_t)c;
        c >>= 64;
    }
    *out = r;
    return c ? ADO_ELIMIT : 0;
}

int ado_u256_sub(struct ado_u256 *out, const struct ado_u256 *a, const struct ado_u256 *b) {
    uint64_t borrow = 0;
    struct ado_u256 r;
    for (int i = 0; i < 4; i++) {
        uint64_t ai = a->w[i], bi = b->w[i];
        uint64_t d = ai - bi - borrow;
        borrow = (ai < bi) || (ai == bi && borrow) ? 1 : 0;
        r.w[i] = d;
    }
    *out = r;
    return borrow ? ADO_ELIMIT : 0;
}

int ado_u256_mul_u64(struct ado_u256 *out, const struct ado_u256 *a, uint64_t m) {
    unsigned __int128 c = 0;
    struct ado_u256 r;
    for (int i = 0; i < 4; i++) {
        c += (unsigned __int128)a->w[i] * m;
        r.w[i] = (uint64_t)c;
        c >>= 64;
    }
    *out = r;
    return c ? ADO_ELIMIT : 0;
}

int ado_u256_cmp(const struct ado_u256 *a, const struct ado_u256 *b) {
    for (int i = 3; i >= 0; i--) {
        if (a->w[i] != b->w[i])
            return a->w[i] < b->w[i] ? -1 : 1;
    }
    return 0;
}

int ado_u256_is_zero(const struct ado_u256 *v) {
    return (v->w[0] | v->w[1] | v->w[2] | v->w[3]) == 0;
}

int ado_u256_bits(const struct ado_u256 *v) {
    for (int i = 3; i >= 0; i--)
        if (v->w[i])
            return 64 * i + 64 - __builtin_clzll(v->w[i]);
    return 0;
}
