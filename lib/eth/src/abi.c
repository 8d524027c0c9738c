/* Contract ABI: type parsing, encoding from JSON values, decoding to JSON, selectors. */
#include "ado_eth/abi.h"

#include "abi_internal.h"
#include "ado/errors.h"
#include "ado_eth/address.h"
#include "ado_eth/keccak.h"
#include "ado_eth/u256.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ABI_MAX_DEPTH 32

void abi_seterr(struct ado_eth_error *err, const char *fmt, ...) {
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void abi_type_free(struct abi_type *t) {
    if (!t)
        return;
    abi_type_free(t->elem);
    for (size_t i = 0; i < t->ncomps; i++)
        abi_type_free(t->comps[i]);
    free(t->comps);
    free(t);
}

static struct abi_type *type_new(enum abi_kind k, int size) {
    struct abi_type *t = calloc(1, sizeof *t);
    if (t) {
        t->kind = k;
        t->size = size;
    }
    return t;
}

static void skip_ws(const char **pp) {
    while (**pp == ' ' || **pp == '\t' || **pp == '\n' || **pp == '\r')
        (*pp)++;
}

static int is_ident(char c) {
    return isalnum((unsigned char)c) || c == '_' || c == '$';
}

static struct abi_type *parse_list_at(const char **pp, int depth, struct ado_eth_error *err);

/* Parses a decimal size suffix of n chars; returns -1 if absent or not a number. */
static int parse_num(const char *s, size_t n) {
    if (n == 0 || n > 3 || s[0] == '0')
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static struct abi_type *parse_base(const char *s, size_t n, struct ado_eth_error *err) {
    int v;
    if (n == 7 && !memcmp(s, "address", 7))
        return type_new(AK_ADDRESS, 160);
    if (n == 4 && !memcmp(s, "bool", 4))
        return type_new(AK_BOOL, 8);
    if (n == 6 && !memcmp(s, "string", 6))
        return type_new(AK_STRING, 0);
    if (n == 5 && !memcmp(s, "bytes", 5))
        return type_new(AK_BYTES, 0);
    if (n > 5 && !memcmp(s, "bytes", 5)) {
        v = parse_num(s + 5, n - 5);
        if (v >= 1 && v <= 32)
            return type_new(AK_FBYTES, v);
    } else if (n >= 4 && !memcmp(s, "uint", 4)) {
        v = n == 4 ? 256 : parse_num(s + 4, n - 4);
        if (v >= 8 && v <= 256 && v % 8 == 0)
            return type_new(AK_UINT, v);
    } else if (n >= 3 && !memcmp(s, "int", 3)) {
        v = n == 3 ? 256 : parse_num(s + 3, n - 3);
        if (v >= 8 && v <= 256 && v % 8 == 0)
            return type_new(AK_INT, v);
    }
    abi_seterr(err, "unknown ABI type '%.*s'", (int)(n > 64 ? 64 : n), s);
    return NULL;
}

static struct abi_type *parse_type(const char **pp, int depth, struct ado_eth_error *err) {
    struct abi_type *t = NULL;
    const char *p;
    if (depth > ABI_MAX_DEPTH) {
        abi_seterr(err, "ABI type nested too deeply");
        return NULL;
    }
    skip_ws(pp);
    p = *pp;
    if (!strncmp(p, "tuple(", 6))
        p += 5;
    if (*p == '(') {
        p++;
        t = parse_list_at(&p, depth + 1, err);
        if (!t)
            return NULL;
        skip_ws(&p);
        if (*p != ')') {
            abi_seterr(err, "expected ')' in ABI type");
            goto fail;
        }
        p++;
    } else {
        const char *s = p;
        while (is_ident(*p))
            p++;
        if (p == s) {
            abi_seterr(err, "expected an ABI type at '%.16s'", s);
            return NULL;
        }
        t = parse_base(s, (size_t)(p - s), err);
        if (!t)
            return NULL;
    }
    while (*p == '[') {
        const char *s = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        int n = -1;
        if (p != s) {
            long v = strtol(s, NULL, 10);
            if (p - s > 9 || v <= 0) {
                abi_seterr(err, "bad array length in ABI type");
                goto fail;
            }
            n = (int)v;
        }
        if (*p != ']') {
            abi_seterr(err, "expected ']' in ABI type");
            goto fail;
        }
        p++;
        struct abi_type *a = type_new(AK_ARRAY, n);
        if (!a) {
            abi_seterr(err, "out of memory");
            goto fail;
        }
        a->elem = t;
        t = a;
    }
    *pp = p;
    return t;
fail:
    abi_type_free(t);
    return NULL;
}

static struct abi_type *parse_list_at(const char **pp, int depth, struct ado_eth_error *err) {
    struct abi_type *tup = type_new(AK_TUPLE, 0);
    const char *p = *pp;
    if (!tup) {
        abi_seterr(err, "out of memory");
        return NULL;
    }
    skip_ws(&p);
    if (*p == ')' || *p == '\0') {
        *pp = p;
        return tup;
    }
    for (;;) {
        struct abi_type *c = parse_type(&p, depth, err);
        if (!c)
            goto fail;
        struct abi_type **nc = realloc(tup->comps, (tup->ncomps + 1) * sizeof *nc);
        if (!nc) {
            abi_type_free(c);
            abi_seterr(err, "out of memory");
            goto fail;
        }
        tup->comps = nc;
        tup->comps[tup->ncomps++] = c;
        /* Skip parameter names and keywords: "uint256 indexed amount". */
        for (;;) {
            skip_ws(&p);
            if (!is_ident(*p))
                break;
            while (is_ident(*p))
                p++;
        }
        if (*p != ',')
            break;
        p++;
    }
    *pp = p;
    return tup;
fail:
    abi_type_free(tup);
    return NULL;
}

struct abi_type *abi_parse_list(const char *text, struct ado_eth_error *err) {
    const char *p = text;
    if (!text) {
        abi_seterr(err, "no ABI types");
        return NULL;
    }
    struct abi_type *t = parse_list_at(&p, 0, err);
    if (!t)
        return NULL;
    skip_ws(&p);
    if (*p != '\0') {
        abi_seterr(err, "unexpected '%.16s' in ABI type list", p);
        abi_type_free(t);
        return NULL;
    }
    return t;
}

int abi_type_canonical(const struct abi_type *t, struct ebuf *b) {
    char tmp[32];
    int rc = 0;
    switch (t->kind) {
    case AK_UINT:
        snprintf(tmp, sizeof tmp, "uint%d", t->size);
        return ebuf_put(b, tmp, strlen(tmp));
    case AK_INT:
        snprintf(tmp, sizeof tmp, "int%d", t->size);
        return ebuf_put(b, tmp, strlen(tmp));
    case AK_ADDRESS:
        return ebuf_put(b, "address", 7);
    case AK_BOOL:
        return ebuf_put(b, "bool", 4);
    case AK_FBYTES:
        snprintf(tmp, sizeof tmp, "bytes%d", t->size);
        return ebuf_put(b, tmp, strlen(tmp));
    case AK_BYTES:
        return ebuf_put(b, "bytes", 5);
    case AK_STRING:
        return ebuf_put(b, "string", 6);
    case AK_ARRAY:
        rc = abi_type_canonical(t->elem, b);
        if (t->size < 0)
            snprintf(tmp, sizeof tmp, "[]");
        else
            snprintf(tmp, sizeof tmp, "[%d]", t->size);
        return rc ? rc : ebuf_put(b, tmp, strlen(tmp));
    case AK_TUPLE:
        rc = ebuf_put(b, "(", 1);
        for (size_t i = 0; i < t->ncomps && !rc; i++) {
            if (i)
                rc = ebuf_put(b, ",", 1);
            if (!rc)
                rc = abi_type_canonical(t->comps[i], b);
        }
        return rc ? rc : ebuf_put(b, ")", 1);
    }
    return -1;
}

static int is_dynamic(const struct abi_type *t) {
    switch (t->kind) {
    case AK_BYTES:
    case AK_STRING:
        return 1;
    case AK_ARRAY:
        return t->size < 0 || is_dynamic(t->elem);
    case AK_TUPLE:
        for (size_t i = 0; i < t->ncomps; i++)
            if (is_dynamic(t->comps[i]))
                return 1;
        return 0;
    default:
        return 0;
    }
}

/* Head size in bytes of a static type (32 for a dynamic one: its offset word). */
static size_t head_size(const struct abi_type *t) {
    if (is_dynamic(t))
        return 32;
    if (t->kind == AK_ARRAY)
        return (size_t)t->size * head_size(t->elem);
    if (t->kind == AK_TUPLE) {
        size_t s = 0;
        for (size_t i = 0; i < t->ncomps; i++)
            s += head_size(t->comps[i]);
        return s;
    }
    return 32;
}

/* ---- encoding ---- */

/* Reads an integer from JSON (integer, or decimal/hex string with an optional '-'). */
static int json_integer_u256(json_t *v, struct ado_u256 *mag, int *neg) {
    *neg = 0;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        *neg = x < 0;
        ado_u256_from_u64(mag, x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x);
        return 0;
    }
    if (!json_is_string(v))
        return ADO_EINVAL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > 0 && s[0] == '-') {
        *neg = 1;
        s++, n--;
    }
    int rc = ado_u256_parse(mag, s, n);
    if (rc == 0 && ado_u256_is_zero(mag))
        *neg = 0;
    return rc;
}

