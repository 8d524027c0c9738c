/* ws_peer: the bridge transport between nodes over WebSocket (see README.md).
 *
 * The plugin runs its own libwebsockets context on the node's libuv loop: a server for
 * incoming peers (unless `listen: off`) and clients for the peers it dials. Each
 * connection proves both nodes' Ed25519 keys before any message moves (link.c); this file
 * keeps the peers, the in-flight messages, the queries, the timers and the transport ops. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "wsp.h"

#define TICK_MS 50

static const struct ado_schema schema[] = {
    {.key = "listen",
     .type = ADO_T_STRING,
     .default_value = "127.0.0.1:9645",
     .help = "HOST:PORT of the server for incoming peers, or off (client only)"},
    {.key = "heartbeat",
     .type = ADO_T_DURATION,
     .default_value = "2s",
     .flags = ADO_F_RANGE,
     .min = 50,
     .max = 600000,
     .help = "ping period on an idle link"},
    {.key = "heartbeat_misses",
     .type = ADO_T_INT,
     .default_value = "3",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 100,
     .help = "close a link silent for this many heartbeat periods"},
    {.key = "reconnect_initial",
     .type = ADO_T_DURATION,
     .default_value = "200ms",
     .flags = ADO_F_RANGE,
     .min = 10,
     .max = 600000,
     .help = "first reconnect delay"},
    {.key = "reconnect_max",
     .type = ADO_T_DURATION,
     .default_value = "10s",
     .flags = ADO_F_RANGE,
     .min = 10,
     .max = 3600000,
     .help = "reconnect delay cap"},
    {.key = "max_frame",
     .type = ADO_T_SIZE,
     .default_value = "1MiB",
     .flags = ADO_F_RANGE,
     .min = 1024,
     .max = 256 * 1024 * 1024,
     .help = "largest frame accepted"},
    {.key = "handshake_timeout",
     .type = ADO_T_DURATION,
     .default_value = "5s",
     .flags = ADO_F_RANGE,
     .min = 50,
     .max = 600000,
     .help = "close a connection not authenticated within this time"},
    {.key = "ack_timeout",
     .type = ADO_T_DURATION,
     .default_value = "10s",
     .flags = ADO_F_RANGE,
     .min = 50,
     .max = 3600000,
     .help = "close a link whose oldest message waits this long"},
    {.key = "max_queue",
     .type = ADO_T_SIZE,
     .default_value = "16MiB",
     .flags = ADO_F_RANGE,
     .min = 4096,
     .max = 1024LL * 1024 * 1024,
     .help = "bytes queued per connection"},
    {.key = "max_inflight",
     .type = ADO_T_INT,
     .default_value = "100000",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 10000000,
     .help = "messages sent and not yet acked per peer"},
    ADO_SCHEMA_END,
};

static uint64_t now_ms(struct wsp *w) {
    return w->api->now_ms(w->ctx);
}

struct wsp_peer *wsp_peer_by_pk(struct wsp *w, const uint8_t pk[WSP_PK]) {
    for (struct wsp_peer *p = w->peers; p; p = p->next)
        if (p->has_pk && !memcmp(p->pk, pk, WSP_PK))
            return p;
    return NULL;
}

struct wsp_peer *wsp_peer_by_name(struct wsp *w, const char *name) {
    for (struct wsp_peer *p = w->peers; p; p = p->next)
        if (!strcmp(p->name, name))
            return p;
    return NULL;
}

static void peer_metric(struct wsp *w, struct wsp_peer *p, const char *name, double v, int add) {
    char labels[300];
    snprintf(labels, sizeof labels, "peer=\"%s\"", p->name);
    if (add)
        w->api->metric_add(w->ctx, name, labels, v);
    else
        w->api->metric_set(w->ctx, name, labels, v);
}

/* ---- in-flight FIFO ------------------------------------------------------------------ */

