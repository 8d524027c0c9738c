/* The RPC server: libwebsockets on the node's libuv loop (a foreign loop for lws).
 *
 * One lws protocol serves everything: HTTP (POST /rpc, GET /healthz /readyz /metrics,
 * OPTIONS for CORS) and WebSocket upgrades on /ws. Each connection's per-session data is a
 * struct rpc_conn. Answers and notifications wait in a per-connection queue written at the end
 * of the loop turn that made them (after the store's group commit), or when lws says the socket
 * is writable if it was full (see flush_one). Each write frames everything queued (up to
 * WRITE_BATCH bytes) into one buffer and hands it to lws in a single raw write, so a burst of
 * pipelined answers costs one send() instead of one send() and one poll() per answer.
 * Answers are framed as they arrive into "frames" blocks at the queue's tail (no allocation
 * per answer); notifications stay separate messages because their bound counts them.
 *  - answers to the client's own calls are bounded by pausing reads (rx flow control) while
 *    too many bytes wait or too many calls are in flight;
 *  - bus events are bounded by node.rpc.subscriber_queue per connection: past it they are
 *    dropped and counted, and a marker in the queue becomes a notification saying how many.
 * A connection that closes detaches its pending requests (answered into the void later). */
#include <libwebsockets.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ado/errors.h"
#include "config.h"
#include "log.h"
#include "node.h"
#include "rpc_priv.h"

#define OUT_HIGH     (4u << 20) /* pause reading while this many answer bytes wait */
#define OUT_LOW      (1u << 20)
#define WRITE_BATCH  (32u << 10) /* bytes of frames per writeable callback (one send) */
#define FRAMES_BLOCK 1024        /* a usual "frames" block: small enough for malloc's fast path */
#define WS_HDR_MAX   10          /* server-to-client frame header: no mask */
#define MARKER_MAX   (160 + WS_HDR_MAX) /* a rendered drop marker, framed */

enum { H_NONE = 0, H_RPC, H_HEALTH, H_READY, H_METRICS, H_OPTIONS, H_NOTFOUND, H_METHOD };

struct rpc_sub;

struct rpc_msg {
    struct rpc_msg *next;
    int frames; /* buf holds whole WebSocket frames (answers), cap bytes of room */
    size_t cap;
    int notif;           /* counts against the subscriber queue bound */
    int marker;          /* a drop marker: text is made when written */
    struct rpc_sub *sub; /* marker: its subscription (NULL once gone) */
    uint64_t sub_id, dropped;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes, then the text (or the frames) */
};

struct rpc_sub {
    struct rpc_conn *conn;
    uint64_t id, bus_id;
    struct rpc_msg *marker; /* the latest drop marker, while queued */
    struct rpc_sub *next;
};

struct rpc_conn {
    struct ado_rpc *rpc;
    struct lws *wsi;
    int inited, closed, ws;
    int role, auth; /* auth: 0 anonymous, 1 valid token, -1 wrong token */
    struct rpc_conn *prev, *next;
    struct rpc_req *reqs;
    size_t inflight;
    /* WebSocket receive */
    char *rx;
    size_t rxlen, rxcap;
    int rx_big, paused;
    /* output queue */
    struct rpc_msg *qh, *qt;
    size_t qbytes, qnotifs;
    int want_write; /* lws_callback_on_writable asked and not yet called back */
    int flushing;   /* on rpc->flushq */
    int no_direct;  /* WebSocket closing: only lws' writeable callback may write */
    struct rpc_conn *fprev, *fnext;
    struct rpc_sub *subs;
    size_t nsubs;
    /* HTTP transaction */
    int hkind;
    char *body;
    size_t blen;
    int body_big;
    char origin[256];
    int cors_ok;
    char *resp;
    size_t resp_len;
    int resp_status, resp_ready, resp_json;
    int req_read; /* the whole request (headers and body) has been read */
};

/* ---- settings ------------------------------------------------------------------------- */

static struct ado_cnode *cget(struct ado_rpc *rpc, const char *path) {
    struct ado_node *n = rpc->node;
    return n->cfg && n->cfg->root ? ado_cnode_get(n->cfg->root, path) : NULL;
}

static int64_t cint(struct ado_rpc *rpc, const char *path, int64_t dflt, int size) {
    struct ado_cnode *c = cget(rpc, path);
    if (!c || c->kind != ADO_CN_SCALAR || !c->text)
        return dflt;
    if (c->type)
        return c->ival;
    int64_t v;
    if ((size ? ado_parse_size_bytes(c->text, &v) : ado_parse_int(c->text, &v)) == 0)
        return v;
    return dflt;
}

static char *read_token_file(const char *dir, const char *path) {
    char full[4096];
    if (path[0] != '/' && dir)
        snprintf(full, sizeof full, "%s/%s", dir, path);
    else
        snprintf(full, sizeof full, "%s", path);
    FILE *f = fopen(full, "r");
    if (!f)
        return NULL;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = 0;
    return strdup(buf);
}

static void diag_at(struct ado_rpc *rpc, struct ado_diag *diag, struct ado_cnode *c,
                    const char *path, const char *msg) {
    struct ado_config *cfg = rpc->node->cfg;
    if (diag)
        ado_diag_add(diag, cfg && cfg->file ? cfg->file : "config", c ? c->line : 0, c ? c->col : 0,
                     path, "%s", msg);
}

