/* The configuration tree: libyaml events -> struct ado_cnode, ${ENV} expansion, lookups,
 * JSON rendering and the diagnostics list. Schema validation is in config_schema.c and the
 * kernel's own schema in config.c. */
#include "config.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ado/errors.h"

/* Deeper nesting than this is refused, so that hostile input cannot exhaust the stack. */
#define ADO_CNODE_MAX_DEPTH 128

/* ---- diagnostics ------------------------------------------------------------------ */

void ado_diag_init(struct ado_diag *d) {
    memset(d, 0, sizeof(*d));
}

void ado_diag_fini(struct ado_diag *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    free(d->lines);
    free(d->cols);
    memset(d, 0, sizeof(*d));
}

static int diag_grow(struct ado_diag *d) {
    if (d->n < d->cap)
        return 0;
    size_t cap = d->cap ? d->cap * 2 : 8;
    char **m = realloc(d->msgs, cap * sizeof(*m));
    if (!m)
        return ADO_ENOMEM;
    d->msgs = m;
    int *l = realloc(d->lines, cap * sizeof(*l));
    if (!l)
        return ADO_ENOMEM;
    d->lines = l;
    int *c = realloc(d->cols, cap * sizeof(*c));
    if (!c)
        return ADO_ENOMEM;
    d->cols = c;
    d->cap = cap;
    return 0;
}

void ado_diag_add(struct ado_diag *d, const char *file, int line, int col, const char *path,
                  const char *fmt, ...) {
    if (!d || diag_grow(d) != 0)
        return;
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    char head[512];
    int hl;
    if (line > 0)
        hl = snprintf(head, sizeof(head), "%s:%d:%d: ", file ? file : "<config>", line, col);
    else
        hl = snprintf(head, sizeof(head), "%s: ", file ? file : "<config>");
    if (hl < 0)
        return;
    const char *p = (path && *path) ? path : NULL;
    size_t len = strlen(head) + (p ? strlen(p) + 2 : 0) + strlen(body) + 1;
    char *msg = malloc(len);
    if (!msg)
        return;
    snprintf(msg, len, "%s%s%s%s", head, p ? p : "", p ? ": " : "", body);
    d->msgs[d->n] = msg;
    d->lines[d->n] = line;
    d->cols[d->n] = col;
    d->n++;
}

void ado_diag_print(const struct ado_diag *d, void *f) {
    if (!d || !f)
        return;
    for (size_t i = 0; i < d->n; i++)
        fprintf((FILE *)f, "%s\n", d->msgs[i]);
}

void ado_diag_sort(struct ado_diag *d, size_t from) {
    /* Insertion sort: stable, and diagnostics lists are short. */
    for (size_t i = from + 1; i < d->n; i++) {
        char *m = d->msgs[i];
        int l = d->lines[i], c = d->cols[i];
        size_t j = i;
        while (j > from && (d->lines[j - 1] > l || (d->lines[j - 1] == l && d->cols[j - 1] > c))) {
            d->msgs[j] = d->msgs[j - 1];
            d->lines[j] = d->lines[j - 1];
            d->cols[j] = d->cols[j - 1];
            j--;
        }
        d->msgs[j] = m;
        d->lines[j] = l;
        d->cols[j] = c;
    }
}

/* ---- nodes -------------------------------------------------------------------------- */

struct ado_cnode *ado_cnode_new(int kind, const char *key) {
    struct ado_cnode *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->kind = kind;
    if (key && !(n->key = strdup(key))) {
        free(n);
        return NULL;
    }
    return n;
}

void ado_cnode_free(struct ado_cnode *n) {
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        ado_cnode_free(n->items[i]);
    free(n->items);
    free(n->key);
    free(n->text);
    free(n);
}

int ado_cnode_append(struct ado_cnode *parent, struct ado_cnode *child) {
    struct ado_cnode **it = realloc(parent->items, (parent->n + 1) * sizeof(*it));
    if (!it)
        return ADO_ENOMEM;
    parent->items = it;
    parent->items[parent->n++] = child;
    child->parent = parent;
    return 0;
}

static struct ado_cnode *map_find(const struct ado_cnode *map, const char *key, size_t klen) {
    if (!map || map->kind != ADO_CN_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->items[i]->key;
        if (k && strlen(k) == klen && memcmp(k, key, klen) == 0)
            return map->items[i];
    }
    return NULL;
}

