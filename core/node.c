/* The node's lifecycle (start, stop, signals are in main.c), plugin circuit breakers,
 * timers and the worker pool. */
#include "node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "lua_host.h"
#include "metrics.h"
#include "rpc.h"

/* ---- circuit breaker ------------------------------------------------------------------ */

const char *ado_plugin_state_name(int state) {
    static const char *const names[] = {"loaded", "inited",  "running", "isolated",
                                        "failed", "stopped", "skipped"};
    return state >= 0 && state <= ADO_PS_SKIPPED ? names[state] : "?";
}

int64_t ado_plugin_memory(const struct ado_plugin *p) {
    return p->mem_bytes + (p->kind == ADO_PK_LUA ? ado_lua_memory(p) : 0);
}

const char *ado_breaker_state_name(int state) {
    static const char *const names[] = {"closed", "open", "half-open"};
    return state >= 0 && state <= ADO_BR_HALF_OPEN ? names[state] : "?";
}

int ado_plugin_callable(struct ado_plugin *p) {
    if (p->state == ADO_PS_RUNNING || p->state == ADO_PS_INITED)
        return p->breaker != ADO_BR_OPEN;
    if (p->state != ADO_PS_ISOLATED)
        return 0;
    /* Open: after the cooldown let one call through (half-open). */
    uint64_t now = uv_now(p->node->loop);
    if (p->breaker == ADO_BR_OPEN &&
        now - p->opened_at_ms >= (uint64_t)p->entry->breaker_cooldown_ms) {
        p->breaker = ADO_BR_HALF_OPEN;
        ado_log_write(&p->node->log, ADO_LOG_INFO, p->name, "breaker half-open: probing");
        return 1;
    }
    return 0;
}

void ado_plugin_outcome(struct ado_plugin *p, int rc, const char *what) {
    p->calls_total++;
    if (rc >= 0) {
        p->consecutive_failures = 0;
        if (p->breaker == ADO_BR_HALF_OPEN) {
            p->breaker = ADO_BR_CLOSED;
            p->state = ADO_PS_RUNNING;
            ado_log_write(&p->node->log, ADO_LOG_INFO, p->name, "breaker closed: plugin back");
        }
        return;
    }
    p->failures_total++;
    p->consecutive_failures++;
    if (!p->last_error || !p->lua) {
        /* Lua plugins set last_error with script:line themselves. */
        char buf[256];
        snprintf(buf, sizeof buf, "%s failed: %s", what ? what : "handler",
                 ado_node_api()->strerror(rc));
        free(p->last_error);
        p->last_error = strdup(buf);
    }
    int trip = p->breaker == ADO_BR_HALF_OPEN ||
               p->consecutive_failures >= (uint32_t)p->entry->breaker_failures;
    if (trip && p->breaker != ADO_BR_OPEN &&
        (p->state == ADO_PS_RUNNING || p->state == ADO_PS_ISOLATED)) {
        p->breaker = ADO_BR_OPEN;
        p->state = ADO_PS_ISOLATED;
        p->opened_at_ms = uv_now(p->node->loop);
        ado_log_write(&p->node->log, ADO_LOG_ERROR, p->name,
                      "plugin isolated after %u consecutive failures (last: %s); retry in %lld ms",
                      p->consecutive_failures, p->last_error ? p->last_error : "?",
                      (long long)p->entry->breaker_cooldown_ms);
    }
}

/* ---- timers --------------------------------------------------------------------------- */

struct ado_timer {
    uv_timer_t h;
    uint64_t id;
    struct ado_plugin *owner;
    ado_timer_fn fn;
    void *arg;
    struct ado_timer *next;
};

static void timer_closed(uv_handle_t *h) {
    free(h->data);
}