void ado_rpc_settings_free(struct ado_rpc *rpc) {
    for (size_t i = 0; i < rpc->ntokens; i++) {
        free(rpc->tokens[i].name);
        if (rpc->tokens[i].token)
            memset(rpc->tokens[i].token, 0, rpc->tokens[i].len);
        free(rpc->tokens[i].token);
    }
    free(rpc->tokens);
    rpc->tokens = NULL;
    rpc->ntokens = 0;
    for (size_t i = 0; i < rpc->ncors; i++)
        free(rpc->cors[i]);
    free(rpc->cors);
    rpc->cors = NULL;
    rpc->ncors = 0;
}

static int load_tokens(struct ado_rpc *rpc, struct ado_diag *diag) {
    struct ado_cnode *l = cget(rpc, "node.rpc.tokens");
    if (!l || l->kind != ADO_CN_LIST || !l->n)
        return 0;
    rpc->tokens = calloc(l->n, sizeof *rpc->tokens);
    if (!rpc->tokens)
        return ADO_ENOMEM;
    int errs = 0;
    for (size_t i = 0; i < l->n; i++) {
        struct ado_cnode *t = l->items[i];
        char path[64];
        snprintf(path, sizeof path, "node.rpc.tokens.%zu", i);
        struct ado_cnode *nm = ado_cnode_get(t, "name"), *tk = ado_cnode_get(t, "token");
        struct ado_cnode *tf = ado_cnode_get(t, "token_file"), *rl = ado_cnode_get(t, "roles");
        char *secret = NULL;
        if (tk && tk->text && *tk->text)
            secret = strdup(tk->text);
        else if (tf && tf->text && *tf->text) {
            secret = read_token_file(rpc->node->cfg ? rpc->node->cfg->dir : NULL, tf->text);
            if (!secret) {
                diag_at(rpc, diag, tf, path, "cannot read token_file");
                errs++;
                continue;
            }
        }
        if (!secret || strlen(secret) < 8) {
            diag_at(rpc, diag, t, path,
                    "token is missing or shorter than 8 characters (unset ${ENV}?)");
            free(secret);
            errs++;
            continue;
        }
        int role = RPC_ROLE_NONE;
        if (rl && rl->kind == ADO_CN_LIST) {
            for (size_t k = 0; k < rl->n; k++) {
                int r = ado_rpc_role_parse(rl->items[k]->text);
                if (r < RPC_ROLE_READER) {
                    diag_at(rpc, diag, rl->items[k], path,
                            "unknown role (expected admin, writer or reader)");
                    errs++;
                } else if (r > role) {
                    role = r;
                }
            }
        } else if (rl && rl->kind == ADO_CN_SCALAR) {
            role = ado_rpc_role_parse(rl->text);
        }
        if (role < RPC_ROLE_READER) {
            diag_at(rpc, diag, t, path, "a token needs roles: [admin|writer|reader]");
            free(secret);
            errs++;
            continue;
        }
        struct rpc_token *dst = &rpc->tokens[rpc->ntokens++];
        dst->name = strdup(nm && nm->text ? nm->text : "token");
        dst->token = secret;
        dst->len = strlen(secret);
        dst->role = role;
    }
    return errs ? ADO_ECONFIG : 0;
}

static int load_settings(struct ado_rpc *rpc, struct ado_diag *diag) {
    rpc->max_request = cint(rpc, "node.rpc.max_request_size", 1 << 20, 1);
    rpc->max_connections = cint(rpc, "node.rpc.max_connections", 1024, 0);
    rpc->sub_queue = cint(rpc, "node.rpc.subscriber_queue", 1024, 0);
    if (rpc->max_request < 64)
        rpc->max_request = 64;
    if (rpc->max_connections < 1)
        rpc->max_connections = 1;
    if (rpc->sub_queue < 1)
        rpc->sub_queue = 1;
    struct ado_cnode *a = cget(rpc, "node.rpc.anonymous");
    if (a && a->text) {
        int r = ado_rpc_role_parse(a->text);
        if (r < 0) {
            diag_at(rpc, diag, a, "node.rpc.anonymous", "expected none, reader, writer or admin");
            return ADO_ECONFIG;
        }
        rpc->anonymous = r;
    }
    struct ado_cnode *c = cget(rpc, "node.rpc.cors_origins");
    if (c && c->kind == ADO_CN_LIST && c->n) {
        rpc->cors = calloc(c->n, sizeof *rpc->cors);
        if (!rpc->cors)
            return ADO_ENOMEM;
        for (size_t i = 0; i < c->n; i++)
            if (c->items[i]->text && (rpc->cors[rpc->ncors] = strdup(c->items[i]->text)))
                rpc->ncors++;
    }
    return load_tokens(rpc, diag);
}

/* Constant-time comparison of a presented token against each configured one. */
static int token_role(struct ado_rpc *rpc, const char *tok, size_t len) {
    int found = -1;
    for (size_t i = 0; i < rpc->ntokens; i++) {
        const struct rpc_token *t = &rpc->tokens[i];
        unsigned char d = (unsigned char)(t->len != len);
        for (size_t k = 0; k < len; k++)
            d |= (unsigned char)(tok[k] ^ t->token[k < t->len ? k : 0]);
        if (!d && found < t->role)
            found = t->role;
    }
    return found;
}

