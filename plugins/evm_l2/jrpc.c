/* evm_l2: JSON-RPC over HTTP/1.1 keep-alive on libuv TCP (see jrpc.h).
 *
 * Ownership: the client owns its connections; each connection and the timer are heap
 * objects freed in their own close callback, which never touches the client, so the client
 * can be freed at once while handles finish closing on the loop. */
#include "jrpc.h"

#include "ws.h"

#include <ado/errors.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct req {
    struct req *next;
    char *wire; /* HTTP request text */
    size_t wlen;
    jrpc_raw_fn cb;
    void *arg;
    uint64_t deadline_ms;
    int retried;
};

enum { C_IDLE_CLOSED = 0, C_RESOLVING, C_CONNECTING, C_READY, C_BUSY };

struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_getaddrinfo_t gai;
    struct jrpc *c; /* NULL once detached (client freed) */
    int state;
    int reused; /* served a request before: a failure before any byte may be a stale socket */
    int handle_open;
    struct req *cur;
    char *rbuf;
    size_t rlen, rcap;
};

struct jrpc_timer {
    uv_timer_t t;
    struct jrpc *c;
};

struct jrpc {
    struct jws *ws; /* ws:// clients delegate everything to it */
    uv_loop_t *loop;
    char *host, *port, *path, *hosthdr;
    uint64_t timeout_ms;
    unsigned max_conns;
    struct conn **conns;
    struct req *head, *tail;
    size_t pending;
    struct jrpc_timer *timer;
    uint64_t next_id;
};

static void conn_kick(struct jrpc *c);
static void conn_close(struct conn *k);

static void req_free(struct req *r) {
    free(r->wire);
    free(r);
}

static void req_done(struct jrpc *c, struct req *r, int status, const char *body, size_t len) {
    c->pending--;
    jrpc_raw_fn cb = r->cb;
    void *arg = r->arg;
    req_free(r);
    cb(arg, status, body, len);
}

int jrpc_new(uv_loop_t *loop, const char *url, unsigned max_conns, uint64_t timeout_ms,
             struct jrpc **out) {
    if (strncmp(url, "ws://", 5) == 0) {
        struct jrpc *c = calloc(1, sizeof *c);
        if (!c)
            return ADO_ENOMEM;
        int rc = jws_new(loop, url, timeout_ms ? timeout_ms : 10000, &c->ws);
        if (rc < 0) {
            free(c);
            return rc;
        }
        *out = c;
        return 0;
    }
    if (strncmp(url, "http://", 7) != 0)
        return ADO_EINVAL;
    const char *h = url + 7, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl > 255)
        return ADO_EINVAL;
    char hp[256];
    memcpy(hp, h, hl);
    hp[hl] = 0;
    char *host = hp, *port = NULL;
    if (hp[0] == '[') { /* [v6]:port */
        char *e = strchr(hp, ']');
        if (!e)
            return ADO_EINVAL;
        *e = 0;
        host = hp + 1;
        if (e[1] == ':')
            port = e + 2;
    } else {
        char *colon = strrchr(hp, ':');
        if (colon) {
            *colon = 0;
            port = colon + 1;
        }
    }
    if (!*host || (port && !*port))
        return ADO_EINVAL;
    struct jrpc *c = calloc(1, sizeof *c);
    if (!c)
        return ADO_ENOMEM;
    c->loop = loop;
    c->host = strdup(host);
    c->port = strdup(port ? port : "80");
    c->path = strdup(slash ? slash : "/");
    c->hosthdr = strndup(h, hl);
    c->max_conns = max_conns ? max_conns : 1;
    c->timeout_ms = timeout_ms ? timeout_ms : 10000;
    c->conns = calloc(c->max_conns, sizeof *c->conns);
    c->timer = calloc(1, sizeof *c->timer);
    if (!c->host || !c->port || !c->path || !c->hosthdr || !c->conns || !c->timer) {
        free(c->timer);
        c->timer = NULL;
        jrpc_free(c);
        return ADO_ENOMEM;
    }
    *out = c;
    return 0;
}

static void timer_closed(uv_handle_t *h) {
    free(h->data);
}

static void on_tick(uv_timer_t *t);

static void timer_ensure(struct jrpc *c) {
    if (c->timer && !c->timer->c) {
        c->timer->c = c;
        uv_timer_init(c->loop, &c->timer->t);
        c->timer->t.data = c->timer;
        uv_timer_start(&c->timer->t, on_tick, 100, 100);
        uv_unref((uv_handle_t *)&c->timer->t);
    }
}

