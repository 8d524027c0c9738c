/* The bridge core's state machine, with two in-process nodes ("a" on L3, "b" on L2) on two
 * uv loops, connected by tests/fixtures/bridge/fx_loop_transport.so — a FAKE transport made
 * for fault injection (lost messages, lost acks, refusals, links down, held frames). The
 * real transport (ws_peer) and the multi-process tests with kill -9 live with that plugin. */
#include <dlfcn.h>
#include <jansson.h>
#include <sys/wait.h>

#include "bridge.h"
#include "harness.h"
#include "rpc.h"

#define FX ADO_BUILD_DIR "/tests/fixtures/bridge/fx_loop_transport.so"

static int (*fx_ctl)(const char *, const char *, long);
static long (*fx_get)(const char *, const char *);
static size_t (*fx_log)(const char *, uint64_t *, size_t);

struct pair {
    char *base;
    struct th_node a, b;
    int a_up, b_up;
};

/* Retry, breaker and bound settings of a's peer "b" (and b's peer "a"). */
static const char *peer_opts =
    "ack_timeout: 150ms, retry: {attempts: 3, backoff: 20ms, max_backoff: 100ms}, "
    "breaker: {failures: 100, cooldown: 200ms}";
static int outbox_limit = 1000;
static int fx_query = 1;
static const char *store_sync = "false";

static void start_one(struct pair *p, struct th_node *t, const char *name, const char *layer,
                      const char *peer, const char *peer_layer) {
    char dir[512], yaml[4096];
    snprintf(dir, sizeof dir, "%s/%s", p->base, name);
    mkdir(dir, 0700);
    snprintf(yaml, sizeof yaml,
             "node:\n"
             "  name: %s\n"
             "  layer: %s\n"
             "  data_dir: %s/data\n"
             "  rpc: {listen: \"off\"}\n"
             "  store: {sync: %s}\n"
             "  log: {level: error}\n"
             "plugins:\n"
             "  - {name: fx, path: %s, config: {query: %s}}\n"
             "bridge:\n"
             "  outbox_limit: %d\n"
             "  peers:\n"
             "    - {name: %s, layer: %s, transport: fxloop, address: \"fx://%s\", %s}\n",
             name, layer, dir, store_sync, FX, fx_query ? "true" : "false", outbox_limit, peer,
             peer_layer, peer, peer_opts);
    int rc = th_node_start(t, dir, yaml);
    cr_assert_eq(rc, 0, "start %s: %d\n%s", name, rc, th_diag_text(t));
}

static void load_fx(void) {
    void *h = dlopen(FX, RTLD_NOW | RTLD_NOLOAD);
    cr_assert(h, "the fixture is loaded by the nodes");
    fx_ctl = (int (*)(const char *, const char *, long))dlsym(h, "fx_loop_ctl");
    fx_get = (long (*)(const char *, const char *))dlsym(h, "fx_loop_get");
    fx_log = (size_t(*)(const char *, uint64_t *, size_t))dlsym(h, "fx_loop_log");
    cr_assert(fx_ctl && fx_get && fx_log);
    dlclose(h);
}

static void pair_start(struct pair *p) {
    memset(p, 0, sizeof *p);
    p->base = th_tmpdir();
    start_one(p, &p->a, "a", "L3", "b", "L2");
    start_one(p, &p->b, "b", "L2", "a", "L3");
    p->a_up = p->b_up = 1;
    load_fx();
    /* Short ack timeout so lost frames are retried quickly. */
}

static void pair_stop(struct pair *p) {
    if (p->a_up)
        th_node_stop(&p->a);
    if (p->b_up)
        th_node_stop(&p->b);
    th_rmrf(p->base);
    free(p->base);
}

static void spin_once(struct pair *p) {
    if (p->a_up) {
        uv_update_time(&p->a.loop);
        uv_run(&p->a.loop, UV_RUN_NOWAIT);
    }
    if (p->b_up) {
        uv_update_time(&p->b.loop);
        uv_run(&p->b.loop, UV_RUN_NOWAIT);
    }
}

static int run_until(struct pair *p, int (*cond)(struct pair *), int timeout_ms) {
    uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    while (!cond(p) && uv_hrtime() < end) {
        spin_once(p);
        if (!cond(p))
            usleep(200);
    }
    return cond(p);
}