/* Read Authorization: Bearer from the request into conn->role/auth. */
static void conn_auth(struct rpc_conn *c) {
    struct ado_rpc *rpc = c->rpc;
    char buf[512];
    c->role = rpc->anonymous;
    c->auth = 0;
    int n = lws_hdr_copy(c->wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0) {
        if (lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0)
            c->auth = -1; /* too long to be one of ours */
        return;
    }
    if (n < 7 || strncasecmp(buf, "Bearer ", 7)) {
        c->auth = -1;
        return;
    }
    const char *t = buf + 7;
    while (*t == ' ')
        t++;
    int r = token_role(rpc, t, strlen(t));
    if (r < 0) {
        c->auth = -1;
        c->role = RPC_ROLE_NONE;
    } else {
        c->auth = 1;
        c->role = r;
    }
}

static void conn_cors(struct rpc_conn *c) {
    c->cors_ok = 0;
    c->origin[0] = 0;
    if (!c->rpc->ncors)
        return;
    if (lws_hdr_copy(c->wsi, c->origin, sizeof c->origin, WSI_TOKEN_ORIGIN) <= 0) {
        c->origin[0] = 0;
        return;
    }
    for (size_t i = 0; i < c->rpc->ncors; i++)
        if (!strcmp(c->rpc->cors[i], "*") || !strcmp(c->rpc->cors[i], c->origin))
            c->cors_ok = 1;
}

/* ---- connections -------------------------------------------------------------------- */

static void conn_init(struct ado_rpc *rpc, struct rpc_conn *c, struct lws *wsi) {
    c->rpc = rpc;
    c->wsi = wsi;
    c->inited = 1;
    c->next = rpc->conns;
    if (rpc->conns)
        rpc->conns->prev = c;
    rpc->conns = c;
    rpc->nconns++;
    rpc->conns_total++;
}

/* (Re)start the connection state: lws may keep the same session data across an upgrade. */
static void conn_ensure(struct ado_rpc *rpc, struct rpc_conn *c, struct lws *wsi) {
    if (c->inited && !c->closed)
        return;
    memset(c, 0, sizeof *c);
    conn_init(rpc, c, wsi);
}

static void sub_free(struct rpc_sub *s);
static void flush_drop(struct rpc_conn *c);

static void conn_fini(struct rpc_conn *c) {
    if (!c->inited || c->closed)
        return;
    struct ado_rpc *rpc = c->rpc;
    c->closed = 1;
    flush_drop(c);
    ado_rpc_detach_reqs(c->reqs);
    c->reqs = NULL;
    while (c->subs) {
        struct rpc_sub *s = c->subs;
        c->subs = s->next;
        sub_free(s);
    }
    while (c->qh) {
        struct rpc_msg *m = c->qh;
        c->qh = m->next;
        free(m);
    }
    c->qt = NULL;
    free(c->rx);
    c->rx = NULL;
    free(c->body);
    c->body = NULL;
    free(c->resp);
    c->resp = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        rpc->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    rpc->nconns--;
}

int ado_rpc_conn_is_ws(const struct rpc_conn *conn) {
    return conn && conn->ws;
}

void ado_rpc_conn_req_add(struct rpc_conn *conn, struct rpc_req *req) {
    req->prev = NULL;
    req->next = conn->reqs;
    if (conn->reqs)
        conn->reqs->prev = req;
    conn->reqs = req;
    conn->inflight++;
}

void ado_rpc_conn_req_done(struct rpc_conn *conn, struct rpc_req *req) {
    if (req->prev)
        req->prev->next = req->next;
    else
        conn->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
    conn->inflight--;
}

static struct rpc_msg *msg_new(const char *text, size_t len) {
    struct rpc_msg *m = malloc(sizeof *m + LWS_PRE + len + 1);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    if (text)
        memcpy(m->buf + LWS_PRE, text, len);
    m->len = len;
    return m;
}

/* Ask lws for a writeable callback once per round: asking again before it came is a no-op
 * that still costs a trip through lws. */
static void want_write(struct rpc_conn *c) {
    if (c->want_write)
        return;
    c->want_write = 1;
    lws_callback_on_writable(c->wsi);
}

static void flush_idle_cb(uv_idle_t *h);

/* Write `c`'s answers at the end of this loop turn instead of waiting for a writeable
 * callback: each lws_callback_on_writable costs two uv_poll_start calls (POLLOUT on, then
 * off), i.e. four epoll_ctl syscalls, on the node's libuv loop. */
static void flush_ask(struct rpc_conn *c) {
    struct ado_rpc *rpc = c->rpc;
    if (!rpc->flush_on) {
        want_write(c);
        return;
    }
    if (c->flushing)
        return;
    c->flushing = 1;
    c->fprev = NULL;
    c->fnext = rpc->flushq;
    if (rpc->flushq)
        rpc->flushq->fprev = c;
    else
        uv_idle_start(&rpc->flush_idle, flush_idle_cb);
    rpc->flushq = c;
}

static void flush_drop(struct rpc_conn *c) {
    if (!c->flushing)
        return;
    if (c->fprev)
        c->fprev->fnext = c->fnext;
    else
        c->rpc->flushq = c->fnext;
    if (c->fnext)
        c->fnext->fprev = c->fprev;
    c->fprev = c->fnext = NULL;
    c->flushing = 0;
}

static void q_push(struct rpc_conn *c, struct rpc_msg *m) {
    m->next = NULL;
    if (c->qt)
        c->qt->next = m;
    else
        c->qh = m;
    c->qt = m;
    c->qbytes += m->len;
    if (m->notif)
        c->qnotifs++;
    flush_ask(c);
}