static int fl_push(struct wsp_peer *p, uint64_t seq, uint64_t ms) {
    if (p->flhead > 0 && p->flhead * 2 >= p->fln) {
        memmove(p->fl, p->fl + p->flhead, (p->fln - p->flhead) * sizeof *p->fl);
        p->fln -= p->flhead;
        p->flhead = 0;
    }
    if (p->fln == p->flcap) {
        size_t cap = p->flcap ? p->flcap * 2 : 64;
        struct wsp_inflight *n = realloc(p->fl, cap * sizeof *n);
        if (!n)
            return ADO_ENOMEM;
        p->fl = n;
        p->flcap = cap;
    }
    p->fl[p->fln++] = (struct wsp_inflight){seq, ms};
    return 0;
}

/* Remove `seq` (usually the oldest). 1 if it was in flight. */
static int fl_remove(struct wsp_peer *p, uint64_t seq) {
    for (size_t i = p->flhead; i < p->fln; i++) {
        if (p->fl[i].seq != seq)
            continue;
        if (i == p->flhead) {
            p->flhead++;
        } else {
            memmove(p->fl + i, p->fl + i + 1, (p->fln - i - 1) * sizeof *p->fl);
            p->fln--;
        }
        if (p->flhead == p->fln)
            p->flhead = p->fln = 0;
        return 1;
    }
    return 0;
}

static size_t fl_count(const struct wsp_peer *p) {
    return p->fln - p->flhead;
}

/* ---- links ----------------------------------------------------------------------------- */

/* Public key of the node that dialed `c`. */
static const uint8_t *dialer_pk(struct wsp *w, struct wsp_conn *c) {
    return c->client ? w->pk : c->their_pk;
}

int wsp_link_up(struct wsp *w, struct wsp_conn *c) {
    struct wsp_peer *p = c->peer;
    if (p->dialing == c)
        p->dialing = NULL;
    if (p->link && p->link != c) {
        /* Both nodes dialed: keep the link dialed by the smaller public key, so that the two
         * sides agree; between two links from the same dialer keep the newer. */
        struct wsp_conn *old = p->link;
        int cmp = memcmp(dialer_pk(w, c), dialer_pk(w, old), WSP_PK);
        if (cmp > 0)
            return -1;
        wsp_conn_kill(old, "replaced by a new link");
    }
    p->link = c;
    p->backoff_ms = (uint64_t)w->backoff_initial_ms;
    p->last_error[0] = 0;
    c->last_ping_ms = now_ms(w);
    w->api->log(w->ctx, ADO_LOG_INFO, "link up: peer=%s (%s, %s) %s", p->name, p->layer, c->remote,
                c->client ? "dialed" : "accepted");
    peer_metric(w, p, "ws_peer_link_up", 1, 0);
    peer_metric(w, p, "ws_peer_links_total", 1, 1);
    w->api->bridge_peer_state(w->ctx, p->name, 1, NULL);
    return 0;
}

static void fail_queries(struct wsp *w, const char *peer, int status, int call) {
    for (struct wsp_query **qq = &w->queries; *qq;) {
        struct wsp_query *q = *qq;
        if (peer && strcmp(q->peer, peer)) {
            qq = &q->next;
            continue;
        }
        *qq = q->next;
        if (call)
            q->done(q->cbarg, status, NULL);
        free(q->peer);
        free(q);
    }
}

void wsp_link_down(struct wsp *w, struct wsp_conn *c, const char *reason) {
    struct wsp_peer *p = c->peer;
    if (!p || p->link != c)
        return;
    p->link = NULL;
    snprintf(p->last_error, sizeof p->last_error, "%s", reason);
    if (w->stopping)
        return;
    w->api->log(w->ctx, ADO_LOG_INFO, "link down: peer=%s: %s", p->name, reason);
    peer_metric(w, p, "ws_peer_link_up", 0, 0);
    /* Whatever was on the wire may or may not have arrived: the kernel sends it again, and
     * the receiver's dedupe makes the repeat harmless. Copy first: the kernel may call send
     * from inside bridge_failed. */
    size_t n = fl_count(p);
    uint64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
    for (size_t i = 0; seqs && i < n; i++)
        seqs[i] = p->fl[p->flhead + i].seq;
    p->flhead = p->fln = 0;
    w->api->bridge_peer_state(w->ctx, p->name, 0, reason);
    for (size_t i = 0; seqs && i < n; i++)
        w->api->bridge_failed(w->ctx, p->name, seqs[i], reason);
    p->failed += n;
    free(seqs);
    fail_queries(w, p->name, ADO_ECLOSED, 1);
}