static int put_word(struct ebuf *b, const uint8_t w[32]) {
    return ebuf_put(b, w, 32);
}

static int encode_tuple_items(const struct abi_type *const *types, json_t *const *vals, size_t n,
                              struct ebuf *b, struct ado_eth_error *err);

static int encode_scalar(const struct abi_type *t, json_t *v, struct ebuf *b,
                         struct ado_eth_error *err) {
    uint8_t w[32] = {0};
    struct ado_u256 mag, lim;
    int neg = 0;
    size_t n = 0;
    switch (t->kind) {
    case AK_ADDRESS:
        if (!json_is_string(v) ||
            ado_eth_address_parse(json_string_value(v), json_string_length(v), w + 12)) {
            abi_seterr(err, "invalid address value");
            return ADO_EINVAL;
        }
        break;
    case AK_BOOL:
        if (json_is_string(v) &&
            (!strcmp(json_string_value(v), "true") || !strcmp(json_string_value(v), "false"))) {
            w[31] = json_string_value(v)[0] == 't';
        } else if (json_is_boolean(v)) {
            w[31] = json_is_true(v) ? 1 : 0;
        } else {
            abi_seterr(err, "bool value must be true, false, \"true\" or \"false\"");
            return ADO_EINVAL;
        }
        break;
    case AK_UINT:
        if (json_integer_u256(v, &mag, &neg) || neg || ado_u256_bits(&mag) > t->size) {
            abi_seterr(err, "invalid or out-of-range uint%d value", t->size);
            return ADO_EINVAL;
        }
        ado_u256_to_be32(&mag, w);
        break;
    case AK_INT:
        if (json_integer_u256(v, &mag, &neg)) {
            abi_seterr(err, "invalid int%d value", t->size);
            return ADO_EINVAL;
        }
        memset(&lim, 0, sizeof lim);
        lim.w[(t->size - 1) / 64] = 1ULL << ((t->size - 1) % 64);
        if (neg ? ado_u256_cmp(&mag, &lim) > 0 : ado_u256_cmp(&mag, &lim) >= 0) {
            abi_seterr(err, "int%d value out of range", t->size);
            return ADO_EINVAL;
        }
        if (neg) {
            struct ado_u256 zero = {{0, 0, 0, 0}};
            ado_u256_sub(&mag, &zero, &mag); /* two's complement over 256 bits */
        }
        ado_u256_to_be32(&mag, w);
        break;
    case AK_FBYTES:
        if (!json_is_string(v) ||
            ado_eth_hex_decode(json_string_value(v), json_string_length(v), w, 32, &n) ||
            n > (size_t)t->size) {
            abi_seterr(err, "bytes%d value must be hex of at most %d bytes", t->size, t->size);
            return ADO_EINVAL;
        }
        break;
    default:
        return ADO_EINVAL;
    }
    if (put_word(b, w)) {
        abi_seterr(err, "out of memory");
        return ADO_ENOMEM;
    }
    return 0;
}

