/* The layer bridge: peers from the YAML, the durable outbox, ordered windowed delivery
 * through transport plugins, acks, retries with backoff and jitter, dead letters, a circuit
 * breaker per peer, and the receiving side (dedupe, bus event, durable ack). The RPC methods
 * are in bridge_rpc.c; docs/bridge.md states the guarantees.
 *
 * Kernel databases (owner NULL, so "@<name>" in LMDB):
 *   @bridge.outbox   PEER \0 SEQ(be64) -> created_ms(be64) tlen(be16) TOPIC PAYLOAD
 *   @bridge.dead     PEER \0 SEQ(be64) -> attempts(be32) failed_ms(be64) elen(be16) ERROR
 *                                         + the outbox record as it was
 *   @bridge.meta     "seq/" PEER -> last assigned SEQ(be64); "seq_floor" -> be64 (restore)
 *   @bridge.applied  'M' PEER -> highest applied SEQ(be64)
 *                    'H' PEER \0 END(be64) -> START(be64): seqs START..END (<= M) not applied
 *
 * Receiver scheme ("high-water mark plus holes"): a seq is applied iff seq <= M and no hole
 * range covers it. A seq above M+1 opens the hole M+1..seq-1 (one record, whatever its
 * size); a seq inside a hole is applied and splits the hole. So a dead letter retried
 * hours later, or an out-of-order retry, is applied exactly once, and a repeat is ignored;
 * the state is one record per peer plus one per gap that is still open. */
#define ADO_BRIDGE_INTERNAL
#include "bridge.h"
#include "strbuf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "checkpoint.h"
#include "metrics.h"
#include "node.h"
#include "rpc.h"

/* ---- small helpers ---------------------------------------------------------------------- */

void br_be64(unsigned char *b, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)v;
}

uint64_t br_rd64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void be32(unsigned char *b, uint32_t v) {
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8), b[3] = (unsigned char)v;
}

static uint32_t rd32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint64_t br_wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static uint64_t now_ms(struct ado_bridge *br) {
    return uv_now(br->node->loop);
}

/* PEER \0 SEQ: the outbox and dead-letter key. */
size_t br_okey(unsigned char *buf, const char *peer, uint64_t seq) {
    size_t n = strlen(peer);
    memcpy(buf, peer, n);
    buf[n] = 0;
    br_be64(buf + n + 1, seq);
    return n + 9;
}

static void set_error(struct br_peer *p, const char *why) {
    snprintf(p->last_error, sizeof p->last_error, "%s", why ? why : "failed");
}

struct br_peer *br_peer_find(struct ado_bridge *br, const char *name) {
    if (!name)
        return NULL;
    for (size_t i = 0; i < br->npeers; i++)
        if (strcmp(br->peers[i].name, name) == 0)
            return &br->peers[i];
    return NULL;
}

static void logf_(struct ado_bridge *br, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(struct ado_bridge *br, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ado_log_vwrite(&br->node->log, level, "bridge", fmt, ap);
    va_end(ap);
}

/* ---- metrics: counted in memory, pushed once per loop turn ------------------------------ */

static void labels_of(const char *peer, char *out, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(out, cap, "peer=\"");
    for (const char *s = peer; *s && o + 4 < cap; s++) {
        if (*s == '"' || *s == '\\')
            out[o++] = '\\', out[o++] = *s;
        else if (*s == '\n')
            out[o++] = '\\', out[o++] = 'n';
        else
            out[o++] = *s;
    }
    snprintf(out + o, cap - o, "\"");
}

static void metrics_push(void *arg, int status) {
    (void)status;
    struct ado_bridge *br = arg;
    br->metrics_queued = 0;
    struct ado_metrics *m = br->node->metrics;
    if (!m)
        return;
    for (size_t i = 0; i < br->npeers; i++) {
        struct br_peer *p = &br->peers[i];
        char l[200];
        labels_of(p->name, l, sizeof l);
        ado_metrics_set(m, "ado_bridge_queue_depth", l, (double)p->depth);
        ado_metrics_set(m, "ado_bridge_inflight", l, (double)p->ninfl);
        ado_metrics_set(m, "ado_bridge_dead_letters", l, (double)p->dead_now);
        ado_metrics_set(m, "ado_bridge_breaker_state", l, (double)p->breaker);
        ado_metrics_set(m, "ado_bridge_peer_up", l, p->up == 1 ? 1.0 : 0.0);
        struct {
            const char *name;
            uint64_t *cur, *pushed;
        } c[] = {
            {"ado_bridge_sent_total", &p->sent, &p->m_sent},
            {"ado_bridge_acked_total", &p->acked, &p->m_acked},
            {"ado_bridge_retries_total", &p->retries, &p->m_retries},
            {"ado_bridge_dead_lettered_total", &p->dead_total, &p->m_dead},
            {"ado_bridge_received_total", &p->received, &p->m_received},
            {"ado_bridge_duplicates_total", &p->duplicates, &p->m_dups},
        };
        for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
            if (*c[k].cur != *c[k].pushed || *c[k].cur == 0) {
                ado_metrics_add(m, c[k].name, l, (double)(*c[k].cur - *c[k].pushed));
                *c[k].pushed = *c[k].cur;
            }
        }
    }
}

void br_metrics_dirty(struct ado_bridge *br) {
    if (br->metrics_queued || br->closing)
        return;
    if (ado_store_on_durable(br->node->store, metrics_push, br) == 0)
        br->metrics_queued = 1;
}

/* ---- the in-flight ring (send order, so seqs increase from front to back) --------------- */

static struct br_infl *ring_at(struct br_peer *p, size_t i) {
    return &p->ring[(p->rhead + i) % p->rcap];
}

static int ring_push(struct br_peer *p, uint64_t seq, uint64_t now) {
    if (p->rlen == p->rcap) {
        size_t ncap = p->rcap ? p->rcap * 2 : 64;
        struct br_infl *nr = malloc(ncap * sizeof *nr);
        if (!nr)
            return ADO_ENOMEM;
        for (size_t i = 0; i < p->rlen; i++)
            nr[i] = *ring_at(p, i);
        free(p->ring);
        p->ring = nr;
        p->rcap = ncap;
        p->rhead = 0;
    }
    *ring_at(p, p->rlen++) = (struct br_infl){seq, now, 1};
    p->ninfl++;
    return 0;
}

