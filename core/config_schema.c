/* Schema validation of configuration trees (the kernel's and each plugin's) and the value
 * parsers (int, bool, duration, size) shared with the Lua host. */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ado/errors.h"

/* ---- value parsers ------------------------------------------------------------------ */

/* Read an unsigned decimal number at *s (at least one digit), advancing *s. Sets *ovf when
 * it exceeds `limit`. */
static int read_digits(const char **s, uint64_t limit, uint64_t *out, int *ovf) {
    const char *p = *s;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            *ovf = 1;
        else
            v = v * 10 + d;
        p++;
    }
    *s = p;
    *out = v;
    return 0;
}

/* As ado_parse_int; *ovf tells an overflow apart from a malformed number. */
static int parse_int_ex(const char *s, int64_t *out, int *ovf) {
    *ovf = 0;
    if (!s || !*s)
        return ADO_EINVAL;
    int neg = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        if (!isxdigit((unsigned char)*s))
            return ADO_EINVAL;
        for (; isxdigit((unsigned char)*s); s++) {
            unsigned d = isdigit((unsigned char)*s)
                             ? (unsigned)(*s - '0')
                             : (unsigned)(tolower((unsigned char)*s) - 'a' + 10);
            if (v > (limit - d) / 16)
                *ovf = 1;
            else
                v = v * 16 + d;
        }
    } else if (read_digits(&s, limit, &v, ovf) != 0) {
        return ADO_EINVAL;
    }
    if (*s != '\0' || *ovf)
        return ADO_EINVAL;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int ado_parse_int(const char *s, int64_t *out) {
    int ovf;
    int64_t v;
    if (!out || parse_int_ex(s, &v, &ovf) != 0)
        return ADO_EINVAL;
    *out = v;
    return 0;
}

int ado_parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (!s || !out)
        return ADO_EINVAL;
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return ADO_EINVAL;
}

int ado_parse_duration_ms(const char *s, int64_t *out) {
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    if (!s || !*s || !out)
        return ADO_EINVAL;
    int64_t total = 0;
    int last = -1; /* index of the previous unit: units must decrease */
    const char *p = s;
    while (*p) {
        uint64_t v;
        int ovf = 0;
        if (read_digits(&p, (uint64_t)INT64_MAX, &v, &ovf) != 0 || ovf)
            return ADO_EINVAL;
        if (*p == '\0' && p == s + strspn(s, "0123456789")) {
            total = (int64_t)v; /* a bare number: milliseconds */
            break;
        }
        size_t ul = 0;
        while (isalpha((unsigned char)p[ul]))
            ul++;
        int u = -1;
        for (int i = 0; i < 5; i++)
            if (strlen(units[i].unit) == ul && strncmp(p, units[i].unit, ul) == 0)
                u = i;
        if (u < 0 || u <= last)
            return ADO_EINVAL;
        last = u;
        if (v > (uint64_t)(INT64_MAX / units[u].ms))
            return ADO_EINVAL;
        int64_t part = (int64_t)v * units[u].ms;
        if (total > INT64_MAX - part)
            return ADO_EINVAL;
        total += part;
        p += ul;
    }
    *out = total;
    return 0;
}

int ado_parse_size_bytes(const char *s, int64_t *out) {
    static const struct {
        const char *unit;
        int64_t mul;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"KiB", 1LL << 10},
        {"MiB", 1LL << 20},
        {"GiB", 1LL << 30},
        {"TiB", 1LL << 40},
        {"KB", 1000LL},
        {"kB", 1000LL},
        {"MB", 1000000LL},
        {"GB", 1000000000LL},
        {"TB", 1000000000000LL},
    };
    if (!s || !out)
        return ADO_EINVAL;
    const char *p = s;
    uint64_t v;
    int ovf = 0;
    if (read_digits(&p, (uint64_t)INT64_MAX, &v, &ovf) != 0 || ovf)
        return ADO_EINVAL;
    if (*p == ' ' && p[1] != '\0')
        p++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (v > (uint64_t)(INT64_MAX / units[i].mul))
                return ADO_EINVAL;
            *out = (int64_t)v * units[i].mul;
            return 0;
        }
    }
    return ADO_EINVAL;
}

/* ---- formatting values for messages ------------------------------------------------- */

static void fmt_size(char *buf, size_t n, int64_t v) {
    static const char *const u[] = {"TiB", "GiB", "MiB", "KiB"};
    static const int sh[] = {40, 30, 20, 10};
    for (int i = 0; i < 4; i++) {
        int64_t m = (int64_t)1 << sh[i];
        if (v != 0 && v % m == 0) {
            snprintf(buf, n, "%lld%s", (long long)(v / m), u[i]);
            return;
        }
    }
    snprintf(buf, n, "%lld", (long long)v);
}

