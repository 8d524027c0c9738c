/* Checkpoints: take / list / keep through RPC, the manifest's digests, restore gives back
 * the same digest (and keeps identity.key, and moves the bridge sequences on), a tampered
 * checkpoint is refused, and the divergence report between an L3 and its L2 (over the FAKE
 * fx_loop transport of tests/fixtures/bridge, made for tests). */
#include <dlfcn.h>
#include <jansson.h>
#include <lmdb.h>
#include <sys/wait.h>

#include "bridge.h"
#include "checkpoint.h"
#include "harness.h"
#include "metrics.h"
#include "rpc.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

#define FX ADO_BUILD_DIR "/tests/fixtures/bridge/fx_loop_transport.so"

static void start(struct th_node *t, const char *base, const char *name, const char *layer,
                  const char *peer, const char *peer_layer, const char *cp_extra) {
    char dir[512], yaml[4096];
    snprintf(dir, sizeof dir, "%s/%s", base, name);
    mkdir(dir, 0700);
    snprintf(yaml, sizeof yaml,
             "node:\n"
             "  name: %s\n"
             "  layer: %s\n"
             "  data_dir: %s/data\n"
             "  rpc: {listen: \"off\"}\n"
             "  store: {sync: false}\n"
             "  log: {level: error}\n"
             "  checkpoints: {%s}\n"
             "plugins:\n"
             "  - {name: fx, path: %s}\n"
             "bridge:\n"
             "  peers:\n"
             "    - {name: %s, layer: %s, transport: fxloop, address: \"fx://%s\"}\n",
             name, layer, dir, cp_extra ? cp_extra : "keep: 2", FX, peer, peer_layer, peer);
    int rc = th_node_start(t, dir, yaml);
    cr_assert_eq(rc, 0, "start %s: %s", name, th_diag_text(t));
}

static void put_state(struct th_node *t, const char *key, const char *val) {
    struct ado_plugin *fx = t->node->plugins[0];
    ado_db db;
    cr_assert_eq(ado_store_open_db(t->node->store, fx, "state", &db), 0);
    cr_assert_eq(ado_store_put(t->node->store, fx, db, key, strlen(key), val, strlen(val)), 0);
    ado_node_flush(t->node);
}

struct answer {
    char *text;
};

static void on_answer(void *arg, const char *resp) {
    ((struct answer *)arg)->text = strdup(resp);
}

static struct th_node *other;

static void spin2(struct th_node *t, int ms) {
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < end) {
        uv_update_time(&t->loop);
        uv_run(&t->loop, UV_RUN_NOWAIT);
        if (other) {
            uv_update_time(&other->loop);
            uv_run(&other->loop, UV_RUN_NOWAIT);
        }
        usleep(200);
    }
}

static json_t *rpc(struct th_node *t, const char *method, const char *params) {
    char req[1024];
    snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
             method, params);
    struct answer a = {0};
    cr_assert_eq(ado_rpc_call_local(t->node->rpc, req, "admin", on_answer, &a), 0);
    for (int i = 0; i < 3000 && !a.text; i++)
        spin2(t, 1);
    cr_assert(a.text);
    json_error_t e;
    json_t *j = json_loads(a.text, 0, &e);
    free(a.text);
    cr_assert(json_object_get(j, "result"), "%s: %s", method, json_dumps(j, JSON_COMPACT));
    json_t *r = json_incref(json_object_get(j, "result"));
    json_decref(j);
    return r;
}

static char *digest_of_take(struct th_node *t, char **path) {
    json_t *m = rpc(t, "node_checkpoint", "{}");
    char *d = strdup(json_string_value(json_object_get(m, "digest")));
    if (path)
        *path = strdup(json_string_value(json_object_get(m, "path")));
    json_decref(m);
    return d;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s", path);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

TestSuite(checkpoint, .timeout = 60);

Test(checkpoint, take_list_keep_and_manifest) {
    char *base = th_tmpdir();
    struct th_node t;
    start(&t, base, "a", "L3", "up", "L2", NULL);
    put_state(&t, "k1", "v1");
    json_t *m = rpc(&t, "node_checkpoint", "{}");
    const char *d1 = json_string_value(json_object_get(m, "digest"));
    cr_assert(d1 && strlen(d1) == 64);
    cr_assert_str_eq(json_string_value(json_object_get(m, "node")), "a");
    cr_assert(json_is_string(json_object_get(json_object_get(m, "plugins"), "fx")));
    cr_assert(json_object_get(json_object_get(m, "databases"), "fx/state"));
    cr_assert_null(json_object_get(json_object_get(m, "databases"), "@bridge.outbox"),
                   "kernel databases are not part of the digest");
    /* The manifest on disk says the same, and the data hashes to it. */
    const char *path = json_string_value(json_object_get(m, "path"));
    json_t *dg;
    char err[512];
    cr_assert_eq(ado_checkpoint_digest(path, &dg, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(json_string_value(json_object_get(dg, "digest")), d1);
    json_decref(dg);
    /* Same data, same digest; other data, another digest. */
    char *d2 = digest_of_take(&t, NULL);
    cr_assert_str_eq(d2, d1);
    put_state(&t, "k2", "v2");
    char *d3 = digest_of_take(&t, NULL);
    cr_assert_str_neq(d3, d1);
    json_decref(m);
    json_t *l = rpc(&t, "node_checkpoints", "{}");
    json_t *cps = json_object_get(l, "checkpoints");
    cr_assert_eq(json_array_size(cps), 2, "kept to node.checkpoints.keep");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cps, 1), "digest")), d3,
                     "newest last");
    cr_assert(json_object_get(l, "last_agreed"));
    cr_assert(json_object_get(l, "divergence"));
    json_decref(l);
    free(d2);
    free(d3);
    th_node_stop(&t);
    th_rmrf(base);
    free(base);
}