/* ---- frames after authentication -------------------------------------------------------- */

struct rx_pending {
    struct wsp_anchor *anchor;
    char *peer;
    uint64_t seq;
};

static void anchor_put(struct wsp_anchor *a) {
    if (--a->refs == 0 && !a->w)
        free(a);
}

static void send_ack(struct wsp *w, const char *peer, uint64_t seq, int status) {
    struct wsp_peer *p = wsp_peer_by_name(w, peer);
    if (!p || !p->link)
        return; /* the sender will send it again and get the ack then */
    struct wsp_frame f = {.type = status == 0 ? WSP_ACK : WSP_NACK, .u = seq};
    if (status)
        snprintf(f.s1, sizeof f.s1, "%s", w->api->strerror(status));
    wsp_conn_send(p->link, &f);
}

/* Acks are not written one by one: a durable apply adds its seq to the peer's queue and asks
 * for a writeable callback; wsp_acks_flush then writes the turn's acks as ranges of
 * consecutive seqs (ACKR), one frame per range. Only seqs whose apply is durable (done with
 * status 0) ever enter the queue, so a range never covers an unapplied message. */
static void ack_later(struct wsp *w, const char *peer, uint64_t seq) {
    struct wsp_peer *p = wsp_peer_by_name(w, peer);
    if (!p || !p->link || !p->link->wsi)
        return; /* the sender will send it again and get the ack then */
    if (p->nackq == p->capackq) {
        size_t cap = p->capackq ? p->capackq * 2 : 256;
        uint64_t *q = realloc(p->ackq, cap * sizeof *q);
        if (!q) {
            send_ack(w, peer, seq, 0);
            return;
        }
        p->ackq = q;
        p->capackq = cap;
    }
    p->ackq[p->nackq++] = seq;
    lws_callback_on_writable(p->link->wsi);
}

void wsp_acks_flush(struct wsp *w, struct wsp_conn *c) {
    struct wsp_peer *p = c->peer;
    if (!p || p->link != c || !p->nackq)
        return;
    for (size_t i = 0; i < p->nackq;) {
        struct wsp_frame f = {.type = WSP_ACK};
        size_t k = wsp_ack_run(p->ackq + i, p->nackq - i, &f.u, &f.last);
        if (k > 1)
            f.type = WSP_ACKR;
        if (wsp_conn_send(c, &f) < 0)
            break; /* queue full or closing: the sender resends, the repeat is acked then */
        i += k;
    }
    p->nackq = 0;
    (void)w;
}

static void rx_done(void *arg, int status) {
    struct rx_pending *r = arg;
    struct wsp *w = r->anchor->w;
    if (w && !w->stopping) {
        if (status == 0)
            ack_later(w, r->peer, r->seq);
        else
            send_ack(w, r->peer, r->seq, status);
    }
    anchor_put(r->anchor);
    free(r->peer);
    free(r);
}

static int on_msg(struct wsp *w, struct wsp_conn *c, const struct wsp_frame *f) {
    struct wsp_peer *p = c->peer;
    struct rx_pending *r = malloc(sizeof *r);
    char *peer = strdup(p->name);
    if (!r || !peer) {
        free(r), free(peer);
        send_ack(w, p->name, f->u, ADO_ENOMEM);
        return 0;
    }
    *r = (struct rx_pending){w->anchor, peer, f->u};
    w->anchor->refs++;
    p->received++;
    struct ado_bridge_msg m = {f->s1, f->u, f->s2, f->blob, f->blob_len, f->created_ms};
    int rc = w->api->bridge_received(w->ctx, p->name, &m, rx_done, r);
    if (rc < 0) { /* refused now: done is not called */
        send_ack(w, p->name, f->u, rc);
        anchor_put(r->anchor);
        free(r->peer);
        free(r);
    }
    return 0;
}

struct q_pending {
    struct wsp_anchor *anchor;
    char *peer;
    uint64_t id;
};

