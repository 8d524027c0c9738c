/* evm_l2: JSON-RPC over one WebSocket on the libuv loop (see ws.h).
 *
 * Ownership: the client owns its connection; the connection, each write and the timer are
 * heap objects freed in their own callbacks, which never touch a freed client (the connection
 * and the timer are detached first). */
#include "ws.h"

#include <ado/errors.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_MAX_MESSAGE (64u << 20)

struct wreq {
    struct wreq *next;
    char *text; /* the request with wire ids */
    size_t len;
    jrpc_raw_fn cb;
    void *arg;
    uint64_t deadline_ms;
    uint64_t base; /* first wire id */
    size_t n;      /* ids used (1 for an object) */
    int batch;
    json_t *orig; /* original ids: a JSON array of n ids */
};

enum { W_CLOSED = 0, W_RESOLVING, W_CONNECTING, W_HANDSHAKE, W_OPEN };

struct wsconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    struct jws *w; /* NULL once detached */
    int state, handle_open;
    char key[32], accept[32];
    char *rbuf;
    size_t rlen, rcap;
    char *msg; /* a fragmented message being assembled */
    size_t mlen;
};

struct jws_timer {
    uv_timer_t t;
    struct jws *w;
};

struct jws {
    uv_loop_t *loop;
    char *host, *port, *path, *hosthdr;
    uint64_t timeout_ms;
    struct wsconn *k;
    struct wreq *queue, *qtail; /* not sent yet */
    struct wreq *sent;          /* sent, awaiting the answer */
    size_t pending;
    struct jws_timer *timer;
    uint64_t next_id, generation, rng;
    jrpc_notify_fn notify;
    void *notify_arg;
};

static void ws_kick(struct jws *w);
static void conn_drop(struct wsconn *k);

static uint32_t rnd32(struct jws *w) {
    /* xorshift64*, seeded from uv_random: masking keys need not be secret. */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return (uint32_t)((w->rng * 2685821657736338717ULL) >> 32);
}

static void wreq_free(struct wreq *r) {
    json_decref(r->orig);
    free(r->text);
    free(r);
}

static void wreq_done(struct jws *w, struct wreq *r, int status, const char *body, size_t len) {
    w->pending--;
    jrpc_raw_fn cb = r->cb;
    void *arg = r->arg;
    wreq_free(r);
    cb(arg, status, body, len);
}

int jws_new(uv_loop_t *loop, const char *url, uint64_t timeout_ms, struct jws **out) {
    if (strncmp(url, "ws://", 5) != 0)
        return ADO_EINVAL;
    const char *h = url + 5, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl > 255)
        return ADO_EINVAL;
    char hp[256];
    memcpy(hp, h, hl);
    hp[hl] = 0;
    char *host = hp, *port = NULL;
    if (hp[0] == '[') {
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
    struct jws *w = calloc(1, sizeof *w);
    if (!w)
        return ADO_ENOMEM;
    w->loop = loop;
    w->host = strdup(host);
    w->port = strdup(port ? port : "80");
    w->path = strdup(slash ? slash : "/");
    w->hosthdr = strndup(h, hl);
    w->timeout_ms = timeout_ms;
    w->next_id = 1;
    if (uv_random(NULL, NULL, &w->rng, sizeof w->rng, 0, NULL) != 0 || !w->rng)
        w->rng = uv_hrtime() | 1;
    if (!w->host || !w->port || !w->path || !w->hosthdr) {
        jws_free(w);
        return ADO_ENOMEM;
    }
    *out = w;
    return 0;
}

static void timer_closed(uv_handle_t *h) {
    free(h->data);
}

static void fail_list(struct jws *w, struct wreq **list, int status) {
    while (*list) {
        struct wreq *r = *list;
        *list = r->next;
        wreq_done(w, r, status, NULL, 0);
    }
}

void jws_free(struct jws *w) {
    if (!w)
        return;
    if (w->k) {
        struct wsconn *k = w->k;
        conn_drop(k);
    }
    fail_list(w, &w->sent, ADO_ECLOSED);
    fail_list(w, &w->queue, ADO_ECLOSED);
    if (w->timer) {
        w->timer->w = NULL;
        uv_close((uv_handle_t *)&w->timer->t, timer_closed);
    }
    free(w->host);
    free(w->port);
    free(w->path);
    free(w->hosthdr);
    free(w);
}

size_t jws_pending(const struct jws *w) {
    return w->pending;
}

void jws_on_notify(struct jws *w, jrpc_notify_fn fn, void *arg) {
    w->notify = fn;
    w->notify_arg = arg;
}

uint64_t jws_generation(const struct jws *w) {
    return w->generation;
}

static void on_tick(uv_timer_t *t);

