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

/* ---- encoder ----
 *
 * One pass sizes the output, so it is written through a plain pointer without reallocation.
 * Accounts: every address the data names (ops, creators, leaves: k of them) goes into an
 * open-addressing hash set that remembers, for each of the k, its slot; the distinct ones are
 * sorted by an MSD radix sort (it skips bytes all addresses share), and each slot then gets its
 * rank. Looking up an account's index is then two array reads, not a binary search. */

struct addr20 {
    uint8_t b[20];
};

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static size_t addr_hash(const uint8_t *a) {
    uint32_t t;
    memcpy(&t, a + 16, 4);
    uint64_t h = rd64(a) * 0x9e3779b97f4a7c15ULL ^ rd64(a + 8) * 0xc2b2ae3d27d4eb4fULL ^
                 (uint64_t)t * 0x165667b19e3779f9ULL;
    return (size_t)(h ^ h >> 29);
}

static void insertion_sort20(struct addr20 *a, size_t n, size_t depth) {
    for (size_t i = 1; i < n; i++) {
        struct addr20 x = a[i];
        size_t k = i;
        while (k > 0 && memcmp(x.b + depth, a[k - 1].b + depth, 20 - depth) < 0) {
            a[k] = a[k - 1];
            k--;
        }
        a[k] = x;
    }
}