/* Write a server-to-client (unmasked) text frame header for `len` bytes; its size. */
static size_t ws_frame_header(unsigned char *p, size_t len) {
    p[0] = 0x81; /* FIN, text */
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        p[1] = 126;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* Queue an answer as a frame in the "frames" block at the tail, opening one when needed. */
static int q_answer(struct rpc_conn *c, const char *text, size_t len) {
    struct rpc_msg *t = c->qt;
    if (!t || !t->frames || t->len + WS_HDR_MAX + len > t->cap) {
        size_t room = FRAMES_BLOCK - sizeof *t - LWS_PRE;
        size_t cap = len + WS_HDR_MAX > room ? len + WS_HDR_MAX : room;
        t = malloc(sizeof *t + LWS_PRE + cap);
        if (!t)
            return ADO_ENOMEM;
        memset(t, 0, sizeof *t);
        t->frames = 1;
        t->cap = cap;
        q_push(c, t);
    }
    unsigned char *p = t->buf + LWS_PRE + t->len;
    size_t h = ws_frame_header(p, len);
    memcpy(p + h, text, len);
    t->len += h + len;
    c->qbytes += h + len;
    flush_ask(c);
    return 0;
}

static void flow_check(struct rpc_conn *c) {
    if (!c->ws)
        return;
    int over = c->qbytes > OUT_HIGH || c->inflight >= RPC_MAX_INFLIGHT;
    int under = c->qbytes < OUT_LOW && c->inflight < RPC_MAX_INFLIGHT / 2;
    if (over && !c->paused) {
        c->paused = 1;
        lws_rx_flow_control(c->wsi, 0);
    } else if (under && c->paused) {
        c->paused = 0;
        lws_rx_flow_control(c->wsi, 1);
    }
}

static void http_respond(struct rpc_conn *c, int status, int json, char *body, size_t len) {
    free(c->resp);
    c->resp = body;
    c->resp_len = body ? len : 0;
    c->resp_status = status;
    c->resp_json = json;
    c->resp_ready = 1;
    if (c->req_read)
        flush_ask(c);
    else /* answered before its body was read (an error): lws' writeable path, as before */
        lws_callback_on_writable(c->wsi);
}

void ado_rpc_conn_send(struct rpc_conn *c, char *text, size_t len) {
    if (!c->ws) {
        http_respond(c, c->auth < 0 ? 401 : 200, 1, text, len);
        return;
    }
    q_answer(c, text, len);
    free(text);
    flow_check(c);
}

void ado_rpc_conn_nothing(struct rpc_conn *c) {
    if (!c->ws)
        http_respond(c, 204, 0, NULL, 0);
}

/* ---- subscriptions ------------------------------------------------------------------- */

static int sub_event(void *arg, const char *topic, const void *data, size_t len) {
    struct rpc_sub *s = arg;
    struct rpc_conn *c = s->conn;
    struct ado_rpc *rpc = c->rpc;
    if ((int64_t)c->qnotifs >= rpc->sub_queue) {
        rpc->sub_dropped++;
        if (s->marker && s->marker == c->qt) {
            s->marker->dropped++;
            return 0;
        }
        struct rpc_msg *m = msg_new(NULL, 0);
        if (!m)
            return 0;
        m->marker = 1;
        m->sub = s;
        m->sub_id = s->id;
        m->dropped = 1;
        s->marker = m;
        q_push(c, m);
        return 0;
    }
    json_error_t e;
    json_t *d = json_loadb(data, len, JSON_DECODE_ANY, &e);
    if (!d) {
        d = json_stringn(data, len);
        if (!d) { /* not UTF-8: keep what is printable */
            char *cp = malloc(len + 1);
            for (size_t i = 0; cp && i < len; i++) {
                unsigned char ch = ((const unsigned char *)data)[i];
                cp[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
            }
            d = cp ? json_stringn(cp, len) : NULL;
            free(cp);
        }
    }
    char sid[32];
    snprintf(sid, sizeof sid, "0x%llx", (unsigned long long)s->id);
    json_t *o = json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:o}}}", "jsonrpc", "2.0", "method",
                          "bus_subscription", "params", "subscription", sid, "result", "topic",
                          topic, "data", d ? d : json_null());
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!t)
        return 0;
    struct rpc_msg *m = msg_new(t, strlen(t));
    free(t);
    if (!m)
        return 0;
    m->notif = 1;
    rpc->notifications++;
    q_push(c, m);
    return 0;
}

static void sub_free(struct rpc_sub *s) {
    struct rpc_conn *c = s->conn;
    if (c->rpc->node->bus)
        ado_bus_unsubscribe(c->rpc->node->bus, s->bus_id, NULL);
    for (struct rpc_msg *m = c->qh; m; m = m->next)
        if (m->marker && m->sub == s)
            m->sub = NULL;
    c->nsubs--;
    free(s);
}

int ado_rpc_conn_subscribe(struct rpc_conn *c, const char *pattern, uint64_t *id) {
    struct ado_rpc *rpc = c->rpc;
    if (c->nsubs >= RPC_MAX_SUBS)
        return ADO_ELIMIT;
    if (!rpc->node->bus)
        return ADO_ESTATE;
    struct rpc_sub *s = calloc(1, sizeof *s);
    if (!s)
        return ADO_ENOMEM;
    s->conn = c;
    s->id = rpc->next_sub_id++;
    int rc = ado_bus_subscribe(rpc->node->bus, pattern, NULL, sub_event, s, &s->bus_id);
    if (rc) {
        free(s);
        return rc;
    }
    s->next = c->subs;
    c->subs = s;
    c->nsubs++;
    *id = s->id;
    return 0;
}