static void ring_trim_front(struct br_peer *p) {
    while (p->rlen && !ring_at(p, 0)->live) {
        p->rhead = (p->rhead + 1) % p->rcap;
        p->rlen--;
    }
}

/* The live entry for seq, or NULL. */
static struct br_infl *ring_find(struct br_peer *p, uint64_t seq) {
    size_t lo = 0, hi = p->rlen;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t s = ring_at(p, mid)->seq;
        if (s == seq) {
            struct br_infl *e = ring_at(p, mid);
            return e->live ? e : NULL;
        }
        if (s < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Forget every entry with seq >= from (they will be sent again). */
static void ring_cut(struct br_peer *p, uint64_t from) {
    while (p->rlen && ring_at(p, p->rlen - 1)->seq >= from) {
        if (ring_at(p, p->rlen - 1)->live)
            p->ninfl--;
        p->rlen--;
    }
    ring_trim_front(p);
}

static struct br_infl *ring_oldest(struct br_peer *p) {
    ring_trim_front(p);
    return p->rlen ? ring_at(p, 0) : NULL;
}

/* ---- attempts of messages that failed at least once (a short list) ---------------------- */

static uint32_t *attempts_slot(struct br_peer *p, uint64_t seq, int create) {
    for (size_t i = 0; i < p->natt; i++)
        if (p->att[i].seq == seq)
            return &p->att[i].n;
    if (!create)
        return NULL;
    if (p->natt == p->capatt) {
        size_t ncap = p->capatt ? p->capatt * 2 : 8;
        struct br_att *na = realloc(p->att, ncap * sizeof *na);
        if (!na)
            return NULL;
        p->att = na;
        p->capatt = ncap;
    }
    p->att[p->natt] = (struct br_att){seq, 0};
    return &p->att[p->natt++].n;
}

static void attempts_forget(struct br_peer *p, uint64_t seq) {
    for (size_t i = 0; i < p->natt; i++) {
        if (p->att[i].seq == seq) {
            p->att[i] = p->att[--p->natt];
            return;
        }
    }
}

/* ---- breaker ------------------------------------------------------------------------------ */

static void breaker_success(struct br_peer *p) {
    p->consecutive = 0;
    if (p->breaker != ADO_BR_CLOSED) {
        logf_(p->br, ADO_LOG_INFO, "peer %s: breaker closed (the peer answers again)", p->name);
        p->breaker = ADO_BR_CLOSED;
    }
}

static void breaker_failure(struct br_peer *p) {
    p->consecutive++;
    int trip = p->breaker == ADO_BR_HALF_OPEN ||
               (p->breaker == ADO_BR_CLOSED && p->consecutive >= p->br_failures);
    if (trip) {
        p->breaker = ADO_BR_OPEN;
        p->opened_at = now_ms(p->br);
        p->breaker_opens++;
        logf_(p->br, ADO_LOG_WARN,
              "peer %s: breaker open after %u consecutive failure(s) (last: %s); probing again "
              "in %llu ms",
              p->name, p->consecutive, p->last_error, (unsigned long long)p->br_cooldown_ms);
    }
}

/* ---- timers ------------------------------------------------------------------------------- */

static void peer_timer_cb(uv_timer_t *t);
static void kick_cb(uv_timer_t *t);
static void pump(struct br_peer *p);

/* Arm the peer's timer for its earliest deadline: breaker cooldown, retry time, oldest ack. */
static void peer_arm(struct br_peer *p) {
    struct ado_bridge *br = p->br;
    if (br->closing || !p->timer)
        return;
    uint64_t now = now_ms(br), due = UINT64_MAX;
    if (p->breaker == ADO_BR_OPEN)
        due = p->opened_at + p->br_cooldown_ms;
    else if (p->retry_at > now && p->depth > p->ninfl)
        due = p->retry_at;
    struct br_infl *o = ring_oldest(p);
    if (o && o->sent_ms + p->ack_timeout_ms < due)
        due = o->sent_ms + p->ack_timeout_ms;
    if (due == UINT64_MAX) {
        uv_timer_stop(p->timer);
        return;
    }
    uv_timer_start(p->timer, peer_timer_cb, due > now ? due - now : 0, 0);
}

void br_kick(struct br_peer *p) {
    struct ado_bridge *br = p->br;
    if (br->closing)
        return;
    p->kicked = 1;
    if (!br->kick_armed) {
        br->kick_armed = 1;
        uv_timer_start(br->kick, kick_cb, 0, 0);
    }
}

static void kick_cb(uv_timer_t *t) {
    struct ado_bridge *br = t->data;
    br->kick_armed = 0;
    for (size_t i = 0; i < br->npeers; i++) {
        if (br->peers[i].kicked) {
            br->peers[i].kicked = 0;
            pump(&br->peers[i]);
        }
    }
}

/* ---- outbox reading ------------------------------------------------------------------------- */

struct collect {
    const char *peer;
    size_t plen;
    uint64_t max_seq;
    size_t want, n;
    struct br_rec *out;
};

static int collect_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct collect *c = arg;
    if (klen != c->plen + 9 || memcmp(key, c->peer, c->plen + 1) != 0)
        return 1;
    uint64_t seq = br_rd64((const unsigned char *)key + c->plen + 1);
    if (seq > c->max_seq || c->n == c->want)
        return 1;
    if (vlen < 10)
        return 0; /* not a record of ours: skip */
    struct br_rec *r = &c->out[c->n];
    r->data = malloc(vlen);
    if (!r->data)
        return 1;
    memcpy(r->data, val, vlen);
    r->len = vlen;
    r->seq = seq;
    c->n++;
    return 0;
}

/* Up to `want` outbox records of p with seq in [from, max_seq], in order. */
size_t br_outbox_read(struct ado_bridge *br, const char *peer, uint64_t from, uint64_t max_seq,
                      size_t want, struct br_rec *out) {
    unsigned char k[80];
    size_t kl = br_okey(k, peer, from);
    struct collect c = {peer, strlen(peer), max_seq, want, 0, out};
    ado_store_iter(br->node->store, NULL, br->db_outbox, k, kl, collect_cb, &c);
    return c.n;
}

int br_rec_parse(const struct br_rec *r, uint64_t *created, const char **topic, size_t *tlen,
                 const void **payload, size_t *plen) {
    const unsigned char *d = r->data;
    if (r->len < 10)
        return ADO_EINVAL;
    size_t tl = (size_t)d[8] << 8 | d[9];
    if (10 + tl > r->len)
        return ADO_EINVAL;
    *created = br_rd64(d);
    *topic = (const char *)d + 10;
    *tlen = tl;
    *payload = d + 10 + tl;
    *plen = r->len - 10 - tl;
    return 0;
}

/* ---- failures, dead letters ------------------------------------------------------------- */

static uint64_t backoff_ms(struct br_peer *p, uint32_t attempt) {
    uint64_t d = p->backoff_ms ? p->backoff_ms : 1;
    for (uint32_t i = 1; i < attempt && d < p->max_backoff_ms; i++)
        d *= 2;
    if (d > p->max_backoff_ms)
        d = p->max_backoff_ms;
    /* Jitter: take off up to a quarter, so peers that failed together spread out. */
    uint64_t j = d / 4 ? (uint64_t)rand() % (d / 4 + 1) : 0;
    return d - j;
}

static int dead_letter(struct br_peer *p, uint64_t seq, uint32_t attempts, const char *why) {
    struct ado_bridge *br = p->br;
    struct ado_store *st = br->node->store;
    unsigned char k[80];
    size_t kl = br_okey(k, p->name, seq);
    const void *v;
    size_t vl;
    if (ado_store_get(st, NULL, br->db_outbox, k, kl, &v, &vl) < 0)
        return ADO_ENOTFOUND;
    size_t el = strlen(why);
    if (el > 1000)
        el = 1000;
    size_t dl = 14 + el + vl;
    unsigned char *d = malloc(dl);
    if (!d)
        return ADO_ENOMEM;
    be32(d, attempts);
    br_be64(d + 4, br_wall_ms());
    d[12] = (unsigned char)(el >> 8), d[13] = (unsigned char)el;
    memcpy(d + 14, why, el);
    memcpy(d + 14 + el, v, vl);
    int rc = ado_store_put(st, NULL, br->db_dead, k, kl, d, dl);
    free(d);
    if (rc == 0)
        rc = ado_store_del(st, NULL, br->db_outbox, k, kl);
    if (rc < 0)
        return rc;
    p->depth--;
    p->dead_now++;
    p->dead_total++;
    logf_(br, ADO_LOG_WARN, "peer %s: message %s/%s/%llu dead-lettered after %u attempt(s): %s",
          p->name, br->node->cfg->node_name, p->name, (unsigned long long)seq, attempts, why);
    return 0;
}

/* One failed attempt of `seq`: count it, go back to resend from seq, back off or dead-letter. */
static void fail_attempt(struct br_peer *p, uint64_t seq, const char *why) {
    struct ado_bridge *br = p->br;
    set_error(p, why);
    breaker_failure(p);
    ring_cut(p, seq);
    if (p->send_next > seq)
        p->send_next = seq;
    uint32_t *a = attempts_slot(p, seq, 1);
    uint32_t n = a ? ++*a : (uint32_t)p->attempts;
    if (n >= (uint32_t)p->attempts) {
        attempts_forget(p, seq);
        dead_letter(p, seq, n, why);
        p->retry_at = 0;
        br_kick(p); /* the next message gets its own attempts */
    } else {
        p->retries++;
        p->retry_at = now_ms(br) + backoff_ms(p, n);
    }
    br_metrics_dirty(br);
    peer_arm(p);
}

/* ---- the pump: send what the window allows ---------------------------------------------- */

static void pump(struct br_peer *p) {
    struct ado_bridge *br = p->br;
    if (br->closing || !br->started || !p->tp || p->pumping)
        return;
    uint64_t now = now_ms(br);
    if (p->breaker == ADO_BR_OPEN) {
        if (now - p->opened_at < p->br_cooldown_ms) {
            peer_arm(p);
            return;
        }
        p->breaker = ADO_BR_HALF_OPEN;
        logf_(br, ADO_LOG_INFO, "peer %s: breaker half-open: sending one probe", p->name);
        p->retry_at = 0;
    }
    if (p->retry_at > now) {
        peer_arm(p);
        return;
    }
    size_t limit = p->breaker == ADO_BR_HALF_OPEN ? 1 : p->window;
    p->pumping = 1;
    while (p->ninfl < limit && p->send_next <= p->committed && !br->closing && p->tp) {
        size_t want = limit - p->ninfl;
        if (want > 64)
            want = 64;
        struct br_rec recs[64];
        size_t n = br_outbox_read(br, p->name, p->send_next, p->committed, want, recs);
        if (n == 0) {
            p->send_next = p->committed + 1;
            break;
        }
        int stop = 0;
        for (size_t i = 0; i < n; i++) {
            if (!stop && !br->closing && p->tp) {
                uint64_t created;
                const char *topic;
                size_t tl, pl;
                const void *pay;
                if (br_rec_parse(&recs[i], &created, &topic, &tl, &pay, &pl) < 0) {
                    stop = 1;
                } else {
                    char tbuf[300];
                    snprintf(tbuf, sizeof tbuf, "%.*s", (int)tl, topic);
                    struct ado_bridge_msg m = {
                        br->node->cfg->node_name, recs[i].seq, tbuf, pay, pl, created};
                    struct br_transport *t = p->tp;
                    int rc = t->ops->send(t->arg, p->name, &m);
                    if (rc < 0) {
                        char why[160];
                        snprintf(why, sizeof why, "send: %s", ado_node_api()->strerror(rc));
                        fail_attempt(p, recs[i].seq, why);
                        stop = 1;
                    } else {
                        ring_push(p, recs[i].seq, now);
                        p->sent++;
                        p->send_next = recs[i].seq + 1;
                    }
                }
            }
            free(recs[i].data);
        }
        if (stop)
            break;
    }
    p->pumping = 0;
    br_metrics_dirty(br);
    peer_arm(p);
}

static void peer_timer_cb(uv_timer_t *t) {
    struct br_peer *p = t->data;
    struct ado_bridge *br = p->br;
    uint64_t now = now_ms(br);
    struct br_infl *o = ring_oldest(p);
    if (o && o->sent_ms + p->ack_timeout_ms <= now)
        fail_attempt(p, o->seq, "no ack before the timeout");
    pump(p);
}

/* ---- sending ------------------------------------------------------------------------------ */

struct sent_cb {
    struct ado_bridge *br;
    size_t peer;
    uint64_t seq;
};

static int load_peer_counters(struct br_peer *p);

static void sent_durable(void *arg, int status) {
    struct sent_cb *s = arg;
    struct ado_bridge *br = s->br;
    struct br_peer *p = &br->peers[s->peer];
    if (status == 0) {
        if (s->seq > p->committed)
            p->committed = s->seq;
        br_kick(p);
    } else {
        /* The turn's writes are gone, this message with them: recount from the store. */
        logf_(br, ADO_LOG_ERROR, "peer %s: message %llu lost with a failed commit: %s", p->name,
              (unsigned long long)s->seq, ado_node_api()->strerror(status));
        load_peer_counters(p);
    }
    free(s);
}

int ado_bridge_send(struct ado_bridge *br, struct ado_plugin *from, const char *peer,
                    const char *topic, const void *payload, size_t len, char *id, size_t id_cap) {
    (void)from;
    if (!br || br->closing)
        return ADO_ESTATE;
    if (!topic || ado_bus_topic_valid(topic) < 0 || strlen(topic) > 255 || (len && !payload) ||
        len > ADO_BRIDGE_MAX_PAYLOAD)
        return ADO_EINVAL;
    if (id && id_cap < 96)
        return ADO_EINVAL;
    struct br_peer *p = br_peer_find(br, peer);
    if (!p)
        return ADO_ENOTFOUND;
    if (p->depth >= br->outbox_limit)
        return ADO_ELIMIT;
    struct ado_store *st = br->node->store;
    uint64_t seq = p->next_seq;
    unsigned char k[80], sv[8];
    size_t kl = br_okey(k, p->name, seq);
    size_t tl = strlen(topic), rl = 10 + tl + len;
    unsigned char *rec = malloc(rl);
    struct sent_cb *cb = malloc(sizeof *cb);
    if (!rec || !cb) {
        free(rec);
        free(cb);
        return ADO_ENOMEM;
    }
    br_be64(rec, br_wall_ms());
    rec[8] = (unsigned char)(tl >> 8), rec[9] = (unsigned char)tl;
    memcpy(rec + 10, topic, tl);
    if (len)
        memcpy(rec + 10 + tl, payload, len);
    char mk[80];
    snprintf(mk, sizeof mk, "seq/%s", p->name);
    br_be64(sv, seq);
    int rc = ado_store_put(st, NULL, br->db_meta, mk, strlen(mk), sv, 8);
    if (rc == 0)
        rc = ado_store_put(st, NULL, br->db_outbox, k, kl, rec, rl);
    free(rec);
    if (rc == 0) {
        *cb = (struct sent_cb){br, (size_t)(p - br->peers), seq};
        rc = ado_store_on_durable(st, sent_durable, cb);
    }
    if (rc < 0) {
        free(cb);
        return rc;
    }
    p->next_seq = seq + 1;
    p->depth++;
    if (id)
        snprintf(id, id_cap, "%s/%s/%llu", br->node->cfg->node_name, p->name,
                 (unsigned long long)seq);
    br_metrics_dirty(br);
    return 0;
}

/* ---- transport -> kernel -------------------------------------------------------------------- */

void ado_bridge_acked(struct ado_bridge *br, const char *peer, uint64_t seq) {
    if (!br || br->closing)
        return;
    struct br_peer *p = br_peer_find(br, peer);
    if (!p || seq == 0)
        return;
    struct ado_store *st = br->node->store;
    unsigned char k[80];
    size_t kl = br_okey(k, p->name, seq);
    const void *v;
    size_t vl;
    if (ado_store_get(st, NULL, br->db_outbox, k, kl, &v, &vl) == 0 &&
        ado_store_del(st, NULL, br->db_outbox, k, kl) == 0)
        p->depth--;
    struct br_infl *e = ring_find(p, seq);
    if (e) {
        e->live = 0;
        p->ninfl--;
        ring_trim_front(p);
    }
    attempts_forget(p, seq);
    p->acked++;
    p->last_ack_ms = br_wall_ms();
    if (p->up != 1)
        p->up = 1;
    breaker_success(p);
    br_metrics_dirty(br);
    br_kick(p);
}

void ado_bridge_failed(struct ado_bridge *br, const char *peer, uint64_t seq, const char *reason) {
    if (!br || br->closing)
        return;
    struct br_peer *p = br_peer_find(br, peer);
    if (!p)
        return;
    /* A failure of a message no longer in flight is stale (it was already counted, or the
     * window went back before it): ignore it. */
    if (!ring_find(p, seq))
        return;
    fail_attempt(p, seq, reason ? reason : "the transport reported a failure");
}

void ado_bridge_peer_state(struct ado_bridge *br, const char *peer, int up, const char *reason) {
    if (!br || br->closing)
        return;
    struct br_peer *p = br_peer_find(br, peer);
    if (!p)
        return;
    if (up) {
        if (p->up != 1)
            logf_(br, ADO_LOG_INFO, "peer %s: up", p->name);
        p->up = 1;
        if (p->breaker == ADO_BR_OPEN) {
            p->breaker = ADO_BR_HALF_OPEN;
            logf_(br, ADO_LOG_INFO, "peer %s: breaker half-open (link up): sending one probe",
                  p->name);
        }
        p->retry_at = 0;
        br_kick(p);
    } else {
        if (p->up != 0)
            logf_(br, ADO_LOG_WARN, "peer %s: down: %s", p->name, reason ? reason : "?");
        p->up = 0;
        char why[300];
        snprintf(why, sizeof why, "peer down: %s", reason ? reason : "?");
        struct br_infl *o = ring_oldest(p);
        if (o) {
            fail_attempt(p, o->seq, why);
        } else {
            set_error(p, why);
            breaker_failure(p);
            peer_arm(p);
        }
    }
    br_metrics_dirty(br);
}

/* ---- receiving ------------------------------------------------------------------------------ */

struct recv_cb {
    void (*done)(void *, int);
    void *arg;
};

static void recv_durable(void *arg, int status) {
    struct recv_cb *r = arg;
    r->done(r->arg, status);
    free(r);
}

static size_t akey(unsigned char *k, char kind, const char *peer) {
    size_t n = strlen(peer);
    k[0] = (unsigned char)kind;
    memcpy(k + 1, peer, n);
    k[n + 1] = 0;
    return n + 2;
}

struct hole_find {
    const unsigned char *prefix;
    size_t plen;
    int found;
    uint64_t start, end;
};

static int hole_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct hole_find *h = arg;
    if (klen == h->plen + 8 && memcmp(key, h->prefix, h->plen) == 0 && vlen == 8) {
        h->found = 1;
        h->end = br_rd64((const unsigned char *)key + h->plen);
        h->start = br_rd64(val);
    }
    return 1;
}

