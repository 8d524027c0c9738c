#include "ado_eth/rlp.h"

#include "ado/errors.h"

#include <stdlib.h>
#include <string.h>

void ado_rlp_buf_free(struct ado_rlp_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int reserve(struct ado_rlp_buf *b, size_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return ADO_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Writes the header for a payload of n bytes with base 0x80 (string) or 0xc0 (list) into h;
 * returns its size (1..9). */
static size_t header(uint8_t h[9], uint8_t base, size_t n) {
    if (n <= 55) {
        h[0] = (uint8_t)(base + n);
        return 1;
    }
    size_t k = 0;
    for (size_t x = n; x; x >>= 8)
        k++;
    h[0] = (uint8_t)(base + 55 + k);
    for (size_t i = 0; i < k; i++)
        h[k - i] = (uint8_t)(n >> (8 * i));
    return 1 + k;
}

int ado_rlp_put_bytes(struct ado_rlp_buf *b, const uint8_t *d, size_t n) {
    uint8_t h[9];
    size_t hl = 0;
    if (!(n == 1 && d[0] < 0x80))
        hl = header(h, 0x80, n);
    if (reserve(b, hl + n))
        return ADO_ENOMEM;
    memcpy(b->data + b->len, h, hl);
    if (n)
        memcpy(b->data + b->len + hl, d, n);
    b->len += hl + n;
    return 0;
}

int ado_rlp_put_uint_be(struct ado_rlp_buf *b, const uint8_t *be, size_t n) {
    while (n > 0 && be[0] == 0)
        be++, n--;
    return ado_rlp_put_bytes(b, be, n);
}

int ado_rlp_put_u64(struct ado_rlp_buf *b, uint64_t v) {
    uint8_t be[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        be[i] = (uint8_t)v;
    return ado_rlp_put_uint_be(b, be, 8);
}

int ado_rlp_put_u256(struct ado_rlp_buf *b, const struct ado_u256 *v) {
    uint8_t be[32];
    ado_u256_to_be32(v, be);
    return ado_rlp_put_uint_be(b, be, 32);
}

int ado_rlp_list_begin(struct ado_rlp_buf *b, size_t *mark) {
    *mark = b->len;
    return 0;
}

int ado_rlp_list_end(struct ado_rlp_buf *b, size_t mark) {
    uint8_t h[9];
    if (mark > b->len)
        return ADO_EINVAL;
    size_t hl = header(h, 0xc0, b->len - mark);
    if (reserve(b, hl))
        return ADO_ENOMEM;
    memmove(b->data + mark + hl, b->data + mark, b->len - mark);
    memcpy(b->data + mark, h, hl);
    b->len += hl;
    return 0;
}

int ado_rlp_decode(const uint8_t *in, size_t len, struct ado_rlp_item *item, size_t *consumed) {
    if (!in || len == 0)
        return ADO_EINVAL;
    uint8_t p = in[0];
    size_t hl = 1, n;
    item->is_list = p >= 0xc0;
    if (p < 0x80) {
        item->data = in;
        item->len = 1;
        *consumed = 1;
        return 0;
    }
    uint8_t base = item->is_list ? 0xc0 : 0x80;
    if (p - base <= 55) {
        n = (size_t)(p - base);
    } else {
        size_t k = (size_t)(p - base - 55);
        if (k > sizeof(size_t) || len < 1 + k || in[1] == 0)
            return ADO_EINVAL;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = (n << 8) | in[1 + i];
        if (n <= 55)
            return ADO_EINVAL;
        hl = 1 + k;
    }
    if (n > len - hl)
        return ADO_EINVAL;
    if (!item->is_list && n == 1 && in[hl] < 0x80)
        return ADO_EINVAL; /* should have been a single byte */
    item->data = in + hl;
    item->len = n;
    *consumed = hl + n;
    return 0;
}

int ado_rlp_list_next(const struct ado_rlp_item *list, size_t *offset, struct ado_rlp_item *item) {
    size_t used;
    if (!list->is_list || *offset > list->len)
        return ADO_EINVAL;
    if (*offset == list->len)
        return 0;
    if (ado_rlp_decode(list->data + *offset, list->len - *offset, item, &used))
        return ADO_EINVAL;
    *offset += used;
    return 1;
}

int ado_rlp_item_u256(const struct ado_rlp_item *item, struct ado_u256 *out) {
    uint8_t be[32] = {0};
    if (item->is_list || item->len > 32 || (item->len > 0 && item->data[0] == 0))
        return ADO_EINVAL;
    memcpy(be + 32 - item->len, item->data, item->len);
    ado_u256_from_be32(out, be);
    return 0;
}

int ado_rlp_item_u64(const struct ado_rlp_item *item, uint64_t *out) {
    struct ado_u256 u;
    if (ado_rlp_item_u256(item, &u) || u.w[1] || u.w[2] || u.w[3])
        return ADO_EINVAL;
    *out = u.w[0];
    return 0;
}
