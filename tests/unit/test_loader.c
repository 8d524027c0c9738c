/* The plugin loader: ABI checks, missing symbol/dependency, cycles, init failure, start and
 * stop order, optional plugins, and the circuit breaker that isolates a failing plugin. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FX ADO_BUILD_DIR "/tests/fixtures/"

struct order_log {
    char text[1024];
};
static int on_order(void *arg, const char *topic, const void *data, size_t len) {
    (void)topic;
    struct order_log *o = arg;
    size_t n = strlen(o->text);
    snprintf(o->text + n, sizeof o->text - n, "%s%.*s", n ? " " : "", (int)len, (const char *)data);
    return 0;
}

struct run {
    struct th_node t;
    struct order_log order;
    char *dir;
    int rc_load, rc_start;
};

/* Load (and start, if loading worked) a node whose plugins section is `plugins`. */
static void run_chain(struct run *r, const char *plugins) {
    memset(r, 0, sizeof *r);
    r->dir = th_tmpdir();
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "node:\n  name: loader-test\n  data_dir: %s/data\n  log: {level: error}\n"
             "  rpc: {listen: \"off\"}\nplugins:\n%s",
             r->dir, plugins);
    struct th_node *t = &r->t;
    ado_diag_init(&t->diag);
    uv_loop_init(&t->loop);
    char *path = th_write(r->dir, "chain.yaml", yaml);
    int rc = ado_config_load(path, &t->cfg, &t->diag);
    free(path);
    cr_assert_eq(rc, 0, "config: %s", th_diag_text(t));
    t->node = ado_node_new(&t->loop);
    t->node->log.level = ADO_LOG_ERROR;
    ado_bus_subscribe(t->node->bus, "fx.order", NULL, on_order, &r->order, NULL);
    r->rc_load = ado_node_load(t->node, t->cfg, &t->diag);
    if (r->rc_load == 0) {
        r->rc_start = ado_node_start(t->node, &t->diag);
        t->started = 1;
    }
}

static void run_end(struct run *r) {
    th_node_stop(&r->t);
    th_rmrf(r->dir);
    free(r->dir);
}

Test(loader, starts_in_dependency_order_and_stops_in_reverse) {
    struct run r;
    run_chain(&r, "  - {name: fx_c, path: " FX "fx_c.so}\n"
                  "  - {name: fx_a, path: " FX "fx_a.so}\n"
                  "  - {name: fx_b, path: " FX "fx_b.so}\n");
    cr_assert_eq(r.rc_load, 0, "%s", th_diag_text(&r.t));
    cr_assert_eq(r.rc_start, 0, "%s", th_diag_text(&r.t));
    cr_assert_str_eq(r.t.node->plugins[0]->name, "fx_a");
    cr_assert_str_eq(r.t.node->plugins[1]->name, "fx_b");
    cr_assert_str_eq(r.t.node->plugins[2]->name, "fx_c");
    ado_node_stop(r.t.node);
    r.t.started = 0;
    cr_assert_str_eq(r.order.text, "fx_a:init fx_a:start fx_b:init fx_b:start fx_c:init "
                                   "fx_c:start fx_c:stop fx_b:stop fx_a:stop");
    run_end(&r);
}

Test(loader, refuses_another_abi_major_naming_plugin_file_and_cause) {
    struct run r;
    run_chain(&r, "  - {name: old, path: " FX "fx_bad_abi.so}\n");
    cr_assert_eq(r.rc_load, ADO_ECONFIG);
    const char *msg = th_diag_text(&r.t);
    cr_assert(strstr(msg, "plugin old (" FX "fx_bad_abi.so): ABI mismatch: built for ABI 2.0, "
                          "this node speaks ABI 1.0"),
              "%s", msg);
    cr_assert(strstr(msg, "chain.yaml:7:5: "), "position of the entry: %s", msg);
    run_end(&r);
}

Test(loader, refuses_a_newer_minor_abi) {
    struct run r;
    run_chain(&r, "  - {name: newer, path: " FX "fx_newer_minor.so}\n");
    cr_assert_eq(r.rc_load, ADO_ECONFIG);
    cr_assert(strstr(th_diag_text(&r.t), "built for ABI 1.99"), "%s", th_diag_text(&r.t));
    run_end(&r);
}

Test(loader, refuses_an_object_without_the_descriptor_symbol) {
    struct run r;
    run_chain(&r, "  - {name: nosym, path: " FX "fx_no_symbol.so}\n");
    cr_assert_eq(r.rc_load, ADO_ECONFIG);
    cr_assert(strstr(th_diag_text(&r.t), "plugin nosym (" FX "fx_no_symbol.so): missing symbol "
                                         "`ado_plugin`: not an adonode plugin"),
              "%s", th_diag_text(&r.t));
    run_end(&r);
}

Test(loader, refuses_a_missing_file_and_a_missing_dependency) {
    struct run r;
    run_chain(&r, "  - {name: ghost, path: /nonexistent/ghost.so}\n"
                  "  - {name: needy, path: " FX "fx_needs_missing.so}\n");
    cr_assert_eq(r.rc_load, ADO_ECONFIG);
    const char *msg = th_diag_text(&r.t);
    cr_assert(strstr(msg, "plugin ghost (/nonexistent/ghost.so): no such file"), "%s", msg);
    cr_assert(strstr(msg, "plugin needy (" FX "fx_needs_missing.so): requires plugin \"nowhere\", "
                          "which is not loaded"),
              "%s", msg);
    run_end(&r);
}

