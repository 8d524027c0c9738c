/* Plugin-defined counters and gauges, rendered in the Prometheus text format.
 *
 * Series are kept in an open-addressing hash keyed by name + labels; a name keeps the type
 * (counter or gauge) it was first used with. The number of series is bounded so that a
 * plugin minting labels from client input cannot grow node memory without bound. */
#include "metrics.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ado/errors.h"

#define METRICS_MAX_SERIES 4096
#define METRICS_MAX_LABELS 512 /* bytes of label text per series */

enum { M_COUNTER = 1, M_GAUGE = 2 };

struct series {
    char *name;
    char *labels; /* "" when none */
    uint64_t hash;
    int type;
    double v;
};

struct ado_metrics {
    struct series *tab; /* power-of-two size, name == NULL: empty */
    size_t cap, n;
};

struct ado_metrics *ado_metrics_new(void) {
    struct ado_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 64;
    m->tab = calloc(m->cap, sizeof *m->tab);
    if (!m->tab) {
        free(m);
        return NULL;
    }
    return m;
}

void ado_metrics_free(struct ado_metrics *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        free(m->tab[i].name);
        free(m->tab[i].labels);
    }
    free(m->tab);
    free(m);
}

static int name_valid(const char *s) {
    if (!s || !*s)
        return 0;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return 0;
    for (const char *p = s + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
            return 0;
    return strlen(s) <= 200;
}

/* k="v",k2="v2" with label names [a-zA-Z_][a-zA-Z0-9_]* and values escaped as Prometheus
 * wants (\\, \", \n). */
static int labels_valid(const char *s) {
    if (!s || !*s)
        return 1;
    if (strlen(s) > METRICS_MAX_LABELS)
        return 0;
    const char *p = s;
    for (;;) {
        if (!(isalpha((unsigned char)*p) || *p == '_'))
            return 0;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (*p++ != '=' || *p++ != '"')
            return 0;
        while (*p != '"') {
            if (!*p || *p == '\n')
                return 0;
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n')
                    return 0;
            }
            p++;
        }
        p++;
        if (!*p)
            return 1;
        if (*p++ != ',')
            return 0;
    }
}

static uint64_t hash2(const char *a, const char *b) {
    uint64_t h = 1469598103934665603ull;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ull;
    return h;
}

static int grow(struct ado_metrics *m) {
    size_t ncap = m->cap * 2;
    struct series *nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return ADO_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->tab[i].name)
            continue;
        size_t j = m->tab[i].hash & (ncap - 1);
        while (nt[j].name)
            j = (j + 1) & (ncap - 1);
        nt[j] = m->tab[i];
    }
    free(m->tab);
    m->tab = nt;
    m->cap = ncap;
    return 0;
}

/* Find the series, creating it with `type`. A name used with another type is ADO_EINVAL. */
static int lookup(struct ado_metrics *m, const char *name, const char *labels, int type,
                  struct series **out) {
    if (!m || !name_valid(name) || !labels_valid(labels))
        return ADO_EINVAL;
    if (!labels)
        labels = "";
    uint64_t h = hash2(name, labels);
    size_t i = h & (m->cap - 1);
    while (m->tab[i].name) {
        struct series *s = &m->tab[i];
        if (s->hash == h && !strcmp(s->name, name) && !strcmp(s->labels, labels)) {
            if (s->type != type)
                return ADO_EINVAL;
            *out = s;
            return 0;
        }
        i = (i + 1) & (m->cap - 1);
    }
    /* A name keeps one type across its label sets. */
    for (size_t k = 0; k < m->cap; k++)
        if (m->tab[k].name && m->tab[k].type != type && !strcmp(m->tab[k].name, name))
            return ADO_EINVAL;
    if (m->n >= METRICS_MAX_SERIES)
        return ADO_ELIMIT;
    if ((m->n + 1) * 2 > m->cap) {
        if (grow(m))
            return ADO_ENOMEM;
        return lookup(m, name, labels, type, out);
    }
    char *n = strdup(name), *l = strdup(labels);
    if (!n || !l) {
        free(n);
        free(l);
        return ADO_ENOMEM;
    }
    struct series *s = &m->tab[i];
    s->name = n;
    s->labels = l;
    s->hash = h;
    s->type = type;
    s->v = 0;
    m->n++;
    *out = s;
    return 0;
}

int ado_metrics_add(struct ado_metrics *m, const char *name, const char *labels, double d) {
    struct series *s;
    if (!(d >= 0)) /* counters only go up (rejects NaN too) */
        return ADO_EINVAL;
    int rc = lookup(m, name, labels, M_COUNTER, &s);
    if (rc)
        return rc;
    s->v += d;
    return 0;
}

int ado_metrics_set(struct ado_metrics *m, const char *name, const char *labels, double v) {
    struct series *s;
    int rc = lookup(m, name, labels, M_GAUGE, &s);
    if (rc)
        return rc;
    s->v = v;
    return 0;
}

static int cmp_series(const void *a, const void *b) {
    const struct series *x = *(const struct series *const *)a;
    const struct series *y = *(const struct series *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

char *ado_metrics_render(const struct ado_metrics *m, size_t *len) {
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    if (!f)
        return NULL;
    struct series **v = NULL;
    if (m && m->n) {
        v = malloc(m->n * sizeof *v);
        if (!v) {
            fclose(f);
            free(buf);
            return NULL;
        }
        size_t k = 0;
        for (size_t i = 0; i < m->cap; i++)
            if (m->tab[i].name)
                v[k++] = &m->tab[i];
        qsort(v, k, sizeof *v, cmp_series);
        const char *last = NULL;
        for (size_t i = 0; i < k; i++) {
            if (!last || strcmp(last, v[i]->name))
                fprintf(f, "# TYPE %s %s\n", v[i]->name,
                        v[i]->type == M_COUNTER ? "counter" : "gauge");
            last = v[i]->name;
            if (*v[i]->labels)
                fprintf(f, "%s{%s} %.17g\n", v[i]->name, v[i]->labels, v[i]->v);
            else
                fprintf(f, "%s %.17g\n", v[i]->name, v[i]->v);
        }
    }
    free(v);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = sz;
    return buf;
}