static void send_result(struct wsp *w, const char *peer, uint64_t id, int status,
                        const char *resp) {
    struct wsp_peer *p = wsp_peer_by_name(w, peer);
    if (!p || !p->link)
        return;
    struct wsp_frame f = {.type = WSP_RESULT, .u = id, .status = status};
    f.blob = (const uint8_t *)(resp ? resp : "");
    f.blob_len = resp ? strlen(resp) : 0;
    wsp_conn_send(p->link, &f);
}

static void q_done(void *arg, const char *response) {
    struct q_pending *q = arg;
    struct wsp *w = q->anchor->w;
    if (w && !w->stopping)
        send_result(w, q->peer, q->id, 0, response);
    anchor_put(q->anchor);
    free(q->peer);
    free(q);
}

static int on_query(struct wsp *w, struct wsp_conn *c, const struct wsp_frame *f) {
    struct q_pending *q = malloc(sizeof *q);
    char *peer = strdup(c->peer->name);
    if (!q || !peer) {
        free(q), free(peer);
        send_result(w, c->peer->name, f->u, ADO_ENOMEM, NULL);
        return 0;
    }
    *q = (struct q_pending){w->anchor, peer, f->u};
    w->anchor->refs++;
    /* Read-only: the request runs with the rights of a reader, whatever it asks for. */
    int rc = w->api->rpc_call(w->ctx, (const char *)f->blob, "reader", q_done, q);
    if (rc < 0) {
        send_result(w, peer, f->u, rc, NULL);
        anchor_put(q->anchor);
        free(q->peer);
        free(q);
    }
    return 0;
}

static void on_result(struct wsp *w, const struct wsp_frame *f) {
    for (struct wsp_query **qq = &w->queries; *qq; qq = &(*qq)->next) {
        struct wsp_query *q = *qq;
        if (q->id != f->u)
            continue;
        *qq = q->next;
        int st = f->status < 0 ? f->status : 0;
        q->done(q->cbarg, st, st ? NULL : (const char *)f->blob);
        free(q->peer);
        free(q);
        return;
    }
    /* A result after the timeout: dropped. */
}

/* ACKR{first, last} (decode checked first < last and the span): the in-flight messages in
 * the range are acked, in one pass over the in-flight list (it is not sorted once the kernel
 * went back and resent), taken out before the kernel hears of them. Seqs of the range that
 * are not in flight (already failed back after a link went down: the kernel resends them and
 * gets a fresh ack) are not reported, so a range costs at most the in-flight count. */
static void fl_ack_range(struct wsp *w, struct wsp_peer *p, uint64_t first, uint64_t last) {
    size_t n = fl_count(p), k = 0;
    uint64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
    if (!seqs) {
        for (uint64_t s = first; n; s++) { /* out of memory: one by one, as ACKs would */
            fl_remove(p, s);
            p->acked++;
            w->api->bridge_acked(w->ctx, p->name, s);
            if (s == last)
                break;
        }
        return;
    }
    size_t o = p->flhead;
    for (size_t i = p->flhead; i < p->fln; i++) {
        if (p->fl[i].seq >= first && p->fl[i].seq <= last)
            seqs[k++] = p->fl[i].seq;
        else
            p->fl[o++] = p->fl[i];
    }
    p->fln = o;
    if (p->flhead == p->fln)
        p->flhead = p->fln = 0;
    for (size_t i = 0; i < k; i++) {
        p->acked++;
        w->api->bridge_acked(w->ctx, p->name, seqs[i]);
    }
    free(seqs);
}

int wsp_on_frame(struct wsp *w, struct wsp_conn *c, const struct wsp_frame *f,
                 const char **reason) {
    struct wsp_peer *p = c->peer;
    if (p->link != c) {
        *reason = "frame on a stale link";
        return -1;
    }
    switch (f->type) {
    case WSP_MSG:
        return on_msg(w, c, f);
    case WSP_ACK:
        fl_remove(p, f->u);
        p->acked++;
        w->api->bridge_acked(w->ctx, p->name, f->u);
        return 0;
    case WSP_ACKR:
        fl_ack_range(w, p, f->u, f->last);
        return 0;
    case WSP_NACK:
        fl_remove(p, f->u);
        p->nacked++;
        w->api->bridge_failed(w->ctx, p->name, f->u, f->s1);
        return 0;
    case WSP_PING: {
        struct wsp_frame pong = {.type = WSP_PONG, .u = f->u};
        wsp_conn_send(c, &pong);
        return 0;
    }
    case WSP_PONG:
        return 0;
    case WSP_QUERY:
        return on_query(w, c, f);
    case WSP_RESULT:
        on_result(w, f);
        return 0;
    }
    *reason = "unexpected frame";
    return -1;
}

