/* The table of functions plugins receive at init: thin, checked wrappers over the kernel
 * parts, each acting on behalf of the calling plugin (its ctx). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "bridge.h"
#include "metrics.h"
#include "node.h"
#include "rpc.h"

#define PLUGIN(ctx) ((ctx)->plugin)
#define NODE(ctx)   ((ctx)->node)

static const char *api_strerror(int err) {
    switch (err) {
    case ADO_OK:
        return "ok";
    case ADO_EINVAL:
        return "invalid argument";
    case ADO_ENOMEM:
        return "out of memory";
    case ADO_ENOTFOUND:
        return "not found";
    case ADO_EEXIST:
        return "already exists";
    case ADO_EIO:
        return "I/O error";
    case ADO_EPERM:
        return "not permitted";
    case ADO_EBUSY:
        return "busy";
    case ADO_ESTATE:
        return "wrong state";
    case ADO_ETIMEDOUT:
        return "timed out";
    case ADO_ELIMIT:
        return "limit reached";
    case ADO_ECONFIG:
        return "invalid configuration";
    case ADO_EABI:
        return "ABI mismatch";
    case ADO_EPLUGIN:
        return "plugin failure";
    case ADO_ECLOSED:
        return "closed";
    case ADO_EISOLATED:
        return "plugin isolated";
    default:
        return "unknown error";
    }
}

static void api_log(ado_ctx *ctx, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ado_log_vwrite(&NODE(ctx)->log, level, PLUGIN(ctx)->name, fmt, ap);
    va_end(ap);
}

static const char *api_plugin_name(ado_ctx *ctx) {
    return PLUGIN(ctx)->name;
}

static const char *api_node_name(ado_ctx *ctx) {
    return NODE(ctx)->cfg->node_name;
}

static const char *api_node_layer(ado_ctx *ctx) {
    return NODE(ctx)->cfg->layer;
}

static uint64_t api_now_ms(ado_ctx *ctx) {
    return uv_now(NODE(ctx)->loop);
}

static uint64_t api_wall_ms(ado_ctx *ctx) {
    (void)ctx;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* ---- config --------------------------------------------------------------------------- */

static struct ado_cnode *cfg_at(ado_ctx *ctx, const char *path) {
    struct ado_cnode *block = PLUGIN(ctx)->entry->config;
    if (!block)
        return NULL;
    return (!path || !*path) ? block : ado_cnode_get(block, path);
}

static int api_config_string(ado_ctx *ctx, const char *path, const char **out) {
    struct ado_cnode *n = cfg_at(ctx, path);
    if (!n || n->kind == ADO_CN_NULL)
        return ADO_ENOTFOUND;
    if (n->kind != ADO_CN_SCALAR)
        return ADO_EINVAL;
    *out = n->text;
    return 0;
}

static int api_config_int(ado_ctx *ctx, const char *path, int64_t *out) {
    struct ado_cnode *n = cfg_at(ctx, path);
    if (!n || n->kind == ADO_CN_NULL)
        return ADO_ENOTFOUND;
    if (n->kind != ADO_CN_SCALAR)
        return ADO_EINVAL;
    if (n->type == ADO_T_INT || n->type == ADO_T_DURATION || n->type == ADO_T_SIZE) {
        *out = n->ival;
        return 0;
    }
    return ado_parse_int(n->text, out);
}

static int api_config_bool(ado_ctx *ctx, const char *path, int *out) {
    struct ado_cnode *n = cfg_at(ctx, path);
    if (!n || n->kind == ADO_CN_NULL)
        return ADO_ENOTFOUND;
    if (n->kind != ADO_CN_SCALAR)
        return ADO_EINVAL;
    if (n->type == ADO_T_BOOL) {
        *out = n->ival != 0;
        return 0;
    }
    return ado_parse_bool(n->text, out);
}

static int api_config_count(ado_ctx *ctx, const char *path, size_t *out) {
    struct ado_cnode *n = cfg_at(ctx, path);
    if (!n)
        return ADO_ENOTFOUND;
    if (n->kind == ADO_CN_NULL) {
        *out = 0;
        return 0;
    }
    if (n->kind != ADO_CN_MAP && n->kind != ADO_CN_LIST)
        return ADO_EINVAL;
    *out = n->n;
    return 0;
}

static int api_config_json(ado_ctx *ctx, const char *path, char **out) {
    struct ado_cnode *n = cfg_at(ctx, path);
    if (!n) {
        if (path && *path)
            return ADO_ENOTFOUND;
        *out = strdup("{}");
        return *out ? 0 : ADO_ENOMEM;
    }
    *out = ado_cnode_to_json(n);
    return *out ? 0 : ADO_ENOMEM;
}