void jrpc_free(struct jrpc *c) {
    if (!c)
        return;
    if (c->ws) {
        jws_free(c->ws);
        free(c);
        return;
    }
    for (unsigned i = 0; c->conns && i < c->max_conns; i++) {
        struct conn *k = c->conns[i];
        if (!k)
            continue;
        struct req *r = k->cur;
        k->cur = NULL;
        conn_close(k);
        if (r)
            req_done(c, r, ADO_ECLOSED, NULL, 0);
    }
    while (c->head) {
        struct req *r = c->head;
        c->head = r->next;
        req_done(c, r, ADO_ECLOSED, NULL, 0);
    }
    if (c->timer) {
        if (c->timer->c) {
            c->timer->c = NULL;
            uv_close((uv_handle_t *)&c->timer->t, timer_closed);
        } else {
            free(c->timer);
        }
    }
    free(c->conns);
    free(c->host);
    free(c->port);
    free(c->path);
    free(c->hosthdr);
    free(c);
}

size_t jrpc_pending(const struct jrpc *c) {
    return c->ws ? jws_pending(c->ws) : c->pending;
}

void jrpc_on_notify(struct jrpc *c, jrpc_notify_fn fn, void *arg) {
    if (c->ws)
        jws_on_notify(c->ws, fn, arg);
}

uint64_t jrpc_generation(const struct jrpc *c) {
    return c->ws ? jws_generation(c->ws) : 0;
}

int jrpc_is_ws(const struct jrpc *c) {
    return c->ws != NULL;
}

int jrpc_post(struct jrpc *c, const char *body, size_t len, jrpc_raw_fn cb, void *arg) {
    if (c->ws)
        return jws_post(c->ws, body, len, cb, arg);
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return ADO_ENOMEM;
    size_t cap = len + strlen(c->path) + strlen(c->hosthdr) + 200;
    r->wire = malloc(cap);
    if (!r->wire) {
        free(r);
        return ADO_ENOMEM;
    }
    int n = snprintf(r->wire, cap,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                     c->path, c->hosthdr, len);
    memcpy(r->wire + n, body, len);
    r->wlen = (size_t)n + len;
    r->cb = cb;
    r->arg = arg;
    r->deadline_ms = uv_now(c->loop) + c->timeout_ms;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->pending++;
    timer_ensure(c);
    conn_kick(c);
    return 0;
}

/* ---- connections -------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *h) {
    struct conn *k = h->data;
    free(k->rbuf);
    free(k);
}

/* Close k's socket (through the loop). Detaches k from its client. */
static void conn_close(struct conn *k) {
    struct jrpc *c = k->c;
    if (c) {
        for (unsigned i = 0; i < c->max_conns; i++)
            if (c->conns[i] == k)
                c->conns[i] = NULL;
        k->c = NULL;
    }
    if (k->state == C_RESOLVING) {
        uv_cancel((uv_req_t *)&k->gai); /* the gai callback frees k */
        return;
    }
    if (k->handle_open) {
        k->handle_open = 0;
        uv_close((uv_handle_t *)&k->tcp, conn_closed);
    } else {
        free(k->rbuf);
        free(k);
    }
}

/* The connection failed with a request in flight: retry it once if the socket was a reused
 * keep-alive one that died before answering, else fail it. */
static void conn_fail(struct conn *k, int status) {
    struct jrpc *c = k->c;
    struct req *r = k->cur;
    int reused = k->reused && k->rlen == 0;
    k->cur = NULL;
    conn_close(k);
    if (!r || !c)
        return;
    if (reused && !r->retried) {
        r->retried = 1;
        r->next = c->head;
        c->head = r;
        if (!c->tail)
            c->tail = r;
        conn_kick(c);
        return;
    }
    req_done(c, r, status, NULL, 0);
    conn_kick(c);
}

static void on_write(uv_write_t *w, int status) {
    struct conn *k = w->data;
    if (status < 0 && k->c)
        conn_fail(k, ADO_EIO);
}

static void conn_send(struct conn *k) {
    struct jrpc *c = k->c;
    struct req *r = c->head;
    c->head = r->next;
    if (!c->head)
        c->tail = NULL;
    r->next = NULL;
    k->cur = r;
    k->state = C_BUSY;
    k->rlen = 0;
    uv_buf_t b = uv_buf_init(r->wire, (unsigned)r->wlen);
    k->wreq.data = k;
    if (uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_write) < 0)
        conn_fail(k, ADO_EIO);
}

/* Parse what k->rbuf holds. Returns 1 with body/len set when complete, 0 when more bytes
 * are needed, or a negative code for a malformed response. */
