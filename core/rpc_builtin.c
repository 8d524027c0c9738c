/* The kernel's own RPC methods: rpc_methods, rpc_echo, node_info, node_plugins, bus_publish,
 * bus_subscribe, bus_unsubscribe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ado/errors.h"
#include "node.h"
#include "rpc_priv.h"

#define ECHO_MAX_DELAY_MS 60000

struct rpc_echo {
    uv_timer_t timer;
    ado_call *call;
    json_t *result;
    struct ado_rpc *rpc;
    struct rpc_echo *prev, *next;
};

static void bad_params(ado_call *call, const char *msg) {
    call->rpc->rej.invalid_params++;
    ado_rpc_error(call, -32602, msg, NULL);
}

static void b_rpc_methods(struct ado_rpc *rpc, ado_call *call, struct rpc_params *params) {
    (void)params;
    json_t *a = json_array();
    for (size_t i = 0; a && i < rpc->nmethods; i++) {
        struct rpc_method *m = rpc->methods[i];
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s}", "name", m->name, "role",
                                           ado_rpc_role_name(m->role), "description", m->desc,
                                           "owner", m->owner ? m->owner->name : "kernel"));
    }
    ado_rpc_reply_json(call, a);
}

static void echo_close_cb(uv_handle_t *h) {
    free(h->data);
}

static void echo_unlink(struct rpc_echo *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        e->rpc->echoes = e->next;
    if (e->next)
        e->next->prev = e->prev;
}

static void echo_fire(uv_timer_t *t) {
    struct rpc_echo *e = t->data;
    echo_unlink(e);
    ado_rpc_reply_json(e->call, e->result);
    uv_close((uv_handle_t *)&e->timer, echo_close_cb);
}

/* Stop every delayed echo (rpc_free answers their calls afterwards). */
void ado_rpc_echo_cancel_all(struct ado_rpc *rpc) {
    while (rpc->echoes) {
        struct rpc_echo *e = rpc->echoes;
        echo_unlink(e);
        json_decref(e->result);
        uv_timer_stop(&e->timer);
        uv_close((uv_handle_t *)&e->timer, echo_close_cb);
    }
}

/* rpc_echo: answers its params; {"delay_ms": N, ...} answers after N ms (tests, benches). */
static void b_rpc_echo(struct ado_rpc *rpc, ado_call *call, struct rpc_params *p) {
    /* Without an object there is no delay_ms: canonical text is its own answer. */
    if (!p->present || (p->text && p->canon && p->text[0] != '{')) {
        ado_rpc_reply_valid(call, p->present ? p->text : "null", p->present ? p->len : 4);
        return;
    }
    json_t *params = ado_rpc_params_json(p);
    json_t *res = params ? json_incref(params) : json_null();
    json_t *d = json_is_object(params) ? json_object_get(params, "delay_ms") : NULL;
    if (!d || !rpc->node->loop) {
        ado_rpc_reply_json(call, res);
        return;
    }
    if (!json_is_integer(d) || json_integer_value(d) < 0 ||
        json_integer_value(d) > ECHO_MAX_DELAY_MS) {
        json_decref(res);
        bad_params(call, "invalid params: delay_ms must be an integer in 0..60000");
        return;
    }
    struct rpc_echo *e = calloc(1, sizeof *e);
    if (!e) {
        json_decref(res);
        ado_rpc_error(call, -32603, "internal error: out of memory", NULL);
        return;
    }
    e->call = call;
    e->result = res;
    e->rpc = rpc;
    uv_timer_init(rpc->node->loop, &e->timer);
    e->timer.data = e;
    e->next = rpc->echoes;
    if (rpc->echoes)
        rpc->echoes->prev = e;
    rpc->echoes = e;
    uv_timer_start(&e->timer, echo_fire, (uint64_t)json_integer_value(d), 0);
}

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void b_node_info(struct ado_rpc *rpc, ado_call *call, struct rpc_params *params) {
    (void)params;
    struct ado_node *n = rpc->node;
    const char *name = n->cfg && n->cfg->node_name ? n->cfg->node_name : "";
    const char *layer = n->cfg && n->cfg->layer ? n->cfg->layer : "";
    /* started_ms is the loop clock (node.c) or the wall clock (node.h): accept both. */
    uint64_t now = wall_ms(), up_ms = 0;
    if (n->started_ms && n->started_ms < 1000000000000ull && n->loop)
        up_ms = uv_now(n->loop) > n->started_ms ? uv_now(n->loop) - n->started_ms : 0;
    else if (n->started_ms && now > n->started_ms)
        up_ms = now - n->started_ms;
    char abi[32];
    snprintf(abi, sizeof abi, "%d.%d", ADO_ABI_MAJOR, ADO_ABI_MINOR);
    ado_rpc_reply_json(call, json_pack("{s:s,s:s,s:s,s:s,s:I,s:f,s:I,s:I}", "name", name, "layer",
                                       layer, "version", ADO_VERSION, "abi", abi, "abi_version",
                                       (json_int_t)ADO_ABI_VERSION, "uptime_s", (double)up_ms / 1e3,
                                       "started_at_ms", (json_int_t)(now - up_ms), "plugins",
                                       (json_int_t)n->nplugins));
}

static json_t *str_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

