/* The bridge's RPC methods: bridge_peers, bridge_send, bridge_deadletters, bridge_retry,
 * bridge_drop, bridge_query. Handlers get the node (not the bridge): the registry outlives
 * the bridge by a little at stop, and then they answer "the bridge is stopped". */
#define ADO_BRIDGE_INTERNAL
#include "bridge.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "node.h"
#include "rpc.h"

#define E_INVALID  (-32602)
#define E_INTERNAL (-32603)
#define E_STOPPED  (-32010)
#define E_NOQUERY  (-32011)
#define E_DOWN     (-32012)
#define E_TIMEOUT  (-32013)
#define E_FAILED   (-32014)
#define E_FULL     (-32015)

static void reply(ado_call *call, json_t *j) {
    char *t = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!t) {
        ado_rpc_error(call, E_INTERNAL, "internal error: out of memory", NULL);
        return;
    }
    ado_rpc_reply(call, t, strlen(t));
    free(t);
}

/* Parse params and find the bridge; answers the call and returns NULL on a problem. */
static struct ado_bridge *begin(ado_call *call, void *arg, const char *params, size_t len,
                                json_t **out) {
    struct ado_node *node = arg;
    *out = NULL;
    if (!node->bridge || node->bridge->closing) {
        ado_rpc_error(call, E_STOPPED, "the bridge is stopped", NULL);
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb(params, len, JSON_DECODE_ANY, &e);
    if (!j || !(json_is_object(j) || json_is_null(j))) {
        json_decref(j);
        ado_rpc_error(call, E_INVALID, "invalid params: expected an object", NULL);
        return NULL;
    }
    *out = j;
    return node->bridge;
}

static struct br_peer *need_peer(struct ado_bridge *br, ado_call *call, json_t *params) {
    const char *name = json_string_value(json_object_get(params, "peer"));
    struct br_peer *p = br_peer_find(br, name);
    if (!p) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid params: %s%s%s",
                 name ? "unknown peer \"" : "peer is required", name ? name : "", name ? "\"" : "");
        ado_rpc_error(call, E_INVALID, msg, NULL);
    }
    return p;
}

/* begin() and need_peer() together: the params and the peer named by `peer`, or NULL with
 * the call answered and nothing left to free. */
static struct br_peer *begin_peer(ado_call *call, void *arg, const char *params, size_t len,
                                  json_t **out) {
    struct ado_bridge *br = begin(call, arg, params, len, out);
    if (!br)
        return NULL;
    struct br_peer *p = need_peer(br, call, *out);
    if (!p) {
        json_decref(*out);
        *out = NULL;
    }
    return p;
}

static json_t *str_or_null(const char *s) {
    return s && *s ? json_string(s) : json_null();
}

static json_t *payload_value(const void *d, size_t n) {
    json_error_t e;
    json_t *j = n ? json_loadb(d, n, JSON_DECODE_ANY, &e) : NULL;
    if (!j)
        j = json_stringn(d ? d : "", n);
    return j ? j : json_null();
}

/* ---- bridge_peers ------------------------------------------------------------------------ */

static void m_peers(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx;
    json_t *pj;
    struct ado_bridge *br = begin(call, arg, params, len, &pj);
    if (!br)
        return;
    json_decref(pj);
    json_t *a = json_array();
    for (size_t i = 0; i < br->npeers; i++) {
        struct br_peer *p = &br->peers[i];
        json_t *o = json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o}", "name",
            p->name, "layer", p->layer, "transport", p->transport, "address", p->address, "state",
            p->up == 1   ? "up"
            : p->up == 0 ? "down"
                         : "unknown",
            "breaker", ado_breaker_state_name(p->breaker), "queue_depth", (json_int_t)p->depth,
            "in_flight", (json_int_t)p->ninfl, "dead_letters", (json_int_t)p->dead_now, "next_seq",
            (json_int_t)p->next_seq, "sent", (json_int_t)p->sent, "acked", (json_int_t)p->acked,
            "retries", (json_int_t)p->retries, "received", (json_int_t)p->received, "duplicates",
            (json_int_t)p->duplicates, "breaker_opens", (json_int_t)p->breaker_opens, "last_error",
            str_or_null(p->last_error), "last_ack_ms",
            p->last_ack_ms ? json_integer((json_int_t)p->last_ack_ms) : json_null());
        if (o) {
            json_object_set_new(o, "transport_registered", json_boolean(p->tp != NULL));
            json_object_set_new(o, "window", json_integer((json_int_t)p->window));
            json_object_set_new(o, "ack_timeout_ms", json_integer((json_int_t)p->ack_timeout_ms));
            json_t *d = br->cp ? ado_checkpoint_peer_status(br->cp, p->name) : NULL;
            json_object_set_new(o, "checkpoint", d ? d : json_null());
        }
        json_array_append_new(a, o);
    }
    reply(call, a);
}