/* ---- bus ------------------------------------------------------------------------------ */

struct bus_tramp {
    ado_ctx *ctx;
    ado_bus_fn fn;
    void *arg;
};

static int api_bus_publish(ado_ctx *ctx, const char *topic, const void *data, size_t len) {
    return ado_bus_publish(NODE(ctx)->bus, topic, data, len);
}

/* Plugin subscriptions go through a small trampoline that carries the plugin's ctx. The
 * trampolines live in the subscription's arg and are freed when the plugin is released:
 * the bus calls them with the trampoline as arg. */
static int bus_tramp_call(void *arg, const char *topic, const void *data, size_t len) {
    struct bus_tramp *t = arg;
    return t->fn(t->ctx, topic, data, len, t->arg);
}

int ado_api_tramp_track(struct ado_plugin *p, void *t); /* below */

static int api_bus_subscribe(ado_ctx *ctx, const char *pattern, ado_bus_fn fn, void *arg,
                             uint64_t *id) {
    if (!fn)
        return ADO_EINVAL;
    struct bus_tramp *t = malloc(sizeof *t);
    if (!t)
        return ADO_ENOMEM;
    *t = (struct bus_tramp){ctx, fn, arg};
    uint64_t sid;
    int rc = ado_bus_subscribe(NODE(ctx)->bus, pattern, PLUGIN(ctx), bus_tramp_call, t, &sid);
    if (rc < 0) {
        free(t);
        return rc;
    }
    rc = ado_api_tramp_track(PLUGIN(ctx), t);
    if (rc < 0) {
        ado_bus_unsubscribe(NODE(ctx)->bus, sid, PLUGIN(ctx));
        free(t);
        return rc;
    }
    if (id)
        *id = sid;
    return 0;
}

static int api_bus_unsubscribe(ado_ctx *ctx, uint64_t id) {
    /* The trampoline stays tracked (and is freed with the plugin): it is small, and the
     * bus may still hold it until the current delivery ends. */
    return ado_bus_unsubscribe(NODE(ctx)->bus, id, PLUGIN(ctx));
}

/* ---- store ---------------------------------------------------------------------------- */

static int need_store(ado_ctx *ctx) {
    return NODE(ctx)->store ? 0 : ADO_ESTATE;
}

static int api_store_open_db(ado_ctx *ctx, const char *name, ado_db *db) {
    int rc = need_store(ctx);
    return rc ? rc : ado_store_open_db(NODE(ctx)->store, PLUGIN(ctx), name, db);
}

static int api_store_get(ado_ctx *ctx, ado_db db, const void *key, size_t klen, const void **val,
                         size_t *vlen) {
    int rc = need_store(ctx);
    return rc ? rc : ado_store_get(NODE(ctx)->store, PLUGIN(ctx), db, key, klen, val, vlen);
}

static int api_store_put(ado_ctx *ctx, ado_db db, const void *key, size_t klen, const void *val,
                         size_t vlen) {
    int rc = need_store(ctx);
    return rc ? rc : ado_store_put(NODE(ctx)->store, PLUGIN(ctx), db, key, klen, val, vlen);
}

static int api_store_del(ado_ctx *ctx, ado_db db, const void *key, size_t klen) {
    int rc = need_store(ctx);
    return rc ? rc : ado_store_del(NODE(ctx)->store, PLUGIN(ctx), db, key, klen);
}

static int api_store_iter(ado_ctx *ctx, ado_db db, const void *start, size_t slen, ado_iter_fn fn,
                          void *arg) {
    int rc = need_store(ctx);
    return rc ? rc : ado_store_iter(NODE(ctx)->store, PLUGIN(ctx), db, start, slen, fn, arg);
}

struct durable_tramp {
    ado_ctx *ctx;
    ado_durable_fn fn;
    void *arg;
};

static void durable_call(void *arg, int status) {
    struct durable_tramp t = *(struct durable_tramp *)arg;
    free(arg);
    t.fn(t.ctx, status, t.arg);
}

static int api_store_on_durable(ado_ctx *ctx, ado_durable_fn fn, void *arg) {
    int rc = need_store(ctx);
    if (rc)
        return rc;
    if (!fn)
        return ADO_EINVAL;
    struct durable_tramp *t = malloc(sizeof *t);
    if (!t)
        return ADO_ENOMEM;
    *t = (struct durable_tramp){ctx, fn, arg};
    rc = ado_store_on_durable(NODE(ctx)->store, durable_call, t);
    if (rc < 0)
        free(t);
    return rc;
}

/* ---- timers, workers ------------------------------------------------------------------ */

