/* hello_c: the example C plugin. Copy this folder to start a plugin of your own.
 *
 * What it shows:
 *  - a descriptor with a config schema (validated by the kernel before anything starts);
 *  - reading the config at init, keeping state in the plugin's own struct;
 *  - a database of its own in the node's store, written with a durability callback;
 *  - a bus subscription (`hello.ping`) answered by a publish (`hello.pong`);
 *  - a repeating timer publishing `hello.tick`;
 *  - two RPC methods (<name>_greet, <name>_bump), one answering now and one answering once
 *    its write is durable.
 *
 * It includes only <ado/ado.h>, links against nothing of the kernel, and gets every kernel
 * function from the api table at init. */
#include <ado/ado.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hello {
    ado_ctx *ctx;
    const struct ado_api *api;
    const char *greeting; /* borrowed from the config, lives as long as the plugin */
    int64_t every_ms;
    ado_db db;
    uint64_t count; /* ticks so far, persisted under key "count" */
    uint64_t timer;
};

static const struct ado_schema schema[] = {
    {.key = "greeting",
     .type = ADO_T_STRING,
     .default_value = "hello",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 200,
     .help = "what <name>_greet answers"},
    {.key = "every",
     .type = ADO_T_DURATION,
     .default_value = "10s",
     .flags = ADO_F_RANGE,
     .min = 10,
     .max = 86400000,
     .help = "period of the hello.tick event"},
    ADO_SCHEMA_END,
};

static int load_count(struct hello *h) {
    const void *val;
    size_t len;
    int rc = h->api->store_get(h->ctx, h->db, "count", 5, &val, &len);
    if (rc == ADO_ENOTFOUND) {
        h->count = 0;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (len != sizeof h->count)
        return ADO_EIO;
    memcpy(&h->count, val, sizeof h->count);
    return 0;
}

static int save_count(struct hello *h) {
    return h->api->store_put(h->ctx, h->db, "count", 5, &h->count, sizeof h->count);
}

static int on_tick(ado_ctx *ctx, void *arg) {
    struct hello *h = arg;
    h->count++;
    int rc = save_count(h);
    if (rc < 0)
        return rc;
    char msg[64];
    int n = snprintf(msg, sizeof msg, "{\"count\":%llu}", (unsigned long long)h->count);
    return h->api->bus_publish(ctx, "hello.tick", msg, (size_t)n);
}

static int on_ping(ado_ctx *ctx, const char *topic, const void *data, size_t len, void *arg) {
    struct hello *h = arg;
    (void)topic;
    /* Publishing from inside a subscriber is queued by the bus, never recursive. */
    return h->api->bus_publish(ctx, "hello.pong", data, len);
}

static void rpc_greet(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    struct hello *h = arg;
    (void)ctx, (void)params, (void)len;
    char out[320];
    int n = snprintf(out, sizeof out, "{\"greeting\":\"%s\",\"ticks\":%llu}", h->greeting,
                     (unsigned long long)h->count);
    h->api->rpc_reply(call, out, (size_t)n);
}

struct pending_bump {
    struct hello *h;
    ado_call *call;
};

static void bump_durable(ado_ctx *ctx, int status, void *arg) {
    struct pending_bump *pb = arg;
    struct hello *h = pb->h;
    (void)ctx;
    if (status < 0) {
        h->api->rpc_error(pb->call, -32603, "write failed", NULL);
    } else {
        char out[64];
        int n = snprintf(out, sizeof out, "%llu", (unsigned long long)h->count);
        h->api->rpc_reply(pb->call, out, (size_t)n);
    }
    free(pb);
}

/* Answer only after the new count is on disk. */
static void rpc_bump(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    struct hello *h = arg;
    (void)params, (void)len;
    struct pending_bump *pb = malloc(sizeof *pb);
    if (!pb) {
        h->api->rpc_error(call, -32603, "out of memory", NULL);
        return;
    }
    pb->h = h;
    pb->call = call;
    h->count++;
    int rc = save_count(h);
    if (rc == 0)
        rc = h->api->store_on_durable(ctx, bump_durable, pb);
    if (rc < 0) {
        h->api->rpc_error(call, -32603, h->api->strerror(rc), NULL);
        free(pb);
    }
}

static int hello_init(ado_ctx *ctx, const struct ado_api *api, void **state) {
    struct hello *h = calloc(1, sizeof *h);
    if (!h)
        return ADO_ENOMEM;
    h->ctx = ctx;
    h->api = api;
    int rc = api->config_string(ctx, "greeting", &h->greeting);
    if (rc == 0)
        rc = api->config_int(ctx, "every", &h->every_ms);
    if (rc == 0)
        rc = api->store_open_db(ctx, "state", &h->db);
    if (rc == 0)
        rc = load_count(h);
    if (rc < 0) {
        api->log(ctx, ADO_LOG_ERROR, "init failed: %s", api->strerror(rc));
        free(h);
        return rc;
    }
    *state = h;
    return 0;
}

static int hello_start(ado_ctx *ctx, void *state) {
    struct hello *h = state;
    const struct ado_api *api = h->api;
    int rc = api->bus_subscribe(ctx, "hello.ping", on_ping, h, NULL);
    if (rc == 0)
        rc = api->timer_start(ctx, (uint64_t)h->every_ms, (uint64_t)h->every_ms, on_tick, h,
                              &h->timer);
    /* Method names are global: prefix them with the instance's name from the YAML so that
     * one plugin can be loaded twice (hello_c_greet, hello_c_bump). */
    char greet[96], bump[96];
    snprintf(greet, sizeof greet, "%s_greet", api->plugin_name(ctx));
    snprintf(bump, sizeof bump, "%s_bump", api->plugin_name(ctx));
    if (rc == 0 &&
        (rc = api->rpc_register(ctx, greet, "reader", "The configured greeting and tick count",
                                rpc_greet, h)) < 0)
        api->log(ctx, ADO_LOG_ERROR, "cannot register %s: %s", greet, api->strerror(rc));
    if (rc == 0 && (rc = api->rpc_register(ctx, bump, "writer",
                                           "Add one to the count; answers once it is durable",
                                           rpc_bump, h)) < 0)
        api->log(ctx, ADO_LOG_ERROR, "cannot register %s: %s", bump, api->strerror(rc));
    if (rc == 0)
        api->log(ctx, ADO_LOG_INFO, "ready: greeting=\"%s\" every=%lldms ticks=%llu", h->greeting,
                 (long long)h->every_ms, (unsigned long long)h->count);
    return rc;
}

static void hello_stop(ado_ctx *ctx, void *state) {
    struct hello *h = state;
    /* Subscriptions, timers and methods are dropped by the kernel after stop; stopping the
     * timer here is only to show the call. */
    h->api->timer_stop(ctx, h->timer);
}

static void hello_fini(ado_ctx *ctx, void *state) {
    (void)ctx;
    free(state);
}

ADO_PLUGIN_DEFINE(.name = "hello_c", .version = "1.0.0",
                  .description = "Example plugin: config, store, bus, timer and RPC",
                  .schema = schema, .init = hello_init, .start = hello_start, .stop = hello_stop,
                  .fini = hello_fini);