Test(checkpoint, scheduled) {
    char *base = th_tmpdir();
    struct th_node t;
    start(&t, base, "a", "L3", "up", "L2", "keep: 2, every: 100ms");
    spin2(&t, 450);
    json_t *l = rpc(&t, "node_checkpoints", "{}");
    cr_assert_eq(json_array_size(json_object_get(l, "checkpoints")), 2, "taken and pruned");
    cr_assert_eq(json_integer_value(json_object_get(l, "every_ms")), 100);
    json_decref(l);
    th_node_stop(&t);
    th_rmrf(base);
    free(base);
}

Test(checkpoint, restore_gives_the_same_digest_and_refuses_tampering) {
    char *base = th_tmpdir();
    struct th_node t;
    start(&t, base, "a", "L3", "up", "L2", "keep: 10");
    put_state(&t, "k1", "v1");
    char *cpath;
    char *d1 = digest_of_take(&t, &cpath);
    put_state(&t, "k2", "changed after the checkpoint");
    char *d2 = digest_of_take(&t, NULL);
    cr_assert_str_neq(d1, d2);
    char idpath[600], data_dir[600];
    snprintf(data_dir, sizeof data_dir, "%s/a/data", base);
    snprintf(idpath, sizeof idpath, "%s/identity.key", data_dir);
    char *id_before = read_text(idpath);
    th_node_stop(&t);

    char err[512];
    cr_assert_eq(ado_checkpoint_restore(cpath, data_dir, err, sizeof err), 0, "%s", err);
    char *id_after = read_text(idpath);
    cr_assert_str_eq(id_before, id_after, "identity.key kept");

    start(&t, base, "a", "L3", "up", "L2", "keep: 10");
    char *d3 = digest_of_take(&t, NULL);
    cr_assert_str_eq(d3, d1, "the restored node has the checkpoint's state");
    struct ado_bridge_peer_info pi;
    cr_assert_eq(ado_bridge_peer_info(t.node->bridge, "up", &pi), 0);
    cr_assert_gt(pi.next_seq, 1000000000000ull, "sequences moved past the old ones");
    th_node_stop(&t);

    /* A manifest whose digest was edited is refused. */
    char mpath[700];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", cpath);
    json_error_t e;
    json_t *man = json_load_file(mpath, 0, &e);
    json_object_set_new(man, "digest", json_string(d2));
    json_dump_file(man, mpath, JSON_INDENT(2));
    json_decref(man);
    int rc = ado_checkpoint_restore(cpath, data_dir, err, sizeof err);
    cr_assert_eq(rc, ADO_EPERM, "%d %s", rc, err);
    cr_assert(strstr(err, "does not match"), "%s", err);
    /* Put it back, then change the data instead. */
    man = json_load_file(mpath, 0, &e);
    json_object_set_new(man, "digest", json_string(d1));
    json_dump_file(man, mpath, JSON_INDENT(2));
    json_decref(man);
    cr_assert_eq(ado_checkpoint_restore(cpath, data_dir, err, sizeof err), 0, "%s", err);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 64);
    cr_assert_eq(mdb_env_open(env, cpath, MDB_NOLOCK, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "fx/state", 0, &dbi), 0);
    MDB_val k = {2, "k1"}, v = {6, "forged"};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    rc = ado_checkpoint_restore(cpath, data_dir, err, sizeof err);
    cr_assert_eq(rc, ADO_EPERM, "tampered data refused: %d %s", rc, err);
    free(d1);
    free(d2);
    free(d3);
    free(cpath);
    free(id_before);
    free(id_after);
    th_rmrf(base);
    free(base);
}