static void fmt_duration(char *buf, size_t n, int64_t v) {
    static const char *const u[] = {"d", "h", "m", "s"};
    static const int64_t ms[] = {86400000, 3600000, 60000, 1000};
    for (int i = 0; i < 4; i++) {
        if (v != 0 && v % ms[i] == 0) {
            snprintf(buf, n, "%lld%s", (long long)(v / ms[i]), u[i]);
            return;
        }
    }
    snprintf(buf, n, "%lldms", (long long)v);
}

static void fmt_value(char *buf, size_t n, int type, int64_t v) {
    if (type == ADO_T_SIZE)
        fmt_size(buf, n, v);
    else if (type == ADO_T_DURATION)
        fmt_duration(buf, n, v);
    else
        snprintf(buf, n, "%lld", (long long)v);
}

/* ---- did you mean ------------------------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

static const char *suggest(const char *key, const struct ado_schema *fields) {
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    size_t klen = strlen(key);
    size_t limit = klen <= 3 ? 1 : klen <= 6 ? 2 : 3;
    for (const struct ado_schema *f = fields; f && f->key; f++) {
        size_t dist = edit_distance(key, f->key);
        if (dist <= limit && dist < bestd) {
            best = f->key;
            bestd = dist;
        }
    }
    return best;
}

/* ---- validation --------------------------------------------------------------------- */

struct vctx {
    const char *file;
    struct ado_diag *diag;
    int errors;
};