static int encode_len_word(struct ebuf *b, size_t n) {
    struct ado_u256 u;
    uint8_t w[32];
    ado_u256_from_u64(&u, (uint64_t)n);
    ado_u256_to_be32(&u, w);
    return put_word(b, w);
}

static int encode_bytes_data(struct ebuf *b, const uint8_t *d, size_t n) {
    size_t pad = (32 - n % 32) % 32;
    if (encode_len_word(b, n) || ebuf_put(b, d, n) || ebuf_zero(b, pad))
        return ADO_ENOMEM;
    return 0;
}

int abi_encode_value(const struct abi_type *t, json_t *v, struct ebuf *b,
                     struct ado_eth_error *err) {
    int rc = 0;
    switch (t->kind) {
    case AK_BYTES: {
        if (!json_is_string(v)) {
            abi_seterr(err, "bytes value must be a hex string");
            return ADO_EINVAL;
        }
        size_t tl = json_string_length(v), n = 0;
        uint8_t *d = malloc(tl / 2 + 1);
        if (!d) {
            abi_seterr(err, "out of memory");
            return ADO_ENOMEM;
        }
        rc = ado_eth_hex_decode(json_string_value(v), tl, d, tl / 2 + 1, &n);
        if (rc)
            abi_seterr(err, "bytes value must be a hex string");
        else if ((rc = encode_bytes_data(b, d, n)))
            abi_seterr(err, "out of memory");
        free(d);
        return rc ? (rc == ADO_ENOMEM ? rc : ADO_EINVAL) : 0;
    }
    case AK_STRING:
        if (!json_is_string(v)) {
            abi_seterr(err, "string value must be a JSON string");
            return ADO_EINVAL;
        }
        if (encode_bytes_data(b, (const uint8_t *)json_string_value(v), json_string_length(v))) {
            abi_seterr(err, "out of memory");
            return ADO_ENOMEM;
        }
        return 0;
    case AK_ARRAY:
    case AK_TUPLE: {
        if (!json_is_array(v)) {
            abi_seterr(err, "%s value must be a JSON array",
                       t->kind == AK_TUPLE ? "tuple" : "array");
            return ADO_EINVAL;
        }
        size_t n = json_array_size(v);
        size_t want = t->kind == AK_TUPLE ? t->ncomps : (size_t)t->size;
        if ((t->kind == AK_TUPLE || t->size >= 0) && n != want) {
            abi_seterr(err, "expected %zu values, got %zu", want, n);
            return ADO_EINVAL;
        }
        if (t->kind == AK_ARRAY && t->size < 0 && encode_len_word(b, n)) {
            abi_seterr(err, "out of memory");
            return ADO_ENOMEM;
        }
        const struct abi_type **types = malloc((n ? n : 1) * sizeof *types);
        json_t **vals = malloc((n ? n : 1) * sizeof *vals);
        if (!types || !vals) {
            free(types);
            free(vals);
            abi_seterr(err, "out of memory");
            return ADO_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            types[i] = t->kind == AK_TUPLE ? t->comps[i] : t->elem;
            vals[i] = json_array_get(v, i);
        }
        rc = encode_tuple_items(types, vals, n, b, err);
        free(types);
        free(vals);
        return rc;
    }
    default:
        return encode_scalar(t, v, b, err);
    }
}

