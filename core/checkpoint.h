/* Kernel-private: checkpoints. A checkpoint is a folder <dir>/<id>/ holding data.mdb (LMDB's
 * own compacted, consistent copy of the store) and manifest.json (id, node, layer, time,
 * and BLAKE2b-256 digests: one per plugin database, one per plugin, one overall over every
 * plugin's data; the kernel's own "@" databases are not part of the digest). Taken on a
 * schedule (node.checkpoints.every), on demand (node_checkpoint), listed (node_checkpoints),
 * kept to node.checkpoints.keep. A node reports the digest of each checkpoint to its upper
 * peer (the first peer of a numerically lower layer) as bridge topic checkpoint.digest; a
 * node that holds the expected digest answers checkpoint.verdict (agree / disagree).
 * Owned by the loop thread, except ado_checkpoint_restore and ado_checkpoint_digest, which
 * work on files only (no node needed). */
#ifndef ADO_CORE_CHECKPOINT_H
#define ADO_CORE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct ado_node;
struct ado_checkpoints;
struct json_t;

/* Read node.checkpoints, register node_checkpoint / node_checkpoints, subscribe the kernel
 * to checkpoint.expect. Called by ado_bridge_new. */
int ado_checkpoints_new(struct ado_node *node, struct ado_checkpoints **out, struct ado_diag *diag);
/* Start the schedule (node.checkpoints.every > 0). */
void ado_checkpoints_start(struct ado_checkpoints *cp);
void ado_checkpoints_free(struct ado_checkpoints *cp);

/* Take a checkpoint now: *manifest (if not NULL) receives its manifest (a jansson object,
 * the caller decrefs). Blocks the loop for the copy and the digest. Old ones beyond `keep`
 * are deleted. The digest is reported to the upper peer, if any. */
int ado_checkpoint_take(struct ado_checkpoints *cp, struct json_t **manifest, char *err,
                        size_t errlen);
/* The folder checkpoints go to (node.checkpoints.dir, or DATA_DIR/checkpoints). */
const char *ado_checkpoints_dir(const struct ado_checkpoints *cp);
/* Same from a config alone (for --restore): writes the folder into out. */
void ado_checkpoints_dir_of(const struct ado_config *cfg, char *out, size_t outlen);

/* Digest of the LMDB environment in folder `dir` (its data.mdb), opened read-only:
 * *out = {"digest": hex, "plugins": {name: hex}, "databases": {name: {digest, entries}}}. */
int ado_checkpoint_digest(const char *dir, struct json_t **out, char *err, size_t errlen);

/* Restore: verify checkpoint_dir's data against its manifest, then replace
 * data_dir/data.mdb with it atomically (rename), keeping identity.key and everything else in
 * data_dir. Refused when a process has data_dir's store open. The restored store's bridge
 * sequences are moved past anything sent before (so that peers do not take new messages for
 * repeats). `checkpoint` may also be an id under the config's checkpoint folder: see
 * ado_checkpoint_resolve. Returns 0 or an ADO_E* code with a message in err. */
int ado_checkpoint_restore(const char *checkpoint_dir, const char *data_dir, char *err,
                           size_t errlen);
/* `arg` is a folder (contains manifest.json) or an id under the config's checkpoint folder;
 * writes the folder into out. 0 or ADO_ENOTFOUND. */
int ado_checkpoint_resolve(const struct ado_config *cfg, const char *arg, char *out, size_t outlen);

/* From the bridge: a kernel topic (checkpoint.digest, checkpoint.verdict) arrived. Runs in
 * the receiving turn's transaction. */
void ado_checkpoint_on_message(struct ado_checkpoints *cp, const char *peer, const char *topic,
                               const void *payload, size_t len);
/* For bridge_peers: the checkpoint status toward `peer` (a jansson object), or NULL when
 * the peer is not this node's upper peer. */
struct json_t *ado_checkpoint_peer_status(struct ado_checkpoints *cp, const char *peer);

#endif
