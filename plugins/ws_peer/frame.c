/* ws_peer wire format: encode and decode (see frame.h). Pure code, no I/O. */
#include "frame.h"

#include <ado/errors.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rd {
    const uint8_t *p;
    size_t left;
    int bad;
};

static const uint8_t *take(struct rd *r, size_t n) {
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t get_u64(struct rd *r) {
    const uint8_t *p = take(r, 8);
    uint64_t v = 0;
    for (int i = 0; p && i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get_u32(struct rd *r) {
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

static void get_bytes(struct rd *r, uint8_t *out, size_t n) {
    const uint8_t *p = take(r, n);
    if (p)
        memcpy(out, p, n);
}

static void get_str(struct rd *r, char out[WSP_STR_MAX + 1]) {
    const uint8_t *lp = take(r, 1);
    size_t n = lp ? *lp : 0;
    const uint8_t *p = take(r, n);
    if (!p || n == 0 || memchr(p, 0, n)) {
        r->bad = 1;
        out[0] = 0;
        return;
    }
    memcpy(out, p, n);
    out[n] = 0;
}

static void get_blob(struct rd *r, const uint8_t **out, size_t *len) {
    uint32_t n = get_u32(r);
    *out = take(r, n);
    *len = *out ? n : 0;
}

int wsp_decode(const uint8_t *buf, size_t len, struct wsp_frame *f) {
    memset(f, 0, sizeof *f);
    if (!buf || len < 2 || buf[0] != WSP_VERSION)
        return ADO_EINVAL;
    struct rd r = {buf + 2, len - 2, 0};
    f->type = buf[1];
    switch (f->type) {
    case WSP_HELLO:
        get_bytes(&r, f->nonce, WSP_NONCE);
        get_bytes(&r, f->pk, WSP_PK);
        get_str(&r, f->s1);
        get_str(&r, f->s2);
        break;
    case WSP_AUTH:
        get_bytes(&r, f->sig, WSP_SIG);
        break;
    case WSP_MSG:
        f->u = get_u64(&r);
        f->created_ms = get_u64(&r);
        get_str(&r, f->s1);
        get_str(&r, f->s2);
        get_blob(&r, &f->blob, &f->blob_len);
        break;
    case WSP_ACK:
    case WSP_PING:
    case WSP_PONG:
        f->u = get_u64(&r);
        break;
    case WSP_NACK:
        f->u = get_u64(&r);
        get_str(&r, f->s1);
        break;
    case WSP_QUERY:
        f->u = get_u64(&r);
        get_blob(&r, &f->blob, &f->blob_len);
        break;
    case WSP_RESULT:
        f->u = get_u64(&r);
        f->status = (int32_t)get_u32(&r);
        get_blob(&r, &f->blob, &f->blob_len);
        break;
    case WSP_ACKR:
        f->u = get_u64(&r);
        f->last = get_u64(&r);
        if (f->last <= f->u || f->last - f->u >= WSP_ACKR_MAX)
            r.bad = 1;
        break;
    default:
        return ADO_EINVAL;
    }
    return r.bad || r.left ? ADO_EINVAL : 0;
}

static size_t str_len(const char *s) {
    size_t n = strlen(s);
    return n == 0 || n > WSP_STR_MAX ? 0 : 1 + n;
}

size_t wsp_encoded_len(const struct wsp_frame *f) {
    size_t n = 2, a, b;
    switch (f->type) {
    case WSP_HELLO:
        a = str_len(f->s1), b = str_len(f->s2);
        return a && b ? n + WSP_NONCE + WSP_PK + a + b : 0;
    case WSP_AUTH:
        return n + WSP_SIG;
    case WSP_MSG:
        a = str_len(f->s1), b = str_len(f->s2);
        return a && b && f->blob_len <= UINT32_MAX ? n + 16 + a + b + 4 + f->blob_len : 0;
    case WSP_ACK:
    case WSP_PING:
    case WSP_PONG:
        return n + 8;
    case WSP_NACK:
        a = str_len(f->s1);
        return a ? n + 8 + a : 0;
    case WSP_QUERY:
        return f->blob_len <= UINT32_MAX ? n + 8 + 4 + f->blob_len : 0;
    case WSP_RESULT:
        return f->blob_len <= UINT32_MAX ? n + 12 + 4 + f->blob_len : 0;
    case WSP_ACKR:
        return f->last > f->u && f->last - f->u < WSP_ACKR_MAX ? n + 16 : 0;
    default:
        return 0;
    }
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static uint8_t *put_str(uint8_t *p, const char *s) {
    size_t n = strlen(s);
    *p++ = (uint8_t)n;
    memcpy(p, s, n);
    return p + n;
}

static uint8_t *put_blob(uint8_t *p, const uint8_t *b, size_t n) {
    p = put_u32(p, (uint32_t)n);
    if (n)
        memcpy(p, b, n);
    return p + n;
}

size_t wsp_encode(const struct wsp_frame *f, uint8_t *out) {
    size_t n = wsp_encoded_len(f);
    if (!n)
        return 0;
    uint8_t *p = out;
    *p++ = WSP_VERSION;
    *p++ = (uint8_t)f->type;
    switch (f->type) {
    case WSP_HELLO:
        memcpy(p, f->nonce, WSP_NONCE);
        memcpy(p + WSP_NONCE, f->pk, WSP_PK);
        p = put_str(put_str(p + WSP_NONCE + WSP_PK, f->s1), f->s2);
        break;
    case WSP_AUTH:
        memcpy(p, f->sig, WSP_SIG);
        p += WSP_SIG;
        break;
    case WSP_MSG:
        p = put_str(put_str(put_u64(put_u64(p, f->u), f->created_ms), f->s1), f->s2);
        p = put_blob(p, f->blob, f->blob_len);
        break;
    case WSP_ACK:
    case WSP_PING:
    case WSP_PONG:
        p = put_u64(p, f->u);
        break;
    case WSP_NACK:
        p = put_str(put_u64(p, f->u), f->s1);
        break;
    case WSP_QUERY:
        p = put_blob(put_u64(p, f->u), f->blob, f->blob_len);
        break;
    case WSP_RESULT:
        p = put_blob(put_u32(put_u64(p, f->u), (uint32_t)f->status), f->blob, f->blob_len);
        break;
    case WSP_ACKR:
        p = put_u64(put_u64(p, f->u), f->last);
        break;
    }
    return (size_t)(p - out) == n ? n : 0;
}

size_t wsp_ws_wrap(uint8_t *out, const uint8_t *payload, size_t len, const uint8_t *mask) {
    size_t n;
    out[0] = 0x82;
    if (len < 126) {
        out[1] = (uint8_t)len;
        n = 2;
    } else if (len < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8), out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }
    for (size_t k = 0; k < len; k++)
        out[n + k] = mask ? payload[k] ^ mask[k & 3] : payload[k];
    return n + len;
}

size_t wsp_ack_run(const uint64_t *s, size_t n, uint64_t *first, uint64_t *last) {
    if (!n)
        return 0;
    size_t k = 1;
    while (k < n && k < WSP_ACKR_MAX && s[k - 1] != UINT64_MAX && s[k] == s[k - 1] + 1)
        k++;
    *first = s[0];
    *last = s[k - 1];
    return k;
}

void wsp_auth_transcript(uint8_t out[WSP_TRANSCRIPT_LEN], char role, const uint8_t *client_nonce,
                         const uint8_t *server_nonce, const uint8_t *client_pk,
                         const uint8_t *server_pk) {
    size_t l = sizeof WSP_AUTH_LABEL - 1;
    memcpy(out, WSP_AUTH_LABEL, l);
    out[l++] = (uint8_t)role;
    memcpy(out + l, client_nonce, WSP_NONCE);
    memcpy(out + l + WSP_NONCE, server_nonce, WSP_NONCE);
    memcpy(out + l + 2 * WSP_NONCE, client_pk, WSP_PK);
    memcpy(out + l + 2 * WSP_NONCE + WSP_PK, server_pk, WSP_PK);
}

int wsp_parse_hostport(const char *s, char *host, size_t hcap, int *port) {
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return ADO_EINVAL;
        hl = (size_t)(end - s - 1);
        s++;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return ADO_EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hcap)
        return ADO_EINVAL;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return ADO_EINVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = (int)p;
    return 0;
}

int wsp_parse_url(const char *url, char *host, size_t hcap, int *port, char *path, size_t pcap) {
    if (strncmp(url, "ws://", 5))
        return ADO_EINVAL;
    const char *hp = url + 5;
    const char *slash = strchr(hp, '/');
    size_t n = slash ? (size_t)(slash - hp) : strlen(hp);
    char buf[300];
    if (n == 0 || n >= sizeof buf)
        return ADO_EINVAL;
    memcpy(buf, hp, n);
    buf[n] = 0;
    if (wsp_parse_hostport(buf, host, hcap, port) || *port == 0)
        return ADO_EINVAL;
    const char *pa = slash ? slash : "/";
    if (strlen(pa) >= pcap)
        return ADO_EINVAL;
    strcpy(path, pa);
    return 0;
}

int wsp_hex32(const char *hex, uint8_t out[32]) {
    if (hex && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X'))
        hex += 2;
    if (!hex || strlen(hex) != 64)
        return ADO_EINVAL;
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = hex[2 * i + j];
            unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                         : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                         : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                                : 16u;
            if (d > 15)
                return ADO_EINVAL;
            v = v << 4 | d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}