int ado_rpc_conn_unsubscribe(struct rpc_conn *c, uint64_t id) {
    for (struct rpc_sub **pp = &c->subs; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct rpc_sub *s = *pp;
            *pp = s->next;
            sub_free(s);
            return 0;
        }
    }
    return ADO_ENOTFOUND;
}

/* ---- WebSocket ----------------------------------------------------------------------- */

static void ws_message(struct rpc_conn *c, const char *text, size_t len) {
    ado_rpc_handle(c->rpc, c, text, len, c->role, c->auth, NULL, NULL);
}

static int ws_receive(struct rpc_conn *c, const char *in, size_t len) {
    struct ado_rpc *rpc = c->rpc;
    int final = lws_is_final_fragment(c->wsi);
    if (!c->rx_big && (int64_t)(c->rxlen + len) > rpc->max_request) {
        c->rx_big = 1;
        free(c->rx);
        c->rx = NULL;
        c->rxlen = c->rxcap = 0;
    }
    if (c->rx_big) {
        if (final) {
            c->rx_big = 0;
            rpc->rej.too_large++;
            char msg[96];
            snprintf(msg, sizeof msg, "request too large (limit %lld bytes)",
                     (long long)rpc->max_request);
            size_t l = 0;
            char *t = ado_rpc_error_text(-32003, msg, &l);
            if (t)
                ado_rpc_conn_send(c, t, l);
        }
        return 0;
    }
    if (final && !c->rxlen) {
        ws_message(c, in, len);
    } else {
        if (c->rxlen + len > c->rxcap) {
            size_t nc = c->rxcap ? c->rxcap : 4096;
            while (nc < c->rxlen + len)
                nc *= 2;
            char *n = realloc(c->rx, nc);
            if (!n)
                return -1;
            c->rx = n;
            c->rxcap = nc;
        }
        memcpy(c->rx + c->rxlen, in, len);
        c->rxlen += len;
        if (final) {
            ws_message(c, c->rx, c->rxlen);
            c->rxlen = 0;
            if (c->rxcap > 65536) {
                free(c->rx);
                c->rx = NULL;
                c->rxcap = 0;
            }
        }
    }
    flow_check(c);
    return 0;
}

static void marker_render(struct rpc_msg **pm) {
    struct rpc_msg *m = *pm;
    char t[MARKER_MAX - WS_HDR_MAX];
    int n = snprintf(t, sizeof t,
                     "{\"jsonrpc\":\"2.0\",\"method\":\"bus_subscription\",\"params\":{"
                     "\"subscription\":\"0x%llx\",\"result\":{\"dropped\":%llu}}}",
                     (unsigned long long)m->sub_id, (unsigned long long)m->dropped);
    struct rpc_msg *r = msg_new(t, (size_t)n);
    if (m->sub && m->sub->marker == m)
        m->sub->marker = NULL;
    if (r) {
        free(m);
        *pm = r;
    }
}

/* Take the queue's head off the queue. */
static struct rpc_msg *q_pop(struct rpc_conn *c) {
    struct rpc_msg *m = c->qh;
    c->qh = m->next;
    if (!c->qh)
        c->qt = NULL;
    c->qbytes -= m->len;
    if (m->notif)
        c->qnotifs--;
    return m;
}

/* Room for `n` bytes of frames in the shared write buffer (after LWS_PRE). */
static unsigned char *wbuf_room(struct ado_rpc *rpc, size_t n) {
    if (LWS_PRE + n > rpc->wcap) {
        size_t nc = LWS_PRE + (n > WRITE_BATCH ? n : WRITE_BATCH);
        unsigned char *b = realloc(rpc->wbuf, nc);
        if (!b)
            return NULL;
        rpc->wbuf = b;
        rpc->wcap = nc;
    }
    return rpc->wbuf + LWS_PRE;
}

/* Append message `m` (rendered: text or frames) to the batch at `out` + *n. */
static void batch_put(unsigned char *out, size_t *n, const struct rpc_msg *m) {
    const unsigned char *src = m->buf + LWS_PRE;
    if (!m->frames)
        *n += ws_frame_header(out + *n, m->len);
    memcpy(out + *n, src, m->len);
    *n += m->len;
}

/* Frame everything queued, up to WRITE_BATCH bytes (at least one message), into the shared
 * buffer and write it at once. lws keeps what the socket did not take and sends it before
 * calling us again, so frames never interleave. */
static int ws_send(struct rpc_conn *c) {
    struct ado_rpc *rpc = c->rpc;
    size_t n = 0;
    while (c->qh) {
        const struct rpc_msg *h = c->qh;
        size_t need = h->marker ? MARKER_MAX : h->len + (h->frames ? 0 : WS_HDR_MAX);
        if (n && n + need > WRITE_BATCH)
            break;
        struct rpc_msg *m = q_pop(c);
        if (m->marker)
            marker_render(&m); /* stays a marker only when out of memory: skipped */
        unsigned char *out = m->marker ? NULL : wbuf_room(rpc, n + m->len + WS_HDR_MAX);
        if (out)
            batch_put(out, &n, m);
        free(m);
    }
    if (n && lws_write(c->wsi, rpc->wbuf + LWS_PRE, n, LWS_WRITE_RAW) < 0)
        return -1;
    if (rpc->wcap > 4 * WRITE_BATCH) { /* after one huge answer: give the memory back */
        free(rpc->wbuf);
        rpc->wbuf = NULL;
        rpc->wcap = 0;
    }
    if (c->qh)
        want_write(c);
    flow_check(c);
    return 0;
}