static void timer_unlink_close(struct ado_node *node, struct ado_timer *t) {
    for (struct ado_timer **pp = &node->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    uv_timer_stop(&t->h);
    uv_close((uv_handle_t *)&t->h, timer_closed);
}

static void timer_fire(uv_timer_t *h) {
    struct ado_timer *t = h->data;
    struct ado_plugin *p = t->owner;
    struct ado_node *node = p->node;
    int once = uv_timer_get_repeat(h) == 0;
    if (ado_plugin_callable(p)) {
        int rc = t->fn(&p->ctx, t->arg);
        ado_plugin_outcome(p, rc, "timer");
    }
    if (once) {
        /* The callback may have stopped it already: look it up before closing. */
        for (struct ado_timer *it = node->timers; it; it = it->next) {
            if (it == t) {
                timer_unlink_close(node, t);
                break;
            }
        }
    }
}

int ado_node_timer_start(struct ado_plugin *p, uint64_t after_ms, uint64_t repeat_ms,
                         ado_timer_fn fn, void *arg, uint64_t *id) {
    struct ado_node *node = p->node;
    if (!fn)
        return ADO_EINVAL;
    struct ado_timer *t = calloc(1, sizeof *t);
    if (!t)
        return ADO_ENOMEM;
    uv_timer_init(node->loop, &t->h);
    t->h.data = t;
    t->id = ++node->next_timer_id;
    t->owner = p;
    t->fn = fn;
    t->arg = arg;
    t->next = node->timers;
    node->timers = t;
    uv_timer_start(&t->h, timer_fire, after_ms, repeat_ms);
    if (id)
        *id = t->id;
    return 0;
}

int ado_node_timer_stop(struct ado_plugin *p, uint64_t id) {
    for (struct ado_timer *t = p->node->timers; t; t = t->next) {
        if (t->id == id) {
            if (t->owner != p)
                return ADO_EPERM;
            timer_unlink_close(p->node, t);
            return 0;
        }
    }
    return ADO_ENOTFOUND;
}

void ado_plugin_release(struct ado_plugin *p) {
    struct ado_node *node = p->node;
    ado_bus_unsubscribe_owner(node->bus, p);
    for (struct ado_timer *t = node->timers, *next; t; t = next) {
        next = t->next;
        if (t->owner == p)
            timer_unlink_close(node, t);
    }
    if (node->rpc)
        ado_rpc_unregister_owner(node->rpc, p);
    if (node->bridge)
        ado_bridge_release_owner(node->bridge, p);
    ado_api_release(p);
}

/* ---- worker pool ---------------------------------------------------------------------- */

struct work {
    uv_work_t req;
    struct ado_plugin *owner;
    ado_work_fn work;
    ado_done_fn done;
    void *arg;
};

static void work_run(uv_work_t *req) {
    struct work *w = req->data;
    w->work(w->arg);
}

static void work_after(uv_work_t *req, int status) {
    struct work *w = req->data;
    struct ado_node *node = w->owner->node;
    node->pending_work--;
    if (w->done)
        w->done(&w->owner->ctx, status == UV_ECANCELED ? ADO_ECLOSED : 0, w->arg);
    free(w);
}

int ado_node_work_submit(struct ado_plugin *p, ado_work_fn fn, ado_done_fn done, void *arg) {
    if (!fn)
        return ADO_EINVAL;
    if (p->node->stopping)
        return ADO_ESTATE;
    struct work *w = calloc(1, sizeof *w);
    if (!w)
        return ADO_ENOMEM;
    w->req.data = w;
    w->owner = p;
    w->work = fn;
    w->done = done;
    w->arg = arg;
    if (uv_queue_work(p->node->loop, &w->req, work_run, work_after) != 0) {
        free(w);
        return ADO_EIO;
    }
    p->node->pending_work++;
    return 0;
}

/* ---- the loop turn: group commit ------------------------------------------------------ */

void ado_node_flush(struct ado_node *node) {
    if (!node->store || !ado_store_pending(node->store))
        return;
    int rc = ado_store_flush(node->store);
    if (rc < 0)
        ado_log_write(&node->log, ADO_LOG_ERROR, NULL, "store commit failed: %s",
                      ado_node_api()->strerror(rc));
}

static void on_prepare(uv_prepare_t *h) {
    ado_node_flush(h->data);
}

static void on_check(uv_check_t *h) {
    ado_node_flush(h->data);
}

/* ---- start and stop ------------------------------------------------------------------- */

struct ado_node *ado_node_new(uv_loop_t *loop) {
    struct ado_node *node = calloc(1, sizeof *node);
    if (!node)
        return NULL;
    node->loop = loop;
    node->log.level = ADO_LOG_INFO;
    node->bus = ado_bus_new();
    node->metrics = ado_metrics_new();
    if (!node->bus || !node->metrics) {
        ado_node_free(node);
        return NULL;
    }
    return node;
}

int ado_node_reload(struct ado_node *node) {
    int n = 0;
    for (size_t i = 0; i < node->nplugins; i++) {
        struct ado_plugin *p = node->plugins[i];
        if (p->kind != ADO_PK_LUA || p->state == ADO_PS_STOPPED || p->state == ADO_PS_SKIPPED)
            continue;
        if (ado_lua_reload(p) > 0)
            n++;
        ado_node_flush(node);
    }
    return n;
}

static int deps_running(struct ado_node *node, struct ado_plugin *p) {
    for (size_t i = 0; i < p->ndeps; i++) {
        int s = node->plugins[p->deps[i]]->state;
        if (s != ADO_PS_RUNNING && s != ADO_PS_ISOLATED)
            return 0;
    }
    return 1;
}

/* A plugin failed to init or start: fatal if required, a warning otherwise. */
static int plugin_failed(struct ado_node *node, struct ado_plugin *p, const char *phase, int rc,
                         struct ado_diag *diag) {
    p->state = ADO_PS_FAILED;
    if (p->entry->optional) {
        ado_log_write(&node->log, ADO_LOG_WARN, p->name,
                      "optional plugin failed to %s (%s): %s; node goes on without it", phase,
                      p->entry->path, ado_node_api()->strerror(rc));
        return 0;
    }
    ado_diag_add(diag, node->cfg->file, p->entry->node->line, p->entry->node->col, NULL,
                 "plugin %s (%s): %s failed: %s%s%s", p->name, p->entry->path, phase,
                 ado_node_api()->strerror(rc), p->last_error ? ": " : "",
                 p->last_error ? p->last_error : "");
    return ADO_EPLUGIN;
}

int ado_node_start(struct ado_node *node, struct ado_diag *diag) {
    struct ado_config *cfg = node->cfg;
    node->log.level = cfg->log_level;
    node->log.json = cfg->log_json;
    node->started_ms = (uint64_t)uv_now(node->loop);
    char err[512];
    struct ado_store_opts so = {cfg->data_dir, cfg->store_map_size, (int)cfg->store_sync, 0};
    if (ado_store_open(&so, &node->store, err, sizeof err) < 0) {
        ado_diag_add(diag, cfg->file, 0, 0, "node.data_dir", "%s", err);
        return ADO_EIO;
    }
    uv_prepare_init(node->loop, &node->prepare);
    node->prepare.data = node;
    uv_prepare_start(&node->prepare, on_prepare);
    uv_unref((uv_handle_t *)&node->prepare);
    uv_check_init(node->loop, &node->check);
    node->check.data = node;
    uv_check_start(&node->check, on_check);
    uv_unref((uv_handle_t *)&node->check);
    if (ado_identity_load(&node->identity, cfg->data_dir, err, sizeof err) < 0) {
        ado_diag_add(diag, cfg->file, 0, 0, "node.data_dir", "%s", err);
        return ADO_EIO;
    }
    if (ado_rpc_new(node, &node->rpc) < 0) {
        ado_diag_add(diag, cfg->file, 0, 0, "node.rpc", "cannot create the RPC registry");
        return ADO_ENOMEM;
    }
    if (ado_bridge_new(node, &node->bridge, diag) < 0)
        return ADO_ECONFIG;
    const struct ado_api *api = ado_node_api();
    for (size_t i = 0; i < node->nplugins; i++) {
        struct ado_plugin *p = node->plugins[i];
        if (!deps_running(node, p)) {
            p->last_error = strdup("a required plugin is not running");
            if (plugin_failed(node, p, "init", ADO_EPLUGIN, diag) < 0)
                return ADO_EPLUGIN;
            continue;
        }
        int rc = p->desc->init(&p->ctx, api, &p->pstate);
        if (rc < 0) {
            ado_plugin_release(p);
            if (plugin_failed(node, p, "init", rc, diag) < 0)
                return ADO_EPLUGIN;
            continue;
        }
        p->state = ADO_PS_INITED;
        rc = p->desc->start ? p->desc->start(&p->ctx, p->pstate) : 0;
        if (rc < 0) {
            ado_plugin_release(p);
            if (p->desc->fini)
                p->desc->fini(&p->ctx, p->pstate);
            p->pstate = NULL;
            if (plugin_failed(node, p, "start", rc, diag) < 0)
                return ADO_EPLUGIN;
            continue;
        }
        p->state = ADO_PS_RUNNING;
        ado_log_write(&node->log, ADO_LOG_INFO, p->name, "started %s %s (%s)",
                      p->kind == ADO_PK_LUA ? "lua" : "c",
                      p->desc->version ? p->desc->version : "?", p->entry->path);
        ado_node_flush(node);
    }
    if (ado_bridge_start(node->bridge, diag) < 0)
        return ADO_ECONFIG;
    if (ado_rpc_listen(node->rpc, diag) < 0)
        return ADO_EIO;
    ado_node_flush(node);
    return 0;
}

static void drain_work(struct ado_node *node) {
    /* Finish (or cancel) worker jobs so that their done callbacks run before plugins go. */
    while (node->pending_work > 0)
        uv_run(node->loop, UV_RUN_ONCE);
}

void ado_node_stop(struct ado_node *node) {
    node->stopping = 1;
    drain_work(node);
    if (node->bridge) {
        /* Peers close first: nothing new goes out while plugins stop. */
        ado_bridge_free(node->bridge);
        node->bridge = NULL;
    }
    for (size_t i = node->nplugins; i-- > 0;) {
        struct ado_plugin *p = node->plugins[i];
        if (p->state == ADO_PS_RUNNING || p->state == ADO_PS_ISOLATED) {
            if (p->desc->stop)
                p->desc->stop(&p->ctx, p->pstate);
            ado_log_write(&node->log, ADO_LOG_INFO, p->name, "stopped");
        }
        if (p->state == ADO_PS_RUNNING || p->state == ADO_PS_ISOLATED ||
            p->state == ADO_PS_INITED) {
            ado_plugin_release(p);
            ado_node_flush(node);
            drain_work(node);
            if (p->desc->fini)
                p->desc->fini(&p->ctx, p->pstate);
            p->pstate = NULL;
            p->state = ADO_PS_STOPPED;
        }
    }
    if (node->rpc) {
        ado_rpc_free(node->rpc);
        node->rpc = NULL;
    }
    if (node->store) {
        ado_node_flush(node);
        ado_store_close(node->store);
        node->store = NULL;
        uv_close((uv_handle_t *)&node->prepare, NULL);
        uv_close((uv_handle_t *)&node->check, NULL);
    }
    ado_identity_wipe(&node->identity);
    /* Let closing handles finish. */
    uv_run(node->loop, UV_RUN_NOWAIT);
}

void ado_node_free(struct ado_node *node) {
    if (!node)
        return;
    ado_node_plugins_free(node);
    ado_bus_free(node->bus);
    node->bus = NULL;
    ado_metrics_free(node->metrics);
    free(node);
}