static int encode_tuple_items(const struct abi_type *const *types, json_t *const *vals, size_t n,
                              struct ebuf *b, struct ado_eth_error *err) {
    size_t start = b->len, *slots = NULL;
    int rc = 0;
    if (n)
        slots = malloc(n * sizeof *slots);
    if (n && !slots) {
        abi_seterr(err, "out of memory");
        return ADO_ENOMEM;
    }
    /* Heads in order: static values in place, a zero placeholder for each dynamic one. */
    for (size_t i = 0; i < n && !rc; i++) {
        if (is_dynamic(types[i])) {
            slots[i] = b->len;
            if (ebuf_zero(b, 32)) {
                abi_seterr(err, "out of memory");
                rc = ADO_ENOMEM;
            }
        } else {
            rc = abi_encode_value(types[i], vals[i], b, err);
        }
    }
    /* Tails: patch each offset (relative to the tuple's start), then append the value. */
    for (size_t i = 0; i < n && !rc; i++) {
        if (!is_dynamic(types[i]))
            continue;
        struct ado_u256 off;
        ado_u256_from_u64(&off, (uint64_t)(b->len - start));
        ado_u256_to_be32(&off, b->p + slots[i]);
        rc = abi_encode_value(types[i], vals[i], b, err);
    }
    free(slots);
    return rc;
}