/* ---- transport ops --------------------------------------------------------------------- */

static int op_peer_open(void *arg, const char *name, const char *layer, const char *address,
                        const char *public_key, const char *options) {
    struct wsp *w = arg;
    if (!w->lws)
        return ADO_ESTATE;
    if (wsp_peer_by_name(w, name))
        return ADO_EEXIST;
    struct wsp_peer *p = calloc(1, sizeof *p);
    if (!p)
        return ADO_ENOMEM;
    p->name = strdup(name);
    p->layer = strdup(layer ? layer : "");
    p->address = strdup(address ? address : "");
    if (!p->name || !p->layer || !p->address)
        goto fail_mem;
    if (public_key && *public_key) {
        if (wsp_hex32(public_key, p->pk) < 0) {
            w->api->log(w->ctx, ADO_LOG_ERROR, "peer %s: public_key is not 64 hex chars", name);
            goto fail_inval;
        }
        p->has_pk = 1;
    } else {
        w->api->log(w->ctx, ADO_LOG_WARN, "peer %s has no public_key: it cannot authenticate",
                    name);
    }
    int dial = 1;
    if (options && *options) {
        json_t *o = json_loads(options, 0, NULL);
        json_t *d = json_is_object(o) ? json_object_get(o, "dial") : NULL;
        if (json_is_boolean(d))
            dial = json_is_true(d);
        json_decref(o);
    }
    if (!*p->address || !strcmp(p->address, "accept") || !strcmp(p->address, "-"))
        dial = 0;
    if (dial &&
        wsp_parse_url(p->address, p->host, sizeof p->host, &p->port, p->path, sizeof p->path) < 0) {
        w->api->log(w->ctx, ADO_LOG_ERROR, "peer %s: address \"%s\" is not ws://HOST:PORT[/PATH]",
                    name, p->address);
        goto fail_inval;
    }
    p->dial = dial;
    p->backoff_ms = (uint64_t)w->backoff_initial_ms;
    p->next = w->peers;
    w->peers = p;
    peer_metric(w, p, "ws_peer_link_up", 0, 0);
    w->api->log(w->ctx, ADO_LOG_INFO, "peer %s (%s) %s%s", name, p->layer,
                dial ? "dialing " : "accepting only", dial ? p->address : "");
    return 0;
fail_mem:
    free(p->name), free(p->layer), free(p->address), free(p);
    return ADO_ENOMEM;
fail_inval:
    free(p->name), free(p->layer), free(p->address), free(p);
    return ADO_EINVAL;
}

static void peer_free(struct wsp_peer *p) {
    free(p->name), free(p->layer), free(p->address), free(p->fl), free(p->ackq), free(p);
}

static void op_peer_close(void *arg, const char *name) {
    struct wsp *w = arg;
    struct wsp_peer **pp = &w->peers;
    while (*pp && strcmp((*pp)->name, name))
        pp = &(*pp)->next;
    struct wsp_peer *p = *pp;
    if (!p)
        return;
    *pp = p->next;
    /* The kernel is closing the peer: no callbacks into it for this peer any more. */
    p->link = NULL;
    p->dialing = NULL;
    for (struct wsp_conn *c = w->conns; c; c = c->next)
        if (c->peer == p) {
            c->peer = NULL;
            wsp_conn_kill(c, "peer closed");
        }
    fail_queries(w, name, ADO_ECLOSED, 1);
    peer_free(p);
}

