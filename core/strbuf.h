/* Kernel-private: a growable text buffer for building JSON and messages without a DOM.
 * An allocation failure (or invalid input) sets `bad`; later appends do nothing, so a
 * caller checks once at the end. */
#ifndef ADO_CORE_STRBUF_H
#define ADO_CORE_STRBUF_H

#include <stddef.h>
#include <stdint.h>

struct ado_strbuf {
    char *p;    /* NUL-terminated once anything was appended; owned, free() it */
    size_t len; /* bytes, without the NUL */
    size_t cap;
    int bad; /* out of memory, or ado_strbuf_json_str met invalid UTF-8 */
};

void ado_strbuf_put(struct ado_strbuf *b, const char *s, size_t n);
void ado_strbuf_puts(struct ado_strbuf *b, const char *s);
/* `s` as a JSON string, quoted, escaped as jansson writes it (no '/' escaping, UTF-8 kept,
 * control characters as \uXXXX). Invalid UTF-8 sets `bad`. */
void ado_strbuf_json_str(struct ado_strbuf *b, const char *s);
/* ,"key":"val" and ,"key":v — for objects written field by field. */
void ado_strbuf_json_field(struct ado_strbuf *b, const char *key, const char *val);
void ado_strbuf_json_u64(struct ado_strbuf *b, const char *key, uint64_t v);

#endif
