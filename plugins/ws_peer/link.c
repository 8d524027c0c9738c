/* ws_peer connections: the libwebsockets protocol callback (server and client side), the
 * mutual-authentication handshake, frame reassembly and the bounded write queue. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsp.h"

static uint64_t now_ms(struct wsp *w) {
    return w->api->now_ms(w->ctx);
}

static struct wsp_conn *conn_new(struct wsp *w, int client) {
    struct wsp_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->w = w;
    c->client = client;
    c->id = ++w->next_conn_id;
    c->opened_ms = c->last_rx_ms = now_ms(w);
    randombytes_buf(c->my_nonce, sizeof c->my_nonce);
    c->next = w->conns;
    w->conns = c;
    return c;
}

static void conn_free(struct wsp_conn *c) {
    struct wsp *w = c->w;
    for (struct wsp_conn **pp = &w->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    while (c->qhead) {
        struct wsp_out *o = c->qhead;
        c->qhead = o->next;
        free(o);
    }
    free(c->rx);
    free(c);
}

/* The connection is no longer usable: unbind it from its peer (reporting the link down if
 * it was the link). Idempotent. */
static void conn_detach(struct wsp_conn *c, const char *reason) {
    if (c->dead)
        return;
    c->dead = 1;
    struct wsp_peer *p = c->peer;
    if (p && p->dialing == c)
        p->dialing = NULL;
    wsp_link_down(c->w, c, reason);
}

void wsp_conn_kill(struct wsp_conn *c, const char *reason) {
    conn_detach(c, reason);
    if (c->wsi)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void wsp_refuse_count(struct wsp *w, struct wsp_conn *c, const char *reason, uint64_t *counter) {
    w->refused++;
    if (counter)
        (*counter)++;
    char labels[160];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    w->api->metric_add(w->ctx, "ws_peer_refused_total", labels, 1);
    w->api->log(w->ctx, ADO_LOG_WARN, "refused %s connection from %s (%s): %s",
                c->client ? "outgoing" : "incoming", c->remote[0] ? c->remote : "?",
                c->peer            ? c->peer->name
                : c->their_name[0] ? c->their_name
                                   : "unbound",
                reason);
}

/* Refuse from inside a callback: count, say why in the close frame, and close. */
static int refuse(struct lws *wsi, struct wsp_conn *c, const char *reason, uint64_t *counter) {
    wsp_refuse_count(c->w, c, reason, counter);
    lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)reason,
                     strlen(reason));
    conn_detach(c, reason);
    return -1;
}

int wsp_conn_send(struct wsp_conn *c, const struct wsp_frame *f) {
    if (c->dead || !c->wsi)
        return ADO_ECLOSED;
    size_t n = wsp_encoded_len(f);
    if (!n)
        return ADO_EINVAL;
    if (c->qbytes + n > (size_t)c->w->max_queue)
        return ADO_ELIMIT;
    struct wsp_out *o = malloc(sizeof *o + LWS_PRE + n);
    if (!o)
        return ADO_ENOMEM;
    o->next = NULL;
    o->len = wsp_encode(f, o->buf + LWS_PRE);
    if (c->qtail)
        c->qtail->next = o;
    else
        c->qhead = o;
    c->qtail = o;
    c->qbytes += n;
    lws_callback_on_writable(c->wsi);
    return 0;
}

static int send_hello(struct wsp_conn *c) {
    struct wsp *w = c->w;
    struct wsp_frame f = {.type = WSP_HELLO};
    memcpy(f.nonce, c->my_nonce, WSP_NONCE);
    memcpy(f.pk, w->pk, WSP_PK);
    snprintf(f.s1, sizeof f.s1, "%s", w->api->node_name(w->ctx));
    snprintf(f.s2, sizeof f.s2, "%s", w->api->node_layer(w->ctx));
    return wsp_conn_send(c, &f);
}

static void transcript(struct wsp_conn *c, char signer_role, uint8_t t[WSP_TRANSCRIPT_LEN]) {
    const uint8_t *cn = c->client ? c->my_nonce : c->their_nonce;
    const uint8_t *sn = c->client ? c->their_nonce : c->my_nonce;
    const uint8_t *cpk = c->client ? c->w->pk : c->their_pk;
    const uint8_t *spk = c->client ? c->their_pk : c->w->pk;
    wsp_auth_transcript(t, signer_role, cn, sn, cpk, spk);
}