/* ---- bridge_send ------------------------------------------------------------------------- */

static void m_send(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx;
    json_t *pj;
    struct br_peer *p = begin_peer(call, arg, params, len, &pj);
    if (!p)
        return;
    struct ado_bridge *br = p->br;
    const char *topic = json_string_value(json_object_get(pj, "topic"));
    if (!topic) {
        json_decref(pj);
        ado_rpc_error(call, E_INVALID, "invalid params: topic (a dotted name) is required", NULL);
        return;
    }
    json_t *pl = json_object_get(pj, "payload");
    char *text = json_dumps(pl ? pl : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    char id[128];
    int rc = text ? ado_bridge_send(br, NULL, p->name, topic, text, strlen(text), id, sizeof id)
                  : ADO_ENOMEM;
    free(text);
    json_decref(pj);
    if (rc == ADO_ELIMIT) {
        ado_rpc_error(call, E_FULL, "the peer's outbox is full (bridge.outbox_limit)", NULL);
    } else if (rc == ADO_EINVAL) {
        ado_rpc_error(call, E_INVALID, "invalid params: bad topic or payload too large", NULL);
    } else if (rc < 0) {
        ado_rpc_error(call, E_FAILED, ado_node_api()->strerror(rc), NULL);
    } else {
        const char *s = strrchr(id, '/');
        json_int_t seq = (json_int_t)strtoull(s ? s + 1 : "0", NULL, 10);
        /* The common case (an id with nothing to escape) is written directly: one answer per
         * message, and building and dumping a jansson object for it showed in the profile. */
        int plain = 1;
        for (const unsigned char *c = (const unsigned char *)id; *c && plain; c++)
            plain = *c >= 0x20 && *c < 0x80 && *c != '"' && *c != '\\';
        char text[256];
        int n =
            plain ? snprintf(text, sizeof text, "{\"id\":\"%s\",\"seq\":%lld}", id, (long long)seq)
                  : -1;
        if (n > 0 && (size_t)n < sizeof text)
            ado_rpc_reply(call, text, (size_t)n);
        else
            reply(call, json_pack("{s:s,s:I}", "id", id, "seq", seq));
    }
}

/* ---- dead letters -------------------------------------------------------------------------- */

struct dl_list {
    struct ado_bridge *br;
    const char *peer; /* NULL: all */
    size_t limit;
    json_t *out;
    uint64_t *seqs; /* when collecting for retry/drop */
    size_t nseqs, capseqs;
};

static int dl_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct dl_list *l = arg;
    const char *k = key;
    size_t nl = strnlen(k, klen);
    if (nl + 9 != klen)
        return 0;
    if (l->peer && (strlen(l->peer) != nl || memcmp(k, l->peer, nl) != 0))
        return 1;
    uint64_t seq = br_rd64((const unsigned char *)key + nl + 1);
    if (l->seqs || !l->out) {
        if (l->nseqs == l->capseqs) {
            size_t nc = l->capseqs ? l->capseqs * 2 : 64;
            uint64_t *ns = realloc(l->seqs, nc * sizeof *ns);
            if (!ns)
                return 1;
            l->seqs = ns;
            l->capseqs = nc;
        }
        l->seqs[l->nseqs++] = seq;
        return 0;
    }
    if (json_array_size(l->out) >= l->limit)
        return 1;
    uint32_t attempts;
    uint64_t failed, created;
    const char *err, *topic;
    size_t el, tl, pl;
    const void *pay;
    struct br_rec rec;
    if (br_dead_parse(val, vlen, &attempts, &failed, &err, &el, &rec) < 0 ||
        br_rec_parse(&rec, &created, &topic, &tl, &pay, &pl) < 0)
        return 0;
    char id[200];
    snprintf(id, sizeof id, "%s/%.*s/%llu", l->br->node->cfg->node_name, (int)nl, k,
             (unsigned long long)seq);
    json_t *o =
        json_pack("{s:s%,s:I,s:s,s:s%,s:I,s:s%,s:I,s:I}", "peer", k, nl, "seq", (json_int_t)seq,
                  "id", id, "topic", topic, tl, "attempts", (json_int_t)attempts, "last_error", err,
                  el, "failed_ms", (json_int_t)failed, "created_ms", (json_int_t)created);
    if (o) {
        json_object_set_new(o, "payload", payload_value(pay, pl));
        json_array_append_new(l->out, o);
    }
    return 0;
}

