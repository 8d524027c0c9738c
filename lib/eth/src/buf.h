/* Private growable byte buffer used by the encoders. */
#ifndef ADO_ETH_BUF_H
#define ADO_ETH_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ebuf {
    uint8_t *p;
    size_t len, cap;
};

static inline int ebuf_reserve(struct ebuf *b, size_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 128;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int ebuf_put(struct ebuf *b, const void *d, size_t n) {
    if (ebuf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

static inline int ebuf_zero(struct ebuf *b, size_t n) {
    if (ebuf_reserve(b, n))
        return -1;
    if (n)
        memset(b->p + b->len, 0, n);
    b->len += n;
    return 0;
}

#endif