static int op_send(void *arg, const char *peer, const struct ado_bridge_msg *m) {
    struct wsp *w = arg;
    struct wsp_peer *p = wsp_peer_by_name(w, peer);
    if (!p)
        return ADO_ENOTFOUND;
    if (!p->link)
        return ADO_ECLOSED;
    if (fl_count(p) >= (size_t)w->max_inflight)
        return ADO_ELIMIT;
    struct wsp_frame f = {.type = WSP_MSG, .u = m->seq, .created_ms = m->created_ms};
    if (!m->origin || !m->topic || strlen(m->origin) > WSP_STR_MAX ||
        strlen(m->topic) > WSP_STR_MAX)
        return ADO_EINVAL;
    snprintf(f.s1, sizeof f.s1, "%s", m->origin);
    snprintf(f.s2, sizeof f.s2, "%s", m->topic);
    f.blob = m->payload;
    f.blob_len = m->len;
    if (wsp_encoded_len(&f) > (size_t)w->max_frame)
        return ADO_ELIMIT;
    int rc = fl_push(p, m->seq, now_ms(w));
    if (rc < 0)
        return rc;
    rc = wsp_conn_send(p->link, &f);
    if (rc < 0) {
        p->fln--;
        return rc;
    }
    p->sent++;
    return 0;
}

static int op_query(void *arg, const char *peer, const char *request, size_t len,
                    uint64_t timeout_ms, void (*done)(void *, int, const char *), void *cbarg) {
    struct wsp *w = arg;
    struct wsp_peer *p = wsp_peer_by_name(w, peer);
    if (!p)
        return ADO_ENOTFOUND;
    if (!p->link)
        return ADO_ECLOSED;
    struct wsp_query *q = calloc(1, sizeof *q);
    if (!q || !(q->peer = strdup(peer))) {
        free(q);
        return ADO_ENOMEM;
    }
    q->id = ++w->next_query_id;
    q->deadline_ms = now_ms(w) + timeout_ms;
    q->done = done;
    q->cbarg = cbarg;
    struct wsp_frame f = {
        .type = WSP_QUERY, .u = q->id, .blob = (const uint8_t *)request, .blob_len = len};
    int rc = wsp_conn_send(p->link, &f);
    if (rc < 0) {
        free(q->peer);
        free(q);
        return rc;
    }
    q->next = w->queries;
    w->queries = q;
    return 0;
}

static const struct ado_transport transport = {
    .size = sizeof(struct ado_transport),
    .peer_open = op_peer_open,
    .peer_close = op_peer_close,
    .send = op_send,
    .query = op_query,
};

/* ---- the tick: dialing, handshake and heartbeat deadlines, ack and query timeouts -------- */

static void tick_peers(struct wsp *w, uint64_t now) {
    for (struct wsp_peer *p = w->peers; p; p = p->next) {
        if (p->dial && !p->link && !p->dialing && now >= p->next_dial_ms) {
            /* Next attempt after the backoff (with +-20% jitter), doubling up to the cap;
             * link_up resets it. */
            uint64_t j = p->backoff_ms / 5;
            uint64_t jitter = j ? randombytes_uniform((uint32_t)(2 * j + 1)) : 0;
            p->next_dial_ms = now + p->backoff_ms - j + jitter;
            p->backoff_ms = p->backoff_ms * 2 > (uint64_t)w->backoff_max_ms
                                ? (uint64_t)w->backoff_max_ms
                                : p->backoff_ms * 2;
            wsp_dial(w, p);
        }
        if (p->link && fl_count(p) && now - p->fl[p->flhead].sent_ms > (uint64_t)w->ack_timeout_ms)
            wsp_conn_kill(p->link, "ack timeout");
        peer_metric(w, p, "ws_peer_inflight", (double)fl_count(p), 0);
    }
}

static void tick_conns(struct wsp *w, uint64_t now) {
    for (struct wsp_conn *c = w->conns; c; c = c->next) {
        if (c->dead)
            continue;
        if (!c->authed) {
            if (now - c->opened_ms > (uint64_t)w->handshake_ms && c->wsi &&
                (c->got_hello || !c->client ||
                 now - c->opened_ms > 2 * (uint64_t)w->handshake_ms)) {
                if (!c->client)
                    wsp_refuse_count(w, c, "handshake timeout", NULL);
                wsp_conn_kill(c, "handshake timeout");
            }
            continue;
        }
        if (now - c->last_rx_ms > (uint64_t)(w->heartbeat_ms * w->misses)) {
            w->heartbeat_timeouts++;
            if (c->peer)
                peer_metric(w, c->peer, "ws_peer_heartbeat_timeouts_total", 1, 1);
            wsp_conn_kill(c, "heartbeat timeout");
        } else if (now - c->last_ping_ms >= (uint64_t)w->heartbeat_ms) {
            c->last_ping_ms = now;
            struct wsp_frame f = {.type = WSP_PING, .u = now};
            wsp_conn_send(c, &f);
        }
    }
}