struct ado_cnode *ado_cnode_get(struct ado_cnode *from, const char *path) {
    struct ado_cnode *n = from;
    const char *p = path;
    if (!n || !p)
        return n;
    while (*p && n) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (n->kind == ADO_CN_MAP) {
            n = map_find(n, p, len);
        } else if (n->kind == ADO_CN_LIST) {
            size_t idx = 0;
            if (len == 0 || len > 18)
                return NULL;
            for (size_t i = 0; i < len; i++) {
                if (!isdigit((unsigned char)p[i]))
                    return NULL;
                idx = idx * 10 + (size_t)(p[i] - '0');
            }
            n = idx < n->n ? n->items[idx] : NULL;
        } else {
            return NULL;
        }
        if (!dot)
            break;
        p = dot + 1;
    }
    return n;
}

int ado_cnode_path(const struct ado_cnode *n, char *buf, size_t size) {
    /* Collect the segments from n up to the root, then write them root first. */
    const struct ado_cnode *chain[ADO_CNODE_MAX_DEPTH + 2];
    size_t depth = 0;
    for (const struct ado_cnode *c = n; c && c->parent; c = c->parent) {
        if (depth == sizeof(chain) / sizeof(chain[0]))
            return ADO_ELIMIT;
        chain[depth++] = c;
    }
    size_t used = 0;
    if (size == 0)
        return ADO_ELIMIT;
    buf[0] = '\0';
    while (depth > 0) {
        const struct ado_cnode *c = chain[--depth];
        char idx[32];
        const char *seg = c->key;
        if (c->parent->kind == ADO_CN_LIST) {
            size_t i = 0;
            while (i < c->parent->n && c->parent->items[i] != c)
                i++;
            snprintf(idx, sizeof(idx), "%zu", i);
            seg = idx;
        }
        int w = snprintf(buf + used, size - used, "%s%s", used ? "." : "", seg ? seg : "");
        if (w < 0 || (size_t)w >= size - used)
            return ADO_ELIMIT;
        used += (size_t)w;
    }
    return 0;
}

/* ---- the YAML reader ---------------------------------------------------------------- */

struct yreader {
    yaml_parser_t parser;
    const char *file;
    const char *text;
    size_t len;
    struct ado_diag *diag;
    int errors;
    int nomem;
    int failed; /* libyaml reported a syntax error: stop */
};

static void yerr(struct yreader *r, const yaml_mark_t *m, const struct ado_cnode *at,
                 const char *fmt, const char *arg) {
    char path[512];
    path[0] = '\0';
    if (at)
        ado_cnode_path(at, path, sizeof(path));
    ado_diag_add(r->diag, r->file, (int)m->line + 1, (int)m->column + 1, path, fmt, arg);
    r->errors++;
}

/* Turn libyaml's problem into FILE:LINE:COLUMN: message. */
static void yaml_problem(struct yreader *r) {
    yaml_parser_t *p = &r->parser;
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        size_t off = p->problem_offset < r->len ? p->problem_offset : r->len;
        line = 1;
        col = 1;
        for (size_t i = 0; i < off; i++) {
            if (r->text[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)r->text[i] & 0xC0) != 0x80) {
                col++;
            }
        }
    } else {
        line = (int)p->problem_mark.line + 1;
        col = (int)p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR) {
        r->nomem = 1;
        problem = "out of memory";
    }
    if (p->context && p->error != YAML_READER_ERROR)
        ado_diag_add(r->diag, r->file, line, col, NULL, "%s (%s at line %d, column %d)", problem,
                     p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        ado_diag_add(r->diag, r->file, line, col, NULL, "%s", problem);
    r->errors++;
    r->failed = 1;
}

static int next_event(struct yreader *r, yaml_event_t *ev) {
    if (!yaml_parser_parse(&r->parser, ev)) {
        yaml_problem(r);
        return -1;
    }
    return 0;
}