static int ws_writeable(struct rpc_conn *c) {
    c->want_write = 0;
    return ws_send(c);
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static void http_text(struct rpc_conn *c, int status, const char *text) {
    char *t = strdup(text);
    http_respond(c, status, 0, t, t ? strlen(t) : 0);
}

static int http_write(struct rpc_conn *c) {
    c->want_write = 0;
    if (!c->resp_ready)
        return 0;
    size_t cap = LWS_PRE + 1024 + c->resp_len;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return -1;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + cap - 1;
    const char *type = c->resp_json            ? "application/json"
                       : c->hkind == H_METRICS ? "text/plain; version=0.0.4; charset=utf-8"
                                               : "text/plain; charset=utf-8";
    int bad = lws_add_http_common_headers(c->wsi, (unsigned)c->resp_status, type,
                                          (lws_filepos_t)c->resp_len, &p, end);
    if (!bad && c->cors_ok) {
        bad |= lws_add_http_header_by_name(
            c->wsi,
            (const unsigned char *)"access-control-allow-origin:", (const unsigned char *)c->origin,
            (int)strlen(c->origin), &p, end);
        bad |= lws_add_http_header_by_name(
            c->wsi, (const unsigned char *)"vary:", (const unsigned char *)"Origin", 6, &p, end);
        if (c->hkind == H_OPTIONS) {
            static const char m[] = "POST, GET, OPTIONS", h[] = "authorization, content-type";
            bad |= lws_add_http_header_by_name(
                c->wsi,
                (const unsigned char *)"access-control-allow-methods:", (const unsigned char *)m,
                (int)strlen(m), &p, end);
            bad |= lws_add_http_header_by_name(
                c->wsi,
                (const unsigned char *)"access-control-allow-headers:", (const unsigned char *)h,
                (int)strlen(h), &p, end);
            bad |= lws_add_http_header_by_name(c->wsi,
                                               (const unsigned char *)"access-control-max-age:",
                                               (const unsigned char *)"600", 3, &p, end);
        }
    }
    if (!bad && c->hkind == H_METHOD)
        bad |= lws_add_http_header_by_name(c->wsi, (const unsigned char *)"allow:",
                                           (const unsigned char *)"POST, OPTIONS", 13, &p, end);
    if (bad || lws_finalize_http_header(c->wsi, &p, end) || (size_t)(end - p) < c->resp_len) {
        free(buf);
        return -1;
    }
    if (c->resp_len)
        memcpy(p, c->resp, c->resp_len);
    p += c->resp_len;
    c->resp_ready = 0;
    free(c->resp);
    c->resp = NULL;
    int n = lws_write(c->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL);
    free(buf);
    if (n < 0)
        return -1;
    c->hkind = H_NONE;
    if (lws_http_transaction_completed(c->wsi))
        return -1;
    return 0;
}

static void http_body_done(struct rpc_conn *c) {
    struct ado_rpc *rpc = c->rpc;
    if (c->body_big) {
        rpc->rej.too_large++;
        char msg[96];
        snprintf(msg, sizeof msg, "request too large (limit %lld bytes)",
                 (long long)rpc->max_request);
        size_t l = 0;
        char *t = ado_rpc_error_text(-32003, msg, &l);
        http_respond(c, 413, 1, t, l);
    } else {
        char *b = c->body;
        size_t n = c->blen;
        c->body = NULL;
        c->blen = 0;
        ado_rpc_handle(rpc, c, b ? b : "", n, c->role, c->auth, NULL, NULL);
        free(b);
    }
    free(c->body);
    c->body = NULL;
    c->blen = 0;
    c->body_big = 0;
}

static int http_body(struct rpc_conn *c, const char *in, size_t len) {
    if (c->body_big || !len || !in) /* lws may report an empty chunk (in == NULL) */
        return 0;
    if ((int64_t)(c->blen + len) > c->rpc->max_request) {
        c->body_big = 1;
        free(c->body);
        c->body = NULL;
        c->blen = 0;
        return 0;
    }
    char *n = realloc(c->body, c->blen + len + 1);
    if (!n)
        return -1;
    memcpy(n + c->blen, in, len);
    c->body = n;
    c->blen += len;
    return 0;
}

static int http_request(struct rpc_conn *c, const char *uri) {
    struct ado_rpc *rpc = c->rpc;
    free(c->body);
    c->body = NULL;
    c->blen = 0;
    c->body_big = 0;
    c->resp_ready = 0;
    /* Without a body, the headers were the whole request; otherwise wait for
     * HTTP_BODY_COMPLETION before answering outside a writeable callback. */
    c->req_read = lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 &&
                  lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0;
    conn_cors(c);
    int post = lws_hdr_total_length(c->wsi, WSI_TOKEN_POST_URI) > 0;
    int get = lws_hdr_total_length(c->wsi, WSI_TOKEN_GET_URI) > 0;
    int options = lws_hdr_total_length(c->wsi, WSI_TOKEN_OPTIONS_URI) > 0;
    if (!strcmp(uri, "/rpc") || !strcmp(uri, "/")) {
        if (options) {
            c->hkind = H_OPTIONS;
            http_respond(c, 204, 0, NULL, 0);
            return 0;
        }
        if (!post) {
            c->hkind = H_METHOD;
            http_text(c, 405, "use POST with a JSON-RPC body\n");
            return 0;
        }
        c->hkind = H_RPC;
        conn_auth(c);
        char cl[32];
        int n = lws_hdr_copy(c->wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH);
        long long want = n > 0 ? atoll(cl) : 0;
        if (want > rpc->max_request)
            c->body_big = 1;
        if (want <= 0) /* no body is coming: answer now (a parse error) */
            http_body_done(c);
        return 0;
    }
    if (!get) {
        c->hkind = H_NOTFOUND;
        http_text(c, 404, "not found\n");
        return 0;
    }
    if (!strcmp(uri, "/healthz")) {
        c->hkind = H_HEALTH;
        http_text(c, 200, "ok\n");
    } else if (!strcmp(uri, "/readyz")) {
        c->hkind = H_READY;
        char why[200], line[220];
        int ok = ado_rpc_ready(rpc, why, sizeof why);
        snprintf(line, sizeof line, "%s\n", why);
        http_text(c, ok ? 200 : 503, line);
    } else if (!strcmp(uri, "/metrics")) {
        c->hkind = H_METRICS;
        char *m = NULL;
        size_t ml = 0;
        if (ado_rpc_render_metrics(rpc, &m, &ml))
            http_text(c, 500, "out of memory\n");
        else
            http_respond(c, 200, 0, m, ml);
    } else {
        c->hkind = H_NOTFOUND;
        http_text(c, 404, "not found\n");
    }
    return 0;
}

/* ---- direct writes at the end of a loop turn ------------------------------------------ */

/* Write `c`'s pending output outside a writeable callback. lws 4.1 allows it for h1 and ws:
 * lws_issue_raw() keeps what the socket did not take in buflist_out, appends later writes
 * behind it and asks for POLLOUT itself, and lws_http_transaction_completed() defers itself
 * while buflist_out is not empty. We still fall back to a writeable callback when one is
 * already asked for or the socket is choked (that includes lws holding a partial write), so
 * our queue, not lws' buffer, holds the backlog and flow control keeps seeing it. */
static void flush_one(struct rpc_conn *c) {
    if (!c->inited || c->closed || c->want_write)
        return;
    if (c->ws ? !c->qh : !c->resp_ready)
        return;
    if (c->no_direct || (!c->ws && !c->req_read) || lws_send_pipe_choked(c->wsi)) {
        want_write(c);
        return;
    }
    /* Failed, or an HTTP transaction without keep-alive: close now (the wsi is not on lws'
     * stack here). LWS_TO_KILL_ASYNC would wait for lws' next timer tick on a foreign loop,
     * and a Connection: close client waits for the close to see the end of the answer. */
    if (c->ws ? ws_send(c) : http_write(c))
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
}

static void flush_run(struct ado_rpc *rpc) {
    if (!rpc->flushq) {
        uv_idle_stop(&rpc->flush_idle);
        return;
    }
    /* An answer never leaves before the store commit of the turn that made it (the node
     * group-commits in its own prepare/check handles, which may run after ours). */
    ado_node_flush(rpc->node);
    struct rpc_conn *c;
    while ((c = rpc->flushq)) {
        flush_drop(c);
        flush_one(c);
    }
    uv_idle_stop(&rpc->flush_idle);
}

static void flush_check_cb(uv_check_t *h) {
    flush_run(h->data);
}

static void flush_idle_cb(uv_idle_t *h) {
    flush_run(h->data);
}

static void flush_start(struct ado_rpc *rpc) {
    uv_loop_t *loop = rpc->node->loop;
    rpc->flushq = NULL;
    uv_check_init(loop, &rpc->flush_check);
    uv_idle_init(loop, &rpc->flush_idle);
    rpc->flush_check.data = rpc->flush_idle.data = rpc;
    uv_check_start(&rpc->flush_check, flush_check_cb);
    uv_unref((uv_handle_t *)&rpc->flush_check);
    uv_unref((uv_handle_t *)&rpc->flush_idle);
    rpc->flush_on = 1;
}

/* Stop direct writes: what is still asked for goes through writeable callbacks. */
static void flush_stop(struct ado_rpc *rpc) {
    if (!rpc->flush_on)
        return;
    rpc->flush_on = 0;
    struct rpc_conn *c;
    while ((c = rpc->flushq)) {
        flush_drop(c);
        if (c->inited && !c->closed && (c->ws ? c->qh != NULL : c->resp_ready))
            want_write(c);
    }
    uv_close((uv_handle_t *)&rpc->flush_check, NULL);
    uv_close((uv_handle_t *)&rpc->flush_idle, NULL);
}

/* ---- the lws callback ---------------------------------------------------------------- */

static int rpc_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len) {
    struct lws_context *ctx = lws_get_context(wsi);
    struct ado_rpc *rpc = ctx ? lws_context_user(ctx) : NULL;
    struct rpc_conn *c = user;
    if (!rpc)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        if ((int64_t)rpc->nconns >= rpc->max_connections || rpc->closing) {
            rpc->conns_rejected++;
            return 1;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64];
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws"))
            return 1;
        if (!c)
            return 1;
        if ((int64_t)rpc->nconns >= rpc->max_connections) {
            rpc->conns_rejected++;
            return 1;
        }
        conn_ensure(rpc, c, wsi);
        c->ws = 1;
        conn_cors(c);
        if (rpc->ncors && c->origin[0] && !c->cors_ok)
            return 1; /* a browser page from an origin we do not serve */
        conn_auth(c);
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        if (!c)
            return -1;
        if (!c->inited || c->closed) {
            conn_ensure(rpc, c, wsi);
            conn_auth(c);
        }
        c->ws = 1;
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c && c->inited)
            c->no_direct = 1; /* lws is answering the close: no frame may follow it */
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!c || !c->inited || c->closed)
            return -1;
        return ws_receive(c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c || !c->inited || c->closed)
            return 0;
        return ws_writeable(c);
    case LWS_CALLBACK_HTTP:
        if (!c)
            return -1;
        if (!c->inited || c->closed) {
            if ((int64_t)rpc->nconns >= rpc->max_connections) {
                rpc->conns_rejected++;
                return -1;
            }
            conn_ensure(rpc, c, wsi);
        }
        return http_request(c, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY:
        if (!c || !c->inited)
            return -1;
        return http_body(c, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!c || !c->inited)
            return -1;
        c->req_read = 1;
        if (c->hkind == H_RPC)
            http_body_done(c);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c || !c->inited || c->closed)
            return 0;
        return http_write(c);
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
    case LWS_CALLBACK_WSI_DESTROY:
        if (c)
            conn_fini(c);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols rpc_protocols[] = {
    /* tx_packet_size: one send() may carry a whole write batch (lws' default is 4 KiB). */
    {"adonode-jsonrpc", rpc_callback, sizeof(struct rpc_conn), 0, 0, NULL, WRITE_BATCH + 64},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- listen / close ----------------------------------------------------------------- */

static int parse_listen(const char *s, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return ADO_EINVAL;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= hostlen)
        return ADO_EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (!end || *end || p < 0 || p > 65535)
        return ADO_EINVAL;
    *port = (int)p;
    return 0;
}