/* 1: seq is new (and is now recorded as applied), 0: a repeat, < 0: error. */
static int applied_record(struct ado_bridge *br, const char *peer, uint64_t seq) {
    struct ado_store *st = br->node->store;
    unsigned char mk[80], hk[90], v8[8];
    size_t ml = akey(mk, 'M', peer);
    const void *v;
    size_t vl;
    uint64_t m = 0;
    if (ado_store_get(st, NULL, br->db_applied, mk, ml - 1, &v, &vl) == 0 && vl == 8)
        m = br_rd64(v);
    size_t hl = akey(hk, 'H', peer);
    if (seq > m) {
        int rc;
        if (seq > m + 1) {
            br_be64(hk + hl, seq - 1);
            br_be64(v8, m + 1);
            if ((rc = ado_store_put(st, NULL, br->db_applied, hk, hl + 8, v8, 8)) < 0)
                return rc;
        }
        br_be64(v8, seq);
        rc = ado_store_put(st, NULL, br->db_applied, mk, ml - 1, v8, 8);
        return rc < 0 ? rc : 1;
    }
    /* seq <= M: applied unless a hole covers it (the first hole ending at or after seq). */
    br_be64(hk + hl, seq);
    struct hole_find h = {hk, hl, 0, 0, 0};
    ado_store_iter(st, NULL, br->db_applied, hk, hl + 8, hole_cb, &h);
    if (!h.found || h.start > seq)
        return 0;
    int rc = 0;
    br_be64(hk + hl, h.end);
    if ((rc = ado_store_del(st, NULL, br->db_applied, hk, hl + 8)) < 0)
        return rc;
    if (h.start < seq) {
        br_be64(hk + hl, seq - 1);
        br_be64(v8, h.start);
        if ((rc = ado_store_put(st, NULL, br->db_applied, hk, hl + 8, v8, 8)) < 0)
            return rc;
    }
    if (seq < h.end) {
        br_be64(hk + hl, h.end);
        br_be64(v8, seq + 1);
        if ((rc = ado_store_put(st, NULL, br->db_applied, hk, hl + 8, v8, 8)) < 0)
            return rc;
    }
    return 1;
}