static void spin(struct pair *p, int ms) {
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < end) {
        spin_once(p);
        usleep(200);
    }
}

static struct ado_bridge_peer_info info(struct th_node *t, const char *peer) {
    struct ado_bridge_peer_info i;
    cr_assert_eq(ado_bridge_peer_info(t->node->bridge, peer, &i), 0);
    return i;
}

/* The fixture's app: write KEY=VALUE and bridge_send PAYLOAD in one bus callback. */
static long app_send(struct th_node *t, const char *peer, const char *topic, const char *key,
                     const char *payload) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s|%s|%s|v-%s|%s", peer, topic, key, key, payload);
    cr_assert_eq(ado_bus_publish(t->node->bus, "fx.app.send", buf, strlen(buf)), 0);
    return fx_get(t->node->cfg->node_name, "last_send_rc");
}

static void send_n(struct th_node *t, int from, int n) {
    for (int i = from; i < from + n; i++) {
        char key[32], pl[64];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(pl, sizeof pl, "{\"n\":%d}", i);
        cr_assert_eq(app_send(t, "b", "test.msg", key, pl), 0);
    }
}

static int want_count;
static int b_has_all(struct pair *p) {
    return fx_get("b", "app_count") >= want_count && info(&p->a, "b").depth == 0;
}

static void assert_order(const char *node, int n) {
    uint64_t seqs[4096];
    size_t got = fx_log(node, seqs, 4096);
    cr_assert_eq(got, (size_t)n, "%s applied %zu messages, expected %d", node, got, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(seqs[i], (uint64_t)(i + 1), "message %d has seq %llu", i,
                     (unsigned long long)seqs[i]);
}

/* ---- RPC in-process -------------------------------------------------------------------- */

struct answer {
    char *text;
};

static void on_answer(void *arg, const char *resp) {
    ((struct answer *)arg)->text = strdup(resp ? resp : "");
}

static struct pair *cur_pair;
static struct answer *cur_answer;
static int answered(struct pair *p) {
    (void)p;
    return cur_answer->text != NULL;
}

/* Call method with params on t; returns the response object (caller decrefs). */
static json_t *rpc(struct pair *p, struct th_node *t, const char *method, const char *params) {
    char req[2048];
    snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
             method, params ? params : "null");
    struct answer a = {0};
    cur_pair = p;
    cur_answer = &a;
    cr_assert_eq(ado_rpc_call_local(t->node->rpc, req, "admin", on_answer, &a), 0);
    cr_assert(run_until(p, answered, 3000), "%s answered", method);
    json_error_t e;
    json_t *j = json_loads(a.text, 0, &e);
    cr_assert(j, "JSON answer: %s", a.text);
    free(a.text);
    return j;
}

