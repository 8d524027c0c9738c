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