static void raise_nofile(struct ado_rpc *rpc) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    rlim_t want = (rlim_t)rpc->max_connections + 256;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int ado_rpc_server_listen(struct ado_rpc *rpc, struct ado_diag *diag) {
    struct ado_node *node = rpc->node;
    if (rpc->lws)
        return ADO_ESTATE;
    struct ado_cnode *lc = cget(rpc, "node.rpc.listen");
    const char *listen = lc && lc->text                       ? lc->text
                         : node->cfg && node->cfg->rpc_listen ? node->cfg->rpc_listen
                                                              : "127.0.0.1:8645";
    if (!*listen || !strcmp(listen, "off"))
        return 0;
    ado_rpc_settings_free(rpc);
    int rc = load_settings(rpc, diag);
    if (rc)
        return rc;
    char host[256];
    int port;
    if (parse_listen(listen, host, sizeof host, &port)) {
        diag_at(rpc, diag, lc, "node.rpc.listen", "expected HOST:PORT or off");
        return ADO_ECONFIG;
    }
    if (!node->loop) {
        diag_at(rpc, diag, lc, "node.rpc.listen", "no event loop");
        return ADO_ESTATE;
    }
    raise_nofile(rpc);
    struct ado_cnode *cert = cget(rpc, "node.rpc.tls.cert"), *key = cget(rpc, "node.rpc.tls.key");
    int tls = cert && cert->text && *cert->text;
    if (tls && !(key && key->text && *key->text)) {
        diag_at(rpc, diag, cert, "node.rpc.tls", "tls needs both cert and key");
        return ADO_ECONFIG;
    }
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = {node->loop};
    info.port = port;
    info.iface = *host && strcmp(host, "0.0.0.0") && strcmp(host, "*") ? host : NULL;
    info.protocols = rpc_protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (!strchr(host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = loops;
    info.user = rpc;
    info.pcontext = &rpc->lws; /* lws clears it once the context is wholly destroyed */
    info.vhost_name = "adonode";
    info.server_string = "adonode";
    info.alpn = "http/1.1";
    info.keepalive_timeout = 60;
    info.timeout_secs = 30;
    info.fd_limit_per_thread = (unsigned)(rpc->max_connections + 128);
    info.count_threads = 1;
    if (tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cert->text;
        info.ssl_private_key_filepath = key->text;
    }
    rpc->lws = lws_create_context(&info);
    if (!rpc->lws) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot listen on %s%s (in use, or bad address/TLS files)",
                 listen, tls ? " with TLS" : "");
        diag_at(rpc, diag, lc, "node.rpc.listen", msg);
        return ADO_EIO;
    }
    flush_start(rpc);
    ado_log_write(&node->log, ADO_LOG_INFO, NULL, "rpc listening on %s%s (ws /ws, http /rpc)",
                  listen, tls ? " (tls)" : "");
    return 0;
}

void ado_rpc_server_close(struct ado_rpc *rpc) {
    if (!rpc->lws)
        return;
    /* lws closes every connection (our CLOSED callbacks detach them) and its uv handles; the
     * node keeps running its loop afterwards so the handles finish closing. */
    flush_stop(rpc);
    lws_context_destroy(rpc->lws);
    /* With a foreign loop the destruction ends in uv close callbacks: turn the loop (without
     * blocking) until lws reports the context gone through info.pcontext. */
    for (int i = 0; rpc->lws && i < 1000; i++)
        uv_run(rpc->node->loop, UV_RUN_NOWAIT);
    rpc->lws = NULL;
    if (rpc->conns) /* lws reported every close so far; never touch its freed memory */
        ado_log_write(&rpc->node->log, ADO_LOG_WARN, NULL, "rpc: %zu connections not closed",
                      rpc->nconns);
    rpc->conns = NULL;
    rpc->nconns = 0;
    free(rpc->wbuf);
    rpc->wbuf = NULL;
    rpc->wcap = 0;
}
