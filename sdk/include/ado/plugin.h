/* adonode SDK: the plugin descriptor and the kernel API table.
 *
 * A C plugin is a shared object that exports one symbol, `ado_plugin`, of type
 * `const struct ado_plugin_desc` (use ADO_PLUGIN_DEFINE). The loader reads its first two
 * fields (ABI version and struct size) before touching anything else and refuses a plugin
 * built for another major ABI, or for a newer minor ABI than the kernel's.
 *
 * At init the plugin receives `const struct ado_api *api`, a table of function pointers
 * (as Redis modules do): the kernel can append functions in later minor versions without
 * breaking plugins built against an older SDK. A plugin keeps the pointer for its lifetime.
 *
 * Threads: unless a function says otherwise, every api function and every callback runs on
 * the node's loop thread. Only ado_work_fn runs on a worker thread, and it must not call
 * the api at all.
 *
 * Handles: `ado_ctx *` is the plugin's own handle into the kernel, valid from init until
 * fini returns. `ado_call *` is one pending RPC call, valid until it is answered.
 */
#ifndef ADO_PLUGIN_H
#define ADO_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ado/errors.h"
#include "ado/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ADO_ABI_MAJOR     1
#define ADO_ABI_MINOR     0
#define ADO_ABI_VERSION   ((uint32_t)((ADO_ABI_MAJOR << 16) | ADO_ABI_MINOR))
#define ADO_PLUGIN_SYMBOL "ado_plugin"

typedef struct ado_ctx ado_ctx;
typedef struct ado_call ado_call;
typedef uint32_t ado_db; /* a named database of the plugin, from store_open_db */

enum ado_log_level {
    ADO_LOG_ERROR = 0,
    ADO_LOG_WARN = 1,
    ADO_LOG_INFO = 2,
    ADO_LOG_DEBUG = 3,
    ADO_LOG_TRACE = 4,
};

/* Bus subscriber. `topic` and `data` are borrowed for the duration of the call. Return 0,
 * or a negative ADO_E* code to count a failure against the plugin's circuit breaker. */
typedef int (*ado_bus_fn)(ado_ctx *ctx, const char *topic, const void *data, size_t len, void *arg);

/* Timer callback; the return value counts as for ado_bus_fn. */
typedef int (*ado_timer_fn)(ado_ctx *ctx, void *arg);

/* Called once the writes made before store_on_durable was called are on disk (status 0),
 * or failed to commit (status < 0: the writes are lost and the caller should report it). */
typedef void (*ado_durable_fn)(ado_ctx *ctx, int status, void *arg);

/* Store iteration: called for each key >= start in key order. Return 0 to go on, non-zero
 * to stop. `key` and `val` are borrowed for the call. */
typedef int (*ado_iter_fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);

/* Worker pool: `work` runs on a worker thread (pure computation, no api calls); `done` runs
 * afterwards on the loop thread. status is 0, or ADO_ECLOSED when the node stops first
 * (then `work` may not have run). */
typedef void (*ado_work_fn)(void *arg);
typedef void (*ado_done_fn)(ado_ctx *ctx, int status, void *arg);

/* RPC method handler. `params` is the JSON text of the call's params ("null" when absent),
 * borrowed for the call. The handler must answer exactly once, now or later, with
 * api->rpc_reply or api->rpc_error. */
typedef void (*ado_rpc_fn)(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg);

/* One bridge message, as the kernel hands it to a transport and a transport hands it back on
 * the receiving side. All pointers are borrowed for the call. */
struct ado_bridge_msg {
    const char *origin;  /* sending node's name */
    uint64_t seq;        /* per (origin, peer) sequence, from 1, in send order */
    const char *topic;   /* dotted; arrives on the receiver's bus as bridge.in.<topic> */
    const void *payload; /* bytes (by convention JSON) */
    size_t len;
    uint64_t created_ms; /* wall clock at send */
};

/* What a transport plugin (ws_peer, evm_l2) gives the kernel's bridge. Every function runs
 * on the loop thread; `arg` is the transport's own. */