/* Give the request wire ids (remembering the caller's), as text. */
static int wreq_prepare(struct jws *w, struct wreq *r, const char *body, size_t len) {
    json_t *o = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    if (!o || (!json_is_object(o) && !json_is_array(o))) {
        json_decref(o);
        return ADO_EINVAL;
    }
    r->orig = json_array();
    r->base = w->next_id;
    if (json_is_object(o)) {
        json_array_append(r->orig,
                          json_object_get(o, "id") ? json_object_get(o, "id") : json_null());
        json_object_set_new(o, "id", json_integer((json_int_t)w->next_id++));
        r->n = 1;
    } else {
        r->batch = 1;
        size_t i;
        json_t *e;
        json_array_foreach(o, i, e) {
            json_array_append(r->orig,
                              json_object_get(e, "id") ? json_object_get(e, "id") : json_null());
            json_object_set_new(e, "id", json_integer((json_int_t)w->next_id++));
            r->n++;
        }
    }
    r->text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!r->text)
        return ADO_ENOMEM;
    r->len = strlen(r->text);
    return 0;
}

int jws_post(struct jws *w, const char *body, size_t len, jrpc_raw_fn cb, void *arg) {
    struct wreq *r = calloc(1, sizeof *r);
    if (!r)
        return ADO_ENOMEM;
    int rc = wreq_prepare(w, r, body, len);
    if (rc < 0) {
        wreq_free(r);
        return rc;
    }
    r->cb = cb;
    r->arg = arg;
    r->deadline_ms = uv_now(w->loop) + w->timeout_ms;
    if (w->qtail)
        w->qtail->next = r;
    else
        w->queue = r;
    w->qtail = r;
    w->pending++;
    if (!w->timer) {
        w->timer = calloc(1, sizeof *w->timer);
        if (w->timer) {
            w->timer->w = w;
            uv_timer_init(w->loop, &w->timer->t);
            w->timer->t.data = w->timer;
            uv_timer_start(&w->timer->t, on_tick, 100, 100);
            uv_unref((uv_handle_t *)&w->timer->t);
        }
    }
    ws_kick(w);
    return 0;
}

/* ---- connection ---------------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *h) {
    struct wsconn *k = h->data;
    free(k->rbuf);
    free(k->msg);
    free(k);
}

/* Detach and close k. */
static void conn_drop(struct wsconn *k) {
    if (k->w && k->w->k == k)
        k->w->k = NULL;
    k->w = NULL;
    if (k->state == W_RESOLVING) {
        uv_cancel((uv_req_t *)&k->gai); /* the callback frees k */
        return;
    }
    if (k->handle_open) {
        k->handle_open = 0;
        uv_close((uv_handle_t *)&k->tcp, conn_closed);
    } else {
        free(k->rbuf);
        free(k->msg);
        free(k);
    }
}

/* The link is gone: what was sent fails (the caller retries), queued requests wait for the
 * next connection, unless it could not even connect (then they fail too). */
static void conn_lost(struct wsconn *k, int connected) {
    struct jws *w = k->w;
    conn_drop(k);
    if (!w)
        return;
    fail_list(w, &w->sent, ADO_EIO);
    if (!connected) {
        fail_list(w, &w->queue, ADO_EIO);
        w->qtail = NULL;
    }
}

struct wbuf {
    uv_write_t req;
    size_t len;
    char data[];
};

static void on_write(uv_write_t *wr, int status) {
    struct wsconn *k = wr->data;
    free(wr);
    if (status < 0 && k && k->w && k->handle_open)
        conn_lost(k, 1);
}

static int conn_write(struct wsconn *k, const char *data, size_t len) {
    struct wbuf *b = malloc(sizeof *b + len);
    if (!b)
        return ADO_ENOMEM;
    memcpy(b->data, data, len);
    b->len = len;
    b->req.data = k;
    uv_buf_t ub = uv_buf_init(b->data, (unsigned)len);
    if (uv_write(&b->req, (uv_stream_t *)&k->tcp, &ub, 1, on_write) < 0) {
        free(b);
        return ADO_EIO;
    }
    return 0;
}

/* One masked frame (client frames must be masked). */
static int send_frame(struct wsconn *k, int opcode, const char *payload, size_t len) {
    size_t hl = 2 + (len >= 126 ? (len > 65535 ? 8 : 2) : 0) + 4;
    char *f = malloc(hl + len);
    if (!f)
        return ADO_ENOMEM;
    size_t i = 0;
    f[i++] = (char)(0x80 | opcode);
    if (len < 126) {
        f[i++] = (char)(0x80 | len);
    } else if (len <= 65535) {
        f[i++] = (char)(0x80 | 126);
        f[i++] = (char)(len >> 8);
        f[i++] = (char)len;
    } else {
        f[i++] = (char)(0x80 | 127);
        for (int s = 56; s >= 0; s -= 8)
            f[i++] = (char)((uint64_t)len >> s);
    }
    uint32_t m = rnd32(k->w);
    unsigned char mask[4] = {(unsigned char)(m >> 24), (unsigned char)(m >> 16),
                             (unsigned char)(m >> 8), (unsigned char)m};
    memcpy(f + i, mask, 4);
    i += 4;
    for (size_t j = 0; j < len; j++)
        f[i + j] = (char)(payload[j] ^ mask[j & 3]);
    int rc = conn_write(k, f, i + len);
    free(f);
    return rc;
}

