/* The layer bridge. Placeholder until the bridge core lands: every call reports that the
 * bridge is not available, and a config with peers is refused at start. */
#include "bridge.h"

#include <stdlib.h>

#include "node.h"

struct ado_bridge {
    struct ado_node *node;
};

int ado_bridge_new(struct ado_node *node, struct ado_bridge **out, struct ado_diag *diag) {
    (void)diag;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ADO_ENOMEM;
    (*out)->node = node;
    return 0;
}

int ado_bridge_start(struct ado_bridge *br, struct ado_diag *diag) {
    struct ado_cnode *peers = ado_cnode_get(br->node->cfg->root, "bridge.peers");
    if (peers && peers->n) {
        ado_diag_add(diag, br->node->cfg->file, peers->line, peers->col, "bridge.peers",
                     "the bridge is not available in this build");
        return ADO_ESTATE;
    }
    return 0;
}

void ado_bridge_free(struct ado_bridge *br) {
    free(br);
}

void ado_bridge_release_owner(struct ado_bridge *br, struct ado_plugin *owner) {
    (void)br, (void)owner;
}

int ado_bridge_send(struct ado_bridge *br, struct ado_plugin *from, const char *peer,
                    const char *topic, const void *payload, size_t len, char *id, size_t id_cap) {
    (void)br, (void)from, (void)peer, (void)topic, (void)payload, (void)len, (void)id, (void)id_cap;
    return ADO_ENOTFOUND;
}

int ado_bridge_transport_register(struct ado_bridge *br, struct ado_plugin *owner, const char *name,
                                  const struct ado_transport *ops, void *arg) {
    (void)br, (void)owner, (void)name, (void)ops, (void)arg;
    return 0;
}

void ado_bridge_acked(struct ado_bridge *br, const char *peer, uint64_t seq) {
    (void)br, (void)peer, (void)seq;
}

void ado_bridge_failed(struct ado_bridge *br, const char *peer, uint64_t seq, const char *reason) {
    (void)br, (void)peer, (void)seq, (void)reason;
}

void ado_bridge_peer_state(struct ado_bridge *br, const char *peer, int up, const char *reason) {
    (void)br, (void)peer, (void)up, (void)reason;
}

int ado_bridge_received(struct ado_bridge *br, const char *peer, const struct ado_bridge_msg *msg,
                        void (*done)(void *, int), void *done_arg) {
    (void)br, (void)peer, (void)msg, (void)done, (void)done_arg;
    return ADO_ESTATE;
}
