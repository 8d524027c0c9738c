/* Kernel-private: the node (one per process), its plugins, and the api table they get.
 *
 * struct ado_node is the loop's context: every piece of kernel state hangs off it and is
 * touched only by the loop thread. No other global mutable state exists. */
#ifndef ADO_CORE_NODE_H
#define ADO_CORE_NODE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ado/plugin.h"
#include "bus.h"
#include "config.h"
#include "identity.h"
#include "log.h"
#include "store.h"

struct ado_lua_plugin;
struct ado_rpc;
struct ado_metrics;
struct ado_bridge;

enum ado_plugin_kind { ADO_PK_C = 0, ADO_PK_LUA = 1 };

enum ado_plugin_state {
    ADO_PS_LOADED = 0, /* descriptor read, not initialised */
    ADO_PS_INITED,
    ADO_PS_RUNNING,
    ADO_PS_ISOLATED, /* breaker open: its handlers are not called */
    ADO_PS_FAILED,   /* init or start failed (optional plugin), or reload failed */
    ADO_PS_STOPPED,
    ADO_PS_SKIPPED, /* optional plugin that could not be loaded */
};

enum ado_breaker_state { ADO_BR_CLOSED = 0, ADO_BR_OPEN, ADO_BR_HALF_OPEN };

struct ado_ctx {
    struct ado_node *node;
    struct ado_plugin *plugin;
};

struct ado_plugin {
    struct ado_node *node;
    struct ado_ctx ctx;
    const struct ado_plugin_entry *entry; /* from the config (borrowed) */
    const char *name;                     /* entry->name */
    int kind;                             /* enum ado_plugin_kind */
    int state;                            /* enum ado_plugin_state */
    const struct ado_plugin_desc *desc;   /* dlsym'd (C) or built by the Lua host */
    void *dl;                             /* dlopen handle (C) */
    void *pstate;                         /* the plugin's own *state from init */
    struct ado_lua_plugin *lua;           /* Lua host data (Lua) */
    int *deps;                            /* indexes of required plugins in node->plugins */
    size_t ndeps;
    char *degraded; /* reason, or NULL */
    /* circuit breaker */
    int breaker; /* enum ado_breaker_state */
    uint32_t consecutive_failures;
    uint64_t failures_total, calls_total;
    uint64_t opened_at_ms;
    char *last_error;
    /* accounting */
    int64_t mem_bytes;
    void *tramps; /* api.c: trampolines made for this plugin's subscriptions */
};

struct ado_timer;

struct ado_node {
    uv_loop_t *loop;
    struct ado_config *cfg;
    struct ado_log log;
    struct ado_store *store;
    struct ado_bus *bus;
    struct ado_rpc *rpc;          /* NULL when rpc is off */
    struct ado_metrics *metrics;  /* plugin counters and gauges */
    struct ado_bridge *bridge;    /* the layer bridge (created at start) */
    struct ado_identity identity; /* Ed25519 key under data_dir */
    struct ado_plugin **plugins;  /* in start (dependency) order */
    size_t nplugins;
    struct ado_timer *timers; /* list of live plugin timers */
    uint64_t next_timer_id;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_signal_t sig_term, sig_int, sig_hup;
    uint64_t started_ms; /* wall clock */
    int stopping;
    int exit_code;
    unsigned pending_work; /* work_submit jobs in flight */
};

/* The api table the kernel gives to plugins (static, immutable). */
const struct ado_api *ado_node_api(void);

/* A node on `loop` (not owned). Free with ado_node_free. NULL when out of memory. */
struct ado_node *ado_node_new(uv_loop_t *loop);

/* Load every plugin of cfg (dlopen / Lua), validate their config blocks into diag, and
 * resolve the start order. Does not init. Used by --check-config and by start. Returns 0
 * or ADO_ECONFIG / ADO_EPLUGIN with the reasons in diag. */
int ado_node_load(struct ado_node *node, struct ado_config *cfg, struct ado_diag *diag);
/* Open the store, init and start the plugins in order. */
int ado_node_start(struct ado_node *node, struct ado_diag *diag);
/* Stop plugins in reverse order, flush the store, close everything. */
void ado_node_stop(struct ado_node *node);
/* loader.c: unload every plugin (dlclose, Lua states) and empty node->plugins. */
void ado_node_plugins_free(struct ado_node *node);
/* Free the node and its plugins (after ado_node_stop). The config stays the caller's. */
void ado_node_free(struct ado_node *node);

/* Timers and workers on behalf of plugin `p` (the api table's timer_start & co). */
int ado_node_timer_start(struct ado_plugin *p, uint64_t after_ms, uint64_t repeat_ms,
                         ado_timer_fn fn, void *arg, uint64_t *id);
int ado_node_timer_stop(struct ado_plugin *p, uint64_t id);
int ado_node_work_submit(struct ado_plugin *p, ado_work_fn fn, ado_done_fn done, void *arg);
/* SIGHUP: reload the Lua plugins whose scripts changed. Returns how many were reloaded. */
int ado_node_reload(struct ado_node *node);

/* Record the outcome of one handler call of `p` for its circuit breaker (rc < 0 failure;
 * `what` describes it for logs and status). Returns 1 if the plugin may be called, for
 * the check before a call (ado_plugin_callable). */
void ado_plugin_outcome(struct ado_plugin *p, int rc, const char *what);
int ado_plugin_callable(struct ado_plugin *p);
const char *ado_plugin_state_name(int state);
/* Bytes the plugin holds through the kernel: api->alloc for C, its lua_State for Lua. */
int64_t ado_plugin_memory(const struct ado_plugin *p);
const char *ado_breaker_state_name(int state);

/* Drop every subscription, timer and RPC method `p` holds (stop, reload). */
void ado_plugin_release(struct ado_plugin *p);
/* api.c: free what the api table made for `p` (after its subscriptions are gone). */
void ado_api_release(struct ado_plugin *p);

/* Flush the store when a loop turn ends; exposed for tests that drive the loop by hand. */
void ado_node_flush(struct ado_node *node);

#endif