Test(checkpoint, restore_refused_while_a_node_runs) {
    char *base = th_tmpdir();
    struct th_node t;
    start(&t, base, "a", "L3", "up", "L2", NULL);
    char *cpath;
    free(digest_of_take(&t, &cpath));
    th_node_stop(&t);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        start(&t, base, "a", "L3", "up", "L2", NULL);
        char c = 1;
        cr_assert_eq(write(fds[1], &c, 1), 1);
        sleep(5);
        _exit(0);
    }
    char c;
    cr_assert_eq(read(fds[0], &c, 1), 1);
    char data_dir[600], err[512];
    snprintf(data_dir, sizeof data_dir, "%s/a/data", base);
    int rc = ado_checkpoint_restore(cpath, data_dir, err, sizeof err);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(rc, ADO_EBUSY, "%d %s", rc, err);
    cr_assert_eq(ado_checkpoint_restore(cpath, data_dir, err, sizeof err), 0, "%s", err);
    /* By id, through the config's folder. */
    char out[1024];
    const char *id = strrchr(cpath, '/') + 1;
    struct ado_config *cfg;
    struct ado_diag d;
    ado_diag_init(&d);
    char cfgpath[600];
    snprintf(cfgpath, sizeof cfgpath, "%s/a/chain.yaml", base);
    cr_assert_eq(ado_config_load(cfgpath, &cfg, &d), 0);
    cr_assert_eq(ado_checkpoint_resolve(cfg, id, out, sizeof out), 0);
    cr_assert_str_eq(out, cpath);
    cr_assert_eq(ado_checkpoint_resolve(cfg, "nope", out, sizeof out), ADO_ENOTFOUND);
    ado_config_free(cfg);
    ado_diag_fini(&d);
    free(cpath);
    th_rmrf(base);
    free(base);
}

/* ---- divergence: a (L3) reports to b (L2), the authority --------------------------------- */

static json_t *last_manifest_of(struct th_node *t) {
    json_t *l = rpc(t, "node_checkpoints", "{}");
    json_t *a = json_object_get(l, "checkpoints");
    json_t *m = json_incref(json_array_get(a, json_array_size(a) - 1));
    json_decref(l);
    return m;
}

static void expect(struct th_node *b, const char *node, const char *id, const char *digest) {
    char buf[512];
    snprintf(buf, sizeof buf, "{\"node\":\"%s\",\"checkpoint\":\"%s\",\"digest\":\"%s\"}", node, id,
             digest);
    cr_assert_eq(ado_bus_publish(b->node->bus, "checkpoint.expect", buf, strlen(buf)), 0);
}

Test(checkpoint, divergence_reported_by_the_upper_layer) {
    char *base = th_tmpdir();
    struct th_node a, b;
    start(&a, base, "a", "L3", "b", "L2", "keep: 10");
    start(&b, base, "b", "L2", "a", "L3", NULL);
    other = &b;
    cr_assert_str_eq(ado_bridge_upper_peer(a.node->bridge), "b");
    cr_assert_null(ado_bridge_upper_peer(b.node->bridge), "L2 has no upper peer here");
    put_state(&a, "k", "1");
    json_t *m1 = rpc(&a, "node_checkpoint", "{}");
    const char *id1 = json_string_value(json_object_get(m1, "id"));
    spin2(&a, 100);
    /* b got the report; it now learns what it expected: the same digest. */
    expect(&b, "a", id1, json_string_value(json_object_get(m1, "digest")));
    spin2(&a, 100);
    json_t *l = rpc(&a, "node_checkpoints", "{}");
    cr_assert_str_eq(json_string_value(json_object_get(l, "last_agreed")), id1);
    cr_assert(json_is_null(json_object_get(l, "divergence")));
    json_decref(l);

    /* The next checkpoint: b expects something else before a reports. */
    put_state(&a, "k", "2");
    usleep(2000);
    json_t *m2 = rpc(&a, "node_checkpoint", "{}");
    const char *id2 = json_string_value(json_object_get(m2, "id"));
    expect(&b, "a", id2, "00ff");
    spin2(&a, 100);
    l = rpc(&a, "node_checkpoints", "{}");
    json_t *div = json_object_get(l, "divergence");
    cr_assert(json_is_object(div), "%s", json_dumps(l, JSON_COMPACT));
    cr_assert_str_eq(json_string_value(json_object_get(div, "checkpoint")), id2);
    cr_assert_str_eq(json_string_value(json_object_get(div, "expected")), "00ff");
    cr_assert_str_eq(json_string_value(json_object_get(l, "last_agreed")), id1,
                     "the checkpoint to restore");
    json_decref(l);
    json_t *peers = rpc(&a, "bridge_peers", "{}");
    json_t *cpst = json_object_get(json_array_get(peers, 0), "checkpoint");
    cr_assert(json_is_object(json_object_get(cpst, "divergence")));
    json_decref(peers);
    size_t mlen;
    char *metrics = ado_metrics_render(a.node->metrics, &mlen);
    cr_assert(strstr(metrics, "ado_checkpoint_divergence_total 1"), "%s", metrics);
    free(metrics);
    json_decref(m1);
    json_decref(m2);
    (void)last_manifest_of;
    other = NULL;
    th_node_stop(&a);
    th_node_stop(&b);
    th_rmrf(base);
    free(base);
}