static void b_node_plugins(struct ado_rpc *rpc, ado_call *call, struct rpc_params *params) {
    (void)params;
    struct ado_node *n = rpc->node;
    json_t *a = json_array();
    for (size_t i = 0; a && i < n->nplugins; i++) {
        struct ado_plugin *p = n->plugins[i];
        json_t *o = json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:o,s:o,s:b,s:I,s:b}", "name", p->name ? p->name : "",
            "version", p->desc && p->desc->version ? p->desc->version : "", "kind",
            p->kind == ADO_PK_LUA ? "lua" : "c", "state", ado_plugin_state_name(p->state),
            "breaker", ado_breaker_state_name(p->breaker), "failures_total",
            (json_int_t)p->failures_total, "calls_total", (json_int_t)p->calls_total, "last_error",
            str_or_null(p->last_error), "degraded", str_or_null(p->degraded), "is_degraded",
            p->degraded != NULL, "mem_bytes", (json_int_t)ado_plugin_memory(p), "optional",
            p->entry ? p->entry->optional : 0);
        json_array_append_new(a, o);
    }
    ado_rpc_reply_json(call, a);
}

/* params {"topic": T, "data": D} or [T, D]. */
static void b_bus_publish(struct ado_rpc *rpc, ado_call *call, struct rpc_params *p) {
    json_t *params = ado_rpc_params_json(p);
    json_t *t = NULL, *d = NULL;
    if (json_is_object(params)) {
        t = json_object_get(params, "topic");
        d = json_object_get(params, "data");
    } else if (json_is_array(params)) {
        t = json_array_get(params, 0);
        d = json_array_get(params, 1);
    }
    if (!json_is_string(t) || ado_bus_topic_valid(json_string_value(t))) {
        bad_params(call, "invalid params: topic must be a dotted topic name without wildcards");
        return;
    }
    if (!rpc->node->bus) {
        ado_rpc_error(call, -32000, "the bus is not running", NULL);
        return;
    }
    char *text = json_dumps(d ? d : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text) {
        ado_rpc_error(call, -32603, "internal error: out of memory", NULL);
        return;
    }
    int rc = ado_bus_publish(rpc->node->bus, json_string_value(t), text, strlen(text));
    free(text);
    if (rc)
        ado_rpc_error(call, -32000, "publish failed", NULL);
    else
        ado_rpc_reply_json(call, json_true());
}

static json_t *first_param(json_t *params, const char *key) {
    if (json_is_array(params))
        return json_array_get(params, 0);
    if (json_is_object(params))
        return json_object_get(params, key);
    return NULL;
}

static int on_ws(ado_call *call) {
    struct rpc_conn *c = call->req->conn;
    if (c && ado_rpc_conn_is_ws(c))
        return 1;
    call->rpc->rej.limit++;
    ado_rpc_error(call, -32006, "subscriptions need a WebSocket connection (/ws)", NULL);
    return 0;
}

/* params [PATTERN] or {"topic": PATTERN}; result: the subscription id ("0x1f"). */
static void b_bus_subscribe(struct ado_rpc *rpc, ado_call *call, struct rpc_params *p) {
    json_t *params = ado_rpc_params_json(p);
    (void)rpc;
    json_t *t = first_param(params, "topic");
    if (!json_is_string(t) || ado_bus_pattern_valid(json_string_value(t))) {
        bad_params(call, "invalid params: expected [\"topic.pattern\"] (`*` and a final `>` "
                         "allowed)");
        return;
    }
    if (!on_ws(call))
        return;
    uint64_t id = 0;
    int rc = ado_rpc_conn_subscribe(call->req->conn, json_string_value(t), &id);
    if (rc == ADO_ELIMIT) {
        rpc->rej.limit++;
        ado_rpc_error(call, -32005, "too many subscriptions on this connection", NULL);
        return;
    }
    if (rc) {
        ado_rpc_error(call, -32603, "internal error: subscribe failed", NULL);
        return;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)id);
    ado_rpc_reply_json(call, json_string(buf));
}

/* params [ID]; result true, or false when the id is unknown (as eth_unsubscribe). */
static void b_bus_unsubscribe(struct ado_rpc *rpc, ado_call *call, struct rpc_params *p) {
    json_t *params = ado_rpc_params_json(p);
    (void)rpc;
    json_t *t = first_param(params, "subscription");
    uint64_t id = 0;
    if (json_is_string(t)) {
        char *end = NULL;
        id = strtoull(json_string_value(t), &end, 16);
        if (!end || *end) {
            bad_params(call, "invalid params: expected [\"0x...\"] (a subscription id)");
            return;
        }
    } else if (json_is_integer(t) && json_integer_value(t) >= 0) {
        id = (uint64_t)json_integer_value(t);
    } else {
        bad_params(call, "invalid params: expected [\"0x...\"] (a subscription id)");
        return;
    }
    if (!on_ws(call))
        return;
    int rc = ado_rpc_conn_unsubscribe(call->req->conn, id);
    ado_rpc_reply_json(call, json_boolean(rc == 0));
}

void ado_rpc_builtins_register(struct ado_rpc *rpc) {
    ado_rpc_register_builtin(rpc, "rpc_methods", NULL,
                             "every method: name, role, description, owner", b_rpc_methods);
    ado_rpc_register_builtin(rpc, "rpc_echo", NULL,
                             "answers its params; {\"delay_ms\":N} answers after N ms", b_rpc_echo);
    ado_rpc_register_builtin(rpc, "node_info", NULL,
                             "name, layer, version, ABI, uptime of the node", b_node_info);
    ado_rpc_register_builtin(rpc, "node_plugins", "reader",
                             "each plugin's version, kind, state, breaker and error counts",
                             b_node_plugins);
    ado_rpc_register_builtin(rpc, "bus_publish", "admin", "publish {topic, data} on the event bus",
                             b_bus_publish);
    ado_rpc_register_builtin(rpc, "bus_subscribe", "reader",
                             "WebSocket only: subscribe to a topic pattern; events arrive as "
                             "bus_subscription notifications",
                             b_bus_subscribe);
    ado_rpc_register_builtin(rpc, "bus_unsubscribe", "reader",
                             "WebSocket only: cancel a subscription by id", b_bus_unsubscribe);
}
