/* trn_oracle: activity data encoding (trn-activity-v1), Brotli and chunk hashing. */
#include "trn_activity.h"

#include <ado/errors.h>
#include <ado_eth/keccak.h>

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>

void trn_op_pack(const struct trn_op *op, uint8_t out[TRN_OP_LEN]) {
    out[0] = op->type;
    out[1] = (uint8_t)(op->content >> 24);
    out[2] = (uint8_t)(op->content >> 16);
    out[3] = (uint8_t)(op->content >> 8);
    out[4] = (uint8_t)op->content;
    memcpy(out + 5, op->account, 20);
    memcpy(out + 25, op->amount, 32);
}

void trn_op_unpack(const uint8_t in[TRN_OP_LEN], struct trn_op *op) {
    op->type = in[0];
    op->content = (uint32_t)in[1] << 24 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 8 | in[4];
    memcpy(op->account, in + 5, 20);
    memcpy(op->amount, in + 25, 32);
}

static int op_has_content(uint8_t type) {
    return type == TRN_OP_REGISTER || type == TRN_OP_VIEW || type == TRN_OP_BOOST ||
           type == TRN_OP_BURN_FOR;
}

static int op_has_amount(uint8_t type) {
    return type == TRN_OP_BOOST || type == TRN_OP_BURN || type == TRN_OP_BURN_FOR;
}

/* ---- a growable output buffer ---- */

struct obuf {
    uint8_t *p;
    size_t len, cap;
    int err;
};

static void ob_need(struct obuf *b, size_t n) {
    if (b->err || b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->err = ADO_ENOMEM;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void ob_put(struct obuf *b, const void *src, size_t n) {
    ob_need(b, n);
    if (b->err)
        return;
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void ob_varint(struct obuf *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            t[n] |= 0x80;
        n++;
    } while (v);
    ob_put(b, t, n);
}

/* amount: one length byte (0..32) then that many big-endian bytes without leading zeros. */
static void ob_amount_be(struct obuf *b, const uint8_t be[32]) {
    size_t skip = 0;
    while (skip < 32 && be[skip] == 0)
        skip++;
    uint8_t n = (uint8_t)(32 - skip);
    ob_put(b, &n, 1);
    ob_put(b, be + skip, n);
}

static void ob_amount(struct obuf *b, const struct ado_u256 *v) {
    uint8_t be[32];
    ado_u256_to_be32(v, be);
    ob_amount_be(b, be);
}

/* ---- encoder ---- */

static int cmp_addr(const void *a, const void *b) {
    return memcmp(a, b, 20);
}

static int cmp_content(const void *a, const void *b) {
    const struct trn_content *x = *(const struct trn_content *const *)a;
    const struct trn_content *y = *(const struct trn_content *const *)b;
    return x->num < y->num ? -1 : x->num > y->num;
}

/* Index of addr in the sorted table (it is there by construction). */
static size_t addr_index(const uint8_t *table, size_t n, const uint8_t *addr) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(table + mid * 20, addr, 20);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return n;
}

static long content_index(const struct trn_content *const *sorted, size_t n, uint32_t num) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid]->num == num)
            return (long)mid;
        if (sorted[mid]->num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* The sorted, deduplicated table of every address the data names. */
static int build_accounts(const struct trn_activity *a, uint8_t **out, size_t *n) {
    size_t cap = a->nops + a->ncontents + a->nleaves;
    uint8_t *t = malloc(cap ? cap * 20 : 20);
    if (!t)
        return ADO_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < a->nops; i++)
        memcpy(t + 20 * k++, a->ops + i * TRN_OP_LEN + 5, 20);
    for (size_t i = 0; i < a->ncontents; i++)
        memcpy(t + 20 * k++, a->contents[i].creator, 20);
    for (size_t i = 0; i < a->nleaves; i++)
        memcpy(t + 20 * k++, a->leaves + i * TRN_LEAF_LEN, 20);
    qsort(t, k, 20, cmp_addr);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || memcmp(t + 20 * (u - 1), t + 20 * i, 20) != 0)
            memmove(t + 20 * u++, t + 20 * i, 20);
    *out = t;
    *n = u;
    return 0;
}