static int err_code(json_t *resp) {
    json_t *e = json_object_get(resp, "error");
    return e ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

TestSuite(bridge, .timeout = 60);

Test(bridge, delivers_in_order_and_acks_remove) {
    struct pair p;
    pair_start(&p);
    cr_assert_eq(info(&p.a, "b").up, 1, "the fake link reports b up");
    send_n(&p.a, 1, 500);
    cr_assert_eq(info(&p.a, "b").depth, 500, "queued durably");
    want_count = 500;
    cr_assert(run_until(&p, b_has_all, 10000), "all delivered and acked");
    assert_order("b", 500);
    struct ado_bridge_peer_info ia = info(&p.a, "b"), ib = info(&p.b, "a");
    cr_assert_eq(ia.acked, 500);
    cr_assert_eq(ia.inflight, 0);
    cr_assert_eq(ia.retries, 0);
    cr_assert_eq(ib.received, 500);
    cr_assert_eq(ib.duplicates, 0);
    cr_assert_eq(ia.next_seq, 501);
    /* And back the other way. */
    for (int i = 0; i < 20; i++)
        cr_assert_eq(app_send(&p.b, "a", "test.back", "x", "\"back\""), 0);
    spin(&p, 100);
    cr_assert_eq(fx_get("a", "app_count"), 20);
    pair_stop(&p);
}

Test(bridge, repeats_are_applied_once) {
    struct pair p;
    pair_start(&p);
    /* b applies but its acks are lost (3), then it refuses two it has applied (nack): a
     * sends those again, b must see repeats and ignore them. */
    fx_ctl("b", "drop_acks", 3);
    fx_ctl("b", "nack", 2);
    send_n(&p.a, 1, 50);
    want_count = 50;
    cr_assert(run_until(&p, b_has_all, 10000));
    spin(&p, 50);
    assert_order("b", 50);
    struct ado_bridge_peer_info ia = info(&p.a, "b"), ib = info(&p.b, "a");
    cr_assert_geq(ib.duplicates, 5, "duplicates %llu", (unsigned long long)ib.duplicates);
    cr_assert_eq(ib.received, 50);
    cr_assert_eq(fx_get("b", "app_count"), 50, "exactly once on b's bus");
    cr_assert_geq(ia.retries, 1);
    cr_assert_eq(ia.depth, 0);
    pair_stop(&p);
}

Test(bridge, lost_message_is_retried) {
    struct pair p;
    pair_start(&p);
    fx_ctl("a", "drop_msgs", 1); /* the first one vanishes on the wire */
    send_n(&p.a, 1, 1);
    want_count = 1;
    cr_assert(run_until(&p, b_has_all, 5000));
    struct ado_bridge_peer_info ia = info(&p.a, "b");
    cr_assert_eq(ia.retries, 1, "one retry after the ack timeout");
    cr_assert_eq(ia.dead_total, 0);
    pair_stop(&p);
}

static int a_dead(struct pair *p) {
    return info(&p->a, "b").dead_total >= 1;
}

Test(bridge, dead_letter_after_attempts_then_retry_and_drop) {
    struct pair p;
    pair_start(&p);
    fx_ctl("b", "down", 1);
    cr_assert_eq(info(&p.a, "b").up, 0);
    uint64_t t0 = uv_hrtime();
    send_n(&p.a, 1, 2);
    cr_assert(run_until(&p, a_dead, 5000), "dead-lettered");
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    /* 3 attempts: backoff 20 ms then 40 ms, each with up to 25% jitter off. */
    cr_assert_geq(ms, 40.0, "dead-lettered after %.1f ms: backoff not applied", ms);
    spin(&p, 300);
    struct ado_bridge_peer_info ia = info(&p.a, "b");
    cr_assert_eq(ia.dead_total, 2,
                 "both messages ran out of attempts: dead %llu retries %llu depth %llu breaker %d",
                 (unsigned long long)ia.dead_total, (unsigned long long)ia.retries,
                 (unsigned long long)ia.depth, ia.breaker);
    cr_assert_eq(ia.retries, 4, "2 retries each");
    cr_assert_eq(ia.depth, 0);

    json_t *r = rpc(&p, &p.a, "bridge_deadletters", "{\"peer\":\"b\"}");
    json_t *list = json_object_get(r, "result");
    cr_assert(json_is_array(list) && json_array_size(list) == 2, "%s", json_dumps(r, JSON_COMPACT));
    json_t *d0 = json_array_get(list, 0);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "id")), "a/b/1");
    cr_assert_str_eq(json_string_value(json_object_get(d0, "topic")), "test.msg");
    cr_assert_eq(json_integer_value(json_object_get(d0, "attempts")), 3);
    cr_assert(json_is_string(json_object_get(d0, "last_error")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(d0, "payload"), "n")), 1);
    json_decref(r);

    /* The peer comes back: nothing moves by itself, the operator retries seq 2 and drops 1. */
    fx_ctl("b", "down", 0);
    spin(&p, 100);
    cr_assert_eq(fx_get("b", "app_count"), 0);
    r = rpc(&p, &p.a, "bridge_retry", "{\"peer\":\"b\",\"seq\":2}");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "result"), "retried")), 1);
    json_decref(r);
    want_count = 1;
    cr_assert(run_until(&p, b_has_all, 5000), "delivered after bridge_retry");
    uint64_t seqs[4];
    cr_assert_eq(fx_log("b", seqs, 4), 1);
    cr_assert_eq(seqs[0], 2);
    r = rpc(&p, &p.a, "bridge_drop", "{\"peer\":\"b\",\"seq\":1}");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "result"), "dropped")), 1);
    json_decref(r);
    r = rpc(&p, &p.a, "bridge_drop", "{\"peer\":\"b\",\"seq\":1}");
    cr_assert_eq(err_code(r), -32602, "dropping it twice is an error");
    json_decref(r);
    r = rpc(&p, &p.a, "bridge_deadletters", "{}");
    cr_assert_eq(json_array_size(json_object_get(r, "result")), 0);
    json_decref(r);
    cr_assert_eq(info(&p.a, "b").dead_total, 2);
    pair_stop(&p);
}