static void verr(struct vctx *v, int line, int col, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void verr(struct vctx *v, int line, int col, const char *path, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ado_diag_add(v->diag, v->file, line, col, path, "%s", msg);
    v->errors++;
}

static char *path_join(const char *prefix, const char *seg) {
    size_t lp = prefix ? strlen(prefix) : 0, ls = strlen(seg);
    char *p = malloc(lp + ls + 2);
    if (!p)
        return NULL;
    if (lp) {
        memcpy(p, prefix, lp);
        p[lp] = '.';
        memcpy(p + lp + 1, seg, ls + 1);
    } else {
        memcpy(p, seg, ls + 1);
    }
    return p;
}

/* "got ..." for messages: never shows the text of a secret. */
static void describe(char *buf, size_t n, const struct ado_cnode *node, int secret) {
    switch (node->kind) {
    case ADO_CN_MAP:
        snprintf(buf, n, "a map");
        break;
    case ADO_CN_LIST:
        snprintf(buf, n, "a list");
        break;
    case ADO_CN_NULL:
        snprintf(buf, n, "nothing");
        break;
    default:
        if (secret)
            snprintf(buf, n, "a secret value");
        else
            snprintf(buf, n, "\"%.80s%s\"", node->text, strlen(node->text) > 80 ? "..." : "");
    }
}

static const char *type_what(const struct ado_schema *f, char *buf, size_t n) {
    switch (f->type) {
    case ADO_T_STRING:
        return "a string";
    case ADO_T_INT:
        return "an integer";
    case ADO_T_BOOL:
        return "a boolean (true/false, yes/no, on/off)";
    case ADO_T_DURATION:
        return "a duration like 250ms, 10s, 5m, 24h, 7d or 1h30m";
    case ADO_T_SIZE:
        return "a size like 512, 64KiB, 64MiB, 1GiB or 10MB";
    case ADO_T_ENUM: {
        size_t used = (size_t)snprintf(buf, n, "one of ");
        for (size_t i = 0; f->choices && f->choices[i] && used < n; i++)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", f->choices[i]);
        return buf;
    }
    case ADO_T_MAP:
        return "a map";
    case ADO_T_LIST:
        return "a list";
    default:
        return "a value";
    }
}

static void type_error(struct vctx *v, const struct ado_cnode *node, const struct ado_schema *f,
                       const char *path) {
    char got[128], what[512];
    describe(got, sizeof(got), node, (f->flags & ADO_F_SECRET) != 0);
    verr(v, node->line, node->col, path, "expected %s, got %s", type_what(f, what, sizeof(what)),
         got);
}

static void range_error(struct vctx *v, const struct ado_cnode *node, const struct ado_schema *f,
                        const char *path, int64_t value) {
    char lo[48], hi[48], got[48];
    int t = f->type;
    fmt_value(lo, sizeof(lo), t, f->min);
    fmt_value(hi, sizeof(hi), t, f->max);
    fmt_value(got, sizeof(got), t, value);
    char rng[128];
    if (f->max == INT64_MAX)
        snprintf(rng, sizeof(rng), "at least %s", lo);
    else if (f->min == INT64_MIN)
        snprintf(rng, sizeof(rng), "at most %s", hi);
    else
        snprintf(rng, sizeof(rng), "between %s and %s", lo, hi);
    if (t == ADO_T_STRING)
        verr(v, node->line, node->col, path, "is %lld characters long: must be %s characters",
             (long long)value, rng);
    else if (t == ADO_T_LIST)
        verr(v, node->line, node->col, path, "has %lld items: must have %s items", (long long)value,
             rng);
    else
        verr(v, node->line, node->col, path, "%s is out of range: must be %s", got, rng);
}

static void check_range(struct vctx *v, const struct ado_cnode *node, const struct ado_schema *f,
                        const char *path, int64_t value) {
    if ((f->flags & ADO_F_RANGE) && (value < f->min || value > f->max))
        range_error(v, node, f, path, value);
}

static void validate_map(struct vctx *v, struct ado_cnode *map, const struct ado_schema *fields,
                         const char *path);

static int validate_scalar(struct vctx *v, struct ado_cnode *node, const struct ado_schema *f,
                           const char *path) {
    if (node->kind != ADO_CN_SCALAR) {
        type_error(v, node, f, path);
        return -1;
    }
    int64_t iv = 0;
    int ok = 0, ovf = 0, b;
    switch (f->type) {
    case ADO_T_STRING:
        check_range(v, node, f, path, (int64_t)strlen(node->text));
        node->type = ADO_T_STRING;
        return 0;
    case ADO_T_INT:
        ok = parse_int_ex(node->text, &iv, &ovf) == 0;
        if (ovf) {
            verr(v, node->line, node->col, path,
                 "integer \"%.40s\" does not fit in 64 bits (from %lld to %lld)", node->text,
                 (long long)INT64_MIN, (long long)INT64_MAX);
            return -1;
        }
        break;
    case ADO_T_BOOL:
        ok = ado_parse_bool(node->text, &b) == 0;
        iv = ok ? b : 0;
        break;
    case ADO_T_DURATION:
        ok = ado_parse_duration_ms(node->text, &iv) == 0;
        break;
    case ADO_T_SIZE:
        ok = ado_parse_size_bytes(node->text, &iv) == 0;
        break;
    case ADO_T_ENUM:
        for (int64_t i = 0; f->choices && f->choices[i]; i++) {
            if (strcmp(node->text, f->choices[i]) == 0) {
                ok = 1;
                iv = i;
                break;
            }
        }
        break;
    default:
        break;
    }
    if (!ok) {
        type_error(v, node, f, path);
        return -1;
    }
    if (f->type != ADO_T_BOOL && f->type != ADO_T_ENUM)
        check_range(v, node, f, path, iv);
    node->ival = iv;
    node->type = f->type;
    return 0;
}

static void validate_value(struct vctx *v, struct ado_cnode *node, const struct ado_schema *f,
                           const char *path) {
    if (node->type == ADO_CN_TYPE_INVALID)
        return;
    if (f->flags & ADO_F_SECRET)
        node->secret = 1;
    switch (f->type) {
    case ADO_T_ANY:
        node->type = ADO_T_ANY;
        return;
    case ADO_T_MAP:
        if (node->kind == ADO_CN_NULL)
            node->kind = ADO_CN_MAP;
        if (node->kind != ADO_CN_MAP) {
            type_error(v, node, f, path);
            return;
        }
        node->type = ADO_T_MAP;
        if (f->fields)
            validate_map(v, node, f->fields, path);
        return;
    case ADO_T_LIST:
        if (node->kind == ADO_CN_NULL)
            node->kind = ADO_CN_LIST;
        if (node->kind != ADO_CN_LIST) {
            type_error(v, node, f, path);
            return;
        }
        node->type = ADO_T_LIST;
        check_range(v, node, f, path, (int64_t)node->n);
        if (!f->fields || !f->fields[0].type)
            return;
        for (size_t i = 0; i < node->n; i++) {
            char idx[32];
            snprintf(idx, sizeof(idx), "%zu", i);
            char *p = path_join(path, idx);
            validate_value(v, node->items[i], &f->fields[0], p ? p : path);
            free(p);
        }
        return;
    default:
        validate_scalar(v, node, f, path);
        return;
    }
}

static int has_required(const struct ado_schema *fields) {
    for (const struct ado_schema *f = fields; f && f->key; f++)
        if (f->flags & ADO_F_REQUIRED)
            return 1;
    return 0;
}

/* Add the node for an absent key from the schema's default, if it has one. */
static void add_default(struct vctx *v, struct ado_cnode *map, const struct ado_schema *f,
                        const char *path) {
    struct ado_cnode *n = NULL;
    if (f->type == ADO_T_MAP) {
        if (has_required(f->fields))
            return;
        n = ado_cnode_new(ADO_CN_MAP, f->key);
    } else if (f->default_value && f->type != ADO_T_LIST && f->type != ADO_T_ANY) {
        n = ado_cnode_new(ADO_CN_SCALAR, f->key);
        if (n && !(n->text = strdup(f->default_value))) {
            ado_cnode_free(n);
            n = NULL;
        }
    } else {
        return;
    }
    if (!n || ado_cnode_append(map, n) != 0) {
        ado_cnode_free(n);
        verr(v, map->line, map->col, path, "out of memory adding the default of \"%s\"", f->key);
        return;
    }
    n->from_default = 1;
    n->quoted = 1;
    n->line = n->key_line = map->line;
    n->col = n->key_col = map->col;
    char *p = path_join(path, f->key);
    int before = v->errors;
    validate_value(v, n, f, p ? p : path);
    if (v->errors != before)
        verr(v, map->line, map->col, p ? p : path,
             "the schema's default \"%s\" is invalid (a bug in the schema)",
             f->default_value ? f->default_value : "");
    free(p);
}

static void unknown_key(struct vctx *v, const struct ado_cnode *item,
                        const struct ado_schema *fields, const char *path) {
    const char *s = suggest(item->key, fields);
    if (s) {
        verr(v, item->key_line, item->key_col, path, "unknown key \"%s\" (did you mean \"%s\"?)",
             item->key, s);
        return;
    }
    char known[512];
    size_t used = 0;
    known[0] = '\0';
    for (const struct ado_schema *f = fields; f && f->key && used < sizeof(known); f++)
        used +=
            (size_t)snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "", f->key);
    if (used)
        verr(v, item->key_line, item->key_col, path, "unknown key \"%s\" (known keys: %s)",
             item->key, known);
    else
        verr(v, item->key_line, item->key_col, path, "unknown key \"%s\" (no keys are allowed)",
             item->key);
}