Test(loader, refuses_a_dependency_cycle_naming_its_members) {
    struct run r;
    run_chain(&r, "  - {name: fx_cyc1, path: " FX "fx_cyc1.so}\n"
                  "  - {name: fx_cyc2, path: " FX "fx_cyc2.so}\n");
    cr_assert_eq(r.rc_load, ADO_ECONFIG);
    cr_assert(strstr(th_diag_text(&r.t), "dependency cycle among: fx_cyc1 -> fx_cyc2"), "%s",
              th_diag_text(&r.t));
    run_end(&r);
}

Test(loader, a_required_plugin_failing_init_stops_the_start) {
    struct run r;
    run_chain(&r, "  - {name: fx_a, path: " FX "fx_a.so}\n"
                  "  - {name: broken, path: " FX "fx_init_fail.so}\n");
    cr_assert_eq(r.rc_load, 0);
    cr_assert_eq(r.rc_start, ADO_EPLUGIN);
    cr_assert(strstr(th_diag_text(&r.t), "plugin broken (" FX "fx_init_fail.so): init failed: "
                                         "I/O error"),
              "%s", th_diag_text(&r.t));
    ado_node_stop(r.t.node);
    r.t.started = 0;
    /* What had started is stopped again. */
    cr_assert_str_eq(r.order.text, "fx_a:init fx_a:start broken:init fx_a:stop");
    run_end(&r);
}

Test(loader, an_optional_plugin_that_fails_is_skipped_and_the_node_runs) {
    struct run r;
    run_chain(&r, "  - {name: fx_a, path: " FX "fx_a.so}\n"
                  "  - {name: broken, path: " FX "fx_init_fail.so, optional: true}\n"
                  "  - {name: ghost, path: /nonexistent/ghost.so, optional: true}\n");
    cr_assert_eq(r.rc_load, 0, "%s", th_diag_text(&r.t));
    cr_assert_eq(r.rc_start, 0, "%s", th_diag_text(&r.t));
    cr_assert_eq(r.t.node->nplugins, 2, "the missing optional one is not loaded");
    cr_assert_eq(r.t.node->plugins[0]->state, ADO_PS_RUNNING);
    cr_assert_eq(r.t.node->plugins[1]->state, ADO_PS_FAILED);
    run_end(&r);
}

struct okcount {
    int n;
};
static int count_ok(void *arg, const char *topic, const void *data, size_t len) {
    (void)topic, (void)data, (void)len;
    ((struct okcount *)arg)->n++;
    return 0;
}

Test(loader, a_plugin_whose_handlers_keep_failing_is_isolated_then_probed) {
    struct run r;
    run_chain(&r, "  - name: flaky\n    path: " FX "fx_flaky.so\n"
                  "    breaker: {failures: 3, cooldown: 50ms}\n");
    cr_assert_eq(r.rc_start, 0, "%s", th_diag_text(&r.t));
    struct ado_node *node = r.t.node;
    struct ado_plugin *p = node->plugins[0];
    struct okcount ok = {0};
    ado_bus_subscribe(node->bus, "ok.flaky", NULL, count_ok, &ok, NULL);
    ado_bus_publish(node->bus, "flaky.x", "good", 4);
    cr_assert_eq(ok.n, 1);
    for (int i = 0; i < 3; i++)
        ado_bus_publish(node->bus, "flaky.x", "fail", 4);
    cr_assert_eq(p->state, ADO_PS_ISOLATED);
    cr_assert_eq(p->breaker, ADO_BR_OPEN);
    cr_assert_str_eq(ado_plugin_state_name(p->state), "isolated");
    /* While open, its handlers are not called: the node goes on without it. */
    ado_bus_publish(node->bus, "flaky.x", "good", 4);
    cr_assert_eq(ok.n, 1);
    cr_assert_eq(p->failures_total, 3);
    /* After the cooldown one call goes through (half-open); success closes the breaker. */
    usleep(60 * 1000);
    uv_update_time(node->loop);
    ado_bus_publish(node->bus, "flaky.x", "good", 4);
    cr_assert_eq(ok.n, 2);
    cr_assert_eq(p->breaker, ADO_BR_CLOSED);
    cr_assert_eq(p->state, ADO_PS_RUNNING);
    /* A half-open probe that fails opens it again at once. */
    for (int i = 0; i < 3; i++)
        ado_bus_publish(node->bus, "flaky.x", "fail", 4);
    usleep(60 * 1000);
    uv_update_time(node->loop);
    ado_bus_publish(node->bus, "flaky.x", "fail", 4);
    cr_assert_eq(p->breaker, ADO_BR_OPEN);
    run_end(&r);
}

Test(loader, bare_names_are_found_on_the_plugin_path) {
    setenv("ADO_PLUGIN_PATH", ADO_BUILD_DIR "/tests/fixtures", 1);
    struct run r;
    run_chain(&r, "  - {name: fx_a, path: fx_a}\n");
    cr_assert_eq(r.rc_load, 0, "%s", th_diag_text(&r.t));
    cr_assert_eq(r.rc_start, 0, "%s", th_diag_text(&r.t));
    run_end(&r);
    unsetenv("ADO_PLUGIN_PATH");
}