static void send_queued(struct wsconn *k) {
    struct jws *w = k->w;
    while (w && k->state == W_OPEN && w->queue) {
        struct wreq *r = w->queue;
        w->queue = r->next;
        if (!w->queue)
            w->qtail = NULL;
        r->next = w->sent;
        w->sent = r;
        if (send_frame(k, 0x1, r->text, r->len) < 0) {
            conn_lost(k, 1);
            return;
        }
    }
}

/* Deliver one complete text message. */
static void on_message(struct jws *w, const char *text, size_t len) {
    json_t *o = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    if (!o)
        return;
    json_t *first = json_is_array(o) ? json_array_get(o, 0) : o;
    json_t *idv = json_object_get(first, "id");
    if (!json_is_integer(idv)) {
        if (json_is_object(o) && w->notify)
            w->notify(w->notify_arg, o);
        json_decref(o);
        return;
    }
    uint64_t id = (uint64_t)json_integer_value(idv);
    struct wreq **pp = &w->sent;
    while (*pp && !(id >= (*pp)->base && id < (*pp)->base + (*pp)->n))
        pp = &(*pp)->next;
    if (!*pp) { /* timed out already */
        json_decref(o);
        return;
    }
    struct wreq *r = *pp;
    *pp = r->next;
    if (json_is_array(o)) {
        size_t i;
        json_t *e;
        json_array_foreach(o, i, e) {
            json_int_t eid = json_integer_value(json_object_get(e, "id"));
            if (eid >= (json_int_t)r->base && eid < (json_int_t)(r->base + r->n))
                json_object_set(e, "id", json_array_get(r->orig, (size_t)eid - r->base));
        }
    } else {
        json_object_set(o, "id", json_array_get(r->orig, 0));
    }
    char *out = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(o);
    if (out)
        wreq_done(w, r, 0, out, strlen(out));
    else
        wreq_done(w, r, ADO_ENOMEM, NULL, 0);
    free(out);
}