static int is_null_scalar(const yaml_event_t *ev) {
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    if (ev->data.scalar.tag && strcmp((const char *)ev->data.scalar.tag, YAML_STR_TAG) == 0)
        return 0;
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static void set_pos(struct ado_cnode *n, const yaml_event_t *ev) {
    n->line = (int)ev->start_mark.line + 1;
    n->col = (int)ev->start_mark.column + 1;
}

static int parse_value(struct yreader *r, yaml_event_t *ev, struct ado_cnode *n, int depth);

/* Fill `n` from the event `ev` (which this function deletes), reading nested events. */
static int parse_children(struct yreader *r, struct ado_cnode *n, int is_map, int depth) {
    for (;;) {
        yaml_event_t ev;
        if (next_event(r, &ev) != 0)
            return -1;
        if (ev.type == (is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
            yaml_event_delete(&ev);
            return 0;
        }
        struct ado_cnode *child = NULL;
        int attach = 1;
        if (is_map) {
            /* The key: a scalar. */
            yaml_mark_t km = ev.start_mark;
            if (ev.type != YAML_SCALAR_EVENT) {
                yerr(r, &km, n, "%s",
                     "a key must be a scalar (a map or list as key is not "
                     "supported)");
                /* Read and drop the key's subtree, then its value. */
                struct ado_cnode *junk = ado_cnode_new(ADO_CN_NULL, NULL);
                if (!junk) {
                    yaml_event_delete(&ev);
                    r->nomem = 1;
                    return -1;
                }
                int rc = parse_value(r, &ev, junk, depth + 1);
                ado_cnode_free(junk);
                if (rc != 0)
                    return -1;
                child = ado_cnode_new(ADO_CN_NULL, "?");
                attach = 0;
            } else {
                const char *key = (const char *)ev.data.scalar.value;
                struct ado_cnode *dup = map_find(n, key, strlen(key));
                child = ado_cnode_new(ADO_CN_NULL, key);
                if (child) {
                    child->key_line = (int)km.line + 1;
                    child->key_col = (int)km.column + 1;
                }
                if (dup && child) {
                    char msg[128];
                    snprintf(msg, sizeof(msg), " (first at line %d, column %d)", dup->key_line,
                             dup->key_col);
                    char path[512];
                    path[0] = '\0';
                    ado_cnode_path(dup, path, sizeof(path));
                    ado_diag_add(r->diag, r->file, child->key_line, child->key_col, path,
                                 "duplicate key \"%s\"%s", key, msg);
                    r->errors++;
                    attach = 0;
                }
                yaml_event_delete(&ev);
            }
            if (!child) {
                r->nomem = 1;
                return -1;
            }
            if (next_event(r, &ev) != 0) {
                ado_cnode_free(child);
                return -1;
            }
        } else {
            child = ado_cnode_new(ADO_CN_NULL, NULL);
            if (!child) {
                yaml_event_delete(&ev);
                r->nomem = 1;
                return -1;
            }
        }
        if (attach) {
            if (ado_cnode_append(n, child) != 0) {
                ado_cnode_free(child);
                yaml_event_delete(&ev);
                r->nomem = 1;
                return -1;
            }
        } else {
            child->parent = n; /* for error paths; freed below */
        }
        int rc = parse_value(r, &ev, child, depth + 1);
        if (!attach)
            ado_cnode_free(child);
        if (rc != 0)
            return -1;
    }
}

static int parse_value(struct yreader *r, yaml_event_t *ev, struct ado_cnode *n, int depth) {
    set_pos(n, ev);
    if (!n->key_line) {
        n->key_line = n->line;
        n->key_col = n->col;
    }
    const yaml_char_t *anchor = NULL;
    if (ev->type == YAML_SCALAR_EVENT)
        anchor = ev->data.scalar.anchor;
    else if (ev->type == YAML_MAPPING_START_EVENT)
        anchor = ev->data.mapping_start.anchor;
    else if (ev->type == YAML_SEQUENCE_START_EVENT)
        anchor = ev->data.sequence_start.anchor;
    if (anchor)
        yerr(r, &ev->start_mark, n, "anchors (&%s) are not supported", (const char *)anchor);

    if (depth > ADO_CNODE_MAX_DEPTH) {
        yerr(r, &ev->start_mark, n, "nesting deeper than %s levels is not supported", "128");
        yaml_event_delete(ev);
        r->failed = 1;
        return -1;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (is_null_scalar(ev)) {
            n->kind = ADO_CN_NULL;
        } else {
            n->kind = ADO_CN_SCALAR;
            n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                        (ev->data.scalar.tag &&
                         strcmp((const char *)ev->data.scalar.tag, YAML_STR_TAG) == 0);
            n->text = malloc(ev->data.scalar.length + 1);
            if (!n->text) {
                r->nomem = 1;
                yaml_event_delete(ev);
                return -1;
            }
            memcpy(n->text, ev->data.scalar.value, ev->data.scalar.length);
            n->text[ev->data.scalar.length] = '\0';
        }
        yaml_event_delete(ev);
        return 0;
    case YAML_ALIAS_EVENT:
        yerr(r, &ev->start_mark, n, "aliases (*%s) are not supported",
             (const char *)ev->data.alias.anchor);
        n->kind = ADO_CN_NULL;
        n->type = ADO_CN_TYPE_INVALID;
        yaml_event_delete(ev);
        return 0;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        n->kind = is_map ? ADO_CN_MAP : ADO_CN_LIST;
        yaml_event_delete(ev);
        return parse_children(r, n, is_map, depth);
    }
    default:
        yerr(r, &ev->start_mark, n, "%s", "unexpected YAML event");
        yaml_event_delete(ev);
        r->failed = 1;
        return -1;
    }
}

static int read_stream(struct yreader *r, struct ado_cnode **root) {
    yaml_event_t ev;
    int docs = 0;
    for (;;) {
        if (next_event(r, &ev) != 0)
            return -1;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1) {
                yerr(r, &ev.start_mark, NULL, "%s", "only one YAML document is allowed per file");
                yaml_event_delete(&ev);
                return -1;
            }
            yaml_event_delete(&ev);
            continue;
        }
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        /* The document's root node. */
        struct ado_cnode *n = ado_cnode_new(ADO_CN_NULL, NULL);
        if (!n) {
            yaml_event_delete(&ev);
            r->nomem = 1;
            return -1;
        }
        *root = n;
        if (parse_value(r, &ev, n, 0) != 0)
            return -1;
    }
}