static void dl_iter(struct ado_bridge *br, struct dl_list *l) {
    unsigned char k[80];
    size_t kl = 0;
    if (l->peer)
        kl = br_okey(k, l->peer, 0) - 8;
    ado_store_iter(br->node->store, NULL, br->db_dead, kl ? k : NULL, kl, dl_cb, l);
}

static void m_deadletters(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx;
    json_t *pj;
    struct ado_bridge *br = begin(call, arg, params, len, &pj);
    if (!br)
        return;
    struct dl_list l = {br, NULL, 1000, json_array(), NULL, 0, 0};
    json_t *pn = json_object_get(pj, "peer");
    if (pn && !json_is_null(pn)) {
        struct br_peer *p = need_peer(br, call, pj);
        if (!p) {
            json_decref(pj);
            json_decref(l.out);
            return;
        }
        l.peer = p->name;
    }
    json_t *lim = json_object_get(pj, "limit");
    if (json_is_integer(lim) && json_integer_value(lim) > 0)
        l.limit = (size_t)json_integer_value(lim);
    dl_iter(br, &l);
    json_decref(pj);
    reply(call, l.out);
}

/* bridge_retry / bridge_drop: {peer, seq} or {peer, all: true}. */
static void retry_or_drop(ado_call *call, void *arg, const char *params, size_t len, int drop) {
    json_t *pj;
    struct br_peer *p = begin_peer(call, arg, params, len, &pj);
    if (!p)
        return;
    struct ado_bridge *br = p->br;
    json_t *js = json_object_get(pj, "seq");
    int all = json_is_true(json_object_get(pj, "all"));
    if (!all && !(json_is_integer(js) && json_integer_value(js) > 0)) {
        json_decref(pj);
        ado_rpc_error(call, E_INVALID, "invalid params: expected {peer, seq} or {peer, all: true}",
                      NULL);
        return;
    }
    struct dl_list l = {br, p->name, 0, NULL, NULL, 0, 0};
    if (all) {
        dl_iter(br, &l);
    } else {
        l.seqs = malloc(sizeof *l.seqs);
        if (l.seqs)
            l.seqs[l.nseqs++] = (uint64_t)json_integer_value(js);
    }
    json_decref(pj);
    size_t done = 0;
    int missing = 0;
    for (size_t i = 0; i < l.nseqs; i++) {
        int rc = drop ? br_dead_drop(p, l.seqs[i]) : br_dead_retry(p, l.seqs[i]);
        if (rc == 0)
            done++;
        else if (rc == ADO_ENOTFOUND)
            missing = 1;
    }
    free(l.seqs);
    if (!all && missing) {
        ado_rpc_error(call, E_INVALID, "invalid params: no such dead letter", NULL);
        return;
    }
    reply(call, json_pack("{s:I}", drop ? "dropped" : "retried", (json_int_t)done));
}

static void m_retry(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx;
    retry_or_drop(call, arg, params, len, 0);
}

static void m_drop(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx;
    retry_or_drop(call, arg, params, len, 1);
}

/* ---- bridge_query -----------------------------------------------------------------------------
 */