/* ---- decoding ---- */

static json_t *decode_at(const struct abi_type *t, const uint8_t *d, size_t len, size_t at,
                         int depth, struct ado_eth_error *err);

static int read_size(const uint8_t *d, size_t len, size_t at, size_t *out) {
    if (at > len || len - at < 32)
        return ADO_EINVAL;
    for (int i = 0; i < 24; i++)
        if (d[at + i])
            return ADO_EINVAL;
    uint64_t v = 0;
    for (int i = 24; i < 32; i++)
        v = (v << 8) | d[at + i];
    if (v > len)
        return ADO_EINVAL;
    *out = (size_t)v;
    return 0;
}

static json_t *decode_items(const struct abi_type *const *types, size_t n, const uint8_t *d,
                            size_t len, size_t start, int depth, struct ado_eth_error *err) {
    json_t *arr = json_array();
    size_t head = start;
    if (!arr)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *v;
        if (is_dynamic(types[i])) {
            size_t off;
            if (read_size(d, len, head, &off) || off > len - start) {
                abi_seterr(err, "bad offset in ABI data");
                goto fail;
            }
            v = decode_at(types[i], d, len, start + off, depth + 1, err);
            head += 32;
        } else {
            v = decode_at(types[i], d, len, head, depth + 1, err);
            head += head_size(types[i]);
        }
        if (!v || json_array_append_new(arr, v))
            goto fail;
    }
    return arr;
fail:
    json_decref(arr);
    return NULL;
}