Test(bridge, dead_letter_retried_out_of_order_is_applied_once) {
    struct pair p;
    pair_start(&p);
    fx_ctl("a", "fail_sends", 3); /* message 1 fails its 3 attempts */
    send_n(&p.a, 1, 1);
    cr_assert(run_until(&p, a_dead, 5000));
    send_n(&p.a, 2, 3);
    want_count = 3;
    cr_assert(run_until(&p, b_has_all, 5000));
    json_t *r = rpc(&p, &p.a, "bridge_retry", "{\"peer\":\"b\",\"all\":true}");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "result"), "retried")), 1);
    json_decref(r);
    want_count = 4;
    cr_assert(run_until(&p, b_has_all, 5000));
    uint64_t seqs[8];
    cr_assert_eq(fx_log("b", seqs, 8), 4);
    cr_assert_eq(seqs[0], 2);
    cr_assert_eq(seqs[3], 1, "the dead letter comes last, once");
    /* A repeat of the retried one (lost ack) is still ignored. */
    cr_assert_eq(info(&p.b, "a").duplicates, 0);
    pair_stop(&p);
}

static int a_breaker_open(struct pair *p) {
    return info(&p->a, "b").breaker == ADO_BR_OPEN;
}

static int a_breaker_closed_and_empty(struct pair *p) {
    struct ado_bridge_peer_info i = info(&p->a, "b");
    return i.breaker == ADO_BR_CLOSED && i.depth == 0;
}

Test(bridge, breaker_opens_half_opens_and_closes) {
    peer_opts = "ack_timeout: 150ms, retry: {attempts: 100, backoff: 10ms, max_backoff: 10ms}, "
                "breaker: {failures: 3, cooldown: 300ms}";
    struct pair p;
    pair_start(&p);
    fx_ctl("b", "down", 1);
    send_n(&p.a, 1, 3);
    cr_assert(run_until(&p, a_breaker_open, 3000), "breaker opens");
    uint64_t retries = info(&p.a, "b").retries;
    spin(&p, 150);
    cr_assert_eq(info(&p.a, "b").retries, retries, "no attempt while open");
    /* After the cooldown one probe goes (and fails: still down): open again. */
    spin(&p, 250);
    struct ado_bridge_peer_info i = info(&p.a, "b");
    cr_assert_eq(i.retries, retries + 1, "one probe after the cooldown");
    cr_assert_eq(i.breaker, ADO_BR_OPEN);
    /* The link comes back with b holding frames: a half-opens and has exactly one probe out. */
    fx_ctl("b", "hold", 1);
    fx_ctl("b", "down", 0);
    spin(&p, 50);
    i = info(&p.a, "b");
    cr_assert_eq(i.breaker, ADO_BR_HALF_OPEN);
    cr_assert_eq(i.inflight, 1, "a single probe while half-open");
    fx_ctl("b", "hold", 0);
    cr_assert(run_until(&p, a_breaker_closed_and_empty, 5000), "closed and drained");
    assert_order("b", 3);
    pair_stop(&p);
    peer_opts = "ack_timeout: 150ms, retry: {attempts: 3, backoff: 20ms, max_backoff: 100ms}, "
                "breaker: {failures: 100, cooldown: 200ms}";
}

Test(bridge, outbox_bound_refuses_with_elimit) {
    outbox_limit = 5;
    peer_opts = "ack_timeout: 150ms, retry: {attempts: 100, backoff: 50ms, max_backoff: 50ms}";
    struct pair p;
    pair_start(&p);
    fx_ctl("b", "down", 1);
    send_n(&p.a, 1, 5);
    cr_assert_eq(app_send(&p.a, "b", "test.msg", "k6", "6"), ADO_ELIMIT);
    json_t *r = rpc(&p, &p.a, "bridge_send", "{\"peer\":\"b\",\"topic\":\"t.x\",\"payload\":1}");
    cr_assert_eq(err_code(r), -32015);
    json_decref(r);
    /* The node keeps serving the rest. */
    r = rpc(&p, &p.a, "rpc_echo", "[1]");
    cr_assert(json_object_get(r, "result"));
    json_decref(r);
    fx_ctl("b", "down", 0);
    want_count = 5;
    cr_assert(run_until(&p, b_has_all, 5000));
    cr_assert_eq(app_send(&p.a, "b", "test.msg", "k7", "7"), 0, "room again");
    pair_stop(&p);
    outbox_limit = 1000;
    peer_opts = "ack_timeout: 150ms, retry: {attempts: 3, backoff: 20ms, max_backoff: 100ms}, "
                "breaker: {failures: 100, cooldown: 200ms}";
}