static void validate_map(struct vctx *v, struct ado_cnode *map, const struct ado_schema *fields,
                         const char *path) {
    size_t nfile = map->n; /* defaults appended below are validated by add_default */
    for (size_t i = 0; i < nfile; i++) {
        struct ado_cnode *item = map->items[i];
        const struct ado_schema *f = fields;
        while (f->key && strcmp(f->key, item->key ? item->key : "") != 0)
            f++;
        char *p = path_join(path, item->key ? item->key : "");
        if (!f->key)
            unknown_key(v, item, fields, p ? p : path);
        else
            validate_value(v, item, f, p ? p : path);
        free(p);
    }
    for (const struct ado_schema *f = fields; f->key; f++) {
        int present = 0;
        for (size_t i = 0; i < map->n && !present; i++)
            present = map->items[i]->key && strcmp(map->items[i]->key, f->key) == 0;
        if (present)
            continue;
        if (f->flags & ADO_F_REQUIRED)
            verr(v, map->line, map->col, path, "missing required key \"%s\"", f->key);
        else
            add_default(v, map, f, path);
    }
}

int ado_config_validate(struct ado_config *cfg, struct ado_cnode *block,
                        const struct ado_schema *schema, const char *path, struct ado_diag *diag) {
    struct vctx v = {.file = cfg ? cfg->file : NULL, .diag = diag, .errors = 0};
    size_t first = diag ? diag->n : 0;
    char derived[512];
    static const struct ado_schema none[] = {ADO_SCHEMA_END};
    if (!schema)
        schema = none;
    struct ado_cnode *tmp = NULL;
    if (!block) {
        tmp = ado_cnode_new(ADO_CN_MAP, NULL);
        if (!tmp)
            return 1;
        tmp->line = tmp->col = 1;
        block = tmp;
    }
    if (!path) {
        derived[0] = '\0';
        ado_cnode_path(block, derived, sizeof(derived));
        path = derived;
    }
    struct ado_schema top = {.key = "", .type = ADO_T_MAP, .fields = schema};
    validate_value(&v, block, &top, path);
    ado_cnode_free(tmp);
    if (diag)
        ado_diag_sort(diag, first);
    return v.errors;
}