static json_t *payload_json(const void *data, size_t len, int *is_json) {
    json_error_t e;
    json_t *j = len ? json_loadb(data, len, JSON_DECODE_ANY, &e) : NULL;
    *is_json = j != NULL;
    if (j)
        return j;
    j = json_stringn(data ? data : "", len);
    if (j)
        return j;
    /* Not UTF-8: hex. */
    char *hex = malloc(len * 2 + 1);
    if (!hex)
        return json_null();
    for (size_t i = 0; i < len; i++)
        sprintf(hex + 2 * i, "%02x", ((const unsigned char *)data)[i]);
    hex[len * 2] = 0;
    j = json_string(hex);
    free(hex);
    *is_json = -1;
    return j;
}

/* The bus event of a received message, as jansson built it before (same keys, same order):
 * {"from","layer","origin","id","seq","topic","created_ms","payload"[,"payload_encoding"]}.
 * Written directly: building a jansson object and dumping it cost most of the receiver's
 * time per message. A payload that parses as JSON is copied as sent (the same value; jansson
 * re-dumped it compactly), anything else goes through payload_json (string or hex). A name
 * that is not valid UTF-8 falls back to jansson, which refuses it as before (NULL). */
static char *event_text_jansson(struct br_peer *p, const struct ado_bridge_msg *msg,
                                const char *id) {
    int is_json;
    json_t *env =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I}", "from", p->name, "layer", p->layer, "origin",
                  msg->origin ? msg->origin : "", "id", id, "seq", (json_int_t)msg->seq, "topic",
                  msg->topic, "created_ms", (json_int_t)msg->created_ms);
    json_t *pj = payload_json(msg->payload, msg->len, &is_json);
    if (env) {
        json_object_set_new(env, "payload", pj);
        if (is_json == -1)
            json_object_set_new(env, "payload_encoding", json_string("hex"));
    } else {
        json_decref(pj);
    }
    char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    return text;
}