/* Read the fixture app's "state" value for key in node t (NULL if absent). */
static int app_state_has(struct th_node *t, const char *key) {
    struct ado_plugin *fx = NULL;
    for (size_t i = 0; i < t->node->nplugins; i++)
        if (strcmp(t->node->plugins[i]->name, "fx") == 0)
            fx = t->node->plugins[i];
    cr_assert(fx);
    ado_db db;
    cr_assert_eq(ado_store_open_db(t->node->store, fx, "state", &db), 0);
    const void *v;
    size_t vl;
    return ado_store_get(t->node->store, fx, db, key, strlen(key), &v, &vl) == 0;
}

Test(bridge, restart_resends_unacked_and_state_is_atomic_with_send) {
    peer_opts = "ack_timeout: 150ms, retry: {attempts: 100, backoff: 20ms, max_backoff: 20ms}";
    struct pair p;
    pair_start(&p);
    fx_ctl("b", "down", 1);
    send_n(&p.a, 1, 10);
    spin(&p, 50);
    cr_assert_eq(info(&p.a, "b").depth, 10);
    /* a stops (as a crash after the commit would leave it) and starts again. */
    th_node_stop(&p.a);
    p.a_up = 0;
    char dir[512], yaml[64];
    (void)yaml;
    snprintf(dir, sizeof dir, "%s/a", p.base);
    start_one(&p, &p.a, "a", "L3", "b", "L2");
    p.a_up = 1;
    load_fx();
    struct ado_bridge_peer_info i = info(&p.a, "b");
    cr_assert_eq(i.depth, 10, "the outbox survived the restart");
    cr_assert_eq(i.next_seq, 11, "and the sequence");
    cr_assert(app_state_has(&p.a, "k1") && app_state_has(&p.a, "k10"),
              "the app's writes committed with the sends");
    fx_ctl("b", "down", 0);
    want_count = 10;
    cr_assert(run_until(&p, b_has_all, 5000));
    assert_order("b", 10);
    pair_stop(&p);
    peer_opts = "ack_timeout: 150ms, retry: {attempts: 3, backoff: 20ms, max_backoff: 100ms}, "
                "breaker: {failures: 100, cooldown: 200ms}";
}

/* A process that dies before its turn commits loses the app's write AND the message; one
 * that dies right after the commit keeps both. */
Test(bridge, crash_before_commit_loses_both_after_commit_keeps_both) {
    char *base = th_tmpdir();
    for (int flush = 0; flush <= 1; flush++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            struct pair p;
            memset(&p, 0, sizeof p);
            p.base = base;
            start_one(&p, &p.a, "a", "L3", "b", "L2");
            load_fx();
            char key[16];
            snprintf(key, sizeof key, "crash%d", flush);
            app_send(&p.a, "b", "test.msg", key, "1");
            if (flush)
                ado_node_flush(p.a.node);
            _exit(0); /* no stop, no commit of a pending turn: as kill -9 */
        }
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    struct pair p;
    memset(&p, 0, sizeof p);
    p.base = base;
    start_one(&p, &p.a, "a", "L3", "b", "L2");
    p.a_up = 1;
    cr_assert_not(app_state_has(&p.a, "crash0"), "uncommitted write is gone");
    cr_assert(app_state_has(&p.a, "crash1"), "committed write is there");
    struct ado_bridge_peer_info i = info(&p.a, "b");
    cr_assert_eq(i.depth, 1, "only the committed message is in the outbox");
    cr_assert_eq(i.next_seq, 2);
    th_node_stop(&p.a);
    th_rmrf(base);
    free(base);
}