static void tick_queries(struct wsp *w, uint64_t now) {
    for (struct wsp_query **qq = &w->queries; *qq;) {
        struct wsp_query *q = *qq;
        if (now < q->deadline_ms) {
            qq = &q->next;
            continue;
        }
        *qq = q->next;
        q->done(q->cbarg, ADO_ETIMEDOUT, NULL);
        free(q->peer);
        free(q);
    }
}

static int on_tick(ado_ctx *ctx, void *arg) {
    struct wsp *w = arg;
    (void)ctx;
    if (w->stopping || !w->lws)
        return 0;
    uint64_t now = now_ms(w);
    tick_peers(w, now);
    tick_conns(w, now);
    tick_queries(w, now);
    return 0;
}

/* ---- RPC: ws_peer_status ---------------------------------------------------------------- */

static void rpc_status(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    struct wsp *w = arg;
    (void)ctx, (void)params, (void)len;
    char hex[2 * WSP_PK + 1];
    sodium_bin2hex(hex, sizeof hex, w->pk, WSP_PK);
    json_t *peers = json_array();
    for (struct wsp_peer *p = w->peers; p; p = p->next)
        json_array_append_new(
            peers,
            json_pack("{s:s,s:s,s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "name", p->name,
                      "layer", p->layer, "address", p->address, "up", p->link != NULL, "dial",
                      p->dial, "inflight", (json_int_t)fl_count(p), "sent", (json_int_t)p->sent,
                      "acked", (json_int_t)p->acked, "nacked", (json_int_t)p->nacked, "received",
                      (json_int_t)p->received, "failed", (json_int_t)p->failed, "connects",
                      (json_int_t)p->connects, "last_error", p->last_error));
    size_t nconns = 0;
    for (struct wsp_conn *c = w->conns; c; c = c->next)
        nconns++;
    json_t *o = json_pack(
        "{s:s,s:s,s:o,s:I,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:I}", "listen", w->listen, "public_key",
        hex, "peers", peers, "connections", (json_int_t)nconns, "refused", "total",
        (json_int_t)w->refused, "unknown_key", (json_int_t)w->refused_unknown_key, "bad_frame",
        (json_int_t)w->refused_bad_frame, "oversize", (json_int_t)w->refused_oversize,
        "before_auth", (json_int_t)w->refused_before_auth, "replay", (json_int_t)w->refused_replay,
        "bad_signature", (json_int_t)w->refused_bad_sig, "heartbeat_timeouts",
        (json_int_t)w->heartbeat_timeouts);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
        w->api->rpc_reply(call, s, strlen(s));
    else
        w->api->rpc_error(call, -32603, "out of memory", NULL);
    free(s);
    json_decref(o);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int wsp_init(ado_ctx *ctx, const struct ado_api *api, void **state) {
    if (sodium_init() < 0)
        return ADO_EPLUGIN;
    struct wsp *w = calloc(1, sizeof *w);
    struct wsp_anchor *a = calloc(1, sizeof *a);
    if (!w || !a) {
        free(w), free(a);
        return ADO_ENOMEM;
    }
    w->ctx = ctx;
    w->api = api;
    w->anchor = a;
    a->w = w;
    int rc = api->config_string(ctx, "listen", &w->listen);
    if (!rc)
        rc = api->config_int(ctx, "heartbeat", &w->heartbeat_ms);
    if (!rc)
        rc = api->config_int(ctx, "heartbeat_misses", &w->misses);
    if (!rc)
        rc = api->config_int(ctx, "reconnect_initial", &w->backoff_initial_ms);
    if (!rc)
        rc = api->config_int(ctx, "reconnect_max", &w->backoff_max_ms);
    if (!rc)
        rc = api->config_int(ctx, "max_frame", &w->max_frame);
    if (!rc)
        rc = api->config_int(ctx, "handshake_timeout", &w->handshake_ms);
    if (!rc)
        rc = api->config_int(ctx, "ack_timeout", &w->ack_timeout_ms);
    if (!rc)
        rc = api->config_int(ctx, "max_queue", &w->max_queue);
    if (!rc)
        rc = api->config_int(ctx, "max_inflight", &w->max_inflight);
    if (!rc)
        rc = api->node_public_key(ctx, w->pk);
    if (!rc && w->backoff_max_ms < w->backoff_initial_ms)
        w->backoff_max_ms = w->backoff_initial_ms;
    /* The kernel opens peers after every plugin started; register now so it finds us. */
    if (!rc)
        rc = api->bridge_transport_register(ctx, "ws_peer", &transport, w);
    if (rc < 0) {
        api->log(ctx, ADO_LOG_ERROR, "init failed: %s", api->strerror(rc));
        free(a), free(w);
        return rc;
    }
    *state = w;
    return 0;
}

static int wsp_start(ado_ctx *ctx, void *state) {
    struct wsp *w = state;
    const struct ado_api *api = w->api;
    char host[256] = "";
    int port = CONTEXT_PORT_NO_LISTEN;
    int off = !strcmp(w->listen, "off") || !*w->listen;
    if (!off && wsp_parse_hostport(w->listen, host, sizeof host, &port) < 0) {
        api->log(ctx, ADO_LOG_ERROR, "listen: expected HOST:PORT or off, got \"%s\"", w->listen);
        return ADO_ECONFIG;
    }
    void *loops[1] = {api->uv_loop(ctx)};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = !off && strcmp(host, "0.0.0.0") && strcmp(host, "*") ? host : NULL;
    info.protocols = wsp_protocols;
    info.options = LWS_SERVER_OPTION_LIBUV;
    if (!strchr(host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = loops;
    info.user = w;
    info.vhost_name = "ws_peer";
    info.server_string = "adonode-ws_peer";
    info.timeout_secs = 30;
    info.count_threads = 1;
    w->lws = lws_create_context(&info);
    if (!w->lws) {
        api->log(ctx, ADO_LOG_ERROR, "cannot listen on %s (in use or bad address)", w->listen);
        return ADO_EIO;
    }
    int rc = api->timer_start(ctx, TICK_MS, TICK_MS, on_tick, w, &w->tick_timer);
    if (!rc)
        rc = api->rpc_register(ctx, "ws_peer_status", "reader",
                               "ws_peer links, in-flight messages and refused connections",
                               rpc_status, w);
    if (rc < 0) {
        lws_context_destroy(w->lws);
        w->lws = NULL;
        return rc;
    }
    char hex[2 * WSP_PK + 1];
    sodium_bin2hex(hex, sizeof hex, w->pk, WSP_PK);
    api->log(ctx, ADO_LOG_INFO, "listening on %s, node key %s", off ? "nothing (off)" : w->listen,
             hex);
    return 0;
}

static void wsp_stop(ado_ctx *ctx, void *state) {
    struct wsp *w = state;
    (void)ctx;
    w->stopping = 1;
    /* The kernel closed the peers before plugins stop; what is left gets no callbacks. */
    fail_queries(w, NULL, ADO_ECLOSED, 0);
    if (w->lws) {
        /* lws closes every connection (the CLOSED callbacks free them) and its uv handles;
         * the node runs its loop afterwards so that the handles finish closing. */
        lws_context_destroy(w->lws);
        w->lws = NULL;
    }
    if (w->conns)
        w->api->log(ctx, ADO_LOG_WARN, "connections not closed by lws");
}

static void wsp_fini(ado_ctx *ctx, void *state) {
    struct wsp *w = state;
    (void)ctx;
    if (!w)
        return;
    while (w->peers) {
        struct wsp_peer *p = w->peers;
        w->peers = p->next;
        peer_free(p);
    }
    w->anchor->w = NULL;
    if (w->anchor->refs == 0)
        free(w->anchor);
    free(w);
}

ADO_PLUGIN_DEFINE(
        .name = "ws_peer", .version = "1.0.0",
        .description = "Bridge transport between nodes over WebSocket, Ed25519-authenticated",
        .schema = schema, .init = wsp_init, .start = wsp_start, .stop = wsp_stop, .fini = wsp_fini);
