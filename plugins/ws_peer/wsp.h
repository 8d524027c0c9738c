/* ws_peer internals shared by ws_peer.c (plugin, peers, timers, transport ops) and link.c
 * (libwebsockets connections, handshake, frames). Everything runs on the node's loop. */
#ifndef WSP_H
#define WSP_H

#include <ado/ado.h>
#include <libwebsockets.h>
#include <stdint.h>

#include "frame.h"

#define WSP_PROTOCOL "ado-ws-peer.v1"

struct wsp;

/* One frame waiting for the socket: LWS_PRE bytes of room, then the frame. */
struct wsp_out {
    struct wsp_out *next;
    size_t len;
    uint8_t buf[];
};

/* A message written to the wire and not yet acked. */
struct wsp_inflight {
    uint64_t seq;
    uint64_t sent_ms;
};

struct wsp_conn {
    struct wsp *w;
    struct lws *wsi;
    struct wsp_conn *next; /* in w->conns */
    struct wsp_peer *peer; /* client: the peer dialed; server: bound after HELLO */
    uint64_t id;           /* unique per plugin instance */
    int client;
    int got_hello, authed, dead;
    uint8_t my_nonce[WSP_NONCE], their_nonce[WSP_NONCE], their_pk[WSP_PK];
    char their_name[WSP_STR_MAX + 1];
    uint64_t opened_ms, last_rx_ms, last_ping_ms;
    struct wsp_out *qhead, *qtail;
    size_t qbytes;
    uint8_t *rx; /* the frame being reassembled, with one spare byte for a NUL */
    size_t rxlen, rxcap;
    char remote[300];
};

struct wsp_peer {
    struct wsp_peer *next;
    char *name, *layer, *address;
    uint8_t pk[WSP_PK];
    int has_pk;
    int dial; /* 1 if we connect out to it */
    char host[256], path[256];
    int port;
    struct wsp_conn *link;    /* the authenticated connection, or NULL */
    struct wsp_conn *dialing; /* an outgoing attempt not yet authenticated */
    uint64_t backoff_ms, next_dial_ms;
    char last_error[128];
    struct wsp_inflight *fl; /* FIFO of in-flight messages: fl[flhead..fln) */
    size_t flhead, fln, flcap;
    uint64_t *ackq; /* seqs durably applied, ack not written yet (sent once per writeable) */
    size_t nackq, capackq;
    uint64_t sent, acked, nacked, received, failed, connects;
};

/* Liveness anchor for callbacks that may come back after the plugin has stopped (rpc_call,
 * bridge_received): they hold a reference; w is NULL once the plugin is gone. */
struct wsp_anchor {
    struct wsp *w;
    int refs;
};

struct wsp_query {
    struct wsp_query *next;
    uint64_t id, deadline_ms;
    char *peer;
    void (*done)(void *cbarg, int status, const char *response);
    void *cbarg;
};

struct wsp {
    ado_ctx *ctx;
    const struct ado_api *api;
    struct lws_context *lws;
    struct wsp_anchor *anchor;
    const char *listen;
    int64_t heartbeat_ms, misses, backoff_initial_ms, backoff_max_ms, max_frame, handshake_ms,
        ack_timeout_ms, max_queue, max_inflight;
    uint8_t pk[WSP_PK];
    struct wsp_peer *peers;
    struct wsp_conn *conns;
    struct wsp_query *queries;
    uint64_t next_conn_id, next_query_id, tick_timer;
    int stopping;
    uint64_t refused, refused_unknown_key, refused_bad_frame, refused_oversize, refused_before_auth,
        refused_replay, refused_bad_sig, heartbeat_timeouts;
};

/* link.c */
extern const struct lws_protocols wsp_protocols[];
/* Dial `p` (no link or attempt in flight). 0 or an ADO_E* code (a retry is then scheduled). */
int wsp_dial(struct wsp *w, struct wsp_peer *p);
/* Queue a frame on `c` and ask for a writeable callback. ADO_ELIMIT past max_queue. */
int wsp_conn_send(struct wsp_conn *c, const struct wsp_frame *f);
/* Close `c` from outside its callbacks (timers, duplicate links, stop): detaches it now
 * and lets lws close the socket asynchronously. */
void wsp_conn_kill(struct wsp_conn *c, const char *reason);
/* Count and log a refused connection. */
void wsp_refuse_count(struct wsp *w, struct wsp_conn *c, const char *reason, uint64_t *counter);

/* ws_peer.c: called by link.c */
struct wsp_peer *wsp_peer_by_pk(struct wsp *w, const uint8_t pk[WSP_PK]);
struct wsp_peer *wsp_peer_by_name(struct wsp *w, const char *name);
/* `c` authenticated: make it p's link (or drop it as a duplicate). 0, or -1 if dropped. */
int wsp_link_up(struct wsp *w, struct wsp_conn *c);
/* `c` went away: if it was its peer's link, report the peer down and fail in-flight. */
void wsp_link_down(struct wsp *w, struct wsp_conn *c, const char *reason);
/* Queue the acks collected for c's peer (if c is its link) as ACK / ACKR frames on c:
 * called at the start of each writeable callback, so one turn's acks leave together. */
void wsp_acks_flush(struct wsp *w, struct wsp_conn *c);
/* Frames after authentication. Return 0, or -1 to close (with reason set). */
int wsp_on_frame(struct wsp *w, struct wsp_conn *c, const struct wsp_frame *f, const char **reason);

#endif
