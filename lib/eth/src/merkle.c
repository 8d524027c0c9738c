/* OpenZeppelin StandardMerkleTree: parallel leaf hashing, bucketed sort, flat tree, proofs. */
#include "ado_eth/merkle.h"

#include "abi_internal.h"
#include "ado/errors.h"
#include "ado_eth/keccak.h"
#include "ado_eth/u256.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_THREADS 2
#define MAX_THREADS     16
#define BUCKET_BITS     16
#define PAR_MIN_LEAVES  4096 /* below this, threads cost more than they save */

struct ado_merkle {
    size_t n;
    uint8_t (*tree)[32]; /* 2n-1 nodes */
    uint32_t *tidx;      /* value index -> tree index */
    uint8_t *bin;        /* n * 52 bytes for binary (address, uint256) trees, else NULL */
    json_t *values;      /* the values as given, for JSON-built trees, else NULL */
    json_t *encoding;    /* leafEncoding as a JSON array of strings */
};

void ado_merkle_node_hash(const uint8_t a[32], const uint8_t b[32], uint8_t out[32]) {
    if (memcmp(a, b, 32) <= 0)
        ado_keccak256_pair(a, b, out);
    else
        ado_keccak256_pair(b, a, out);
}

void ado_merkle_leaf_addr_u256(const uint8_t addr[20], const uint8_t amount[32], uint8_t out[32]) {
    uint8_t enc[64] = {0};
    memcpy(enc + 12, addr, 20);
    memcpy(enc + 32, amount, 32);
    ado_keccak256(enc, 64, out);
    ado_keccak256(out, 32, out);
}

/* ---- threads ---- */

struct job {
    void (*fn)(struct job *);
    size_t lo, hi; /* range of work items */
    int part;      /* subtree number for node hashing (1 or 2) */
    const struct ado_merkle *m;
    const uint8_t *in;
    uint8_t (*hashes)[32];
};

static void *job_main(void *arg) {
    struct job *j = arg;
    j->fn(j);
    return NULL;
}