struct ado_transport {
    uint32_t size; /* sizeof(struct ado_transport) */
    /* A peer of the YAML `bridge.peers` that uses this transport: start connecting to it.
     * `options` is the peer's `options` block as JSON text, `public_key` hex or "". */
    int (*peer_open)(void *arg, const char *peer, const char *layer, const char *address,
                     const char *public_key, const char *options);
    /* Stop talking to the peer (node stopping). */
    void (*peer_close)(void *arg, const char *peer);
    /* Deliver one message (async). Return 0 if it was handed to the wire, or a negative
     * code if it cannot be sent now (not connected...): that counts as a failed attempt.
     * Later the transport calls api->bridge_acked or api->bridge_failed for (peer, seq). */
    int (*send)(void *arg, const char *peer, const struct ado_bridge_msg *msg);
    /* Forward a read-only JSON-RPC request to the peer; call done(cbarg, 0, response) or
     * done(cbarg, error, NULL) once, within timeout_ms. May be NULL (not supported). */
    int (*query)(void *arg, const char *peer, const char *request, size_t len, uint64_t timeout_ms,
                 void (*done)(void *cbarg, int status, const char *response), void *cbarg);
};

struct ado_api {
    uint32_t abi_version; /* the kernel's ADO_ABI_VERSION */
    uint32_t size;        /* sizeof(struct ado_api) in the kernel: test before using a
                             function added in a later minor version */

    /* ---- basics ---------------------------------------------------------------------- */

