/* bench_rpc: a JSON-RPC load generator.
 *
 *   bench_rpc ws   HOST PORT PATH CONNS DEPTH SECONDS [METHOD [RATE]]  libwebsockets client
 *   bench_rpc http HOST PORT PATH CONNS SECONDS [METHOD]               HTTP/1.1 keep-alive, epoll
 *
 * ws: CONNS connections each keep DEPTH calls in flight (DEPTH 1: one call at a time).
 * RATE (calls/s, all connections together) paces the sends instead: a call goes out when the
 * schedule says so and a connection has fewer than DEPTH in flight, one call per connection
 * per turn, so latency is measured at a chosen load rather than at saturation. Latency is
 * from the moment a call is written (a call delayed by the DEPTH cap is not counted as late).
 * Works against any server that answers each text message with one message (adonode's /ws,
 * or an echo server). Prints one line: calls/s, p50, p99 and p99.9 latency in microseconds.
 * The first half second is a warm-up and is not measured. */
#include <libwebsockets.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING 1024

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct lat {
    uint64_t *v;
    size_t n, cap;
};

static void lat_add(struct lat *l, uint64_t ns) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1 << 16;
        uint64_t *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = ns;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, struct lat *l, double secs) {
    qsort(l->v, l->n, sizeof *l->v, cmp_u64);
    double p50 = l->n ? (double)l->v[l->n / 2] / 1e3 : 0;
    double p99 = l->n ? (double)l->v[(size_t)((double)l->n * 0.99)] / 1e3 : 0;
    double p999 = l->n ? (double)l->v[(size_t)((double)l->n * 0.999)] / 1e3 : 0;
    printf("%s: %.0f calls/s  p50 %.0f us  p99 %.0f us  p99.9 %.0f us  (%zu calls in %.1f s)\n",
           what, (double)l->n / secs, p50, p99, p999, l->n, secs);
}

/* ---- WebSocket via libwebsockets' client ---------------------------------------------- */

struct wconn {
    struct lws *wsi;
    int inflight;
    uint64_t ts[RING];
    unsigned head, tail;
    uint64_t next_id;
    size_t rxlen;
};

struct wbench {
    struct lws_context *ctx;
    struct wconn *c;
    int nconn, depth, connected, failed, closed;
    const char *method;
    uint64_t t_start, t_measure, t_end;
    int stop;
    struct lat lat;
    double rate;                 /* calls/s; 0: as fast as answers come */
    uint64_t sent;               /* calls written since t_start */
    lws_sorted_usec_list_t tick; /* paced mode: wakes the loop every PACE_TICK_US */
};

#define PACE_TICK_US 200

/* Paced mode: may another call go out now? */
static int pace_allows(const struct wbench *b) {
    if (b->rate <= 0)
        return 1;
    double due = b->rate * (double)(now_ns() - b->t_start) / 1e9;
    return (double)b->sent < due;
}

/* Paced mode: give every connection with room a turn, then re-arm. */
static void pace_tick(lws_sorted_usec_list_t *sul) {
    struct wbench *b = lws_container_of(sul, struct wbench, tick);
    if (b->stop)
        return;
    for (int i = 0; i < b->nconn && pace_allows(b); i++)
        if (b->c[i].wsi && b->c[i].inflight < b->depth)
            lws_callback_on_writable(b->c[i].wsi);
    lws_sul_schedule(b->ctx, 0, &b->tick, pace_tick, PACE_TICK_US);
}