struct br_query {
    struct ado_bridge *br; /* NULL once detached (bridge gone) */
    struct br_transport *t;
    ado_call *call; /* NULL once answered */
    uv_timer_t *timer;
    char peer[64];
    uint64_t timeout_ms;
    int in_query, finished;
    struct br_query *prev, *next;
};

static void q_timer_closed(uv_handle_t *h) {
    free(h);
}

static void q_unlink(struct br_query *q) {
    if (!q->br)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else
        q->br->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    if (q->timer) {
        uv_timer_stop(q->timer);
        uv_close((uv_handle_t *)q->timer, q_timer_closed);
        q->timer = NULL;
    }
    q->br = NULL;
}

static void q_fail(struct br_query *q, int code, const char *msg) {
    if (!q->call)
        return;
    json_t *d = json_pack("{s:s}", "peer", q->peer);
    char *dt = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    ado_rpc_error(q->call, code, msg, dt);
    free(dt);
    q->call = NULL;
}

static void q_timeout(uv_timer_t *t) {
    struct br_query *q = t->data;
    char msg[160];
    snprintf(msg, sizeof msg, "peer %s did not answer within %llu ms", q->peer,
             (unsigned long long)q->timeout_ms);
    q_fail(q, E_TIMEOUT, msg);
    /* Stay allocated: the transport still owes its done() call. */
}

static void q_done(void *cbarg, int status, const char *response) {
    struct br_query *q = cbarg;
    if (q->call) {
        if (status < 0 || !response) {
            char msg[200];
            if (status == ADO_ETIMEDOUT)
                snprintf(msg, sizeof msg, "peer %s did not answer within %llu ms", q->peer,
                         (unsigned long long)q->timeout_ms);
            else
                snprintf(msg, sizeof msg, "query to peer %s failed: %s", q->peer,
                         ado_node_api()->strerror(status < 0 ? status : ADO_EIO));
            q_fail(q, status == ADO_ETIMEDOUT ? E_TIMEOUT : E_FAILED, msg);
        } else {
            json_error_t e;
            json_t *r = json_loads(response, JSON_DECODE_ANY, &e);
            json_t *err = json_is_object(r) ? json_object_get(r, "error") : NULL;
            json_t *res = json_is_object(r) ? json_object_get(r, "result") : NULL;
            if (!r) {
                q_fail(q, E_FAILED, "the peer's answer is not JSON");
            } else if (err) {
                json_t *data = json_pack("{s:s,s:O}", "peer", q->peer, "error", err);
                char *dt = data ? json_dumps(data, JSON_COMPACT) : NULL;
                json_decref(data);
                json_t *c = json_object_get(err, "code");
                const char *m = json_string_value(json_object_get(err, "message"));
                ado_rpc_error(q->call, json_is_integer(c) ? (int)json_integer_value(c) : E_FAILED,
                              m ? m : "the peer answered with an error", dt);
                free(dt);
                q->call = NULL;
            } else {
                ado_call *c = q->call;
                q->call = NULL;
                reply(c, json_incref(res ? res : r));
            }
            json_decref(r);
        }
    }
    q->finished = 1;
    if (q->in_query)
        return; /* called from inside query(): freed by the caller */
    q_unlink(q);
    free(q);
}