    /* Log one line at `level`, tagged with the plugin's name. printf-style format. */
    void (*log)(ado_ctx *ctx, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* A static, human readable name for an ADO_E* code. */
    const char *(*strerror)(int err);
    /* The plugin's name as given in the YAML (borrowed, lives as long as ctx). */
    const char *(*plugin_name)(ado_ctx *ctx);
    /* The node's name and layer ("L2", "L3", "L4"), borrowed. */
    const char *(*node_name)(ado_ctx *ctx);
    const char *(*node_layer)(ado_ctx *ctx);
    /* Milliseconds of the loop's clock (monotonic, cached per loop turn). */
    uint64_t (*now_ms)(ado_ctx *ctx);
    /* Milliseconds since the Unix epoch (wall clock). */
    uint64_t (*wall_ms)(ado_ctx *ctx);

    /* ---- config: the plugin's own `config` block, validated against its schema ------- */
    /* Paths are dotted keys relative to the block; list items are numbered segments
     * ("peers.0.name"). Defaults from the schema are filled in. Errors: ADO_ENOTFOUND
     * (absent), ADO_EINVAL (another type). Strings are borrowed for the plugin's life. */
    int (*config_string)(ado_ctx *ctx, const char *path, const char **out);
    /* INT as is, DURATION in ms, SIZE in bytes. */
    int (*config_int)(ado_ctx *ctx, const char *path, int64_t *out);
    int (*config_bool)(ado_ctx *ctx, const char *path, int *out);
    /* Number of items of a list or keys of a map. */
    int (*config_count)(ado_ctx *ctx, const char *path, size_t *out);
    /* The value at `path` ("" for the whole block) as JSON text. *out is allocated; free it
     * with api->free. Scalars come out as JSON strings, numbers or booleans by type. */
    int (*config_json)(ado_ctx *ctx, const char *path, char **out);

    /* ---- event bus --------------------------------------------------------------------- */
    /* Publish `data` (any bytes, by convention JSON) on `topic` (dotted segments of
     * [A-Za-z0-9_-], no wildcards). Delivery to every matching subscriber is in publish
     * order per topic. Called outside a delivery it delivers before returning; called from
     * inside a subscriber it is queued (copied) and delivered after the current event:
     * never recursive. Errors: ADO_EINVAL (bad topic), ADO_ENOMEM. */
    int (*bus_publish)(ado_ctx *ctx, const char *topic, const void *data, size_t len);
    /* Subscribe `fn` to `pattern`: dotted segments where `*` matches one segment and a
     * final `>` matches one or more. Safe to call during a delivery (the new subscriber
     * sees the next events). *id receives a handle for bus_unsubscribe. */
    int (*bus_subscribe)(ado_ctx *ctx, const char *pattern, ado_bus_fn fn, void *arg, uint64_t *id);
    /* Remove a subscription of this plugin. Safe during a delivery (the subscriber gets no
     * further events, including the rest of the current one). ADO_ENOTFOUND if unknown. */
    int (*bus_unsubscribe)(ado_ctx *ctx, uint64_t id);

    /* ---- store: the plugin's own named LMDB databases --------------------------------- */
    /* Reads and writes go into the loop turn's transaction, which the kernel commits (one
     * fsync) when the turn ends: everything a plugin writes in one callback commits
     * together (with the rest of the turn) or not at all, and reads see the turn's writes.
     * There is no rollback of part of a turn: a callback that fails after writing still
     * commits what it wrote, so check everything before the first write. */
    /* Open (creating) the plugin's database `name` ([A-Za-z0-9_.-], <= 64 bytes). */
    int (*store_open_db)(ado_ctx *ctx, const char *name, ado_db *db);
    /* *val points into the store, valid until the current callback returns.
     * ADO_ENOTFOUND if absent, ADO_EPERM if `db` is not this plugin's. */
    int (*store_get)(ado_ctx *ctx, ado_db db, const void *key, size_t klen, const void **val,
                     size_t *vlen);
    /* Keys are 1..511 bytes. Errors: ADO_EINVAL, ADO_EPERM, ADO_EIO. */
    int (*store_put)(ado_ctx *ctx, ado_db db, const void *key, size_t klen, const void *val,
                     size_t vlen);
    int (*store_del)(ado_ctx *ctx, ado_db db, const void *key, size_t klen);
    /* Iterate keys >= start (start NULL: from the first key). */
    int (*store_iter)(ado_ctx *ctx, ado_db db, const void *start, size_t slen, ado_iter_fn fn,
                      void *arg);
    /* Ask to be told when everything written so far is durable (see ado_durable_fn). The
     * callback runs on the loop after the turn's commit; never before this returns. */
    int (*store_on_durable)(ado_ctx *ctx, ado_durable_fn fn, void *arg);

    /* ---- timers and workers ----------------------------------------------------------- */
    /* Call fn after `after_ms`, then every `repeat_ms` if non-zero. */
    int (*timer_start)(ado_ctx *ctx, uint64_t after_ms, uint64_t repeat_ms, ado_timer_fn fn,
                       void *arg, uint64_t *id);
    int (*timer_stop)(ado_ctx *ctx, uint64_t id);
    int (*work_submit)(ado_ctx *ctx, ado_work_fn work, ado_done_fn done, void *arg);

    /* ---- RPC ---------------------------------------------------------------------------- */
    /* Register `method` ("namespace_name") callable by clients holding `role` ("admin",
     * "writer", "reader", or NULL for anyone allowed anonymous calls). */
    int (*rpc_register)(ado_ctx *ctx, const char *method, const char *role, const char *description,
                        ado_rpc_fn fn, void *arg);
    /* Answer `call` with `result` (JSON text, copied). The call is freed. */
    int (*rpc_reply)(ado_call *call, const char *result, size_t len);
    /* Answer `call` with a JSON-RPC error; `data` (JSON text) may be NULL. The call is
     * freed. Codes: the JSON-RPC ones (-32602 invalid params...) or the plugin's own. */
    int (*rpc_error)(ado_call *call, int code, const char *message, const char *data);

    /* ---- health, metrics and memory --------------------------------------------------- */
    /* Mark the plugin degraded with a reason (shown in node_plugins, /metrics, /readyz), or
     * healthy again with reason NULL. */
    int (*set_degraded)(ado_ctx *ctx, const char *reason);
    /* Add `delta` to counter `name` (Prometheus name, [a-zA-Z_:][a-zA-Z0-9_:]*), labels as
     * `k="v",k2="v2"` or NULL. The kernel adds plugin="<name>". */
    int (*metric_add)(ado_ctx *ctx, const char *name, const char *labels, double delta);
    /* Set gauge `name` to `value`. */
    int (*metric_set)(ado_ctx *ctx, const char *name, const char *labels, double value);
    /* Allocate/free memory accounted to the plugin (shown in node_plugins). */
    void *(*alloc)(ado_ctx *ctx, size_t size);
    void (*free)(ado_ctx *ctx, void *ptr);

    /* ---- layer bridge ------------------------------------------------------------------ */
    /* Send `payload` under `topic` to `peer` (a name from the YAML bridge.peers). The
     * message goes into the durable outbox in the loop turn's transaction, together with
     * whatever the plugin wrote in the same callback: both commit or neither. Delivery is
     * at least once and in send order per peer; the receiver applies each message once.
     * `id` (if not NULL, id_cap >= 96) receives the message id "<node>/<peer>/<seq>".
     * Errors: ADO_ENOTFOUND (unknown peer), ADO_ELIMIT (the peer's outbox is full: the
     * caller should refuse the operation), ADO_EINVAL. */
    int (*bridge_send)(ado_ctx *ctx, const char *peer, const char *topic, const void *payload,
                       size_t len, char *id, size_t id_cap);
    /* A transport plugin registers itself under `name` (what bridge.peers[].transport
     * names), at init or start. `ops` and `arg` must live until the plugin stops. */
    int (*bridge_transport_register)(ado_ctx *ctx, const char *name,
                                     const struct ado_transport *ops, void *arg);
    /* Transport -> kernel: the peer has durably applied message `seq` (remove it). */
    void (*bridge_acked)(ado_ctx *ctx, const char *peer, uint64_t seq);
    /* Transport -> kernel: sending `seq` failed (the kernel retries with backoff, then
     * dead-letters it). */
    void (*bridge_failed)(ado_ctx *ctx, const char *peer, uint64_t seq, const char *reason);
    /* Transport -> kernel: the link to `peer` came up (up=1) or went down (up=0). */
    void (*bridge_peer_state)(ado_ctx *ctx, const char *peer, int up, const char *reason);
    /* Transport -> kernel: `msg` arrived from `peer`. The kernel ignores a repeat (same peer
     * and seq already applied), otherwise publishes it on the bus as bridge.in.<topic>
     * (payload as is; the bus event's JSON envelope is described in docs/bridge.md) and
     * records it as applied in the turn's transaction; then, once that is durable, it calls
     * done(done_arg, 0) (or a negative status), and the transport acks to the sender.
     * Returns 0 when done will be called (exactly once, never before this returns), or a
     * negative code when it will not (then the transport nacks and frees its own state). */
    int (*bridge_received)(ado_ctx *ctx, const char *peer, const struct ado_bridge_msg *msg,
                           void (*done)(void *done_arg, int status), void *done_arg);

    /* ---- node identity and services for transports ------------------------------------ */
    /* The node's Ed25519 public key (created on first start under data_dir, 0600). */
    int (*node_public_key)(ado_ctx *ctx, uint8_t pub[32]);
    /* Sign `msg` with the node's Ed25519 key (detached signature). */
    int (*node_sign)(ado_ctx *ctx, const void *msg, size_t len, uint8_t sig[64]);
    /* The node's libuv loop (a uv_loop_t *), for plugins that do their own I/O on it. */
    void *(*uv_loop)(ado_ctx *ctx);
    /* Run a JSON-RPC request (text) in-process with the rights of `role`; done(arg, resp)
     * gets the response object's JSON text (borrowed), once. */
    int (*rpc_call)(ado_ctx *ctx, const char *request, const char *role,
                    void (*done)(void *arg, const char *response), void *arg);
};

struct ado_plugin_desc {
    uint32_t abi_version;            /* ADO_ABI_VERSION the plugin was built with */
    uint32_t struct_size;            /* sizeof(struct ado_plugin_desc) */
    const char *name;                /* default name; the YAML entry's name overrides it */
    const char *version;             /* semantic version, "1.2.3" */
    const char *description;         /* one line */
    const char *const *requires;     /* NULL-terminated names of plugins it needs, or NULL */
    const struct ado_schema *schema; /* its config block, or NULL for none */
    /* Set up; *state is the plugin's own. Do not start work that calls back yet. Return 0
     * or an ADO_E* code (the node does not start if the plugin is required). */
    int (*init)(ado_ctx *ctx, const struct ado_api *api, void **state);
    /* Start serving: subscribe, register RPC methods, start timers. */
    int (*start)(ado_ctx *ctx, void *state);
    /* Stop serving (plugins stop in reverse start order). Optional. */
    void (*stop)(ado_ctx *ctx, void *state);
    /* Free *state. Optional. */
    void (*fini)(ado_ctx *ctx, void *state);
};

/* Define the plugin's descriptor: ADO_PLUGIN_DEFINE(.name = "x", .version = "1.0.0", ...) */
#define ADO_PLUGIN_DEFINE(...)                                                                     \
    __attribute__((visibility("default")))                                                         \
    const struct ado_plugin_desc ado_plugin = {.abi_version = ADO_ABI_VERSION,                     \
                                               .struct_size = sizeof(struct ado_plugin_desc),      \
                                               __VA_ARGS__}

#ifdef __cplusplus
}
#endif

#endif