static char *event_text(struct br_peer *p, const struct ado_bridge_msg *msg, const char *id) {
    struct ado_strbuf b = {0};
    ado_strbuf_put(&b, "{\"from\":", 8);
    ado_strbuf_json_str(&b, p->name);
    ado_strbuf_json_field(&b, "layer", p->layer);
    ado_strbuf_json_field(&b, "origin", msg->origin ? msg->origin : "");
    ado_strbuf_json_field(&b, "id", id);
    ado_strbuf_json_u64(&b, "seq", msg->seq);
    ado_strbuf_json_field(&b, "topic", msg->topic);
    ado_strbuf_json_u64(&b, "created_ms", msg->created_ms);
    json_error_t e;
    json_t *j = msg->len ? json_loadb(msg->payload, msg->len, JSON_DECODE_ANY, &e) : NULL;
    if (j) {
        json_decref(j);
        ado_strbuf_put(&b, ",\"payload\":", 11);
        ado_strbuf_put(&b, msg->payload, msg->len);
    } else {
        int is_json;
        json_t *pj = payload_json(msg->payload, msg->len, &is_json);
        char *pt = pj ? json_dumps(pj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(pj);
        ado_strbuf_put(&b, ",\"payload\":", 11);
        if (pt)
            ado_strbuf_put(&b, pt, strlen(pt));
        else
            b.bad = 1;
        free(pt);
        if (is_json == -1)
            ado_strbuf_put(&b, ",\"payload_encoding\":\"hex\"", 25);
    }
    ado_strbuf_put(&b, "}", 1);
    if (b.bad || msg->seq > INT64_MAX || msg->created_ms > INT64_MAX) {
        free(b.p);
        return event_text_jansson(p, msg, id);
    }
    return b.p;
}

int ado_bridge_received(struct ado_bridge *br, const char *peer, const struct ado_bridge_msg *msg,
                        void (*done)(void *, int), void *done_arg) {
    if (!br || br->closing)
        return ADO_ECLOSED;
    struct br_peer *p = br_peer_find(br, peer);
    if (!p)
        return ADO_ENOTFOUND;
    if (!msg || msg->seq == 0 || !msg->topic || (msg->len && !msg->payload) || !done)
        return ADO_EINVAL;
    char topic[300];
    if (snprintf(topic, sizeof topic, "bridge.in.%s", msg->topic) >= (int)sizeof topic ||
        ado_bus_topic_valid(topic) < 0)
        return ADO_EINVAL;
    struct recv_cb *rcb = malloc(sizeof *rcb);
    if (!rcb)
        return ADO_ENOMEM;
    int rc = applied_record(br, p->name, msg->seq);
    if (rc < 0) {
        free(rcb);
        return rc;
    }
    if (rc == 0) {
        p->duplicates++;
    } else {
        p->received++;
        if (p->up != 1)
            p->up = 1;
        char id[200];
        snprintf(id, sizeof id, "%s/%s/%llu", msg->origin ? msg->origin : p->name,
                 br->node->cfg->node_name, (unsigned long long)msg->seq);
        char *text = event_text(p, msg, id);
        if (text) {
            ado_bus_publish(br->node->bus, topic, text, strlen(text));
            free(text);
        }
        if (strncmp(msg->topic, "checkpoint.", 11) == 0 && br->cp)
            ado_checkpoint_on_message(br->cp, p->name, msg->topic, msg->payload, msg->len);
    }
    rcb->done = done;
    rcb->arg = done_arg;
    if (ado_store_on_durable(br->node->store, recv_durable, rcb) < 0) {
        free(rcb);
        return ADO_ENOMEM;
    }
    br_metrics_dirty(br);
    return 0;
}

/* ---- transports ------------------------------------------------------------------------------ */

static void peer_open(struct br_peer *p) {
    struct br_transport *t = p->tp;
    if (!t || p->opened)
        return;
    int rc = t->ops->peer_open ? t->ops->peer_open(t->arg, p->name, p->layer, p->address,
                                                   p->public_key, p->options)
                               : 0;
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof why, "transport %s could not open the peer: %s", t->name,
                 ado_node_api()->strerror(rc));
        set_error(p, why);
        logf_(p->br, ADO_LOG_ERROR, "peer %s: %s", p->name, why);
    }
    p->opened = 1;
    br_kick(p);
}