/* Sorts a[0..n-1] (equal in bytes before depth) on bytes depth..19; tmp has room for n. */
static void radix_sort20(struct addr20 *a, struct addr20 *tmp, size_t n, size_t depth) {
    while (depth < 20) {
        if (n < 48) {
            insertion_sort20(a, n, depth);
            return;
        }
        size_t cnt[257] = {0};
        for (size_t i = 0; i < n; i++)
            cnt[a[i].b[depth] + 1]++;
        int one = 0;
        for (int v = 0; v < 256; v++)
            one |= cnt[v + 1] == n;
        if (one) { /* every address has the same byte here: look at the next one */
            depth++;
            continue;
        }
        for (int v = 0; v < 256; v++)
            cnt[v + 1] += cnt[v];
        size_t start[256];
        memcpy(start, cnt, sizeof start);
        for (size_t i = 0; i < n; i++)
            tmp[start[a[i].b[depth]]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
        for (int v = 0; v < 256; v++)
            if (cnt[v + 1] - cnt[v] > 1)
                radix_sort20(a + cnt[v], tmp, cnt[v + 1] - cnt[v], depth + 1);
        return;
    }
}

/* The account table of an encoding: the sorted distinct addresses, and the index in it of each
 * of the k addresses named (ops' accounts, then creators, then leaves, in that order). */
struct accounts {
    struct addr20 *sorted;
    size_t n;
    uint32_t *index; /* k entries */
};

static const uint8_t *named_addr(const struct trn_activity *a, size_t i) {
    if (i < a->nops)
        return a->ops + i * TRN_OP_LEN + 5;
    i -= a->nops;
    if (i < a->ncontents)
        return a->contents[i].creator;
    return a->leaves + (i - a->ncontents) * TRN_LEAF_LEN;
}

static int build_accounts(const struct trn_activity *a, struct accounts *out) {
    size_t k = a->nops + a->ncontents + a->nleaves;
    if (k >= UINT32_MAX / 2)
        return ADO_ELIMIT;
    size_t cap = 64;
    while (cap < 2 * k)
        cap *= 2;
    uint32_t *slot = malloc(cap * sizeof *slot); /* 0: empty, else 1 + first k index */
    uint32_t *rank = malloc(cap * sizeof *rank);
    uint32_t *where = malloc((k ? k : 1) * sizeof *where); /* slot of each named address */
    struct addr20 *u = malloc((k ? k : 1) * sizeof *u), *tmp = NULL;
    int rc = ADO_ENOMEM;
    if (!slot || !rank || !where || !u)
        goto done;
    memset(slot, 0, cap * sizeof *slot);
    size_t n = 0, mask = cap - 1;
    for (size_t i = 0; i < k; i++) {
        const uint8_t *ad = named_addr(a, i);
        size_t h = addr_hash(ad) & mask;
        while (slot[h] && memcmp(named_addr(a, slot[h] - 1), ad, 20) != 0)
            h = (h + 1) & mask;
        if (!slot[h]) {
            slot[h] = (uint32_t)i + 1;
            memcpy(u[n++].b, ad, 20);
        }
        where[i] = (uint32_t)h;
    }
    if (n > 1) {
        tmp = malloc(n * sizeof *tmp);
        if (!tmp)
            goto done;
        radix_sort20(u, tmp, n, 0);
    }
    for (size_t r = 0; r < n; r++) {
        size_t h = addr_hash(u[r].b) & mask;
        while (memcmp(named_addr(a, slot[h] - 1), u[r].b, 20) != 0)
            h = (h + 1) & mask;
        rank[h] = (uint32_t)r;
    }
    for (size_t i = 0; i < k; i++)
        where[i] = rank[where[i]];
    out->sorted = u, out->n = n, out->index = where;
    u = NULL, where = NULL;
    rc = 0;
done:
    free(slot), free(rank), free(where), free(u), free(tmp);
    return rc;
}

static int cmp_content(const void *a, const void *b) {
    const struct trn_content *x = *(const struct trn_content *const *)a;
    const struct trn_content *y = *(const struct trn_content *const *)b;
    return x->num < y->num ? -1 : x->num > y->num;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* amount: one length byte (0..32) then that many big-endian bytes without leading zeros. */
static inline uint8_t *put_amount(uint8_t *p, const uint8_t be[32]) {
    size_t skip = 0;
    while (skip < 32 && be[skip] == 0)
        skip++;
    *p++ = (uint8_t)(32 - skip);
    memcpy(p, be + skip, 32 - skip);
    return p + 32 - skip;
}

int trn_activity_encode(const struct trn_activity *a, uint8_t **out, size_t *out_len) {
    struct accounts acc = {0};
    const struct trn_content **cs = NULL;
    uint32_t *cidx = NULL; /* content number - lo -> index in cs + 1 (0: not there) */
    uint8_t *buf = NULL;
    int rc = build_accounts(a, &acc);
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
    /* content number -> index: a direct table over the numbers' range */
    uint32_t lo = a->ncontents ? cs[0]->num : 0;
    size_t range = a->ncontents ? (size_t)(cs[a->ncontents - 1]->num - lo) + 1 : 1;
    cidx = calloc(range, sizeof *cidx);
    if (!cidx) {
        rc = ADO_ENOMEM;
        goto done;
    }
    size_t bound = 5 + 10 + 3 * 33 + 10 + acc.n * 20 + 10 + 10 + a->nops * (1 + 5 + 5 + 33) + 10 +
                   a->nleaves * (10 + 33);
    for (size_t i = 0; i < a->ncontents; i++) {
        if (i == 0 || cs[i]->num != cs[i - 1]->num)
            cidx[cs[i]->num - lo] = (uint32_t)i + 1;
        bound += 5 + 5 + 10 + cs[i]->id_len;
    }
    buf = malloc(bound);
    if (!buf) {
        rc = ADO_ENOMEM;
        goto done;
    }
    uint8_t *p = buf, be[32];
    memcpy(p, TRN_ACT_MAGIC, 4);
    p[4] = TRN_ACT_VERSION;
    p = put_varint(p + 5, a->epoch);
    ado_u256_to_be32(&a->view_reward, be);
    p = put_amount(p, be);
    ado_u256_to_be32(&a->view_cost, be);
    p = put_amount(p, be);
    ado_u256_to_be32(&a->boost_fee, be);
    p = put_amount(p, be);
    p = put_varint(p, acc.n);
    memcpy(p, acc.sorted, acc.n * 20);
    p += acc.n * 20;
    p = put_varint(p, a->ncontents);
    const uint32_t *creator_idx = acc.index + a->nops;
    for (size_t i = 0; i < a->ncontents; i++) {
        p = put_varint(p, cs[i]->num);
        p = put_varint(p, creator_idx[cs[i] - a->contents]);
        p = put_varint(p, cs[i]->id_len);
        memcpy(p, cs[i]->id, cs[i]->id_len);
        p += cs[i]->id_len;
    }
    p = put_varint(p, a->nops);
    for (size_t i = 0; i < a->nops; i++)
        *p++ = a->ops[i * TRN_OP_LEN];
    for (size_t i = 0; i < a->nops; i++) { /* content column */
        const uint8_t *r = a->ops + i * TRN_OP_LEN;
        if (!op_has_content(r[0]))
            continue;
        uint32_t num = (uint32_t)r[1] << 24 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 8 | r[4];
        if (num < lo || num - lo >= range || !cidx[num - lo]) {
            rc = ADO_EINVAL;
            goto done;
        }
        p = put_varint(p, cidx[num - lo] - 1);
    }
    for (size_t i = 0; i < a->nops; i++) /* account column */
        p = put_varint(p, acc.index[i]);
    for (size_t i = 0; i < a->nops; i++) /* amount column */
        if (op_has_amount(a->ops[i * TRN_OP_LEN]))
            p = put_amount(p, a->ops + i * TRN_OP_LEN + 25);
    p = put_varint(p, a->nleaves);
    const uint32_t *leaf_idx = creator_idx + a->ncontents;
    size_t prev = 0;
    for (size_t i = 0; i < a->nleaves; i++) { /* leaves: account index delta, amount */
        size_t ai = leaf_idx[i];
        p = put_varint(p, i == 0 ? ai : ai - prev);
        p = put_amount(p, a->leaves + i * TRN_LEAF_LEN + 20);
        prev = ai;
    }
    *out_len = (size_t)(p - buf);
done:
    free(acc.sorted), free(acc.index), free(cs), free(cidx);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
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
