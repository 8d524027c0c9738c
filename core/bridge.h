/* Kernel-private: the layer bridge. Durable outbox per peer (in the store, written in the
 * same turn transaction as the sender's state change), ordered at-least-once delivery
 * through transport plugins, dedupe on receipt (exactly-once effect), retries with
 * exponential backoff and jitter, dead letters, a circuit breaker per peer, and the RPC
 * methods bridge_peers / bridge_send / bridge_deadletters / bridge_retry / bridge_drop /
 * bridge_query. Owned by the loop thread. */
#ifndef ADO_CORE_BRIDGE_H
#define ADO_CORE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "ado/plugin.h"
#include "config.h"

struct ado_node;
struct ado_plugin;
struct ado_bridge;

/* Read the YAML bridge block (node->cfg) and open the kernel's bridge databases. Called
 * after the store opens and before plugins init. Problems go to diag. */
int ado_bridge_new(struct ado_node *node, struct ado_bridge **out, struct ado_diag *diag);
/* After every plugin started: every peer's transport must be registered (else an error
 * naming the peer and transport); open the peers and start delivering the outbox. */
int ado_bridge_start(struct ado_bridge *br, struct ado_diag *diag);
/* Close the peers (before plugins stop) and free everything. */
void ado_bridge_free(struct ado_bridge *br);
/* Forget the transports registered by `owner` (plugin stop/reload). */
void ado_bridge_release_owner(struct ado_bridge *br, struct ado_plugin *owner);

int ado_bridge_send(struct ado_bridge *br, struct ado_plugin *from, const char *peer,
                    const char *topic, const void *payload, size_t len, char *id, size_t id_cap);
int ado_bridge_transport_register(struct ado_bridge *br, struct ado_plugin *owner, const char *name,
                                  const struct ado_transport *ops, void *arg);
void ado_bridge_acked(struct ado_bridge *br, const char *peer, uint64_t seq);
void ado_bridge_failed(struct ado_bridge *br, const char *peer, uint64_t seq, const char *reason);
void ado_bridge_peer_state(struct ado_bridge *br, const char *peer, int up, const char *reason);
int ado_bridge_received(struct ado_bridge *br, const char *peer, const struct ado_bridge_msg *msg,
                        void (*done)(void *, int), void *done_arg);

#endif

/* ---- added with the bridge core (additive) ---------------------------------------------- */

/* Tuning that the YAML does not expose (tests and benchmarks set it after start):
 * window: messages in flight per peer (default ADO_BRIDGE_WINDOW); ack_timeout_ms: how long
 * a sent message may wait for its ack before it counts as a failed attempt
 * (default ADO_BRIDGE_ACK_TIMEOUT_MS). 0 leaves a value as it is. */
#define ADO_BRIDGE_WINDOW           256
#define ADO_BRIDGE_ACK_TIMEOUT_MS   5000
#define ADO_BRIDGE_MAX_PAYLOAD      (1u << 20)
#define ADO_BRIDGE_QUERY_TIMEOUT_MS 5000
void ado_bridge_tune(struct ado_bridge *br, uint32_t window, uint64_t ack_timeout_ms);

/* Per-peer figures, for tests and status (copied out). */
struct ado_bridge_peer_info {
    const char *name, *layer, *transport; /* borrowed from the config */
    int up;                               /* 1 up, 0 down, -1 not reported yet */
    int breaker;                          /* enum ado_breaker_state (node.h) */
    uint64_t depth, inflight, sent, acked, retries, dead_total, received, duplicates;
    uint64_t next_seq; /* the next sequence number to assign */
};
int ado_bridge_peer_info(struct ado_bridge *br, const char *peer, struct ado_bridge_peer_info *out);

/* Kernel-internal, for checkpoint.c: the node's checkpoints hang off the bridge. */
struct ado_checkpoints;
struct ado_checkpoints *ado_bridge_checkpoints(struct ado_bridge *br);
/* The name of the first configured peer whose layer is numerically lower than the node's
 * (the next layer up the stack: L4 -> L3, L3 -> L2), or NULL. */