/* ---- ${ENV} expansion --------------------------------------------------------------- */

/* Expand `${NAME}` and `$$` in n->text. Returns 0, or -1 after reporting the problem. */
static int expand_scalar(struct yreader *r, struct ado_cnode *n) {
    const char *s = n->text;
    if (!strchr(s, '$'))
        return 0;
    size_t cap = strlen(s) + 1, used = 0;
    char *out = malloc(cap);
    if (!out) {
        r->nomem = 1;
        return -1;
    }
    yaml_mark_t m = {0};
    m.line = (size_t)(n->line - 1);
    m.column = (size_t)(n->col - 1);
    while (*s) {
        const char *add = s;
        size_t alen = 1;
        if (s[0] == '$' && s[1] == '$') {
            s += 2;
        } else if (s[0] == '$' && s[1] == '{') {
            const char *end = strchr(s + 2, '}');
            if (!end) {
                yerr(r, &m, n, "%s", "unterminated ${ in value (write $$ for a literal $)");
                free(out);
                return -1;
            }
            size_t nl = (size_t)(end - (s + 2));
            char name[256];
            int ok = nl > 0 && nl < sizeof(name);
            for (size_t i = 0; ok && i < nl; i++) {
                char c = s[2 + i];
                ok = c == '_' || isalnum((unsigned char)c);
            }
            if (!ok) {
                char shown[64];
                snprintf(shown, sizeof(shown), "%.*s", (int)(nl < 40 ? nl : 40), s + 2);
                yerr(r, &m, n, "invalid environment variable name \"%s\" in ${...}", shown);
                free(out);
                return -1;
            }
            memcpy(name, s + 2, nl);
            name[nl] = '\0';
            add = getenv(name);
            if (!add) {
                yerr(r, &m, n, "environment variable %s is not set", name);
                free(out);
                return -1;
            }
            alen = strlen(add);
            s = end + 1;
        } else {
            s++;
        }
        if (used + alen + 1 > cap) {
            size_t nc = (used + alen + 1) * 2;
            char *o = realloc(out, nc);
            if (!o) {
                free(out);
                r->nomem = 1;
                return -1;
            }
            out = o;
            cap = nc;
        }
        memcpy(out + used, add, alen);
        used += alen;
    }
    out[used] = '\0';
    free(n->text);
    n->text = out;
    return 0;
}

static void expand_tree(struct yreader *r, struct ado_cnode *n) {
    if (!n || r->nomem)
        return;
    if (n->kind == ADO_CN_SCALAR) {
        if (expand_scalar(r, n) != 0)
            n->type = ADO_CN_TYPE_INVALID; /* reported: validation skips it */
        return;
    }
    for (size_t i = 0; i < n->n; i++)
        expand_tree(r, n->items[i]);
}

int ado_cnode_parse(const char *file, const char *text, size_t len, struct ado_cnode **root,
                    struct ado_diag *diag) {
    struct yreader r;
    memset(&r, 0, sizeof(r));
    r.file = file;
    r.text = text;
    r.len = len;
    r.diag = diag;
    *root = NULL;
    if (!yaml_parser_initialize(&r.parser))
        return ADO_ENOMEM;
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&r.parser, YAML_UTF8_ENCODING);
    struct ado_cnode *tree = NULL;
    read_stream(&r, &tree);
    yaml_parser_delete(&r.parser);
    if (!r.failed && !r.nomem)
        expand_tree(&r, tree);
    if (r.nomem || r.failed || r.errors) {
        /* Keep the tree after recoverable errors (duplicates, aliases, unset variables)
         * so that validation can report the rest of the file too. */
        if (r.nomem || r.failed) {
            ado_cnode_free(tree);
            return r.nomem ? ADO_ENOMEM : ADO_ECONFIG;
        }
        *root = tree;
        return ADO_ECONFIG;
    }
    *root = tree;
    return 0;
}