Test(bridge, rpc_shapes_send_peers_query) {
    struct pair p;
    pair_start(&p);
    json_t *r = rpc(&p, &p.a, "bridge_send",
                    "{\"peer\":\"b\",\"topic\":\"ops.note\",\"payload\":{\"hello\":1}}");
    json_t *res = json_object_get(r, "result");
    cr_assert_str_eq(json_string_value(json_object_get(res, "id")), "a/b/1");
    cr_assert_eq(json_integer_value(json_object_get(res, "seq")), 1);
    json_decref(r);
    want_count = 1;
    cr_assert(run_until(&p, b_has_all, 3000));

    r = rpc(&p, &p.a, "bridge_send", "{\"peer\":\"nobody\",\"topic\":\"x\",\"payload\":1}");
    cr_assert_eq(err_code(r), -32602);
    json_decref(r);
    r = rpc(&p, &p.a, "bridge_send", "{\"peer\":\"b\",\"topic\":\"bad topic\",\"payload\":1}");
    cr_assert_eq(err_code(r), -32602);
    json_decref(r);

    r = rpc(&p, &p.a, "bridge_peers", "{}");
    json_t *a = json_object_get(r, "result");
    cr_assert_eq(json_array_size(a), 1, "%s", json_dumps(r, JSON_COMPACT));
    json_t *pb = json_array_get(a, 0);
    const char *keys[] = {"name",        "layer",     "transport",  "state",       "breaker",
                          "queue_depth", "in_flight", "last_error", "last_ack_ms", "dead_letters",
                          "sent",        "acked",     "retries",    "received",    "duplicates"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(json_object_get(pb, keys[i]), "bridge_peers has %s", keys[i]);
    cr_assert_str_eq(json_string_value(json_object_get(pb, "state")), "up");
    cr_assert_str_eq(json_string_value(json_object_get(pb, "breaker")), "closed");
    cr_assert_str_eq(json_string_value(json_object_get(pb, "layer")), "L2");
    cr_assert_eq(json_integer_value(json_object_get(pb, "window")), 256, "YAML default");
    cr_assert_eq(json_integer_value(json_object_get(pb, "ack_timeout_ms")), 150, "from the YAML");
    cr_assert(json_is_integer(json_object_get(pb, "last_ack_ms")));
    cr_assert(json_is_object(json_object_get(pb, "checkpoint")), "b is a's upper peer");
    json_decref(r);

    /* The event on b's bus. */
    /* bridge_query: a reads b's node_info through the bridge. */
    r = rpc(&p, &p.a, "bridge_query",
            "{\"peer\":\"b\",\"request\":{\"method\":\"node_info\",\"params\":[]}}");
    res = json_object_get(r, "result");
    cr_assert_str_eq(json_string_value(json_object_get(res, "name")), "b", "%s",
                     json_dumps(r, JSON_COMPACT));
    json_decref(r);
    /* The peer's error comes back as an error. */
    r = rpc(&p, &p.a, "bridge_query", "{\"peer\":\"b\",\"request\":{\"method\":\"no_such\"}}");
    cr_assert_eq(err_code(r), -32601, "%s", json_dumps(r, JSON_COMPACT));
    json_decref(r);
    /* Only reads: b runs it as a reader. */
    r = rpc(&p, &p.a, "bridge_query",
            "{\"peer\":\"b\",\"request\":{\"method\":\"bridge_send\",\"params\":{}}}");
    cr_assert_neq(err_code(r), 0);
    json_decref(r);
    r = rpc(&p, &p.a, "bridge_query", "{\"peer\":\"zz\",\"request\":{\"method\":\"node_info\"}}");
    cr_assert_eq(err_code(r), -32602);
    json_decref(r);
    fx_ctl("b", "mute_queries", 1);
    r = rpc(&p, &p.a, "bridge_query",
            "{\"peer\":\"b\",\"request\":{\"method\":\"node_info\"},\"timeout_ms\":100}");
    cr_assert_eq(err_code(r), -32013, "timeout: %s", json_dumps(r, JSON_COMPACT));
    json_decref(r);
    fx_ctl("b", "down", 1);
    r = rpc(&p, &p.a, "bridge_query", "{\"peer\":\"b\",\"request\":{\"method\":\"node_info\"}}");
    cr_assert_eq(err_code(r), -32012, "down");
    json_decref(r);
    pair_stop(&p);
}

Test(bridge, query_unsupported_by_transport) {
    fx_query = 0;
    struct pair p;
    pair_start(&p);
    json_t *r =
        rpc(&p, &p.a, "bridge_query", "{\"peer\":\"b\",\"request\":{\"method\":\"node_info\"}}");
    cr_assert_eq(err_code(r), -32011);
    json_decref(r);
    pair_stop(&p);
    fx_query = 1;
}

/* The bus event's envelope. */
static char last_env[2048];
static int on_env(void *arg, const char *topic, const void *data, size_t len) {
    (void)arg, (void)topic;
    snprintf(last_env, sizeof last_env, "%.*s", (int)len, (const char *)data);
    return 0;
}

static int env_seen(struct pair *p) {
    (void)p;
    return last_env[0] != 0;
}

Test(bridge, envelope_on_the_bus) {
    struct pair p;
    pair_start(&p);
    uint64_t id;
    cr_assert_eq(ado_bus_subscribe(p.b.node->bus, "bridge.in.shop.>", NULL, on_env, NULL, &id), 0);
    last_env[0] = 0;
    app_send(&p.a, "b", "shop.order", "o1", "{\"sku\":\"x\",\"qty\":2}");
    cr_assert(run_until(&p, env_seen, 3000));
    json_error_t e;
    json_t *j = json_loads(last_env, 0, &e);
    cr_assert(j, "%s", last_env);
    cr_assert_str_eq(json_string_value(json_object_get(j, "from")), "a");
    cr_assert_str_eq(json_string_value(json_object_get(j, "layer")), "L3");
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "a/b/1");
    cr_assert_eq(json_integer_value(json_object_get(j, "seq")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(j, "topic")), "shop.order");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "payload"), "qty")), 2);
    json_decref(j);
    last_env[0] = 0;
    app_send(&p.a, "b", "shop.note", "o2", "not json");
    cr_assert(run_until(&p, env_seen, 3000));
    j = json_loads(last_env, 0, &e);
    cr_assert_str_eq(json_string_value(json_object_get(j, "payload")), "not json");
    json_decref(j);
    pair_stop(&p);
}