static void m_query(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx;
    json_t *pj;
    struct br_peer *p = begin_peer(call, arg, params, len, &pj);
    if (!p)
        return;
    struct ado_bridge *br = p->br;
    json_t *rq = json_object_get(pj, "request");
    const char *method = json_string_value(json_object_get(rq, "method"));
    json_t *tmo = json_object_get(pj, "timeout_ms");
    uint64_t timeout = ADO_BRIDGE_QUERY_TIMEOUT_MS;
    if (json_is_integer(tmo) && json_integer_value(tmo) > 0 && json_integer_value(tmo) <= 60000)
        timeout = (uint64_t)json_integer_value(tmo);
    else if (tmo) {
        json_decref(pj);
        ado_rpc_error(call, E_INVALID, "invalid params: timeout_ms must be in 1..60000", NULL);
        return;
    }
    if (!method) {
        json_decref(pj);
        ado_rpc_error(call, E_INVALID, "invalid params: request {method, params} is required",
                      NULL);
        return;
    }
    char msg[200];
    if (!p->tp || !p->tp->ops->query || p->tp->ops->size < sizeof(struct ado_transport)) {
        json_decref(pj);
        snprintf(msg, sizeof msg, "the transport of peer %s does not support queries", p->name);
        ado_rpc_error(call, E_NOQUERY, msg, NULL);
        return;
    }
    if (p->up == 0 || p->breaker == ADO_BR_OPEN) {
        json_decref(pj);
        snprintf(msg, sizeof msg, "peer %s is %s", p->name,
                 p->up == 0 ? "down" : "unavailable (breaker open)");
        ado_rpc_error(call, E_DOWN, msg, NULL);
        return;
    }
    json_t *req = json_pack("{s:s,s:i,s:s}", "jsonrpc", "2.0", "id", 1, "method", method);
    json_t *qp = json_object_get(rq, "params");
    if (req && qp && !json_is_null(qp))
        json_object_set(req, "params", qp);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    json_decref(pj);
    struct br_query *q = calloc(1, sizeof *q);
    uv_timer_t *tm = calloc(1, sizeof *tm);
    if (!text || !q || !tm) {
        free(text);
        free(q);
        free(tm);
        ado_rpc_error(call, E_INTERNAL, "internal error: out of memory", NULL);
        return;
    }
    q->br = br;
    q->t = p->tp;
    q->call = call;
    q->timeout_ms = timeout;
    snprintf(q->peer, sizeof q->peer, "%s", p->name);
    q->next = br->queries;
    if (br->queries)
        br->queries->prev = q;
    br->queries = q;
    q->timer = tm;
    uv_timer_init(br->node->loop, tm);
    tm->data = q;
    /* A little longer than the transport's own deadline, in case it misses it. */
    uv_timer_start(tm, q_timeout, timeout + 100, 0);
    q->in_query = 1;
    int rc = p->tp->ops->query(p->tp->arg, p->name, text, strlen(text), timeout, q_done, q);
    q->in_query = 0;
    free(text);
    if (rc < 0 && !q->finished) {
        snprintf(msg, sizeof msg, "query to peer %s failed: %s", p->name,
                 ado_node_api()->strerror(rc));
        q_fail(q, rc == ADO_ECLOSED ? E_DOWN : E_FAILED, msg);
        q->finished = 1;
    }
    if (q->finished) {
        q_unlink(q);
        free(q);
    }
}

void br_queries_cancel(struct ado_bridge *br, struct br_transport *t, const char *why) {
    for (struct br_query *q = br->queries, *next; q; q = next) {
        next = q->next;
        if (t && q->t != t)
            continue;
        char msg[200];
        snprintf(msg, sizeof msg, "query to peer %s cancelled: %s", q->peer, why);
        q_fail(q, E_FAILED, msg);
        /* Detached: freed when (if) the transport calls done. */
        q_unlink(q);
    }
}

int br_rpc_register(struct ado_bridge *br) {
    struct ado_rpc *rpc = br->node->rpc;
    void *n = br->node;
    struct {
        const char *name, *role, *desc;
        ado_rpc_fn fn;
    } m[] = {
        {"bridge_peers", "reader",
         "each bridge peer: layer, transport, state, breaker, queue depth, in flight, dead "
         "letters, last error, last ack",
         m_peers},
        {"bridge_send", "admin", "send {peer, topic, payload} through the durable outbox", m_send},
        {"bridge_deadletters", "admin",
         "dead letters {peer?, limit?}: id, topic, attempts, last error, payload", m_deadletters},
        {"bridge_retry", "admin", "put dead letters back in the outbox: {peer, seq} or {peer, all}",
         m_retry},
        {"bridge_drop", "admin", "delete dead letters: {peer, seq} or {peer, all}", m_drop},
        {"bridge_query", "reader",
         "forward a read-only call {peer, request: {method, params}, timeout_ms?} to a peer",
         m_query},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int rc = ado_rpc_register(rpc, NULL, m[i].name, m[i].role, m[i].desc, m[i].fn, n);
        if (rc < 0 && rc != ADO_EEXIST)
            return rc;
    }
    return 0;
}