static int ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len) {
    struct wbench *b = lws_context_user(lws_get_context(wsi));
    struct wconn *c = user ? *(struct wconn **)user : NULL;
    (void)in;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        b->connected++;
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        fprintf(stderr, "connect error: %s\n", in ? (const char *)in : "?");
        b->failed++;
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        b->closed++;
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!c || b->stop)
            break;
        while (c->inflight < b->depth && pace_allows(b) && !lws_send_pipe_choked(wsi)) {
            unsigned char buf[LWS_PRE + 160];
            int n = snprintf((char *)buf + LWS_PRE, 160,
                             "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"%s\",\"params\":[]}",
                             (unsigned long long)c->next_id++, b->method);
            c->ts[c->head++ % RING] = now_ns();
            c->inflight++;
            b->sent++;
            if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n)
                return -1;
            if (b->rate > 0)
                break; /* one per turn: spread the schedule over the connections */
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!c)
            break;
        c->rxlen += len;
        if (!lws_is_final_fragment(wsi))
            break;
        c->rxlen = 0;
        if (c->inflight > 0) {
            uint64_t t = now_ns();
            uint64_t t0 = c->ts[c->tail++ % RING];
            c->inflight--;
            if (t >= b->t_measure && t < b->t_end)
                lat_add(&b->lat, t - t0);
        }
        if (!b->stop)
            lws_callback_on_writable(wsi);
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols ws_protocols[] = {
    {"bench", ws_cb, sizeof(struct wconn *), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int run_ws(const char *host, int port, const char *path, int nconn, int depth, double secs,
                  const char *method, double rate) {
    struct wbench b;
    memset(&b, 0, sizeof b);
    b.rate = rate;
    b.nconn = nconn;
    b.depth = depth > RING ? RING : depth;
    b.method = method;
    b.c = calloc((size_t)nconn, sizeof *b.c);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ws_protocols;
    info.user = &b;
    info.fd_limit_per_thread = (unsigned)nconn + 64;
    lws_set_log_level(LLL_ERR, NULL);
    b.ctx = lws_create_context(&info);
    if (!b.ctx)
        return 1;
    struct wconn **slots = calloc((size_t)nconn, sizeof *slots);
    for (int i = 0; i < nconn; i++) {
        struct lws_client_connect_info ci;
        memset(&ci, 0, sizeof ci);
        ci.context = b.ctx;
        ci.address = host;
        ci.port = port;
        ci.path = path;
        ci.host = host;
        ci.origin = host;
        ci.protocol = NULL;
        slots[i] = &b.c[i];
        ci.userdata = &slots[i];
        ci.pwsi = &b.c[i].wsi;
        if (!lws_client_connect_via_info(&ci))
            b.failed++;
    }
    uint64_t t0 = now_ns();
    while (b.connected + b.failed < nconn && now_ns() - t0 < 10000000000ull)
        lws_service(b.ctx, 0);
    if (b.failed) {
        fprintf(stderr, "%d connections failed\n", b.failed);
        lws_context_destroy(b.ctx);
        return 1;
    }
    uint64_t start = now_ns();
    b.t_start = start;
    if (rate > 0)
        lws_sul_schedule(b.ctx, 0, &b.tick, pace_tick, PACE_TICK_US);
    b.t_measure = start + 500000000ull;
    b.t_end = b.t_measure + (uint64_t)(secs * 1e9);
    while (now_ns() < b.t_end)
        lws_service(b.ctx, 0);
    b.stop = 1;
    if (rate > 0)
        lws_sul_cancel(&b.tick);
    char what[160];
    if (rate > 0)
        snprintf(what, sizeof what, "ws %s conns=%d depth=%d rate=%.0f", method, nconn, b.depth,
                 rate);
    else
        snprintf(what, sizeof what, "ws %s conns=%d depth=%d", method, nconn, b.depth);
    report(what, &b.lat, secs);
    lws_context_destroy(b.ctx);
    free(b.lat.v);
    free(b.c);
    free(slots);
    return 0;
}

/* ---- HTTP/1.1 keep-alive with epoll ----------------------------------------------------- */

struct hconn {
    int fd;
    uint64_t t0;
    char buf[8192];
    size_t len;
};

static int hsend(struct hconn *c, const char *req, size_t rl) {
    c->t0 = now_ns();
    c->len = 0;
    return send(c->fd, req, rl, MSG_NOSIGNAL) == (ssize_t)rl ? 0 : -1;
}

/* 1 when a whole response is in c->buf. */
static int hcomplete(struct hconn *c) {
    c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = 0;
    char *sep = strstr(c->buf, "\r\n\r\n");
    if (!sep)
        return 0;
    char *cl = strcasestr(c->buf, "content-length:");
    size_t body = cl ? (size_t)atol(cl + 15) : 0;
    return c->len >= (size_t)(sep + 4 - c->buf) + body;
}

static int run_http(const char *host, int port, const char *path, int nconn, double secs,
                    const char *method) {
    char body[160], req[512];
    int bl = snprintf(body, sizeof body,
                      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":[]}", method);
    int rl = snprintf(req, sizeof req,
                      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n%s",
                      path, host, bl, body);
    struct addrinfo hints = {0}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, ps, &hints, &ai))
        return 1;
    int ep = epoll_create1(0);
    struct hconn *c = calloc((size_t)nconn, sizeof *c);
    struct lat lat = {0};
    for (int i = 0; i < nconn; i++) {
        c[i].fd = socket(ai->ai_family, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c[i].fd, ai->ai_addr, ai->ai_addrlen)) {
            perror("connect");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
        hsend(&c[i], req, (size_t)rl);
    }
    freeaddrinfo(ai);
    uint64_t t_measure = now_ns() + 500000000ull, t_end = t_measure + (uint64_t)(secs * 1e9);
    struct epoll_event evs[256];
    while (now_ns() < t_end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct hconn *h = evs[i].data.ptr;
            ssize_t k = recv(h->fd, h->buf + h->len, sizeof h->buf - h->len - 1, 0);
            if (k <= 0) {
                fprintf(stderr, "connection closed by the server\n");
                return 1;
            }
            h->len += (size_t)k;
            if (!hcomplete(h))
                continue;
            uint64_t t = now_ns();
            if (t >= t_measure && t < t_end)
                lat_add(&lat, t - h->t0);
            hsend(h, req, (size_t)rl);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "http %s conns=%d keep-alive", method, nconn);
    report(what, &lat, secs);
    for (int i = 0; i < nconn; i++)
        close(c[i].fd);
    close(ep);
    free(c);
    free(lat.v);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 8 && !strcmp(argv[1], "ws"))
        return run_ws(argv[2], atoi(argv[3]), argv[4], atoi(argv[5]), atoi(argv[6]), atof(argv[7]),
                      argc > 8 ? argv[8] : "rpc_echo", argc > 9 ? atof(argv[9]) : 0);
    if (argc >= 7 && !strcmp(argv[1], "http"))
        return run_http(argv[2], atoi(argv[3]), argv[4], atoi(argv[5]), atof(argv[6]),
                        argc > 7 ? argv[7] : "rpc_echo");
    fprintf(stderr, "usage: bench_rpc ws HOST PORT PATH CONNS DEPTH SECONDS [METHOD [RATE]]\n"
                    "       bench_rpc http HOST PORT PATH CONNS SECONDS [METHOD]\n");
    return 2;
}
