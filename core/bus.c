/* The event bus: dotted topics, `*` and `>` wildcards, FIFO delivery, no recursion.
 *
 * Matching is cached per topic: the first publish on a topic computes the list of
 * subscribers whose pattern matches it; a subscribe or unsubscribe bumps a generation
 * number so stale lists are rebuilt on their next use. A list is never freed while it is
 * being iterated, because delivery is never recursive: an event published from inside a
 * subscriber is copied to a FIFO that the outermost publish drains. Unsubscribed entries
 * are only marked dead during a delivery and freed once the FIFO is drained. */
#include "bus.h"

#include <stdlib.h>
#include <string.h>

#include "ado/errors.h"
#include "node.h"

#define CACHE_MAX 4096 /* distinct topics remembered (counts past it go to "other") */

struct sub {
    uint64_t id;
    char *pattern;
    struct ado_plugin *owner;
    ado_bus_cb cb;
    void *arg;
    int dead;
};

struct centry {
    char *topic; /* NULL: empty slot */
    uint64_t hash;
    uint32_t gen;
    struct sub **list;
    size_t n;
    uint64_t count;
};

struct qev {
    char *topic;
    void *data;
    size_t len;
};

struct ado_bus {
    struct sub **subs; /* live subscriptions, in subscription order */
    size_t nsubs, capsubs;
    struct sub **graveyard; /* dead subscriptions waiting for the end of a delivery */
    size_t ngrave, capgrave;
    struct centry *cache; /* open addressing, power-of-two size */
    size_t ccap, cn;
    uint32_t gen;
    struct qev *q; /* ring */
    size_t qhead, qlen, qcap;
    int delivering;
    uint64_t next_id;
    uint64_t published, delivered, failed, other_count;
};

struct ado_bus *ado_bus_new(void) {
    struct ado_bus *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->ccap = 64;
    b->cache = calloc(b->ccap, sizeof *b->cache);
    if (!b->cache) {
        free(b);
        return NULL;
    }
    b->gen = 1;
    b->next_id = 1;
    return b;
}

static void sub_free(struct sub *s) {
    free(s->pattern);
    free(s);
}

static void cache_clear(struct ado_bus *b) {
    for (size_t i = 0; i < b->ccap; i++) {
        if (b->cache[i].topic) {
            b->other_count += b->cache[i].count;
            free(b->cache[i].topic);
            free(b->cache[i].list);
        }
    }
    memset(b->cache, 0, b->ccap * sizeof *b->cache);
    b->cn = 0;
}

void ado_bus_free(struct ado_bus *b) {
    if (!b)
        return;
    cache_clear(b);
    free(b->cache);
    for (size_t i = 0; i < b->nsubs; i++)
        sub_free(b->subs[i]);
    free(b->subs);
    for (size_t i = 0; i < b->ngrave; i++)
        sub_free(b->graveyard[i]);
    free(b->graveyard);
    for (size_t i = 0; i < b->qlen; i++) {
        struct qev *e = &b->q[(b->qhead + i) % b->qcap];
        free(e->topic);
        free(e->data);
    }
    free(b->q);
    free(b);
}