/* ---- JSON --------------------------------------------------------------------------- */

static void sb_untyped_scalar(struct ado_strbuf *b, const struct ado_cnode *n) {
    char num[64];
    int64_t iv;
    if (!n->quoted) {
        if (ado_parse_int(n->text, &iv) == 0) {
            snprintf(num, sizeof(num), "%lld", (long long)iv);
            ado_strbuf_puts(b, num);
            return;
        }
        if (strcmp(n->text, "true") == 0 || strcmp(n->text, "false") == 0) {
            ado_strbuf_puts(b, n->text);
            return;
        }
        /* A float in JSON's own syntax: -?digits[.digits][e[+-]digits]. */
        const char *s = n->text;
        int ok = 1;
        if (*s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            ok = 0;
        while (ok && isdigit((unsigned char)*s))
            s++;
        if (ok && *s == '.') {
            s++;
            ok = isdigit((unsigned char)*s);
            while (ok && isdigit((unsigned char)*s))
                s++;
        }
        if (ok && (*s == 'e' || *s == 'E')) {
            s++;
            if (*s == '+' || *s == '-')
                s++;
            ok = isdigit((unsigned char)*s);
            while (ok && isdigit((unsigned char)*s))
                s++;
        }
        if (ok && *s == '\0' && !(n->text[0] == '0' && isdigit((unsigned char)n->text[1]))) {
            double d = strtod(n->text, NULL);
            if (isfinite(d)) {
                ado_strbuf_puts(b, n->text);
                return;
            }
        }
    }
    ado_strbuf_json_str(b, n->text);
}

static void sb_node(struct ado_strbuf *b, const struct ado_cnode *n, unsigned flags) {
    char num[64];
    if ((flags & ADO_JSON_REDACT) && n->secret && n->kind != ADO_CN_NULL) {
        ado_strbuf_puts(b, "\"***\"");
        return;
    }
    switch (n->kind) {
    case ADO_CN_NULL:
        if (n->type == ADO_T_MAP)
            ado_strbuf_puts(b, "{}");
        else if (n->type == ADO_T_LIST)
            ado_strbuf_puts(b, "[]");
        else
            ado_strbuf_puts(b, "null");
        return;
    case ADO_CN_SCALAR:
        switch (n->type) {
        case ADO_T_INT:
        case ADO_T_SIZE:
        case ADO_T_DURATION:
            snprintf(num, sizeof(num), "%lld", (long long)n->ival);
            ado_strbuf_puts(b, num);
            return;
        case ADO_T_BOOL:
            ado_strbuf_puts(b, n->ival ? "true" : "false");
            return;
        case ADO_T_STRING:
        case ADO_T_ENUM:
            ado_strbuf_json_str(b, n->text);
            return;
        default:
            sb_untyped_scalar(b, n);
            return;
        }
    case ADO_CN_MAP:
        ado_strbuf_put(b, "{", 1);
        for (size_t i = 0; i < n->n; i++) {
            if (i)
                ado_strbuf_put(b, ",", 1);
            ado_strbuf_json_str(b, n->items[i]->key ? n->items[i]->key : "");
            ado_strbuf_put(b, ":", 1);
            sb_node(b, n->items[i], flags);
        }
        ado_strbuf_put(b, "}", 1);
        return;
    case ADO_CN_LIST:
        ado_strbuf_put(b, "[", 1);
        for (size_t i = 0; i < n->n; i++) {
            if (i)
                ado_strbuf_put(b, ",", 1);
            sb_node(b, n->items[i], flags);
        }
        ado_strbuf_put(b, "]", 1);
        return;
    default:
        ado_strbuf_puts(b, "null");
    }
}

char *ado_cnode_to_json_ex(const struct ado_cnode *n, unsigned flags) {
    struct ado_strbuf b = {0};
    if (!n)
        ado_strbuf_puts(&b, "null");
    else
        sb_node(&b, n, flags);
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *ado_cnode_to_json(const struct ado_cnode *n) {
    return ado_cnode_to_json_ex(n, 0);
}