static int api_timer_start(ado_ctx *ctx, uint64_t after_ms, uint64_t repeat_ms, ado_timer_fn fn,
                           void *arg, uint64_t *id) {
    return ado_node_timer_start(PLUGIN(ctx), after_ms, repeat_ms, fn, arg, id);
}

static int api_timer_stop(ado_ctx *ctx, uint64_t id) {
    return ado_node_timer_stop(PLUGIN(ctx), id);
}

static int api_work_submit(ado_ctx *ctx, ado_work_fn work, ado_done_fn done, void *arg) {
    return ado_node_work_submit(PLUGIN(ctx), work, done, arg);
}

/* ---- rpc ------------------------------------------------------------------------------ */

static int api_rpc_register(ado_ctx *ctx, const char *method, const char *role,
                            const char *description, ado_rpc_fn fn, void *arg) {
    if (!NODE(ctx)->rpc)
        return ADO_ESTATE;
    return ado_rpc_register(NODE(ctx)->rpc, PLUGIN(ctx), method, role, description, fn, arg);
}

/* ---- health, metrics, memory ---------------------------------------------------------- */

static int api_set_degraded(ado_ctx *ctx, const char *reason) {
    struct ado_plugin *p = PLUGIN(ctx);
    char *copy = NULL;
    if (reason && !(copy = strdup(reason)))
        return ADO_ENOMEM;
    if (copy && (!p->degraded || strcmp(p->degraded, copy) != 0))
        ado_log_write(&NODE(ctx)->log, ADO_LOG_ERROR, p->name, "degraded: %s", copy);
    else if (!copy && p->degraded)
        ado_log_write(&NODE(ctx)->log, ADO_LOG_INFO, p->name, "healthy again");
    free(p->degraded);
    p->degraded = copy;
    return 0;
}

static int with_plugin_label(ado_ctx *ctx, const char *labels, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "plugin=\"%s\"%s%s", PLUGIN(ctx)->name, labels && *labels ? "," : "",
                     labels ? labels : "");
    return n < 0 || (size_t)n >= cap ? ADO_EINVAL : 0;
}

static int api_metric_add(ado_ctx *ctx, const char *name, const char *labels, double delta) {
    char buf[512];
    int rc = with_plugin_label(ctx, labels, buf, sizeof buf);
    return rc ? rc : ado_metrics_add(NODE(ctx)->metrics, name, buf, delta);
}

static int api_metric_set(ado_ctx *ctx, const char *name, const char *labels, double value) {
    char buf[512];
    int rc = with_plugin_label(ctx, labels, buf, sizeof buf);
    return rc ? rc : ado_metrics_set(NODE(ctx)->metrics, name, buf, value);
}

/* Accounted allocations carry their size in a header. */
struct mhdr {
    size_t size;
    size_t pad; /* keeps the payload 16-byte aligned */
};

static void *api_alloc(ado_ctx *ctx, size_t size) {
    struct mhdr *h = malloc(sizeof *h + size);
    if (!h)
        return NULL;
    h->size = size;
    PLUGIN(ctx)->mem_bytes += (int64_t)size;
    return h + 1;
}

static void api_free(ado_ctx *ctx, void *ptr) {
    if (!ptr)
        return;
    struct mhdr *h = (struct mhdr *)ptr - 1;
    PLUGIN(ctx)->mem_bytes -= (int64_t)h->size;
    free(h);
}

/* config_json returns memory the plugin frees with api->free: allocate it accounted. */
static int api_config_json_acc(ado_ctx *ctx, const char *path, char **out) {
    char *tmp;
    int rc = api_config_json(ctx, path, &tmp);
    if (rc < 0)
        return rc;
    size_t n = strlen(tmp) + 1;
    *out = api_alloc(ctx, n);
    if (!*out) {
        free(tmp);
        return ADO_ENOMEM;
    }
    memcpy(*out, tmp, n);
    free(tmp);
    return 0;
}

/* ---- bridge, identity, services ------------------------------------------------------ */

static int need_bridge(ado_ctx *ctx) {
    return NODE(ctx)->bridge ? 0 : ADO_ESTATE;
}

static int api_bridge_send(ado_ctx *ctx, const char *peer, const char *topic, const void *payload,
                           size_t len, char *id, size_t id_cap) {
    int rc = need_bridge(ctx);
    return rc ? rc
              : ado_bridge_send(NODE(ctx)->bridge, PLUGIN(ctx), peer, topic, payload, len, id,
                                id_cap);
}

static int api_bridge_transport_register(ado_ctx *ctx, const char *name,
                                         const struct ado_transport *ops, void *arg) {
    int rc = need_bridge(ctx);
    return rc ? rc : ado_bridge_transport_register(NODE(ctx)->bridge, PLUGIN(ctx), name, ops, arg);
}