/* The envelope is written by hand (not built and dumped with jansson): it must be the same
 * JSON value jansson made, for every kind of payload. */
Test(bridge, envelope_written_directly_equals_the_jansson_one) {
    struct pair p;
    pair_start(&p);
    uint64_t id;
    cr_assert_eq(ado_bus_subscribe(p.b.node->bus, "bridge.in.shop.>", NULL, on_env, NULL, &id), 0);
    struct {
        const char *payload;
        int kind; /* 0 JSON, 1 text, 2 hex */
    } cases[] = {
        {"{\"sku\":\"x\",\"qty\":2}", 0},
        {"  [1, 2.5, \"\\u00e9\\n\", {\"a\" : null}]  ", 0},
        {"\"caf\xc3\xa9 \\\"q\\\"\"", 0},
        {"12345678901234567890123", 1}, /* too big for jansson: text */
        {"say \"hi\"\t\\ now\x01", 1},
        {"caf\xc3\xa9 \xe2\x82\xac", 1},
        {"bad \xff\xfe utf8", 2},
        {"", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        last_env[0] = 0;
        char key[16];
        snprintf(key, sizeof key, "e%zu", i);
        app_send(&p.a, "b", "shop.case", key, cases[i].payload);
        cr_assert(run_until(&p, env_seen, 3000), "case %zu", i);
        json_error_t e;
        json_t *got = json_loads(last_env, 0, &e);
        cr_assert(got, "case %zu: not JSON: %s", i, last_env);
        const char *pl = cases[i].payload;
        size_t n = strlen(pl);
        json_t *want_pl;
        if (cases[i].kind == 0) {
            want_pl = json_loadb(pl, n, JSON_DECODE_ANY, &e);
        } else if (cases[i].kind == 1) {
            want_pl = json_stringn(pl, n);
        } else {
            char hex[128];
            for (size_t k = 0; k < n; k++)
                snprintf(hex + 2 * k, 3, "%02x", (unsigned char)pl[k]);
            hex[2 * n] = 0;
            want_pl = json_string(hex);
        }
        cr_assert(want_pl, "case %zu", i);
        char wid[64];
        snprintf(wid, sizeof wid, "a/b/%zu", i + 1);
        json_t *want =
            json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:O,s:o}", "from", "a", "layer", "L3", "origin",
                      "a", "id", wid, "seq", (json_int_t)(i + 1), "topic", "shop.case",
                      "created_ms", json_object_get(got, "created_ms"), "payload", want_pl);
        if (cases[i].kind == 2)
            json_object_set_new(want, "payload_encoding", json_string("hex"));
        char *ws = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        char *gs = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        cr_assert(json_equal(got, want), "case %zu:\n got  %s\n want %s", i, gs, ws);
        free(ws), free(gs);
        json_decref(want);
        json_decref(got);
    }
    pair_stop(&p);
}