int trn_activity_encode(const struct trn_activity *a, uint8_t **out, size_t *out_len) {
    uint8_t *accts = NULL;
    size_t nacc = 0;
    const struct trn_content **cs = NULL;
    struct obuf b = {0};
    int rc = build_accounts(a, &accts, &nacc);
    if (rc < 0)
        return rc;
    cs = malloc((a->ncontents ? a->ncontents : 1) * sizeof *cs);
    if (!cs) {
        rc = ADO_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < a->ncontents; i++)
        cs[i] = &a->contents[i];
    qsort(cs, a->ncontents, sizeof *cs, cmp_content);

    ob_put(&b, TRN_ACT_MAGIC, 4);
    uint8_t ver = TRN_ACT_VERSION;
    ob_put(&b, &ver, 1);
    ob_varint(&b, a->epoch);
    ob_amount(&b, &a->view_reward);
    ob_amount(&b, &a->view_cost);
    ob_amount(&b, &a->boost_fee);
    ob_varint(&b, nacc);
    ob_put(&b, accts, nacc * 20);
    ob_varint(&b, a->ncontents);
    for (size_t i = 0; i < a->ncontents; i++) {
        ob_varint(&b, cs[i]->num);
        ob_varint(&b, addr_index(accts, nacc, cs[i]->creator));
        ob_varint(&b, cs[i]->id_len);
        ob_put(&b, cs[i]->id, cs[i]->id_len);
    }
    ob_varint(&b, a->nops);
    for (size_t i = 0; i < a->nops; i++)
        ob_put(&b, a->ops + i * TRN_OP_LEN, 1);
    for (size_t i = 0; i < a->nops; i++) { /* content column */
        struct trn_op op;
        trn_op_unpack(a->ops + i * TRN_OP_LEN, &op);
        if (!op_has_content(op.type))
            continue;
        long ci = content_index(cs, a->ncontents, op.content);
        if (ci < 0) {
            rc = ADO_EINVAL;
            goto done;
        }
        ob_varint(&b, (uint64_t)ci);
    }
    for (size_t i = 0; i < a->nops; i++) /* account column */
        ob_varint(&b, addr_index(accts, nacc, a->ops + i * TRN_OP_LEN + 5));
    for (size_t i = 0; i < a->nops; i++) /* amount column */
        if (op_has_amount(a->ops[i * TRN_OP_LEN]))
            ob_amount_be(&b, a->ops + i * TRN_OP_LEN + 25);
    ob_varint(&b, a->nleaves);
    size_t prev = 0;
    for (size_t i = 0; i < a->nleaves; i++) { /* leaves: account index delta, amount */
        size_t ai = addr_index(accts, nacc, a->leaves + i * TRN_LEAF_LEN);
        ob_varint(&b, i == 0 ? ai : ai - prev);
        ob_amount_be(&b, a->leaves + i * TRN_LEAF_LEN + 20);
        prev = ai;
    }
    rc = b.err;
done:
    free(accts);
    free(cs);
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}

/* ---- decoder (enough to rebuild the tree; validates the whole layout) ---- */

struct ibuf {
    const uint8_t *p;
    size_t len, pos;
    int err;
};

static uint64_t ib_varint(struct ibuf *b) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->pos >= b->len) {
            b->err = ADO_EINVAL;
            return 0;
        }
        uint8_t c = b->p[b->pos++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    b->err = ADO_EINVAL;
    return 0;
}

static const uint8_t *ib_take(struct ibuf *b, size_t n) {
    if (b->err || n > b->len - b->pos) {
        b->err = ADO_EINVAL;
        return NULL;
    }
    const uint8_t *p = b->p + b->pos;
    b->pos += n;
    return p;
}

static void ib_amount(struct ibuf *b, uint8_t be[32]) {
    const uint8_t *n = ib_take(b, 1);
    if (!n || *n > 32) {
        b->err = ADO_EINVAL;
        return;
    }
    const uint8_t *v = ib_take(b, *n);
    if (!v)
        return;
    memset(be, 0, 32);
    memcpy(be + 32 - *n, v, *n);
}