static void api_bridge_acked(ado_ctx *ctx, const char *peer, uint64_t seq) {
    if (NODE(ctx)->bridge)
        ado_bridge_acked(NODE(ctx)->bridge, peer, seq);
}

static void api_bridge_failed(ado_ctx *ctx, const char *peer, uint64_t seq, const char *why) {
    if (NODE(ctx)->bridge)
        ado_bridge_failed(NODE(ctx)->bridge, peer, seq, why);
}

static void api_bridge_peer_state(ado_ctx *ctx, const char *peer, int up, const char *why) {
    if (NODE(ctx)->bridge)
        ado_bridge_peer_state(NODE(ctx)->bridge, peer, up, why);
}

static int api_bridge_received(ado_ctx *ctx, const char *peer, const struct ado_bridge_msg *msg,
                               void (*done)(void *, int), void *done_arg) {
    int rc = need_bridge(ctx);
    return rc ? rc : ado_bridge_received(NODE(ctx)->bridge, peer, msg, done, done_arg);
}

static int api_node_public_key(ado_ctx *ctx, uint8_t pub[32]) {
    if (!NODE(ctx)->identity.loaded)
        return ADO_ESTATE;
    memcpy(pub, NODE(ctx)->identity.pk, 32);
    return 0;
}

static int api_node_sign(ado_ctx *ctx, const void *msg, size_t len, uint8_t sig[64]) {
    return ado_identity_sign(&NODE(ctx)->identity, msg, len, sig);
}

static void *api_uv_loop(ado_ctx *ctx) {
    return NODE(ctx)->loop;
}

static int api_rpc_call(ado_ctx *ctx, const char *request, const char *role,
                        void (*done)(void *, const char *), void *arg) {
    if (!NODE(ctx)->rpc)
        return ADO_ESTATE;
    return ado_rpc_call_local(NODE(ctx)->rpc, request, role, done, arg);
}

/* ---- trampolines owned per plugin ----------------------------------------------------- */

/* Each plugin keeps a list of the trampolines made for it; they are freed when the plugin
 * is released (ado_plugin_release calls ado_api_release). */
struct tramp_list {
    void **items;
    size_t n, cap;
};

int ado_api_tramp_track(struct ado_plugin *p, void *t) {
    struct tramp_list *l = p->tramps;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l)
            return ADO_ENOMEM;
        p->tramps = l;
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        void **ni = realloc(l->items, ncap * sizeof *ni);
        if (!ni)
            return ADO_ENOMEM;
        l->items = ni;
        l->cap = ncap;
    }
    l->items[l->n++] = t;
    return 0;
}

void ado_api_release(struct ado_plugin *p) {
    struct tramp_list *l = p->tramps;
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    free(l);
    p->tramps = NULL;
}

static const struct ado_api api = {
    .abi_version = ADO_ABI_VERSION,
    .size = sizeof(struct ado_api),
    .log = api_log,
    .strerror = api_strerror,
    .plugin_name = api_plugin_name,
    .node_name = api_node_name,
    .node_layer = api_node_layer,
    .now_ms = api_now_ms,
    .wall_ms = api_wall_ms,
    .config_string = api_config_string,
    .config_int = api_config_int,
    .config_bool = api_config_bool,
    .config_count = api_config_count,
    .config_json = api_config_json_acc,
    .bus_publish = api_bus_publish,
    .bus_subscribe = api_bus_subscribe,
    .bus_unsubscribe = api_bus_unsubscribe,
    .store_open_db = api_store_open_db,
    .store_get = api_store_get,
    .store_put = api_store_put,
    .store_del = api_store_del,
    .store_iter = api_store_iter,
    .store_on_durable = api_store_on_durable,
    .timer_start = api_timer_start,
    .timer_stop = api_timer_stop,
    .work_submit = api_work_submit,
    .rpc_register = api_rpc_register,
    .rpc_reply = ado_rpc_reply,
    .rpc_error = ado_rpc_error,
    .set_degraded = api_set_degraded,
    .metric_add = api_metric_add,
    .metric_set = api_metric_set,
    .alloc = api_alloc,
    .free = api_free,
    .bridge_send = api_bridge_send,
    .bridge_transport_register = api_bridge_transport_register,
    .bridge_acked = api_bridge_acked,
    .bridge_failed = api_bridge_failed,
    .bridge_peer_state = api_bridge_peer_state,
    .bridge_received = api_bridge_received,
    .node_public_key = api_node_public_key,
    .node_sign = api_node_sign,
    .uv_loop = api_uv_loop,
    .rpc_call = api_rpc_call,
};

const struct ado_api *ado_node_api(void) {
    return &api;
}