static json_t *decode_at(const struct abi_type *t, const uint8_t *d, size_t len, size_t at,
                         int depth, struct ado_eth_error *err) {
    char txt[ADO_U256_DEC_MAX + 2];
    struct ado_u256 u;
    if (depth > ABI_MAX_DEPTH) {
        abi_seterr(err, "ABI data nested too deeply");
        return NULL;
    }
    if (t->kind != AK_ARRAY && t->kind != AK_TUPLE && (at > len || len - at < 32)) {
        abi_seterr(err, "ABI data too short");
        return NULL;
    }
    const uint8_t *w = d + at;
    switch (t->kind) {
    case AK_UINT:
        ado_u256_from_be32(&u, w);
        if (ado_u256_bits(&u) > t->size)
            break;
        ado_u256_to_dec(&u, txt, sizeof txt);
        return json_string(txt);
    case AK_INT: {
        ado_u256_from_be32(&u, w);
        int neg = (w[0] & 0x80) != 0;
        if (neg) {
            struct ado_u256 zero = {{0, 0, 0, 0}};
            ado_u256_sub(&u, &zero, &u);
        }
        struct ado_u256 lim = {{0, 0, 0, 0}};
        lim.w[(t->size - 1) / 64] = 1ULL << ((t->size - 1) % 64);
        if (neg ? ado_u256_cmp(&u, &lim) > 0 : ado_u256_cmp(&u, &lim) >= 0)
            break;
        txt[0] = '-';
        ado_u256_to_dec(&u, txt + 1, sizeof txt - 1);
        return json_string(neg ? txt : txt + 1);
    }
    case AK_ADDRESS:
        for (int i = 0; i < 12; i++)
            if (w[i])
                goto bad;
        ado_eth_address_checksum(w + 12, txt);
        return json_string(txt);
    case AK_BOOL:
        for (int i = 0; i < 31; i++)
            if (w[i])
                goto bad;
        if (w[31] > 1)
            break;
        return json_boolean(w[31]);
    case AK_FBYTES:
        txt[0] = '0', txt[1] = 'x';
        ado_eth_hex_encode(w, (size_t)t->size, txt + 2);
        return json_string(txt);
    case AK_BYTES:
    case AK_STRING: {
        size_t n;
        if (read_size(d, len, at, &n) || n > len - at - 32)
            break;
        if (t->kind == AK_STRING) {
            json_t *s = json_stringn((const char *)w + 32, n);
            if (!s)
                abi_seterr(err, "ABI string is not valid UTF-8");
            return s;
        }
        char *h = malloc(2 * n + 3);
        if (!h) {
            abi_seterr(err, "out of memory");
            return NULL;
        }
        h[0] = '0', h[1] = 'x';
        ado_eth_hex_encode(w + 32, n, h + 2);
        json_t *s = json_string(h);
        free(h);
        return s;
    }
    case AK_ARRAY: {
        size_t n = (size_t)t->size, start = at;
        if (t->size < 0) {
            if (read_size(d, len, at, &n) || n > (len - at - 32) / 32)
                break;
            start = at + 32;
        }
        const struct abi_type **types = malloc((n ? n : 1) * sizeof *types);
        if (!types) {
            abi_seterr(err, "out of memory");
            return NULL;
        }
        for (size_t i = 0; i < n; i++)
            types[i] = t->elem;
        json_t *r = decode_items(types, n, d, len, start, depth, err);
        free(types);
        return r;
    }
    case AK_TUPLE:
        return decode_items((const struct abi_type *const *)t->comps, t->ncomps, d, len, at, depth,
                            err);
    }
bad:
    abi_seterr(err, "malformed ABI data for %s",
               t->kind == AK_ADDRESS ? "address"
               : t->kind == AK_BOOL  ? "bool"
                                     : "value");
    return NULL;
}

/* ---- public API ---- */

static int encode_list(const char *types, json_t *vals, uint8_t **out, size_t *out_len,
                       size_t prefix, struct ado_eth_error *err) {
    struct ebuf b = {0};
    struct abi_type *t = abi_parse_list(types, err);
    int rc;
    if (!t)
        return ADO_EINVAL;
    if (ebuf_zero(&b, prefix)) {
        rc = ADO_ENOMEM;
        goto done;
    }
    rc = abi_encode_value(t, vals, &b, err);
    if (rc == 0) {
        *out = b.p ? b.p : malloc(1);
        *out_len = b.len;
        b.p = NULL;
        if (!*out)
            rc = ADO_ENOMEM;
    }
done:
    free(b.p);
    abi_type_free(t);
    return rc;
}

int ado_abi_encode_json(const char *types, const char *values_json, uint8_t **out, size_t *out_len,
                        struct ado_eth_error *err) {
    json_error_t je;
    if (!types || !values_json || !out || !out_len) {
        abi_seterr(err, "missing argument");
        return ADO_EINVAL;
    }
    json_t *v = json_loads(values_json, JSON_DECODE_ANY, &je);
    if (!v) {
        abi_seterr(err, "bad JSON values: %s (line %d column %d)", je.text, je.line, je.column);
        return ADO_EINVAL;
    }
    int rc = encode_list(types, v, out, out_len, 0, err);
    json_decref(v);
    return rc;
}

