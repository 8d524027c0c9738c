/* A growable text buffer (see strbuf.h). */
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ado_strbuf_put(struct ado_strbuf *b, const char *s, size_t n) {
    if (b->bad)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->bad = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void ado_strbuf_puts(struct ado_strbuf *b, const char *s) {
    ado_strbuf_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c < 0x80             ? 1
                 : (c & 0xe0) == 0xc0 ? 2
                 : (c & 0xf0) == 0xe0 ? 3
                 : (c & 0xf8) == 0xf0 ? 4
                                      : 0;
    if (!len || len > n)
        return 0;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void ado_strbuf_json_str(struct ado_strbuf *b, const char *s) {
    ado_strbuf_put(b, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n && !b->bad;) {
        size_t run = i;
        while (run < n && u[run] >= 0x20 && u[run] != '"' && u[run] != '\\' && u[run] < 0x80)
            run++;
        ado_strbuf_put(b, s + i, run - i);
        i = run;
        if (i == n)
            break;
        if (u[i] >= 0x80) {
            size_t l = utf8_len(u + i, n - i);
            if (!l) {
                b->bad = 1;
                return;
            }
            ado_strbuf_put(b, s + i, l);
            i += l;
            continue;
        }
        static const char *const short_esc[] = {
            ['"'] = "\\\"", ['\\'] = "\\\\", ['\b'] = "\\b", ['\f'] = "\\f",
            ['\n'] = "\\n", ['\r'] = "\\r",  ['\t'] = "\\t"};
        if (u[i] < sizeof short_esc / sizeof *short_esc && short_esc[u[i]]) {
            ado_strbuf_put(b, short_esc[u[i]], 2);
        } else {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04X", u[i]);
            ado_strbuf_put(b, esc, 6);
        }
        i++;
    }
    ado_strbuf_put(b, "\"", 1);
}

void ado_strbuf_json_field(struct ado_strbuf *b, const char *key, const char *val) {
    ado_strbuf_put(b, ",\"", 2);
    ado_strbuf_puts(b, key);
    ado_strbuf_put(b, "\":", 2);
    ado_strbuf_json_str(b, val);
}

void ado_strbuf_json_u64(struct ado_strbuf *b, const char *key, uint64_t v) {
    char t[96];
    int n = snprintf(t, sizeof t, ",\"%s\":%llu", key, (unsigned long long)v);
    if (n > 0 && (size_t)n < sizeof t)
        ado_strbuf_put(b, t, (size_t)n);
    else
        b->bad = 1;
}