int trn_activity_decode_leaves(const uint8_t *buf, size_t len, uint64_t *epoch, size_t *nops,
                               uint8_t **leaves, size_t *n) {
    struct ibuf b = {.p = buf, .len = len};
    uint8_t tmp[32];
    const uint8_t *magic = ib_take(&b, 5);
    if (!magic || memcmp(magic, TRN_ACT_MAGIC, 4) != 0 || magic[4] != TRN_ACT_VERSION)
        return ADO_EINVAL;
    *epoch = ib_varint(&b);
    for (int i = 0; i < 3; i++)
        ib_amount(&b, tmp);
    uint64_t nacc = ib_varint(&b);
    if (b.err || nacc > len / 20)
        return ADO_EINVAL;
    const uint8_t *accts = ib_take(&b, nacc * 20);
    uint64_t nc = ib_varint(&b);
    for (uint64_t i = 0; i < nc && !b.err; i++) {
        ib_varint(&b);
        if (ib_varint(&b) >= nacc)
            b.err = ADO_EINVAL;
        ib_take(&b, ib_varint(&b));
    }
    uint64_t no = ib_varint(&b);
    const uint8_t *types = ib_take(&b, no);
    for (uint64_t i = 0; i < no && !b.err; i++)
        if (op_has_content(types[i]) && ib_varint(&b) >= nc)
            b.err = ADO_EINVAL;
    for (uint64_t i = 0; i < no && !b.err; i++)
        if (ib_varint(&b) >= nacc)
            b.err = ADO_EINVAL;
    for (uint64_t i = 0; i < no && !b.err; i++)
        if (op_has_amount(types[i]))
            ib_amount(&b, tmp);
    uint64_t nl = ib_varint(&b);
    if (b.err || nl > len)
        return ADO_EINVAL;
    uint8_t *out = malloc(nl ? nl * TRN_LEAF_LEN : 1);
    if (!out)
        return ADO_ENOMEM;
    uint64_t ai = 0;
    for (uint64_t i = 0; i < nl && !b.err; i++) {
        uint64_t d = ib_varint(&b);
        ai = i == 0 ? d : ai + d;
        if (ai >= nacc) {
            b.err = ADO_EINVAL;
            break;
        }
        memcpy(out + i * TRN_LEAF_LEN, accts + ai * 20, 20);
        ib_amount(&b, out + i * TRN_LEAF_LEN + 20);
    }
    if (b.err || b.pos != len) {
        free(out);
        return ADO_EINVAL;
    }
    *nops = no;
    *leaves = out;
    *n = nl;
    return 0;
}

/* ---- Brotli ---- */

int trn_brotli_compress(const uint8_t *in, size_t len, int quality, uint8_t **out,
                        size_t *out_len) {
    if (quality < BROTLI_MIN_QUALITY || quality > BROTLI_MAX_QUALITY)
        return ADO_EINVAL;
    size_t cap = BrotliEncoderMaxCompressedSize(len);
    if (cap == 0)
        cap = len + 1024;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return ADO_ENOMEM;
    size_t n = cap;
    if (!BrotliEncoderCompress(quality, 24, BROTLI_MODE_GENERIC, len, in, &n, buf)) {
        free(buf);
        return ADO_ENOMEM;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

int trn_brotli_decompress(const uint8_t *in, size_t len, size_t max, uint8_t **out,
                          size_t *out_len) {
    BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!st)
        return ADO_ENOMEM;
    size_t cap = len * 4 + 1024, used = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : ADO_ENOMEM;
    size_t avail_in = len;
    const uint8_t *next_in = in;
    while (rc == 0) {
        size_t avail_out = cap - used;
        uint8_t *next_out = buf + used;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(st, &avail_in, &next_in, &avail_out, &next_out, NULL);
        used = (size_t)(next_out - buf);
        if (used > max)
            rc = ADO_ELIMIT;
        else if (r == BROTLI_DECODER_RESULT_SUCCESS)
            break;
        else if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
            uint8_t *p = realloc(buf, cap * 2);
            if (!p)
                rc = ADO_ENOMEM;
            else
                buf = p, cap *= 2;
        } else {
            rc = ADO_EINVAL; /* corrupt, or truncated input */
        }
    }
    BrotliDecoderDestroyInstance(st);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = used;
    return 0;
}

/* ---- chunks ---- */

size_t trn_chunk_count(size_t len, size_t chunk) {
    return chunk ? (len + chunk - 1) / chunk : 0;
}

void trn_data_hash(const uint8_t *data, size_t len, size_t chunk, uint8_t (*hashes)[32],
                   uint8_t out[32]) {
    struct ado_keccak k;
    ado_keccak_init(&k);
    size_t n = trn_chunk_count(len, chunk);
    for (size_t i = 0; i < n; i++) {
        size_t off = i * chunk, sz = len - off < chunk ? len - off : chunk;
        uint8_t h[32];
        ado_keccak256(data + off, sz, h);
        if (hashes)
            memcpy(hashes[i], h, 32);
        ado_keccak_update(&k, h, 32);
    }
    ado_keccak_final(&k, out);
}