int ado_bridge_transport_register(struct ado_bridge *br, struct ado_plugin *owner, const char *name,
                                  const struct ado_transport *ops, void *arg) {
    if (!br || br->closing)
        return ADO_ESTATE;
    if (!name || !*name || !ops || ops->size < offsetof(struct ado_transport, query) || !ops->send)
        return ADO_EINVAL;
    for (size_t i = 0; i < br->ntransports; i++)
        if (strcmp(br->transports[i]->name, name) == 0)
            return ADO_EEXIST;
    struct br_transport *t = calloc(1, sizeof *t);
    struct br_transport **nt = realloc(br->transports, (br->ntransports + 1) * sizeof *nt);
    if (!t || !nt || !(t->name = strdup(name))) {
        free(t);
        if (nt)
            br->transports = nt;
        return ADO_ENOMEM;
    }
    br->transports = nt;
    t->ops = ops;
    t->arg = arg;
    t->owner = owner;
    br->transports[br->ntransports++] = t;
    for (size_t i = 0; i < br->npeers; i++) {
        struct br_peer *p = &br->peers[i];
        if (!p->tp && strcmp(p->transport, name) == 0) {
            p->tp = t;
            if (br->started)
                peer_open(p);
        }
    }
    return 0;
}

/* The transport is going away: forget what it had in flight (resent when a transport comes
 * back), cancel its queries. */
static void transport_detach(struct ado_bridge *br, struct br_transport *t) {
    for (size_t i = 0; i < br->npeers; i++) {
        struct br_peer *p = &br->peers[i];
        if (p->tp != t)
            continue;
        p->tp = NULL;
        p->opened = 0;
        ring_cut(p, 0);
        p->send_next = 0;
        p->up = -1;
        if (p->timer)
            uv_timer_stop(p->timer);
    }
    br_queries_cancel(br, t, "the transport stopped");
}

void ado_bridge_release_owner(struct ado_bridge *br, struct ado_plugin *owner) {
    if (!br || !owner)
        return;
    size_t k = 0;
    for (size_t i = 0; i < br->ntransports; i++) {
        struct br_transport *t = br->transports[i];
        if (t->owner == owner) {
            transport_detach(br, t);
            free(t->name);
            free(t);
        } else {
            br->transports[k++] = t;
        }
    }
    br->ntransports = k;
}

/* ---- set up and tear down ------------------------------------------------------------------ */

struct count_arg {
    const char *peer;
    size_t plen;
    uint64_t n, first;
};

static int count_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    (void)val, (void)vlen;
    struct count_arg *c = arg;
    if (klen != c->plen + 9 || memcmp(key, c->peer, c->plen + 1) != 0)
        return 1;
    if (c->n++ == 0)
        c->first = br_rd64((const unsigned char *)key + c->plen + 1);
    return 0;
}

uint64_t br_count(struct ado_bridge *br, ado_db db, const char *peer, uint64_t *first) {
    unsigned char k[80];
    size_t kl = br_okey(k, peer, 0);
    struct count_arg c = {peer, strlen(peer), 0, 0};
    ado_store_iter(br->node->store, NULL, db, k, kl - 8, count_cb, &c);
    if (first)
        *first = c.first;
    return c.n;
}

