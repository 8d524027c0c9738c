/* trn_oracle tests: an in-process node running the plugin, RPC calls through the kernel's
 * dispatcher, deposits published as evm_l2 would publish them. */
#ifndef TRN_TEST_H
#define TRN_TEST_H

#include <jansson.h>

#include "harness.h"
#include "bus.h"
#include "rpc.h"

#define TRN_SO ADO_BUILD_DIR "/plugins/trn_oracle.so"

/* anvil's first accounts, used as test identities */
#define TREASURY "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
#define ALICE    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
#define BOB      "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
#define CAROL    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"

/* The default test chain: period long enough that only trn_closeEpoch closes; extra YAML for
 * the plugin's config block is appended (indented by 6). */
static inline int tt_start(struct th_node *n, const char *dir, const char *extra) {
    char yaml[4096];
    const char *x = extra ? extra : "";
    /* extra replaces the default epoch / l2 lines when it has its own */
    const char *ep = strstr(x, "epoch:") ? "" : "      epoch: {period: 24h, first: 1}\n";
    const char *l2 = strstr(x, "l2:") ? "" : "      l2: {submit: false}\n";
    snprintf(yaml, sizeof yaml,
             "node:\n  name: trn-test\n  data_dir: %s/data\n  log: {level: warn}\n"
             "  store: {sync: false}\n"
             "  rpc: {listen: 127.0.0.1:0}\n"
             "plugins:\n"
             "  - name: trn\n    path: %s\n    config:\n"
             "      treasury: \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n"
             "%s"
             "      rates: {view_reward: \"10\", view_cost: \"0\", boost_fee: \"2\"}\n"
             "      gas: {per_operation: \"1\", l2_fee_per_tx: \"0\"}\n"
             "%s%s",
             dir, TRN_SO, ep, l2, x);
    return th_node_start(n, dir, yaml);
}

struct tt_call {
    char *resp;
    int n;
};

static void tt_cb(void *arg, const char *resp) {
    struct tt_call *c = arg;
    free(c->resp);
    c->resp = resp ? strdup(resp) : NULL;
    c->n++;
}

static int tt_answered(void *arg) {
    return ((struct tt_call *)arg)->n > 0;
}

/* Call method with params (JSON text) as role; runs the loop until the answer (which for
 * writes comes after the commit). Returns the whole response object. */
static inline json_t *tt_call_role(struct th_node *n, const char *role, const char *method,
                                   const char *params) {
    static int id;
    size_t len = strlen(params) + strlen(method) + 100;
    char *req = malloc(len);
    snprintf(req, len, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}", ++id,
             method, params);
    struct tt_call c = {0};
    cr_assert_eq(ado_rpc_call_local(n->node->rpc, req, role, tt_cb, &c), 0);
    free(req);
    cr_assert(th_run_until(&n->loop, tt_answered, &c, 20000), "%s: no answer", method);
    json_t *v = json_loads(c.resp, 0, NULL);
    cr_assert(v, "bad JSON: %s", c.resp);
    free(c.resp);
    return v;
}

static inline json_t *tt_call(struct th_node *n, const char *method, const char *params) {
    return tt_call_role(n, "admin", method, params);
}

/* The result of a call that must succeed (a new reference to the result). */
static inline json_t *tt_ok(struct th_node *n, const char *method, const char *params) {
    json_t *v = tt_call(n, method, params);
    json_t *r = json_object_get(v, "result");
    char *s = json_dumps(v, 0);
    cr_assert(r, "%s %s failed: %s", method, params, s);
    free(s);
    json_incref(r);
    json_decref(v);
    return r;
}

/* The error code of a call that must fail. */
static inline int tt_err(struct th_node *n, const char *method, const char *params) {
    json_t *v = tt_call(n, method, params);
    json_t *e = json_object_get(v, "error");
    char *s = json_dumps(v, 0);
    cr_assert(e, "%s %s should fail: %s", method, params, s);
    free(s);
    int code = (int)json_integer_value(json_object_get(e, "code"));
    json_decref(v);
    return code;
}

static inline const char *tt_str(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    cr_assert(s, "no string %s", key);
    return s;
}

/* A deposit observed on L2, as evm_l2 publishes it on the bus. */
static inline void tt_deposit(struct th_node *n, const char *account, const char *amount,
                              const char *tx, int log_index) {
    char ev[512];
    int len = snprintf(ev, sizeof ev,
                       "{\"contract\":\"deposits\",\"event\":\"Deposited\",\"block\":1,"
                       "\"tx\":\"%s\",\"log_index\":%d,\"args\":{\"account\":\"%s\","
                       "\"amount\":\"%s\"}}",
                       tx, log_index, account, amount);
    cr_assert_eq(ado_bus_publish(n->node->bus, "bridge.in.l2.Deposited", ev, (size_t)len), 0);
    uv_run(&n->loop, UV_RUN_NOWAIT); /* commit */
}

/* Balance of account as a string (static buffer). */
static inline const char *tt_balance(struct th_node *n, const char *account) {
    static char buf[100];
    char p[128];
    snprintf(p, sizeof p, "{\"account\":\"%s\"}", account);
    json_t *r = tt_ok(n, "trn_balance", p);
    snprintf(buf, sizeof buf, "%s", tt_str(r, "balance"));
    json_decref(r);
    return buf;
}

#endif