static int on_hello(struct lws *wsi, struct wsp_conn *c, const struct wsp_frame *f) {
    struct wsp *w = c->w;
    if (c->got_hello)
        return refuse(wsi, c, "replayed hello", &w->refused_replay);
    c->got_hello = 1;
    memcpy(c->their_nonce, f->nonce, WSP_NONCE);
    memcpy(c->their_pk, f->pk, WSP_PK);
    snprintf(c->their_name, sizeof c->their_name, "%s", f->s1);
    if (!memcmp(f->pk, w->pk, WSP_PK))
        return refuse(wsi, c, "own key", &w->refused_unknown_key);
    if (c->client) {
        if (!c->peer->has_pk || memcmp(f->pk, c->peer->pk, WSP_PK))
            return refuse(wsi, c, "unknown key", &w->refused_unknown_key);
    } else {
        struct wsp_peer *p = wsp_peer_by_pk(w, f->pk);
        if (!p)
            return refuse(wsi, c, "unknown key", &w->refused_unknown_key);
        c->peer = p;
    }
    uint8_t t[WSP_TRANSCRIPT_LEN];
    transcript(c, c->client ? 'C' : 'S', t);
    struct wsp_frame a = {.type = WSP_AUTH};
    if (w->api->node_sign(w->ctx, t, sizeof t, a.sig) < 0 || wsp_conn_send(c, &a) < 0)
        return refuse(wsi, c, "cannot sign", NULL);
    return 0;
}

static int on_auth(struct lws *wsi, struct wsp_conn *c, const struct wsp_frame *f) {
    struct wsp *w = c->w;
    if (!c->got_hello)
        return refuse(wsi, c, "auth before hello", &w->refused_before_auth);
    uint8_t t[WSP_TRANSCRIPT_LEN];
    transcript(c, c->client ? 'S' : 'C', t);
    if (crypto_sign_verify_detached(f->sig, t, sizeof t, c->their_pk) != 0)
        return refuse(wsi, c, "bad signature", &w->refused_bad_sig);
    c->authed = 1;
    if (wsp_link_up(w, c) < 0) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"duplicate link", 14);
        conn_detach(c, "duplicate link");
        return -1;
    }
    return 0;
}

static int on_complete_frame(struct lws *wsi, struct wsp_conn *c) {
    struct wsp *w = c->w;
    struct wsp_frame f;
    c->rx[c->rxlen] = 0; /* blobs are the last field: this terminates JSON text */
    int rc = wsp_decode(c->rx, c->rxlen, &f);
    c->rxlen = 0;
    if (rc < 0)
        return refuse(wsi, c, "bad frame", &w->refused_bad_frame);
    if (!c->authed) {
        if (f.type == WSP_HELLO)
            return on_hello(wsi, c, &f);
        if (f.type == WSP_AUTH)
            return on_auth(wsi, c, &f);
        return refuse(wsi, c, "frame before auth", &w->refused_before_auth);
    }
    if (f.type == WSP_HELLO || f.type == WSP_AUTH)
        return refuse(wsi, c, "replayed handshake", &w->refused_replay);
    const char *why = NULL;
    if (wsp_on_frame(w, c, &f, &why) < 0)
        return refuse(wsi, c, why ? why : "protocol error", &w->refused_bad_frame);
    return 0;
}

static int on_receive(struct lws *wsi, struct wsp_conn *c, const void *in, size_t len) {
    struct wsp *w = c->w;
    c->last_rx_ms = now_ms(w);
    if (c->rxlen + len > (size_t)w->max_frame)
        return refuse(wsi, c, "oversized frame", &w->refused_oversize);
    if (c->rxlen + len + 1 > c->rxcap) {
        size_t cap = c->rxcap ? c->rxcap : 4096;
        while (cap < c->rxlen + len + 1)
            cap *= 2;
        uint8_t *nb = realloc(c->rx, cap);
        if (!nb)
            return refuse(wsi, c, "out of memory", NULL);
        c->rx = nb;
        c->rxcap = cap;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    return on_complete_frame(wsi, c);
}

/* Several queued frames leave in one socket write: each is framed here as one complete
 * WebSocket binary message (RFC 6455 section 5.2: FIN, opcode 2; masked with a fresh random
 * key when we are the client) and the lot is written with LWS_WRITE_RAW. On the wire this
 * is exactly what one lws_write per frame produces, so the peer sees no difference; it only
 * saves a syscall (and, as a client, a getrandom) per frame. Frames are taken while they
 * fit in WSP_BATCH bytes; a large frame goes through lws_write alone. */
#define WSP_BATCH 65536

/* Write the frames at the front of the queue that fit in one batch. 1 if written, 0 if there
 * was no batch to make (fewer than two small frames), -1 on a failed write. */
static int write_batch(struct lws *wsi, struct wsp_conn *c) {
    size_t count = 0, total = 0;
    for (struct wsp_out *o = c->qhead; o; o = o->next) {
        size_t add = o->len + 14;
        if (total + add > WSP_BATCH)
            break;
        total += add, count++;
    }
    if (count < 2)
        return 0;
    uint8_t *buf = malloc(LWS_PRE + total);
    uint8_t *keys = c->client ? malloc(4 * count) : NULL;
    if (!buf || (c->client && !keys)) {
        free(buf), free(keys);
        return 0; /* fall back to one lws_write per frame */
    }
    if (keys)
        randombytes_buf(keys, 4 * count);
    uint8_t *p = buf + LWS_PRE;
    for (size_t i = 0; i < count; i++) {
        struct wsp_out *o = c->qhead;
        p += wsp_ws_wrap(p, o->buf + LWS_PRE, o->len, keys ? keys + 4 * i : NULL);
        c->qhead = o->next;
        c->qbytes -= o->len;
        free(o);
    }
    if (!c->qhead)
        c->qtail = NULL;
    size_t n = (size_t)(p - (buf + LWS_PRE));
    int w = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_RAW);
    free(buf), free(keys);
    return w < (int)n ? -1 : 1;
}