static int load_peer_counters(struct br_peer *p) {
    struct ado_bridge *br = p->br;
    struct ado_store *st = br->node->store;
    char mk[80];
    snprintf(mk, sizeof mk, "seq/%s", p->name);
    const void *v;
    size_t vl;
    uint64_t last = 0, floor = 0;
    if (ado_store_get(st, NULL, br->db_meta, mk, strlen(mk), &v, &vl) == 0 && vl == 8)
        last = br_rd64(v);
    if (ado_store_get(st, NULL, br->db_meta, "seq_floor", 9, &v, &vl) == 0 && vl == 8)
        floor = br_rd64(v);
    if (floor > last)
        last = floor;
    uint64_t first = 0;
    p->depth = br_count(br, br->db_outbox, p->name, &first);
    p->dead_now = br_count(br, br->db_dead, p->name, NULL);
    p->next_seq = last + 1;
    p->committed = last;
    if (p->send_next == 0 || p->send_next > last + 1)
        p->send_next = p->depth ? first : last + 1;
    return 0;
}

static int64_t ival(struct ado_cnode *n, const char *path, int64_t fallback) {
    struct ado_cnode *c = ado_cnode_get(n, path);
    return c && c->kind == ADO_CN_SCALAR && c->type > 0 ? c->ival : fallback;
}

static const char *sval(struct ado_cnode *n, const char *path, const char *fallback) {
    struct ado_cnode *c = ado_cnode_get(n, path);
    return c && c->kind == ADO_CN_SCALAR && c->text ? c->text : fallback;
}

static void timer_free_cb(uv_handle_t *h) {
    free(h);
}

int ado_bridge_new(struct ado_node *node, struct ado_bridge **out, struct ado_diag *diag) {
    *out = NULL;
    struct ado_bridge *br = calloc(1, sizeof *br);
    if (!br)
        return ADO_ENOMEM;
    br->node = node;
    br->window = ADO_BRIDGE_WINDOW;
    br->ack_timeout_ms = ADO_BRIDGE_ACK_TIMEOUT_MS;
    struct ado_cnode *root = node->cfg->root;
    br->outbox_limit = (uint64_t)ival(root, "bridge.outbox_limit", 100000);
    struct ado_store *st = node->store;
    int rc = ado_store_open_db(st, NULL, "bridge.outbox", &br->db_outbox);
    if (rc == 0)
        rc = ado_store_open_db(st, NULL, "bridge.dead", &br->db_dead);
    if (rc == 0)
        rc = ado_store_open_db(st, NULL, "bridge.meta", &br->db_meta);
    if (rc == 0)
        rc = ado_store_open_db(st, NULL, "bridge.applied", &br->db_applied);
    if (rc < 0) {
        ado_diag_add(diag, node->cfg->file, 0, 0, "bridge", "cannot open the bridge databases: %s",
                     ado_node_api()->strerror(rc));
        free(br);
        return rc;
    }
    struct ado_cnode *peers = ado_cnode_get(root, "bridge.peers");
    size_t n = peers && peers->kind == ADO_CN_LIST ? peers->n : 0;
    br->peers = calloc(n ? n : 1, sizeof *br->peers);
    br->kick = calloc(1, sizeof *br->kick);
    if (!br->peers || !br->kick) {
        free(br->peers);
        free(br->kick);
        free(br);
        return ADO_ENOMEM;
    }
    uv_timer_init(node->loop, br->kick);
    br->kick->data = br;
    for (size_t i = 0; i < n; i++) {
        struct ado_cnode *pc = peers->items[i];
        struct br_peer *p = &br->peers[br->npeers++];
        p->br = br;
        p->cfg = pc;
        p->name = sval(pc, "name", "?");
        p->layer = sval(pc, "layer", "L3");
        p->transport = sval(pc, "transport", "?");
        p->address = sval(pc, "address", "");
        p->public_key = sval(pc, "public_key", "");
        struct ado_cnode *opt = ado_cnode_get(pc, "options");
        p->options = opt && opt->kind == ADO_CN_MAP ? ado_cnode_to_json(opt) : strdup("{}");
        p->attempts = (int)ival(pc, "retry.attempts", 3);
        p->window = (uint32_t)ival(pc, "window", br->window);
        p->ack_timeout_ms = (uint64_t)ival(pc, "ack_timeout", (int64_t)br->ack_timeout_ms);
        p->backoff_ms = (uint64_t)ival(pc, "retry.backoff", 200);
        p->max_backoff_ms = (uint64_t)ival(pc, "retry.max_backoff", 10000);
        if (p->max_backoff_ms < p->backoff_ms)
            p->max_backoff_ms = p->backoff_ms;
        p->br_failures = (uint32_t)ival(pc, "breaker.failures", 5);
        p->br_cooldown_ms = (uint64_t)ival(pc, "breaker.cooldown", 30000);
        p->up = -1;
        p->timer = calloc(1, sizeof *p->timer);
        if (!p->options || !p->timer) {
            br->npeers--;
            free(p->options);
            free(p->timer);
            ado_bridge_free(br);
            return ADO_ENOMEM;
        }
        uv_timer_init(node->loop, p->timer);
        p->timer->data = p;
        load_peer_counters(p);
        if (p->depth)
            logf_(br, ADO_LOG_INFO,
                  "peer %s: %llu message(s) in the outbox from before, resent "
                  "from seq %llu",
                  p->name, (unsigned long long)p->depth, (unsigned long long)p->send_next);
    }
    ado_node_flush(node);
    if (node->rpc && (rc = br_rpc_register(br)) < 0) {
        ado_diag_add(diag, node->cfg->file, 0, 0, "bridge",
                     "cannot register the bridge methods: %s", ado_node_api()->strerror(rc));
        ado_bridge_free(br);
        return rc;
    }
    if ((rc = ado_checkpoints_new(node, &br->cp, diag)) < 0) {
        ado_bridge_free(br);
        return rc;
    }
    *out = br;
    return 0;
}