const char *ado_bridge_upper_peer(struct ado_bridge *br);

#ifdef ADO_BRIDGE_INTERNAL
/* ---- internal to core/bridge*.c and core/checkpoint.c ---------------------------------- */
#include <uv.h>

struct br_transport {
    char *name;
    const struct ado_transport *ops;
    void *arg;
    struct ado_plugin *owner;
};

struct br_infl {
    uint64_t seq, sent_ms;
    int live;
};

struct br_att {
    uint64_t seq;
    uint32_t n;
};

struct br_rec {
    uint64_t seq;
    void *data;
    size_t len;
};

struct br_peer {
    struct ado_bridge *br;
    struct ado_cnode *cfg;
    const char *name, *layer, *transport, *address, *public_key; /* borrowed from the config */
    char *options;                                               /* JSON text */
    int attempts;
    uint32_t window;         /* bridge.peers[].window: messages in flight */
    uint64_t ack_timeout_ms; /* bridge.peers[].ack_timeout */
    uint64_t backoff_ms, max_backoff_ms, br_cooldown_ms;
    uint32_t br_failures;
    struct br_transport *tp;
    int opened, pumping, kicked;
    int up;             /* 1 up, 0 down, -1 not reported */
    uint64_t next_seq;  /* next seq to assign */
    uint64_t committed; /* highest seq known durable */
    uint64_t send_next; /* next seq the pump looks at */
    uint64_t depth;     /* messages in the outbox */
    uint64_t dead_now;  /* messages in the dead-letter db */
    struct br_infl *ring;
    size_t rcap, rhead, rlen, ninfl;
    struct br_att *att;
    size_t natt, capatt;
    uint64_t retry_at;
    int breaker; /* enum ado_breaker_state */
    uint32_t consecutive;
    uint64_t opened_at, breaker_opens;
    char last_error[320];
    uint64_t last_ack_ms; /* wall clock */
    uint64_t sent, acked, retries, dead_total, received, duplicates;
    uint64_t m_sent, m_acked, m_retries, m_dead, m_received, m_dups; /* pushed to metrics */
    uv_timer_t *timer;
};

struct br_query;

struct ado_bridge {
    struct ado_node *node;
    ado_db db_outbox, db_dead, db_meta, db_applied;
    uint64_t outbox_limit;
    uint32_t window;
    uint64_t ack_timeout_ms;
    struct br_peer *peers;
    size_t npeers;
    struct br_transport **transports;
    size_t ntransports;
    uv_timer_t *kick;
    int kick_armed, started, closing, metrics_queued;
    struct br_query *queries;
    struct ado_checkpoints *cp;
};

void br_be64(unsigned char *b, uint64_t v);
uint64_t br_rd64(const unsigned char *b);
uint64_t br_wall_ms(void);
size_t br_okey(unsigned char *buf, const char *peer, uint64_t seq);
struct br_peer *br_peer_find(struct ado_bridge *br, const char *name);
void br_metrics_dirty(struct ado_bridge *br);
void br_kick(struct br_peer *p);
size_t br_outbox_read(struct ado_bridge *br, const char *peer, uint64_t from, uint64_t max_seq,
                      size_t want, struct br_rec *out);
int br_rec_parse(const struct br_rec *r, uint64_t *created, const char **topic, size_t *tlen,
                 const void **payload, size_t *plen);
uint64_t br_count(struct ado_bridge *br, ado_db db, const char *peer, uint64_t *first);
int br_dead_retry(struct br_peer *p, uint64_t seq);
int br_dead_drop(struct br_peer *p, uint64_t seq);
int br_dead_parse(const void *val, size_t vlen, uint32_t *attempts, uint64_t *failed_ms,
                  const char **err, size_t *elen, struct br_rec *rec);
/* bridge_rpc.c */
int br_rpc_register(struct ado_bridge *br);
/* Answer the pending queries of transport t (NULL: all) with an error. */
void br_queries_cancel(struct ado_bridge *br, struct br_transport *t, const char *why);
#endif
