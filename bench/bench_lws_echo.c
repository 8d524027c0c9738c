/* bench_lws_echo: the "bare libwebsockets" anchor for bench_rpc.
 *
 *   bench_lws_echo PORT [SECONDS]     (SECONDS 0 or absent: serve until killed)
 *
 * A plain libwebsockets 4.x WebSocket server on 127.0.0.1:PORT, default event loop, one
 * thread, that answers every text message with the same text: what an lws application does
 * when its per-message work is nothing. Each message is sent back with its own lws_write
 * (the usual lws pattern), as many per writeable callback as the socket takes. Driving it
 * with `bench_rpc ws 127.0.0.1 PORT / CONNS DEPTH SECONDS` gives the ceiling that adonode's
 * /ws is compared with in docs/benchmarks-rpc.md. */
#include <libwebsockets.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Outgoing messages of one connection, back to back in one buffer. Each record is a length
 * then LWS_PRE spare bytes then the text: lws_write puts the frame header into the spare
 * bytes just before the text, which only ever overwrites the record being sent. */
struct echo_conn {
    unsigned char *out;
    size_t olen, ocap, opos; /* opos: the next record to send */
    unsigned char *rx;       /* a message arriving in several fragments */
    size_t rxlen, rxcap;
};

#define REC_HDR (sizeof(size_t) + LWS_PRE)

static int grow(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    unsigned char *n = realloc(*buf, nc);
    if (!n)
        return -1;
    *buf = n;
    *cap = nc;
    return 0;
}

static int queue_msg(struct echo_conn *c, const void *text, size_t len) {
    size_t rec = (REC_HDR + len + 7) & ~(size_t)7;
    if (grow(&c->out, &c->ocap, c->olen + rec))
        return -1;
    memcpy(c->out + c->olen, &len, sizeof len);
    memcpy(c->out + c->olen + REC_HDR, text, len);
    c->olen += rec;
    return 0;
}

static int on_receive(struct lws *wsi, struct echo_conn *c, const void *in, size_t len) {
    int final = lws_is_final_fragment(wsi);
    if (final && !c->rxlen) {
        if (queue_msg(c, in, len))
            return -1;
    } else {
        if (grow(&c->rx, &c->rxcap, c->rxlen + len))
            return -1;
        memcpy(c->rx + c->rxlen, in, len);
        c->rxlen += len;
        if (!final)
            return 0;
        if (queue_msg(c, c->rx, c->rxlen))
            return -1;
        c->rxlen = 0;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_writeable(struct lws *wsi, struct echo_conn *c) {
    while (c->opos < c->olen) {
        size_t len;
        memcpy(&len, c->out + c->opos, sizeof len);
        unsigned char *text = c->out + c->opos + REC_HDR;
        if (lws_write(wsi, text, len, LWS_WRITE_TEXT) < (int)len)
            return -1;
        c->opos += (REC_HDR + len + 7) & ~(size_t)7;
        if (lws_send_pipe_choked(wsi))
            break;
    }
    if (c->opos < c->olen) {
        lws_callback_on_writable(wsi);
    } else {
        c->opos = c->olen = 0;
    }
    return 0;
}

static int echo_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
    struct echo_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(c, 0, sizeof *c);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return on_receive(wsi, c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(wsi, c);
    case LWS_CALLBACK_CLOSED:
        free(c->out);
        free(c->rx);
        memset(c, 0, sizeof *c);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"echo", echo_cb, sizeof(struct echo_conn), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_lws_echo PORT [SECONDS]\n");
        return 2;
    }
    double secs = argc > 2 ? atof(argv[2]) : 0;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = atoi(argv[1]);
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.fd_limit_per_thread = 1024;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "bench_lws_echo: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    printf("lws echo listening on %d\n", info.port);
    fflush(stdout);
    double end = secs > 0 ? now_s() + secs : 0;
    while ((!end || now_s() < end) && lws_service(ctx, 0) >= 0)
        ;
    lws_context_destroy(ctx);
    return 0;
}