static int write_queue(struct lws *wsi, struct wsp_conn *c) {
    while (c->qhead) {
        int b = write_batch(wsi, c);
        if (b < 0)
            return -1;
        if (b > 0) {
            if (lws_send_pipe_choked(wsi)) {
                if (c->qhead)
                    lws_callback_on_writable(wsi);
                break;
            }
            continue;
        }
        struct wsp_out *o = c->qhead;
        int n = lws_write(wsi, o->buf + LWS_PRE, o->len, LWS_WRITE_BINARY);
        if (n < (int)o->len)
            return -1;
        c->qhead = o->next;
        if (!c->qhead)
            c->qtail = NULL;
        c->qbytes -= o->len;
        free(o);
        if (lws_send_pipe_choked(wsi)) {
            if (c->qhead)
                lws_callback_on_writable(wsi);
            break;
        }
    }
    return 0;
}

/* Write queued frames while the socket takes them. With more than one frame queued the socket
 * is corked for the burst, so that a window of messages (or a turn's acks) leaves in full
 * segments instead of one TCP segment, and one wakeup of the peer, per frame. */
static int on_writeable(struct lws *wsi, struct wsp_conn *c) {
    wsp_acks_flush(c->w, c);
    int fd = c->qhead && c->qhead->next ? (int)lws_get_socket_fd(wsi) : -1, one = 1, zero = 0;
    if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one) < 0)
        fd = -1;
    int rc = write_queue(wsi, c);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
    return rc;
}

static void on_gone(struct lws *wsi, struct wsp_conn *c, const char *reason) {
    conn_detach(c, reason);
    lws_set_wsi_user(wsi, NULL);
    conn_free(c);
}

static int wsp_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len) {
    struct lws_context *lctx = lws_get_context(wsi);
    struct wsp *w = lctx ? lws_context_user(lctx) : NULL;
    struct wsp_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        if (!w || w->stopping)
            return -1;
        c = conn_new(w, 0);
        if (!c)
            return -1;
        c->wsi = wsi;
        lws_set_wsi_user(wsi, c);
        lws_get_peer_simple(wsi, c->remote, sizeof c->remote);
        return send_hello(c) < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!c || c->dead)
            return -1;
        c->wsi = wsi;
        c->opened_ms = now_ms(c->w);
        return send_hello(c) < 0 ? -1 : 0;
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!c || c->dead)
            return -1;
        return on_receive(wsi, c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!c || c->dead)
            return c ? -1 : 0;
        return on_writeable(wsi, c);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c) {
            if (c->peer) {
                snprintf(c->peer->last_error, sizeof c->peer->last_error, "connect: %s",
                         in ? (const char *)in : "failed");
            }
            on_gone(wsi, c, "connect failed");
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (c)
            on_gone(wsi, c, "closed");
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols wsp_protocols[] = {
    {WSP_PROTOCOL, wsp_callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int wsp_dial(struct wsp *w, struct wsp_peer *p) {
    struct wsp_conn *c = conn_new(w, 1);
    if (!c)
        return ADO_ENOMEM;
    c->peer = p;
    p->dialing = c;
    p->connects++;
    snprintf(c->remote, sizeof c->remote, "%s:%d", p->host, p->port);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = w->lws;
    ci.address = p->host;
    ci.port = p->port;
    ci.path = p->path;
    ci.host = p->host;
    ci.origin = p->host;
    ci.protocol = WSP_PROTOCOL;
    ci.local_protocol_name = WSP_PROTOCOL;
    ci.userdata = c;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    if (p->dialing != c) /* failed inside the call: the error callback freed c */
        return ADO_EIO;
    if (!wsi) {
        snprintf(p->last_error, sizeof p->last_error, "connect: cannot start");
        p->dialing = NULL;
        c->dead = 1;
        conn_free(c);
        return ADO_EIO;
    }
    c->wsi = wsi;
    return 0;
}