static int http_parse(struct conn *k, char **body, size_t *blen, int *keep, int *code) {
    char *b = k->rbuf;
    size_t n = k->rlen;
    char *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end)
        return n > 65536 ? ADO_EINVAL : 0;
    size_t hlen = (size_t)(end - b) + 4;
    if (n < 12 || strncmp(b, "HTTP/1.", 7) != 0)
        return ADO_EINVAL;
    *code = atoi(b + 9);
    long long clen = -1;
    int chunked = 0;
    *keep = b[7] == '1';
    for (char *line = strstr(b, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (!strncasecmp(line, "content-length:", 15))
            clen = atoll(line + 15);
        else if (!strncasecmp(line, "transfer-encoding:", 18) && strstr(line, "chunked") &&
                 strstr(line, "chunked") < strstr(line, "\r\n"))
            chunked = 1;
        else if (!strncasecmp(line, "connection:", 11)) {
            char *v = line + 11;
            while (*v == ' ')
                v++;
            if (!strncasecmp(v, "close", 5))
                *keep = 0;
        }
    }
    if (!chunked) {
        if (clen < 0)
            return ADO_EINVAL; /* close-delimited bodies are not worth supporting here */
        if (n < hlen + (size_t)clen)
            return 0;
        *body = b + hlen;
        *blen = (size_t)clen;
        return 1;
    }
    /* Chunked: decode in place into the header area's tail (never overtakes the reader). */
    size_t rd = hlen, wr = hlen;
    for (;;) {
        char *crlf = memmem(b + rd, n - rd, "\r\n", 2);
        if (!crlf)
            return 0;
        unsigned long long sz = strtoull(b + rd, NULL, 16);
        size_t data = (size_t)(crlf - b) + 2;
        if (sz == 0) {
            if (n < data + 2)
                return 0;
            break;
        }
        if (n < data + sz + 2)
            return 0;
        memmove(b + wr, b + data, sz);
        wr += sz;
        rd = data + sz + 2;
    }
    /* Only decode once complete: recompute from scratch each time (responses are small). */
    *body = b + hlen;
    *blen = wr - hlen;
    return 1;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    struct conn *k = h->data;
    (void)hint;
    jws_rbuf_alloc(&k->rbuf, k->rlen, &k->rcap, 32768, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    struct conn *k = s->data;
    (void)buf;
    if (!k->c)
        return;
    if (nread < 0) {
        conn_fail(k, ADO_EIO);
        return;
    }
    if (nread == 0)
        return;
    if (!k->cur) { /* bytes nobody asked for: drop the connection */
        conn_close(k);
        return;
    }
    /* A chunked body is decoded in place, so parse a copy of the buffer. */
    k->rlen += (size_t)nread;
    k->rbuf[k->rlen] = 0;
    char *copy = malloc(k->rlen + 1);
    if (!copy) {
        conn_fail(k, ADO_ENOMEM);
        return;
    }
    memcpy(copy, k->rbuf, k->rlen + 1);
    struct conn view = *k;
    view.rbuf = copy;
    char *body = NULL;
    size_t blen = 0;
    int keep = 0, code = 0;
    int rc = http_parse(&view, &body, &blen, &keep, &code);
    if (rc == 0) {
        free(copy);
        return;
    }
    struct jrpc *c = k->c;
    struct req *r = k->cur;
    k->cur = NULL;
    k->reused = 1;
    k->rlen = 0;
    if (rc < 0 || (code != 200 && (blen == 0 || body[0] != '{'))) {
        conn_close(k);
        req_done(c, r, rc < 0 ? ADO_EINVAL : ADO_EIO, NULL, 0);
    } else {
        if (!keep)
            conn_close(k);
        else
            k->state = C_READY;
        body[blen] = 0; /* the copy has room: blen <= rlen */
        req_done(c, r, 0, body, blen);
    }
    free(copy);
    conn_kick(c);
}

static void on_connect(uv_connect_t *cr, int status) {
    struct conn *k = cr->data;
    if (!k->c)
        return;
    if (status < 0) {
        struct jrpc *c = k->c;
        conn_close(k);
        /* Fail the oldest queued request; the others wait for the next attempt. */
        if (c->head) {
            struct req *r = c->head;
            c->head = r->next;
            if (!c->head)
                c->tail = NULL;
            req_done(c, r, ADO_EIO, NULL, 0);
        }
        conn_kick(c);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    k->state = C_READY;
    if (k->c->head)
        conn_send(k);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai) {
    struct conn *k = g->data;
    if (!k->c) {
        if (ai)
            uv_freeaddrinfo(ai);
        free(k->rbuf);
        free(k);
        return;
    }
    struct jrpc *c = k->c;
    if (status < 0 || !ai) {
        k->state = C_IDLE_CLOSED;
        conn_close(k);
        if (c->head) {
            struct req *r = c->head;
            c->head = r->next;
            if (!c->head)
                c->tail = NULL;
            req_done(c, r, ADO_EIO, NULL, 0);
        }
        conn_kick(c);
        return;
    }
    k->state = C_CONNECTING;
    uv_tcp_init(c->loop, &k->tcp);
    k->tcp.data = k;
    k->handle_open = 1;
    k->creq.data = k;
    int rc = uv_tcp_connect(&k->creq, &k->tcp, ai->ai_addr, on_connect);
    uv_freeaddrinfo(ai);
    if (rc < 0) {
        conn_close(k);
        if (c->head) {
            struct req *r = c->head;
            c->head = r->next;
            if (!c->head)
                c->tail = NULL;
            req_done(c, r, ADO_EIO, NULL, 0);
        }
    }
}

/* Give queued requests to idle connections, opening new ones up to max_conns. */
static void conn_kick(struct jrpc *c) {
    if (!c)
        return;
    for (unsigned i = 0; i < c->max_conns && c->head; i++) {
        struct conn *k = c->conns[i];
        if (k && k->state == C_READY) {
            conn_send(k);
        } else if (!k) {
            /* Only open a new connection if no other is already coming up. */
            int opening = 0;
            for (unsigned j = 0; j < c->max_conns; j++)
                if (c->conns[j] &&
                    (c->conns[j]->state == C_RESOLVING || c->conns[j]->state == C_CONNECTING))
                    opening++;
            size_t waiting = 0;
            for (struct req *r = c->head; r; r = r->next)
                waiting++;
            if ((size_t)opening >= waiting)
                return;
            k = calloc(1, sizeof *k);
            if (!k)
                return;
            k->c = c;
            k->state = C_RESOLVING;
            k->gai.data = k;
            c->conns[i] = k;
            struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
            if (uv_getaddrinfo(c->loop, &k->gai, on_resolved, c->host, c->port, &hints) < 0) {
                c->conns[i] = NULL;
                free(k);
                return;
            }
        }
    }
}

static void on_tick(uv_timer_t *t) {
    struct jrpc *c = ((struct jrpc_timer *)t->data)->c;
    if (!c)
        return;
    uint64_t now = uv_now(c->loop);
    /* Requests in flight past their deadline: drop the connection, fail the request. */
    for (unsigned i = 0; i < c->max_conns; i++) {
        struct conn *k = c->conns[i];
        if (k && k->cur && k->cur->deadline_ms <= now) {
            k->cur->retried = 1;
            conn_fail(k, ADO_ETIMEDOUT);
        }
    }
    /* Queued requests past their deadline (connection refused repeatedly, pool busy). */
    struct req **pp = &c->head, *prev = NULL;
    while (*pp) {
        struct req *r = *pp;
        if (r->deadline_ms <= now) {
            *pp = r->next;
            if (c->tail == r)
                c->tail = prev;
            req_done(c, r, ADO_ETIMEDOUT, NULL, 0);
        } else {
            prev = r;
            pp = &r->next;
        }
    }
}

/* ---- JSON layer ------------------------------------------------------------------------- */

struct call {
    jrpc_fn cb;
    void *arg;
};

static void call_done(void *arg, int status, const char *body, size_t len) {
    struct call cl = *(struct call *)arg;
    free(arg);
    if (status < 0) {
        cl.cb(cl.arg, status, NULL, NULL);
        return;
    }
    json_t *resp = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    json_t *err = resp ? json_object_get(resp, "error") : NULL;
    json_t *res = resp ? json_object_get(resp, "result") : NULL;
    if (err && !json_is_null(err))
        cl.cb(cl.arg, ADO_EPLUGIN, NULL, err);
    else if (res)
        cl.cb(cl.arg, 0, res, NULL);
    else
        cl.cb(cl.arg, ADO_EINVAL, NULL, NULL);
    json_decref(resp);
}

int jrpc_call(struct jrpc *c, const char *method, json_t *params, jrpc_fn cb, void *arg) {
    json_t *req = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", (json_int_t)++c->next_id,
                            "method", method, "params", params ? params : json_array());
    if (!req)
        return ADO_ENOMEM;
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct call *cl = malloc(sizeof *cl);
    if (!body || !cl) {
        free(body);
        free(cl);
        return ADO_ENOMEM;
    }
    cl->cb = cb;
    cl->arg = arg;
    int rc = jrpc_post(c, body, strlen(body), call_done, cl);
    free(body);
    if (rc < 0)
        free(cl);
    return rc;
}

const char *jrpc_error_message(json_t *error) {
    const char *m = json_string_value(json_object_get(error, "message"));
    return m ? m : "unknown error";
}

const char *jrpc_error_data(json_t *error) {
    json_t *d = json_object_get(error, "data");
    if (json_is_string(d))
        return json_string_value(d);
    if (json_is_object(d)) /* some nodes wrap it: {"data": {"data": "0x..."}} */
        return json_string_value(json_object_get(d, "data"));
    return NULL;
}