Test(bridge, missing_transport_refuses_start) {
    char *base = th_tmpdir();
    struct th_node t;
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "node: {name: solo, data_dir: %s/data, rpc: {listen: \"off\"}, log: {level: error}}\n"
             "bridge:\n  peers:\n    - {name: up, layer: L2, transport: nothing, address: x}\n",
             base);
    cr_assert_neq(th_node_start(&t, base, yaml), 0);
    cr_assert(strstr(th_diag_text(&t), "bridge.peers.0.transport"), "%s", th_diag_text(&t));
    cr_assert(strstr(th_diag_text(&t), "\"nothing\""));
    th_node_stop(&t);
    th_rmrf(base);
    free(base);
}

/* Throughput between the two in-process nodes with fsync on, over the fake transport (so
 * it measures the kernel's side only). Runs when ADO_BRIDGE_BENCH is set. */
Test(bridge, throughput_bench) {
    if (!getenv("ADO_BRIDGE_BENCH"))
        cr_skip_test("set ADO_BRIDGE_BENCH=1 to run");
    struct pair p;
    memset(&p, 0, sizeof p);
    p.base = th_tmpdir();
    store_sync = "true"; /* fsync every commit, as in production */
    outbox_limit = 100000;
    start_one(&p, &p.a, "a", "L3", "b", "L2");
    start_one(&p, &p.b, "b", "L2", "a", "L3");
    p.a_up = p.b_up = 1;
    load_fx();
    int n = atoi(getenv("ADO_BRIDGE_BENCH")) > 1 ? atoi(getenv("ADO_BRIDGE_BENCH")) : 20000;
    uint64_t t0 = uv_hrtime();
    int sent = 0;
    want_count = n;
    while (fx_get("b", "app_count") < n) {
        for (int k = 0; k < 500 && sent < n; k++, sent++) {
            char pl[64];
            snprintf(pl, sizeof pl, "{\"n\":%d}", sent);
            ado_bridge_send(p.a.node->bridge, NULL, "b", "bench.m", pl, strlen(pl), NULL, 0);
        }
        spin_once(&p);
    }
    run_until(&p, b_has_all, 10000);
    double s = (double)(uv_hrtime() - t0) / 1e9;
    struct ado_store_stats st;
    ado_store_stats(p.a.node->store, &st);
    fprintf(stderr, "bridge: %d durable messages in %.3f s = %.0f msg/s (a commits %llu)\n", n, s,
            n / s, (unsigned long long)st.commits);
    pair_stop(&p);
    outbox_limit = 1000;
    store_sync = "false";
}

Test(bridge, per_peer_window_and_ack_timeout_come_from_the_yaml) {
    peer_opts = "window: 3, ack_timeout: 150ms, "
                "retry: {attempts: 100, backoff: 10ms, max_backoff: 10ms}";
    struct pair p;
    pair_start(&p);
    fx_ctl("b", "hold", 1);
    send_n(&p.a, 1, 10);
    spin(&p, 50);
    struct ado_bridge_peer_info i = info(&p.a, "b");
    cr_assert_eq(i.inflight, 3, "never more than the peer's window in flight");
    /* Held past ack_timeout: the attempt counts as failed and is retried. */
    uint64_t retries = i.retries;
    spin(&p, 250);
    cr_assert_gt(info(&p.a, "b").retries, retries, "retried after the peer's ack_timeout");
    fx_ctl("b", "hold", 0);
    want_count = 10;
    cr_assert(run_until(&p, b_has_all, 5000));
    assert_order("b", 10);
    pair_stop(&p);
    peer_opts = "ack_timeout: 150ms, retry: {attempts: 3, backoff: 20ms, max_backoff: 100ms}, "
                "breaker: {failures: 100, cooldown: 200ms}";
}