int ado_bridge_start(struct ado_bridge *br, struct ado_diag *diag) {
    int errors = 0;
    for (size_t i = 0; i < br->npeers; i++) {
        struct br_peer *p = &br->peers[i];
        if (!p->tp) {
            struct ado_cnode *t = ado_cnode_get(p->cfg, "transport");
            char path[64];
            snprintf(path, sizeof path, "bridge.peers.%zu.transport", i);
            ado_diag_add(diag, br->node->cfg->file, t ? t->line : p->cfg->line,
                         t ? t->col : p->cfg->col, path,
                         "peer \"%s\": no running plugin registered the transport \"%s\"", p->name,
                         p->transport);
            errors++;
        }
    }
    if (errors)
        return ADO_ECONFIG;
    br->started = 1;
    for (size_t i = 0; i < br->npeers; i++)
        peer_open(&br->peers[i]);
    if (br->cp)
        ado_checkpoints_start(br->cp);
    br_metrics_dirty(br);
    return 0;
}

void ado_bridge_free(struct ado_bridge *br) {
    if (!br)
        return;
    /* Run pending durable callbacks (ours point at br) while everything is still here. */
    if (br->node->store)
        ado_node_flush(br->node);
    br->closing = 1;
    br_queries_cancel(br, NULL, "the node is stopping");
    for (size_t i = 0; i < br->npeers; i++) {
        struct br_peer *p = &br->peers[i];
        if (p->tp && p->opened && p->tp->ops->peer_close)
            p->tp->ops->peer_close(p->tp->arg, p->name);
        if (p->timer) {
            uv_timer_stop(p->timer);
            uv_close((uv_handle_t *)p->timer, timer_free_cb);
        }
        free(p->ring);
        free(p->att);
        free(p->options);
    }
    if (br->node->store)
        ado_node_flush(br->node);
    if (br->kick) {
        uv_timer_stop(br->kick);
        uv_close((uv_handle_t *)br->kick, timer_free_cb);
    }
    ado_checkpoints_free(br->cp);
    for (size_t i = 0; i < br->ntransports; i++) {
        free(br->transports[i]->name);
        free(br->transports[i]);
    }
    free(br->transports);
    free(br->peers);
    free(br);
}

/* ---- small public helpers -------------------------------------------------------------------- */

void ado_bridge_tune(struct ado_bridge *br, uint32_t window, uint64_t ack_timeout_ms) {
    if (!br)
        return;
    if (window)
        br->window = window;
    if (ack_timeout_ms)
        br->ack_timeout_ms = ack_timeout_ms;
    for (size_t i = 0; i < br->npeers; i++) {
        struct br_peer *p = &br->peers[i];
        if (window)
            p->window = window;
        if (ack_timeout_ms)
            p->ack_timeout_ms = ack_timeout_ms;
    }
}

int ado_bridge_peer_info(struct ado_bridge *br, const char *peer, struct ado_bridge_peer_info *o) {
    struct br_peer *p = br ? br_peer_find(br, peer) : NULL;
    if (!p)
        return ADO_ENOTFOUND;
    *o = (struct ado_bridge_peer_info){
        p->name, p->layer, p->transport, p->up,         p->breaker,  p->depth,      p->ninfl,
        p->sent, p->acked, p->retries,   p->dead_total, p->received, p->duplicates, p->next_seq};
    return 0;
}

struct ado_checkpoints *ado_bridge_checkpoints(struct ado_bridge *br) {
    return br ? br->cp : NULL;
}

static int layer_num(const char *l) {
    return l && (l[0] == 'L' || l[0] == 'l') ? atoi(l + 1) : 0;
}

const char *ado_bridge_upper_peer(struct ado_bridge *br) {
    if (!br)
        return NULL;
    int mine = layer_num(br->node->cfg->layer);
    for (size_t i = 0; i < br->npeers; i++)
        if (layer_num(br->peers[i].layer) < mine)
            return br->peers[i].name;
    return NULL;
}

/* Move a dead letter back into the outbox (same seq) and go back to send it. */
int br_dead_retry(struct br_peer *p, uint64_t seq) {
    struct ado_bridge *br = p->br;
    struct ado_store *st = br->node->store;
    unsigned char k[80];
    size_t kl = br_okey(k, p->name, seq);
    const void *v;
    size_t vl;
    int rc = ado_store_get(st, NULL, br->db_dead, k, kl, &v, &vl);
    if (rc < 0)
        return rc;
    const unsigned char *d = v;
    if (vl < 14)
        return ADO_EINVAL;
    size_t el = (size_t)d[12] << 8 | d[13];
    if (14 + el > vl)
        return ADO_EINVAL;
    size_t rl = vl - 14 - el;
    unsigned char *rec = malloc(rl ? rl : 1);
    if (!rec)
        return ADO_ENOMEM;
    memcpy(rec, d + 14 + el, rl);
    rc = ado_store_put(st, NULL, br->db_outbox, k, kl, rec, rl);
    free(rec);
    if (rc == 0)
        rc = ado_store_del(st, NULL, br->db_dead, k, kl);
    if (rc < 0)
        return rc;
    p->dead_now--;
    p->depth++;
    attempts_forget(p, seq);
    ring_cut(p, seq);
    if (p->send_next > seq)
        p->send_next = seq;
    if (seq > p->committed)
        p->committed = seq;
    br_metrics_dirty(br);
    br_kick(p);
    return 0;
}

int br_dead_drop(struct br_peer *p, uint64_t seq) {
    struct ado_bridge *br = p->br;
    unsigned char k[80];
    size_t kl = br_okey(k, p->name, seq);
    const void *v;
    size_t vl;
    int rc = ado_store_get(br->node->store, NULL, br->db_dead, k, kl, &v, &vl);
    if (rc == 0)
        rc = ado_store_del(br->node->store, NULL, br->db_dead, k, kl);
    if (rc == 0) {
        p->dead_now--;
        br_metrics_dirty(br);
    }
    return rc;
}

int br_dead_parse(const void *val, size_t vlen, uint32_t *attempts, uint64_t *failed_ms,
                  const char **err, size_t *elen, struct br_rec *rec) {
    const unsigned char *d = val;
    if (vlen < 14)
        return ADO_EINVAL;
    *attempts = rd32(d);
    *failed_ms = br_rd64(d + 4);
    *elen = (size_t)d[12] << 8 | d[13];
    if (14 + *elen > vlen)
        return ADO_EINVAL;
    *err = (const char *)d + 14;
    rec->data = (void *)(d + 14 + *elen);
    rec->len = vlen - 14 - *elen;
    return 0;
}