/* Parse frames out of k->rbuf. Returns 0, or -1 when the connection must go. */
static int parse_frames(struct wsconn *k) {
    size_t off = 0;
    while (k->w && k->rlen - off >= 2) {
        unsigned char *b = (unsigned char *)k->rbuf + off;
        int fin = b[0] & 0x80, op = b[0] & 0x0f, masked = b[1] & 0x80;
        uint64_t len = b[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (k->rlen - off < 4)
                break;
            len = ((uint64_t)b[2] << 8) | b[3];
            hl = 4;
        } else if (len == 127) {
            if (k->rlen - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | b[2 + i];
            hl = 10;
        }
        if (len > WS_MAX_MESSAGE)
            return -1;
        size_t ml = masked ? 4 : 0;
        if (k->rlen - off < hl + ml + len)
            break;
        char *p = (char *)b + hl + ml;
        if (masked)
            for (uint64_t i = 0; i < len; i++)
                p[i] ^= (char)b[hl + (i & 3)];
        off += hl + ml + len;
        if (op == 0x8)
            return -1; /* close */
        if (op == 0x9) {
            send_frame(k, 0xA, p, len);
            continue;
        }
        if (op == 0xA)
            continue;
        if (op == 0x1 || op == 0x2 || op == 0x0) {
            if (op != 0 && fin && !k->msg) {
                on_message(k->w, p, len);
                continue;
            }
            if (k->mlen + len > WS_MAX_MESSAGE)
                return -1;
            char *m = realloc(k->msg, k->mlen + len + 1);
            if (!m)
                return -1;
            memcpy(m + k->mlen, p, len);
            k->msg = m;
            k->mlen += len;
            if (fin) {
                char *msg = k->msg;
                size_t mlen = k->mlen;
                k->msg = NULL;
                k->mlen = 0;
                on_message(k->w, msg, mlen);
                free(msg);
            }
        }
    }
    if (off) {
        memmove(k->rbuf, k->rbuf + off, k->rlen - off);
        k->rlen -= off;
    }
    return 0;
}

static int handshake_check(struct wsconn *k) {
    char *end = memmem(k->rbuf, k->rlen, "\r\n\r\n", 4);
    if (!end)
        return k->rlen > 16384 ? -1 : 0;
    *end = 0;
    int ok = !strncmp(k->rbuf, "HTTP/1.1 101", 12);
    char *a = ok ? strcasestr(k->rbuf, "\r\nsec-websocket-accept:") : NULL;
    if (a) {
        a += 23;
        while (*a == ' ')
            a++;
        ok = !strncmp(a, k->accept, strlen(k->accept));
    } else {
        ok = 0;
    }
    if (!ok)
        return -1;
    size_t hl = (size_t)(end - k->rbuf) + 4;
    memmove(k->rbuf, k->rbuf + hl, k->rlen - hl);
    k->rlen -= hl;
    k->state = W_OPEN;
    k->w->generation++;
    return 1;
}

void jws_rbuf_alloc(char **buf, size_t len, size_t *cap, size_t initial, uv_buf_t *out) {
    if (*cap - len < 16384) {
        size_t ncap = *cap ? *cap * 2 : initial;
        char *nb = realloc(*buf, ncap);
        if (!nb) {
            *out = uv_buf_init(NULL, 0);
            return;
        }
        *buf = nb;
        *cap = ncap;
    }
    *out = uv_buf_init(*buf + len, (unsigned)(*cap - len - 1));
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    struct wsconn *k = h->data;
    (void)hint;
    jws_rbuf_alloc(&k->rbuf, k->rlen, &k->rcap, 65536, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    struct wsconn *k = s->data;
    (void)buf;
    if (!k->w)
        return;
    if (nread < 0) {
        conn_lost(k, k->state == W_OPEN);
        return;
    }
    k->rlen += (size_t)nread;
    if (k->state == W_HANDSHAKE) {
        int rc = handshake_check(k);
        if (rc < 0) {
            conn_lost(k, 0);
            return;
        }
        if (rc == 0)
            return;
        send_queued(k);
    }
    if (k->w && parse_frames(k) < 0)
        conn_lost(k, 1);
}

static void on_connect(uv_connect_t *cr, int status) {
    struct wsconn *k = cr->data;
    if (!k->w)
        return;
    if (status < 0) {
        conn_lost(k, 0);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    /* Handshake: a random key, and the accept value the server must answer with. */
    unsigned char raw[16], sha[EVP_MAX_MD_SIZE];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = rnd32(k->w);
        memcpy(raw + i, &r, 4);
    }
    EVP_EncodeBlock((unsigned char *)k->key, raw, 16);
    char cat[80];
    int cl = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", k->key);
    unsigned int sl = 0;
    EVP_Digest(cat, (size_t)cl, sha, &sl, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)k->accept, sha, (int)sl);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     k->w->path, k->w->hosthdr, k->key);
    k->state = W_HANDSHAKE;
    if (conn_write(k, req, (size_t)n) < 0)
        conn_lost(k, 0);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai) {
    struct wsconn *k = g->data;
    if (!k->w) {
        if (ai)
            uv_freeaddrinfo(ai);
        free(k);
        return;
    }
    if (status < 0 || !ai) {
        k->state = W_CLOSED;
        conn_lost(k, 0);
        return;
    }
    k->state = W_CONNECTING;
    uv_tcp_init(k->w->loop, &k->tcp);
    k->tcp.data = k;
    k->handle_open = 1;
    k->creq.data = k;
    int rc = uv_tcp_connect(&k->creq, &k->tcp, ai->ai_addr, on_connect);
    uv_freeaddrinfo(ai);
    if (rc < 0)
        conn_lost(k, 0);
}

static void ws_kick(struct jws *w) {
    if (w->k) {
        if (w->k->state == W_OPEN)
            send_queued(w->k);
        return;
    }
    if (!w->queue)
        return;
    struct wsconn *k = calloc(1, sizeof *k);
    if (!k)
        return;
    k->w = w;
    k->state = W_RESOLVING;
    k->gai.data = k;
    w->k = k;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (uv_getaddrinfo(w->loop, &k->gai, on_resolved, w->host, w->port, &hints) < 0) {
        w->k = NULL;
        free(k);
    }
}

static void on_tick(uv_timer_t *t) {
    struct jws *w = ((struct jws_timer *)t->data)->w;
    if (!w)
        return;
    uint64_t now = uv_now(w->loop);
    struct wreq **lists[2] = {&w->sent, &w->queue};
    for (int l = 0; l < 2; l++) {
        struct wreq **pp = lists[l];
        while (*pp) {
            struct wreq *r = *pp;
            if (r->deadline_ms <= now) {
                *pp = r->next;
                wreq_done(w, r, ADO_ETIMEDOUT, NULL, 0);
            } else {
                pp = &r->next;
            }
        }
    }
    w->qtail = NULL;
    for (struct wreq *r = w->queue; r; r = r->next)
        w->qtail = r;
    ws_kick(w);
}