static int seg_char_ok(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Validate dotted segments; wildcards allowed when `pattern` is set. */
static int validate(const char *s, int pattern) {
    if (!s || !*s || strlen(s) > 255)
        return ADO_EINVAL;
    const char *p = s;
    for (;;) {
        const char *seg = p;
        while (*p && *p != '.')
            p++;
        size_t n = (size_t)(p - seg);
        if (n == 0)
            return ADO_EINVAL;
        if (n == 1 && (*seg == '*' || *seg == '>')) {
            if (!pattern)
                return ADO_EINVAL;
            if (*seg == '>' && *p)
                return ADO_EINVAL; /* `>` only last */
        } else {
            for (size_t i = 0; i < n; i++)
                if (!seg_char_ok(seg[i]))
                    return ADO_EINVAL;
        }
        if (!*p)
            return 0;
        p++;
    }
}

int ado_bus_topic_valid(const char *topic) {
    return validate(topic, 0);
}

int ado_bus_pattern_valid(const char *pattern) {
    return validate(pattern, 1);
}

int ado_bus_match(const char *pat, const char *top) {
    const char *p = pat, *t = top;
    for (;;) {
        if (p[0] == '>' && p[1] == 0)
            return *t != 0; /* one or more remaining segments */
        if (!*t)
            return 0;
        const char *te = t;
        while (*te && *te != '.')
            te++;
        if (p[0] == '*' && (p[1] == '.' || p[1] == 0)) {
            p++;
        } else {
            size_t n = (size_t)(te - t);
            if (strncmp(p, t, n) != 0 || (p[n] != '.' && p[n] != 0))
                return 0;
            p += n;
        }
        t = te;
        if (*p == 0 && *t == 0)
            return 1;
        if (*p == 0 || *t == 0)
            return 0;
        p++; /* both at '.' */
        t++;
    }
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int cache_rebuild(struct ado_bus *b, struct centry *e) {
    size_t n = 0;
    for (size_t i = 0; i < b->nsubs; i++)
        if (ado_bus_match(b->subs[i]->pattern, e->topic))
            n++;
    struct sub **list = NULL;
    if (n) {
        list = malloc(n * sizeof *list);
        if (!list)
            return ADO_ENOMEM;
        n = 0;
        for (size_t i = 0; i < b->nsubs; i++)
            if (ado_bus_match(b->subs[i]->pattern, e->topic))
                list[n++] = b->subs[i];
    }
    free(e->list);
    e->list = list;
    e->n = n;
    e->gen = b->gen;
    return 0;
}

static int cache_grow(struct ado_bus *b) {
    size_t ncap = b->ccap * 2;
    struct centry *nc = calloc(ncap, sizeof *nc);
    if (!nc)
        return ADO_ENOMEM;
    for (size_t i = 0; i < b->ccap; i++) {
        struct centry *e = &b->cache[i];
        if (!e->topic)
            continue;
        size_t j = e->hash & (ncap - 1);
        while (nc[j].topic)
            j = (j + 1) & (ncap - 1);
        nc[j] = *e;
    }
    free(b->cache);
    b->cache = nc;
    b->ccap = ncap;
    return 0;
}

/* The cache entry for `topic`, up to date. NULL on allocation failure. */
static struct centry *lookup(struct ado_bus *b, const char *topic) {
    uint64_t h = hash_str(topic);
    size_t mask = b->ccap - 1, i = h & mask;
    while (b->cache[i].topic) {
        struct centry *e = &b->cache[i];
        if (e->hash == h && strcmp(e->topic, topic) == 0) {
            if (e->gen != b->gen && cache_rebuild(b, e) < 0)
                return NULL;
            return e;
        }
        i = (i + 1) & mask;
    }
    /* A new topic. Keep the table at most half full; past CACHE_MAX start over. */
    if (b->cn >= CACHE_MAX) {
        cache_clear(b);
        return lookup(b, topic);
    }
    if ((b->cn + 1) * 2 > b->ccap) {
        if (cache_grow(b) < 0)
            return NULL;
        return lookup(b, topic);
    }
    struct centry *e = &b->cache[i];
    e->topic = strdup(topic);
    if (!e->topic)
        return NULL;
    e->hash = h;
    e->list = NULL;
    e->n = 0;
    e->count = 0;
    if (cache_rebuild(b, e) < 0) {
        free(e->topic);
        e->topic = NULL;
        return NULL;
    }
    b->cn++;
    return e;
}

static void deliver(struct ado_bus *b, const char *topic, const void *data, size_t len) {
    struct centry *e = lookup(b, topic);
    b->published++;
    if (!e)
        return; /* out of memory: counted as published, delivered to nobody */
    e->count++;
    struct sub **list = e->list;
    size_t n = e->n;
    for (size_t i = 0; i < n; i++) {
        struct sub *s = list[i];
        if (s->dead)
            continue;
        if (s->owner && !ado_plugin_callable(s->owner))
            continue;
        int rc = s->cb(s->arg, topic, data, len);
        b->delivered++;
        if (rc < 0)
            b->failed++;
        if (s->owner)
            ado_plugin_outcome(s->owner, rc, topic);
    }
}

static int enqueue(struct ado_bus *b, const char *topic, const void *data, size_t len) {
    if (b->qlen == b->qcap) {
        size_t ncap = b->qcap ? b->qcap * 2 : 16;
        struct qev *nq = malloc(ncap * sizeof *nq);
        if (!nq)
            return ADO_ENOMEM;
        for (size_t i = 0; i < b->qlen; i++)
            nq[i] = b->q[(b->qhead + i) % b->qcap];
        free(b->q);
        b->q = nq;
        b->qcap = ncap;
        b->qhead = 0;
    }
    struct qev ev = {strdup(topic), malloc(len ? len : 1), len};
    if (!ev.topic || !ev.data) {
        free(ev.topic);
        free(ev.data);
        return ADO_ENOMEM;
    }
    if (len)
        memcpy(ev.data, data, len);
    b->q[(b->qhead + b->qlen) % b->qcap] = ev;
    b->qlen++;
    return 0;
}

static void bury_dead(struct ado_bus *b) {
    for (size_t i = 0; i < b->ngrave; i++)
        sub_free(b->graveyard[i]);
    b->ngrave = 0;
}

int ado_bus_publish(struct ado_bus *b, const char *topic, const void *data, size_t len) {
    if (ado_bus_topic_valid(topic) < 0 || (len && !data))
        return ADO_EINVAL;
    if (b->delivering)
        return enqueue(b, topic, data, len);
    b->delivering = 1;
    deliver(b, topic, data, len);
    while (b->qlen) {
        struct qev ev = b->q[b->qhead];
        b->qhead = (b->qhead + 1) % b->qcap;
        b->qlen--;
        deliver(b, ev.topic, ev.data, ev.len);
        free(ev.topic);
        free(ev.data);
    }
    b->delivering = 0;
    if (b->ngrave)
        bury_dead(b);
    return 0;
}

int ado_bus_subscribe(struct ado_bus *b, const char *pattern, struct ado_plugin *owner,
                      ado_bus_cb cb, void *arg, uint64_t *id) {
    if (!cb || ado_bus_pattern_valid(pattern) < 0)
        return ADO_EINVAL;
    if (b->nsubs == b->capsubs) {
        size_t ncap = b->capsubs ? b->capsubs * 2 : 16;
        struct sub **ns = realloc(b->subs, ncap * sizeof *ns);
        if (!ns)
            return ADO_ENOMEM;
        b->subs = ns;
        b->capsubs = ncap;
    }
    struct sub *s = calloc(1, sizeof *s);
    if (!s || !(s->pattern = strdup(pattern))) {
        free(s);
        return ADO_ENOMEM;
    }
    s->id = b->next_id++;
    s->owner = owner;
    s->cb = cb;
    s->arg = arg;
    b->subs[b->nsubs++] = s;
    b->gen++;
    if (id)
        *id = s->id;
    return 0;
}

/* Remove subs[i]: freed now, or buried until the delivery ends. */
static int remove_at(struct ado_bus *b, size_t i) {
    struct sub *s = b->subs[i];
    memmove(&b->subs[i], &b->subs[i + 1], (b->nsubs - i - 1) * sizeof *b->subs);
    b->nsubs--;
    b->gen++;
    s->dead = 1;
    if (!b->delivering) {
        sub_free(s);
        return 0;
    }
    if (b->ngrave == b->capgrave) {
        size_t ncap = b->capgrave ? b->capgrave * 2 : 8;
        struct sub **ng = realloc(b->graveyard, ncap * sizeof *ng);
        if (!ng)
            return ADO_ENOMEM; /* leaks s until free: it is dead, never called again */
        b->graveyard = ng;
        b->capgrave = ncap;
    }
    b->graveyard[b->ngrave++] = s;
    return 0;
}

int ado_bus_unsubscribe(struct ado_bus *b, uint64_t id, struct ado_plugin *owner) {
    for (size_t i = 0; i < b->nsubs; i++) {
        if (b->subs[i]->id != id)
            continue;
        if (owner && b->subs[i]->owner != owner)
            return ADO_EPERM;
        remove_at(b, i);
        return 0;
    }
    return ADO_ENOTFOUND;
}

void ado_bus_unsubscribe_owner(struct ado_bus *b, struct ado_plugin *owner) {
    for (size_t i = b->nsubs; i-- > 0;)
        if (b->subs[i]->owner == owner)
            remove_at(b, i);
}

void ado_bus_stats(const struct ado_bus *b, struct ado_bus_stats *out) {
    out->published = b->published;
    out->delivered = b->delivered;
    out->failed = b->failed;
    out->subscriptions = b->nsubs;
}

void ado_bus_topic_counts(const struct ado_bus *b,
                          void (*fn)(void *arg, const char *topic, uint64_t count), void *arg) {
    for (size_t i = 0; i < b->ccap; i++)
        if (b->cache[i].topic)
            fn(arg, b->cache[i].topic, b->cache[i].count);
    if (b->other_count)
        fn(arg, "other", b->other_count);
}