/* Splits "name(types)" into the canonical signature; *types_at points after '('. */
static int canonical_sig(const char *sig, struct ebuf *b, struct ado_eth_error *err) {
    const char *p = sig, *lp;
    if (!sig || !(lp = strchr(sig, '('))) {
        abi_seterr(err, "signature must look like name(type,...)");
        return ADO_EINVAL;
    }
    skip_ws(&p);
    const char *ns = p;
    while (p < lp && is_ident(*p))
        p++;
    if (p == ns) {
        abi_seterr(err, "signature has no name");
        return ADO_EINVAL;
    }
    size_t nlen = (size_t)(p - ns);
    skip_ws(&p);
    if (p != lp) {
        abi_seterr(err, "bad function name in signature");
        return ADO_EINVAL;
    }
    p = lp + 1;
    struct abi_type *t = parse_list_at(&p, 0, err);
    if (!t)
        return ADO_EINVAL;
    skip_ws(&p);
    int ok = *p == ')';
    if (ok) {
        p++;
        skip_ws(&p);
        ok = *p == '\0';
    }
    if (!ok) {
        abi_seterr(err, "signature must end with ')'");
        abi_type_free(t);
        return ADO_EINVAL;
    }
    int rc = ebuf_put(b, ns, nlen) || abi_type_canonical(t, b) || ebuf_put(b, "", 1);
    abi_type_free(t);
    if (rc) {
        abi_seterr(err, "out of memory");
        return ADO_ENOMEM;
    }
    return 0;
}

int ado_abi_canonical_signature(const char *signature, char **out, struct ado_eth_error *err) {
    struct ebuf b = {0};
    int rc = canonical_sig(signature, &b, err);
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = (char *)b.p;
    return 0;
}

int ado_abi_event_topic(const char *signature, uint8_t out[32], struct ado_eth_error *err) {
    struct ebuf b = {0};
    int rc = canonical_sig(signature, &b, err);
    if (rc == 0)
        ado_keccak256(b.p, b.len - 1, out);
    free(b.p);
    return rc;
}

int ado_abi_selector(const char *signature, uint8_t out[4], struct ado_eth_error *err) {
    uint8_t h[32];
    int rc = ado_abi_event_topic(signature, h, err);
    if (rc == 0)
        memcpy(out, h, 4);
    return rc;
}

int ado_abi_encode_call(const char *signature, const char *args_json, uint8_t **out,
                        size_t *out_len, struct ado_eth_error *err) {
    uint8_t sel[4];
    json_error_t je;
    if (!signature || !args_json || !out || !out_len) {
        abi_seterr(err, "missing argument");
        return ADO_EINVAL;
    }
    int rc = ado_abi_selector(signature, sel, err);
    if (rc)
        return rc;
    const char *lp = strchr(signature, '(');
    const char *rp = strrchr(signature, ')');
    char *types = strndup(lp + 1, (size_t)(rp - lp - 1));
    if (!types)
        return ADO_ENOMEM;
    json_t *v = json_loads(args_json, JSON_DECODE_ANY, &je);
    if (!v) {
        abi_seterr(err, "bad JSON arguments: %s (line %d column %d)", je.text, je.line, je.column);
        free(types);
        return ADO_EINVAL;
    }
    rc = encode_list(types, v, out, out_len, 4, err);
    if (rc == 0)
        memcpy(*out, sel, 4);
    json_decref(v);
    free(types);
    return rc;
}

int ado_abi_decode_json(const char *types, const uint8_t *data, size_t len, char **json_out,
                        struct ado_eth_error *err) {
    if (!types || (!data && len) || !json_out) {
        abi_seterr(err, "missing argument");
        return ADO_EINVAL;
    }
    struct abi_type *t = abi_parse_list(types, err);
    if (!t)
        return ADO_EINVAL;
    json_t *v = decode_at(t, data ? data : (const uint8_t *)"", len, 0, 0, err);
    abi_type_free(t);
    if (!v)
        return ADO_EINVAL;
    *json_out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    return *json_out ? 0 : ADO_ENOMEM;
}