/* Runs jobs[0..k-1] on k threads (job 0 on the caller's thread). Returns 0 or ADO_EIO. */
static int run_jobs(struct job *jobs, int k) {
    pthread_t th[MAX_THREADS];
    int started = 0, rc = 0;
    for (int i = 1; i < k; i++) {
        if (pthread_create(&th[i], NULL, job_main, &jobs[i]) != 0) {
            rc = ADO_EIO;
            break;
        }
        started = i;
    }
    jobs[0].fn(&jobs[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(th[i], NULL);
    /* If a thread failed to start, finish its share (and the later ones) here. */
    for (int i = started + 1; rc && i < k; i++)
        jobs[i].fn(&jobs[i]);
    return 0;
}

#define BATCH 64 /* messages handed to the Keccak batch at once (it hashes 8 at a time) */

/* Leaf hashes of records lo..hi-1: keccak256(keccak256(0^12 ‖ address ‖ amount)). */
static void leaf_job(struct job *j) {
    uint8_t enc[BATCH][64];
    const uint8_t *msgs[BATCH];
    uint8_t *outs[BATCH];
    for (int k = 0; k < BATCH; k++) {
        memset(enc[k], 0, 12);
        msgs[k] = enc[k];
    }
    for (size_t i = j->lo; i < j->hi; i += BATCH) {
        size_t cnt = j->hi - i < BATCH ? j->hi - i : BATCH;
        for (size_t k = 0; k < cnt; k++) {
            memcpy(enc[k] + 12, j->in + (i + k) * ADO_MERKLE_ADDR_U256, ADO_MERKLE_ADDR_U256);
            outs[k] = j->hashes[i + k];
        }
        ado_keccak256d_batch(msgs, 64, outs, cnt);
    }
}

/* Node hashes of tree[lo..hi] (all on one level, children already hashed): each is the hash of
 * its two children, the smaller first. Children are adjacent in the array, so a pair already
 * in order is hashed in place; a pair out of order is copied swapped. */
static void hash_nodes(uint8_t (*t)[32], size_t lo, size_t hi) {
    uint8_t swapped[BATCH][64];
    const uint8_t *msgs[BATCH];
    uint8_t *outs[BATCH];
    for (size_t i = lo; i <= hi; i += BATCH) {
        size_t cnt = hi - i + 1 < BATCH ? hi - i + 1 : BATCH;
        for (size_t k = 0; k < cnt; k++) {
            const uint8_t *l = t[2 * (i + k) + 1], *r = t[2 * (i + k) + 2];
            if (memcmp(l, r, 32) <= 0) {
                msgs[k] = l;
            } else {
                memcpy(swapped[k], r, 32);
                memcpy(swapped[k] + 32, l, 32);
                msgs[k] = swapped[k];
            }
            outs[k] = t[i + k];
        }
        ado_keccak256_batch(msgs, 64, outs, cnt);
    }
}

/* Hashes the inner nodes of the subtree rooted at j->part (1 or 2; 0: the whole tree),
 * deepest level first. */
static void node_job(struct job *j) {
    uint8_t(*t)[32] = j->m->tree;
    size_t last = j->m->n - 2; /* last inner node */
    int maxd = 0;
    while (((size_t)2 << maxd) - 1 <= last)
        maxd++;
    for (int d = maxd; d >= (j->part ? 1 : 0); d--) {
        size_t width = j->part ? (size_t)1 << (d - 1) : (size_t)1 << d;
        size_t lo = ((size_t)1 << d) - 1 + (j->part ? (size_t)(j->part - 1) * width : 0);
        size_t hi = lo + width - 1;
        if (lo > last)
            continue;
        if (hi > last)
            hi = last;
        hash_nodes(t, lo, hi);
    }
}

/* ---- sort: stable order of leaf hashes ---- */

/* Sort record: the first 8 hash bytes as a big-endian number (compares like memcmp on them),
 * and the value index. Sorting compact records keeps the work in cache; the full hashes are
 * read only when two prefixes are equal. */
struct rec {
    uint64_t key;
    uint32_t idx;
};

static inline int rec_less(const struct rec *a, const struct rec *b, const uint8_t (*h)[32]) {
    if (a->key != b->key)
        return a->key < b->key;
    return memcmp(h[a->idx] + 8, h[b->idx] + 8, 24) < 0; /* never "less" on a tie: stable */
}

static void insertion_sort(struct rec *a, size_t n, const uint8_t (*h)[32]) {
    for (size_t i = 1; i < n; i++) {
        struct rec x = a[i];
        size_t k = i;
        while (k > 0 && rec_less(&x, &a[k - 1], h)) {
            a[k] = a[k - 1];
            k--;
        }
        a[k] = x;
    }
}

static void merge_sort(struct rec *a, struct rec *tmp, size_t n, const uint8_t (*h)[32]) {
    if (n <= 24) {
        insertion_sort(a, n, h);
        return;
    }
    size_t mid = n / 2;
    merge_sort(a, tmp, mid, h);
    merge_sort(a + mid, tmp, n - mid, h);
    size_t i = 0, k = mid, o = 0;
    while (i < mid && k < n)
        tmp[o++] = rec_less(&a[k], &a[i], h) ? a[k++] : a[i++];
    while (i < mid)
        tmp[o++] = a[i++];
    while (k < n)
        tmp[o++] = a[k++];
    memcpy(a, tmp, n * sizeof *a);
}

static inline uint64_t be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Fills order[0..n-1] with value indices sorted by hash, ties in input order: a stable
 * counting pass on the top 16 bits, then a stable sort inside each bucket. */
static int sort_leaves(const uint8_t (*h)[32], size_t n, uint32_t *order) {
    size_t nb = (size_t)1 << BUCKET_BITS;
    uint32_t *cnt = calloc(nb + 1, sizeof *cnt);
    struct rec *r = malloc(n * sizeof *r), *tmp = NULL;
    if (!cnt || !r) {
        free(cnt);
        free(r);
        return ADO_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        cnt[((size_t)h[i][0] << 8 | h[i][1]) + 1]++;
    size_t biggest = 0;
    for (size_t b = 0; b < nb; b++) {
        if (cnt[b + 1] > biggest)
            biggest = cnt[b + 1];
        cnt[b + 1] += cnt[b];
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t key = be64(h[i]);
        r[cnt[key >> 48]++] = (struct rec){key, (uint32_t)i};
    }
    /* cnt[b] is now the end of bucket b (and the start of bucket b+1). */
    if (biggest > 24 && !(tmp = malloc(biggest * sizeof *tmp))) {
        free(cnt);
        free(r);
        return ADO_ENOMEM;
    }
    size_t start = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t end = cnt[b];
        if (end - start > 1)
            merge_sort(r + start, tmp, end - start, h);
        start = end;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = r[i].idx;
    free(tmp);
    free(r);
    free(cnt);
    return 0;
}

/* ---- build ---- */

static int clamp_threads(int threads, size_t n) {
    if (threads <= 0)
        threads = DEFAULT_THREADS;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (n < PAR_MIN_LEAVES)
        threads = 1;
    return threads;
}

/* Builds tree and tidx from the n leaf hashes h (input order). */
static int build_from_hashes(struct ado_merkle *m, const uint8_t (*h)[32], int threads) {
    size_t n = m->n;
    uint32_t *order = malloc(n * sizeof *order);
    m->tree = malloc((2 * n - 1) * sizeof *m->tree);
    m->tidx = malloc(n * sizeof *m->tidx);
    if (!order || !m->tree || !m->tidx) {
        free(order);
        return ADO_ENOMEM;
    }
    int rc = sort_leaves(h, n, order);
    if (rc) {
        free(order);
        return rc;
    }
    for (size_t k = 0; k < n; k++) {
        size_t ti = 2 * n - 2 - k;
        if (k + 16 < n)
            __builtin_prefetch(h[order[k + 16]]);
        memcpy(m->tree[ti], h[order[k]], 32);
        m->tidx[order[k]] = (uint32_t)ti;
    }
    free(order);
    if (n == 1)
        return 0;
    if (threads >= 2 && n >= 4) {
        struct job jobs[2] = {{.fn = node_job, .part = 1, .m = m},
                              {.fn = node_job, .part = 2, .m = m}};
        run_jobs(jobs, 2);
        ado_merkle_node_hash(m->tree[1], m->tree[2], m->tree[0]);
    } else {
        struct job whole = {.part = 0, .m = m};
        node_job(&whole);
    }
    return 0;
}

void ado_merkle_free(struct ado_merkle *m) {
    if (!m)
        return;
    free(m->tree);
    free(m->tidx);
    free(m->bin);
    json_decref(m->values);
    json_decref(m->encoding);
    free(m);
}

int ado_merkle_build_addr_u256(const uint8_t *leaves, size_t n, int threads,
                               struct ado_merkle **out) {
    if (!leaves || !out || n == 0 || n > ADO_MERKLE_MAX_LEAVES)
        return ADO_EINVAL;
    struct ado_merkle *m = calloc(1, sizeof *m);
    uint8_t(*h)[32] = malloc(n * sizeof *h);
    int rc = ADO_ENOMEM;
    if (!m || !h)
        goto fail;
    m->n = n;
    m->bin = malloc(n * ADO_MERKLE_ADDR_U256);
    m->encoding = json_pack("[ss]", "address", "uint256");
    if (!m->bin || !m->encoding)
        goto fail;
    memcpy(m->bin, leaves, n * ADO_MERKLE_ADDR_U256);
    threads = clamp_threads(threads, n);
    struct job jobs[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){.fn = leaf_job,
                               .lo = n * (size_t)i / (size_t)threads,
                               .hi = n * (size_t)(i + 1) / (size_t)threads,
                               .in = leaves,
                               .hashes = h};
    }
    run_jobs(jobs, threads);
    rc = build_from_hashes(m, (const uint8_t(*)[32])h, threads);
    if (rc)
        goto fail;
    free(h);
    *out = m;
    return 0;
fail:
    free(h);
    ado_merkle_free(m);
    return rc;
}

/* Parses the leaf encoding into a tuple type and a JSON array of its names. */
static struct abi_type *parse_encoding(const char *const *encoding, size_t nenc, json_t **names,
                                       struct ado_eth_error *err) {
    struct ebuf b = {0};
    struct abi_type *t = NULL;
    *names = json_array();
    if (!*names || !encoding || nenc == 0) {
        abi_seterr(err, "leaf encoding is empty");
        goto done;
    }
    for (size_t i = 0; i < nenc; i++) {
        if (!encoding[i] || (i && ebuf_put(&b, ",", 1)) ||
            ebuf_put(&b, encoding[i], strlen(encoding[i])) ||
            json_array_append_new(*names, json_string(encoding[i]))) {
            abi_seterr(err, "bad leaf encoding type '%s'", encoding[i] ? encoding[i] : "");
            goto done;
        }
    }
    if (ebuf_put(&b, "", 1) == 0)
        t = abi_parse_list((const char *)b.p, err);
    if (t && t->ncomps != nenc) {
        abi_seterr(err, "bad leaf encoding");
        abi_type_free(t);
        t = NULL;
    }
done:
    free(b.p);
    if (!t) {
        json_decref(*names);
        *names = NULL;
    }
    return t;
}

/* Leaf hash of one JSON value for the tuple type t. */
static int leaf_of_value(const struct abi_type *t, json_t *v, struct ebuf *scratch, uint8_t out[32],
                         struct ado_eth_error *err) {
    scratch->len = 0;
    int rc = abi_encode_value(t, v, scratch, err);
    if (rc)
        return rc;
    ado_keccak256(scratch->p, scratch->len, out);
    ado_keccak256(out, 32, out);
    return 0;
}

int ado_merkle_leaf_json(const char *const *encoding, size_t nenc, const char *value_json,
                         uint8_t out[32], struct ado_eth_error *err) {
    json_t *names = NULL, *v = NULL;
    json_error_t je;
    struct ebuf b = {0};
    struct abi_type *t = parse_encoding(encoding, nenc, &names, err);
    int rc = ADO_EINVAL;
    if (!t)
        return ADO_EINVAL;
    v = value_json ? json_loads(value_json, JSON_DECODE_ANY, &je) : NULL;
    if (!v)
        abi_seterr(err, "bad JSON value");
    else
        rc = leaf_of_value(t, v, &b, out, err);
    free(b.p);
    json_decref(v);
    json_decref(names);
    abi_type_free(t);
    return rc;
}

int ado_merkle_of_json(const char *const *encoding, size_t nenc, const char *values_json,
                       int threads, struct ado_merkle **out, struct ado_eth_error *err) {
    json_error_t je;
    struct ebuf b = {0};
    uint8_t(*h)[32] = NULL;
    int rc = ADO_EINVAL;
    struct ado_merkle *m = calloc(1, sizeof *m);
    struct abi_type *t = NULL;
    if (!m || !out) {
        free(m);
        return m ? ADO_EINVAL : ADO_ENOMEM;
    }
    t = parse_encoding(encoding, nenc, &m->encoding, err);
    if (!t)
        goto fail;
    m->values = values_json ? json_loads(values_json, 0, &je) : NULL;
    if (!m->values) {
        abi_seterr(err, "bad JSON: %s (line %d column %d)", values_json ? je.text : "missing",
                   values_json ? je.line : 0, values_json ? je.column : 0);
        goto fail;
    }
    m->n = json_array_size(m->values);
    if (!json_is_array(m->values) || m->n == 0 || m->n > ADO_MERKLE_MAX_LEAVES) {
        abi_seterr(err, "values must be a non-empty JSON array");
        goto fail;
    }
    h = malloc(m->n * sizeof *h);
    if (!h) {
        rc = ADO_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < m->n; i++) {
        struct ado_eth_error e1;
        rc = leaf_of_value(t, json_array_get(m->values, i), &b, h[i], &e1);
        if (rc) {
            abi_seterr(err, "value %zu: %s", i, e1.msg);
            goto fail;
        }
    }
    rc = build_from_hashes(m, (const uint8_t(*)[32])h, clamp_threads(threads, m->n));
    if (rc)
        goto fail;
    free(h);
    free(b.p);
    abi_type_free(t);
    *out = m;
    return 0;
fail:
    free(h);
    free(b.p);
    abi_type_free(t);
    ado_merkle_free(m);
    return rc;
}

size_t ado_merkle_count(const struct ado_merkle *m) {
    return m->n;
}

const uint8_t *ado_merkle_bin(const struct ado_merkle *m) {
    return m->bin;
}

void ado_merkle_root(const struct ado_merkle *m, uint8_t out[32]) {
    memcpy(out, m->tree[0], 32);
}

const uint8_t (*ado_merkle_tree(const struct ado_merkle *m))[32] {
    return (const uint8_t(*)[32])m->tree;
}

int ado_merkle_tree_index(const struct ado_merkle *m, size_t value_index, size_t *tree_index) {
    if (value_index >= m->n)
        return ADO_EINVAL;
    *tree_index = m->tidx[value_index];
    return 0;
}

int ado_merkle_leaf_hash(const struct ado_merkle *m, size_t value_index, uint8_t out[32]) {
    if (value_index >= m->n)
        return ADO_EINVAL;
    memcpy(out, m->tree[m->tidx[value_index]], 32);
    return 0;
}

int ado_merkle_proof(const struct ado_merkle *m, size_t value_index, uint8_t (*proof)[32],
                     size_t cap, size_t *len) {
    if (value_index >= m->n)
        return ADO_EINVAL;
    size_t i = m->tidx[value_index], k = 0;
    while (i > 0) {
        if (k == cap)
            return ADO_ELIMIT;
        memcpy(proof[k++], m->tree[(i % 2) ? i + 1 : i - 1], 32);
        i = (i - 1) / 2;
    }
    *len = k;
    return 0;
}

int ado_merkle_verify(const uint8_t root[32], const uint8_t leaf[32], const uint8_t (*proof)[32],
                      size_t len) {
    uint8_t acc[32];
    memcpy(acc, leaf, 32);
    for (size_t i = 0; i < len; i++)
        ado_merkle_node_hash(acc, proof[i], acc);
    return memcmp(acc, root, 32) == 0;
}

/* ---- dump ---- */

/* Writes v as JSON.stringify would: compact, and \uXXXX escapes in lowercase hex (jansson
 * writes uppercase ones). */
static int put_json(FILE *f, json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return ADO_ENOMEM;
    for (char *p = s; *p; p++) {
        if (*p != '\\')
            continue;
        p++; /* the escaped character: skip it, and lowercase a \u escape's hex digits */
        if (*p == 'u')
            for (int k = 1; k <= 4 && p[k]; k++)
                if (p[k] >= 'A' && p[k] <= 'F')
                    p[k] = (char)(p[k] - 'A' + 'a');
    }
    int rc = fputs(s, f) < 0 ? ADO_EIO : 0;
    free(s);
    return rc;
}

int ado_merkle_dump_file(const struct ado_merkle *m, FILE *f) {
    char hex[70];
    int rc;
    if (fputs("{\"format\":\"standard-v1\",\"leafEncoding\":", f) < 0)
        return ADO_EIO;
    if ((rc = put_json(f, m->encoding)))
        return rc;
    if (fputs(",\"tree\":[", f) < 0)
        return ADO_EIO;
    hex[0] = '"', hex[1] = '0', hex[2] = 'x';
    for (size_t i = 0; i < 2 * m->n - 1; i++) {
        ado_eth_hex_encode(m->tree[i], 32, hex + 3);
        hex[67] = '"';
        hex[68] = ',';
        if (fwrite(hex, 1, i + 1 < 2 * m->n - 1 ? 69 : 68, f) == 0)
            return ADO_EIO;
    }
    if (fputs("],\"values\":[", f) < 0)
        return ADO_EIO;
    for (size_t i = 0; i < m->n; i++) {
        if (i && fputc(',', f) == EOF)
            return ADO_EIO;
        if (fputs("{\"value\":", f) < 0)
            return ADO_EIO;
        if (m->bin) {
            const uint8_t *r = m->bin + i * ADO_MERKLE_ADDR_U256;
            char dec[ADO_U256_DEC_MAX];
            struct ado_u256 u;
            ado_u256_from_be32(&u, r + 20);
            ado_u256_to_dec(&u, dec, sizeof dec);
            ado_eth_hex_encode(r, 20, hex);
            if (fprintf(f, "[\"0x%s\",\"%s\"]", hex, dec) < 0)
                return ADO_EIO;
        } else if ((rc = put_json(f, json_array_get(m->values, i)))) {
            return rc;
        }
        if (fprintf(f, ",\"treeIndex\":%u}", (unsigned)m->tidx[i]) < 0)
            return ADO_EIO;
    }
    if (fputs("]}", f) < 0)
        return ADO_EIO;
    return 0;
}

int ado_merkle_dump(const struct ado_merkle *m, char **out, size_t *out_len) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return ADO_ENOMEM;
    int rc = ado_merkle_dump_file(m, f);
    if (fclose(f) != 0 && rc == 0)
        rc = ADO_ENOMEM;
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    if (out_len)
        *out_len = len;
    return 0;
}
