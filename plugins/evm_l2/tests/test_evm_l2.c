/* evm_l2 against real anvil processes.
 *
 * The kernel's bridge core is still a placeholder in this tree (a config with bridge peers
 * is refused), so these tests stand in for it: a real in-process node loads evm_l2.so, and
 * the plugin gets the kernel's api table with the five bridge entries replaced by a test
 * bridge that records the transport's ops, acks, failures and peer states. The tests then
 * drive the transport exactly as the core will: peer_open, send (again after a restart, as
 * the outbox re-delivers unacked messages), query. Everything else is real: the node's loop,
 * store (LMDB), bus, timers; anvil; the contracts deployed by contracts/scripts/deploy.mjs.
 * Anvil runs with automine off after the deployment and the tests mine blocks themselves. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <ado_eth/abi.h>
#include <ado_eth/common.h>

#include "anvil.h"
#include "bridge.h"
#include "bus.h"
#include "evm_l2.h"
#include "harness.h"
#include "rpc.h"

#define PLUGIN_SO  ADO_BUILD_DIR "/plugins/evm_l2.so"
#define SUBMIT_SIG "submitRoot(uint64,bytes32,uint256,bytes32,uint32)"
#define ROOT_SUBMITTED                                                                             \
    "RootSubmitted(uint64 indexed epoch, uint32 attempt, bytes32 root, uint256 total, "            \
    "bytes32 dataHash, uint32 chunkCount)"
#define EMPTY_HASH "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"

/* ---- the test bridge ---------------------------------------------------------------------- */

struct tb {
    struct ado_api api;
    const struct ado_transport *ops;
    void *arg;
    uint64_t acked[256];
    size_t nacked;
    uint64_t failed[64];
    char fail_reason[64][400];
    size_t nfailed;
    int up;
    char reason[400];
    int (*real_init)(ado_ctx *, const struct ado_api *, void **);
    struct ado_plugin_desc desc;
    char events[16][2048];
    size_t nevents;
};

static struct tb *TB; /* the api callbacks carry no argument of their own */

static int tb_register(ado_ctx *ctx, const char *name, const struct ado_transport *ops, void *arg) {
    (void)ctx;
    cr_assert_str_eq(name, "evm_l2");
    TB->ops = ops;
    TB->arg = arg;
    return 0;
}

static void tb_acked(ado_ctx *ctx, const char *peer, uint64_t seq) {
    (void)ctx, (void)peer;
    if (TB->nacked < 256)
        TB->acked[TB->nacked++] = seq;
}

static void tb_failed(ado_ctx *ctx, const char *peer, uint64_t seq, const char *reason) {
    (void)ctx, (void)peer;
    if (TB->nfailed < 64) {
        snprintf(TB->fail_reason[TB->nfailed], 400, "%s", reason ? reason : "");
        TB->failed[TB->nfailed++] = seq;
    }
}

static void tb_state(ado_ctx *ctx, const char *peer, int up, const char *reason) {
    (void)ctx, (void)peer;
    TB->up = up;
    snprintf(TB->reason, sizeof TB->reason, "%s", reason ? reason : "");
}

static int tb_init(ado_ctx *ctx, const struct ado_api *api, void **state) {
    TB->api = *api;
    TB->api.bridge_transport_register = tb_register;
    TB->api.bridge_acked = tb_acked;
    TB->api.bridge_failed = tb_failed;
    TB->api.bridge_peer_state = tb_state;
    return TB->real_init(ctx, &TB->api, state);
}

static int on_event(void *arg, const char *topic, const void *data, size_t len) {
    (void)arg, (void)topic;
    if (TB->nevents < 16)
        snprintf(TB->events[TB->nevents++], 2048, "%.*s", (int)len, (const char *)data);
    return 0;
}

/* Start a node whose only plugin is evm_l2 with `plugin_cfg` (YAML flow map text). */
static int node_start(struct th_node *t, const char *dir, const char *plugin_cfg) {
    memset(t, 0, sizeof *t);
    ado_diag_init(&t->diag);
    t->dir = strdup(dir);
    uv_loop_init(&t->loop);
    char yaml[4096];
    snprintf(
        yaml, sizeof yaml,
        "node:\n  name: l3\n  data_dir: %s/data\n  rpc: {listen: \"off\"}\n  log: {level: warn}\n"
        "plugins:\n  - name: evm_l2\n    path: %s\n    config: %s\n",
        dir, PLUGIN_SO, plugin_cfg);
    char *path = th_write(dir, "chain.yaml", yaml);
    int rc = ado_config_load(path, &t->cfg, &t->diag);
    free(path);
    if (rc < 0)
        return rc;
    t->node = ado_node_new(&t->loop);
    t->node->log.level = t->cfg->log_level;
    rc = ado_node_load(t->node, t->cfg, &t->diag);
    if (rc < 0)
        return rc;
    struct ado_plugin *p = t->node->plugins[0];
    TB->desc = *p->desc;
    TB->real_init = TB->desc.init;
    TB->desc.init = tb_init;
    p->desc = &TB->desc;
    rc = ado_node_start(t->node, &t->diag);
    t->started = 1;
    if (rc == 0) {
        uint64_t id;
        ado_bus_subscribe(t->node->bus, "bridge.in.l2.>", NULL, on_event, NULL, &id);
    }
    return rc;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

struct fx {
    struct anvil a;
    struct th_node t;
    char *dir;
    char settlement[64];
    char options[2048];
    uint64_t n0; /* the account's nonce after the deployment */
};

static int fx_peer_up(void *arg) {
    (void)arg;
    return TB->up;
}

static struct evm_peer *fx_peer(void) {
    return ((struct evm *)TB->arg)->peers;
}

/* anvil (automine for the deployment, then manual), contracts deployed by key 0. */
static void fx_anvil(struct fx *f, const char *anvil_args) {
    memset(f, 0, sizeof *f);
    TB = calloc(1, sizeof *TB);
    f->dir = th_tmpdir();
    cr_assert_eq(anvil_start(&f->a, anvil_args, 0), 0, "anvil did not start");
    json_t *d = anvil_deploy(&f->a, ANVIL_KEY0);
    cr_assert(d, "deploy.mjs failed");
    snprintf(f->settlement, sizeof f->settlement, "%s",
             json_string_value(json_object_get(d, "settlement")));
    json_decref(d);
    json_decref(anvil_rpc(&f->a, "evm_setAutomine", json_pack("[b]", 0), NULL));
    f->n0 = anvil_u64(&f->a, "eth_getTransactionCount", json_pack("[s,s]", ANVIL_ADDR0, "latest"));
}

static const char *fx_cfg(struct fx *f, const char *extra) {
    static char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{chain_id: 31337, key: \"0x%s\", confirmations: 2, poll_interval: 50ms, "
             "contracts: {settlement: \"%s\"}, "
             "calls: {submit: {to: settlement, signature: \"" SUBMIT_SIG "\"}}%s%s}",
             ANVIL_KEY0, f->settlement, extra ? ", " : "", extra ? extra : "");
    return cfg;
}

static void fx_node(struct fx *f, const char *extra) {
    int rc = node_start(&f->t, f->dir, fx_cfg(f, extra));
    cr_assert_eq(rc, 0, "node start: %s", th_diag_text(&f->t));
    cr_assert(TB->ops, "transport registered");
}

static void fx_open(struct fx *f, const char *options) {
    cr_assert_eq(TB->ops->peer_open(TB->arg, "l2", "L2", f->a.url, "", options ? options : "{}"),
                 0);
    cr_assert(th_run_until(&f->t.loop, fx_peer_up, NULL, 10000), "peer up: %s", TB->reason);
}

static void fx_stop_node(struct fx *f) {
    if (f->t.node)
        th_node_stop(&f->t);
}

static void fx_done(struct fx *f) {
    fx_stop_node(f);
    anvil_stop(&f->a);
    th_rmrf(f->dir);
    free(f->dir);
    free(TB);
    TB = NULL;
}

/* submitRoot(epoch, root, total, EMPTY_HASH, 0) through the call alias. */
static int send_submit(uint64_t seq, uint64_t epoch) {
    char payload[512];
    snprintf(payload, sizeof payload,
             "{\"call\":\"submit\",\"args\":[%llu,\"0x%064llx\",\"1000\",\"" EMPTY_HASH "\",0]}",
             (unsigned long long)epoch, (unsigned long long)epoch + 1);
    struct ado_bridge_msg m = {
        .origin = "l3", .seq = seq, .topic = "settle", .payload = payload, .len = strlen(payload)};
    return TB->ops->send(TB->arg, "l2", &m);
}

static uint64_t next_epoch(struct fx *f) {
    uint8_t sel[4];
    char data[16] = "0x";
    ado_abi_selector("nextEpoch()", sel, NULL);
    ado_eth_hex_encode(sel, 4, data + 2);
    json_t *r =
        anvil_rpc(&f->a, "eth_call",
                  json_pack("[{s:s,s:s},s]", "to", f->settlement, "data", data, "latest"), NULL);
    uint64_t v = r ? strtoull(json_string_value(r) + 2, NULL, 16) : (uint64_t)-1;
    json_decref(r);
    return v;
}

static uint64_t pool_nonce(struct fx *f) {
    return anvil_u64(&f->a, "eth_getTransactionCount", json_pack("[s,s]", ANVIL_ADDR0, "pending"));
}

static uint64_t mined_nonce(struct fx *f) {
    return anvil_u64(&f->a, "eth_getTransactionCount", json_pack("[s,s]", ANVIL_ADDR0, "latest"));
}

struct wait_n {
    struct fx *f;
    size_t n;
    uint64_t nonce;
};

static int acked_n(void *arg) {
    return TB->nacked >= ((struct wait_n *)arg)->n;
}

static int failed_n(void *arg) {
    return TB->nfailed >= ((struct wait_n *)arg)->n;
}

static int pool_has(void *arg) {
    struct wait_n *w = arg;
    return pool_nonce(w->f) >= w->nonce;
}

static int peer_head_at_least(void *arg) {
    struct wait_n *w = arg;
    return fx_peer()->head >= w->nonce;
}

/* Mine one block at a time until `n` acks (or failures) arrived. */
static int mine_until(struct fx *f, int (*cond)(void *), size_t n, int max_blocks) {
    struct wait_n w = {f, n, 0};
    for (int i = 0; i < max_blocks && !cond(&w); i++) {
        uint64_t h = anvil_u64(&f->a, "eth_blockNumber", NULL);
        anvil_mine(&f->a, 1);
        struct wait_n hw = {f, 0, h + 1};
        th_run_until(&f->t.loop, peer_head_at_least, &hw, 3000);
        th_run_until(&f->t.loop, cond, &w, 200);
    }
    return cond(&w);
}

/* ---- tests -------------------------------------------------------------------------------- */

Test(evm_l2, call_through_the_bridge_is_signed_mined_and_acked_after_confirmations, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    fx_node(&f, NULL);
    fx_open(&f, NULL);
    cr_assert_eq(send_submit(1, 0), 0);
    struct wait_n w = {&f, 0, f.n0 + 1};
    cr_assert(th_run_until(&f.t.loop, pool_has, &w, 5000), "tx reached anvil's pool");
    /* The tx anvil holds was signed by the plugin's key: anvil recovered the sender. */
    struct evm_tx *t = fx_peer()->txs;
    cr_assert(t);
    json_t *tx = anvil_rpc(&f.a, "eth_getTransactionByHash", json_pack("[s]", t->hashes[0]), NULL);
    cr_assert_str_eq(json_string_value(json_object_get(tx, "from")),
                     "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    cr_assert_str_eq(json_string_value(json_object_get(tx, "type")), "0x2");
    json_decref(tx);
    /* One block: mined, one confirmation, not acked yet (confirmations: 2). */
    anvil_mine(&f.a, 1);
    struct wait_n hw = {&f, 0, anvil_u64(&f.a, "eth_blockNumber", NULL)};
    cr_assert(th_run_until(&f.t.loop, peer_head_at_least, &hw, 3000));
    th_run_until(&f.t.loop, acked_n, &(struct wait_n){&f, 1, 0}, 300);
    cr_assert_eq(TB->nacked, 0, "acked with one confirmation");
    cr_assert_eq(next_epoch(&f), 1, "applied on L2");
    cr_assert(mine_until(&f, acked_n, 1, 3));
    cr_assert_eq(TB->acked[0], 1);
    cr_assert_eq(TB->nfailed, 0);
    cr_assert_eq(fx_peer()->ntx, 0);
    cr_assert_eq(mined_nonce(&f), f.n0 + 1);
    /* A re-send of an acked seq after the ack is a new message for the core; not tested. */
    fx_done(&f);
}

Test(evm_l2, reverted_call_fails_with_its_reason_and_frees_the_nonce_order, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    fx_node(&f, NULL);
    fx_open(&f, NULL);
    uint64_t n0 = mined_nonce(&f);
    cr_assert_eq(send_submit(1, 5), 0); /* epoch 5 while the contract expects 0 */
    struct wait_n w = {&f, 0, f.n0 + 1};
    cr_assert(th_run_until(&f.t.loop, pool_has, &w, 5000));
    cr_assert(mine_until(&f, failed_n, 1, 5), "failure reported");
    cr_assert_eq(TB->failed[0], 1);
    cr_assert(strstr(TB->fail_reason[0], "reverted"), "%s", TB->fail_reason[0]);
    /* EpochOutOfOrder(uint64,uint64) selector */
    cr_assert(strstr(TB->fail_reason[0], "custom error 0x"), "%s", TB->fail_reason[0]);
    cr_assert_eq(TB->nacked, 0);
    /* The next message uses the next nonce and goes through. */
    cr_assert_eq(send_submit(2, 0), 0);
    cr_assert(mine_until(&f, acked_n, 1, 5));
    cr_assert_eq(mined_nonce(&f), n0 + 2, "one tx each, no retry of the reverted nonce");
    cr_assert_eq(next_epoch(&f), 1);
    fx_done(&f);
}

static int mined_cond(void *arg) {
    (void)arg;
    return fx_peer()->txs && fx_peer()->txs->have_rcpt;
}

static int reorged(void *arg) {
    (void)arg;
    return fx_peer()->n_reorgs > 0;
}

static int replaced(void *arg) {
    (void)arg;
    return fx_peer()->n_replaced > 0;
}

static int peer_down(void *arg) {
    (void)arg;
    return !TB->up;
}

static int events_n(void *arg) {
    return TB->nevents >= ((struct wait_n *)arg)->n;
}

Test(evm_l2, reorg_that_drops_the_receipt_sends_the_tx_again, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    fx_node(&f, NULL);
    fx_open(&f, NULL);
    json_t *snap = anvil_rpc(&f.a, "evm_snapshot", NULL, NULL);
    cr_assert(snap);
    cr_assert_eq(send_submit(1, 0), 0);
    struct wait_n w = {&f, 0, f.n0 + 1};
    cr_assert(th_run_until(&f.t.loop, pool_has, &w, 5000));
    anvil_mine(&f.a, 1);
    cr_assert(th_run_until(&f.t.loop, mined_cond, NULL, 5000), "receipt seen");
    cr_assert_eq(TB->nacked, 0, "one confirmation only");
    /* The block goes away, and with it the receipt. */
    json_t *ok = anvil_rpc(&f.a, "evm_revert", json_pack("[O]", snap), NULL);
    cr_assert(json_is_true(ok));
    json_decref(ok);
    json_decref(snap);
    cr_assert_eq(next_epoch(&f), 0);
    cr_assert(th_run_until(&f.t.loop, reorged, NULL, 5000), "reorg noticed");
    cr_assert(mine_until(&f, acked_n, 1, 6), "acked after the re-send");
    cr_assert_eq(next_epoch(&f), 1, "applied once");
    cr_assert_eq(mined_nonce(&f), f.n0 + 1);
    cr_assert_eq(TB->nfailed, 0);
    fx_done(&f);
}

Test(evm_l2, stuck_tx_is_replaced_with_higher_fees_and_the_same_nonce, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    fx_node(&f, "stuck_timeout: 300ms");
    fx_open(&f, NULL);
    cr_assert_eq(send_submit(1, 0), 0);
    struct wait_n w = {&f, 0, f.n0 + 1};
    cr_assert(th_run_until(&f.t.loop, pool_has, &w, 5000));
    cr_assert(th_run_until(&f.t.loop, replaced, NULL, 5000), "replacement sent");
    struct evm_tx *t = fx_peer()->txs;
    cr_assert(t && t->nhash >= 2);
    char first[EVM_HASH_HEX], last[EVM_HASH_HEX];
    memcpy(first, t->hashes[0], EVM_HASH_HEX);
    /* Let the replacement reach anvil before mining. */
    th_run_until(&f.t.loop, peer_down, NULL, 300);
    memcpy(last, t->hashes[t->nhash - 1], EVM_HASH_HEX);
    cr_assert(mine_until(&f, acked_n, 1, 6));
    cr_assert_eq(mined_nonce(&f), f.n0 + 1, "one transaction for the nonce");
    cr_assert_eq(next_epoch(&f), 1);
    json_t *r1 = anvil_rpc(&f.a, "eth_getTransactionReceipt", json_pack("[s]", first), NULL);
    cr_assert(!r1 || json_is_null(r1), "the first version was not mined");
    json_decref(r1);
    (void)last;
    fx_done(&f);
}

Test(evm_l2, l2_event_is_decoded_and_published_once_on_the_bus, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    fx_node(&f, "events: [{contract: settlement, signature: \"" ROOT_SUBMITTED "\"}]");
    fx_open(&f, NULL);
    cr_assert_eq(send_submit(1, 0), 0);
    cr_assert(mine_until(&f, acked_n, 1, 6));
    struct wait_n w = {&f, 1, 0};
    cr_assert(mine_until(&f, events_n, 1, 3), "event published");
    json_t *ev = json_loads(TB->events[0], 0, NULL);
    cr_assert(ev, "%s", TB->events[0]);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "event")), "RootSubmitted");
    json_t *args = json_object_get(ev, "args");
    cr_assert_str_eq(json_string_value(json_object_get(args, "epoch")), "0", "%s", TB->events[0]);
    cr_assert_str_eq(json_string_value(json_object_get(args, "attempt")), "1");
    cr_assert_str_eq(json_string_value(json_object_get(args, "total")), "1000");
    cr_assert_str_eq(json_string_value(json_object_get(args, "root")),
                     "0x0000000000000000000000000000000000000000000000000000000000000001");
    cr_assert_str_eq(json_string_value(json_object_get(ev, "contract")), f.settlement);
    json_decref(ev);
    /* More blocks: no second publication. */
    anvil_mine(&f.a, 3);
    w.n = 2;
    th_run_until(&f.t.loop, events_n, &w, 500);
    cr_assert_eq(TB->nevents, 1);
    fx_done(&f);
}

Test(evm_l2, chain_id_mismatch_keeps_the_peer_down_and_refuses_to_send, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    fx_node(&f, NULL);
    cr_assert_eq(TB->ops->peer_open(TB->arg, "l2", "L2", f.a.url, "", "{\"chain_id\": 999}"), 0);
    th_run_until(&f.t.loop, fx_peer_up, NULL, 1000);
    cr_assert_eq(TB->up, 0);
    cr_assert(strstr(TB->reason, "chain id mismatch"), "%s", TB->reason);
    cr_assert(strstr(TB->reason, "31337"), "%s", TB->reason);
    cr_assert_lt(send_submit(1, 0), 0);
    cr_assert_eq(pool_nonce(&f), f.n0);
    fx_done(&f);
}

Test(evm_l2, key_file_readable_by_others_is_refused, .timeout = 60) {
    struct fx f;
    memset(&f, 0, sizeof f);
    TB = calloc(1, sizeof *TB);
    f.dir = th_tmpdir();
    char *kf = th_write(f.dir, "l2.key", "0x" ANVIL_KEY0 "\n");
    chmod(kf, 0644);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{chain_id: 31337, key_file: \"%s\"}", kf);
    cr_assert_neq(node_start(&f.t, f.dir, cfg), 0, "node must refuse the key file");
    th_node_stop(&f.t);
    chmod(kf, 0600);
    free(TB);
    TB = calloc(1, sizeof *TB);
    cr_assert_eq(node_start(&f.t, f.dir, cfg), 0, "%s", th_diag_text(&f.t));
    /* Per-peer key files are checked when the peer opens. */
    chmod(kf, 0640);
    char opt[600];
    snprintf(opt, sizeof opt, "{\"key_file\": \"%s\"}", kf);
    cr_assert_eq(TB->ops->peer_open(TB->arg, "l2", "L2", "http://127.0.0.1:1", "", opt),
                 ADO_ECONFIG);
    cr_assert(strstr(TB->reason, "chmod 600"), "%s", TB->reason);
    cr_assert(!strstr(TB->reason, ANVIL_KEY0));
    free(kf);
    fx_done(&f);
}

struct qres {
    int done, status;
    char resp[512];
};

static void on_q(void *arg, int status, const char *response) {
    struct qres *q = arg;
    q->done = 1;
    q->status = status;
    snprintf(q->resp, sizeof q->resp, "%s", response ? response : "");
}

static int q_done(void *arg) {
    return ((struct qres *)arg)->done;
}

Test(evm_l2, query_forwards_read_only_requests_and_refuses_sending_ones, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    fx_node(&f, NULL);
    fx_open(&f, NULL);
    struct qres q = {0};
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"eth_chainId\",\"params\":[]}";
    cr_assert_eq(TB->ops->query(TB->arg, "l2", req, strlen(req), 5000, on_q, &q), 0);
    cr_assert(th_run_until(&f.t.loop, q_done, &q, 5000));
    cr_assert_eq(q.status, 0);
    cr_assert(strstr(q.resp, "\"0x7a69\"") && strstr(q.resp, "\"id\":7"), "%s", q.resp);
    const char *bad = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_sendRawTransaction\","
                      "\"params\":[\"0x00\"]}";
    cr_assert_eq(TB->ops->query(TB->arg, "l2", bad, strlen(bad), 5000, on_q, &q), ADO_EPERM);
    fx_done(&f);
}

static void anvil_restart_case(int ws) {
    struct fx f;
    memset(&f, 0, sizeof f);
    char *dir = th_tmpdir();
    char args[600];
    snprintf(args, sizeof args, "--state %s/anvil-state.json", dir);
    fx_anvil(&f, args);
    th_rmrf(f.dir);
    free(f.dir);
    f.dir = dir;
    fx_node(&f, NULL);
    char url[80];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d", ws ? "ws" : "http", f.a.port);
    cr_assert_eq(TB->ops->peer_open(TB->arg, "l2", "L2", url, "", "{}"), 0);
    cr_assert(th_run_until(&f.t.loop, fx_peer_up, NULL, 10000), "peer up: %s", TB->reason);
    cr_assert_eq(send_submit(1, 0), 0);
    struct wait_n w = {&f, 0, f.n0 + 1};
    cr_assert(th_run_until(&f.t.loop, pool_has, &w, 5000));
    /* anvil goes away (SIGTERM: it writes its state file); its pool is lost. */
    anvil_stop(&f.a);
    cr_assert(th_run_until(&f.t.loop, peer_down, NULL, 15000), "peer reported down");
    cr_assert(strstr(TB->reason, "unreachable"), "%s", TB->reason);
    /* While it is down a send fails now: the bridge core retries it with backoff. */
    cr_assert_lt(send_submit(2, 1), 0);
    snprintf(args, sizeof args, "--state %s/anvil-state.json --no-mining", dir);
    cr_assert_eq(anvil_start(&f.a, args, 1), 0, "anvil restarted on the same port");
    cr_assert(th_run_until(&f.t.loop, fx_peer_up, NULL, 15000), "peer up again");
    cr_assert_eq(send_submit(2, 1), 0);
    cr_assert(mine_until(&f, acked_n, 2, 10), "both delivered (acked %zu)", TB->nacked);
    cr_assert_eq(next_epoch(&f), 2);
    cr_assert_eq(mined_nonce(&f), f.n0 + 2);
    cr_assert_eq(TB->nfailed, 0);
    fx_done(&f);
}

Test(evm_l2, anvil_killed_and_restarted_then_the_message_is_delivered, .timeout = 90) {
    anvil_restart_case(0);
}

Test(evm_l2, anvil_killed_and_restarted_over_websocket_then_the_message_is_delivered,
     .timeout = 90) {
    anvil_restart_case(1);
}

Test(evm_l2, over_websocket_new_heads_wake_the_peer_long_before_its_poll_interval, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    fx_node(&f, NULL);
    char ws[80];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d", f.a.port);
    cr_assert_eq(TB->ops->peer_open(TB->arg, "l2", "L2", ws, "", "{\"poll_interval\": \"30s\"}"),
                 0);
    cr_assert(th_run_until(&f.t.loop, fx_peer_up, NULL, 10000), "peer up: %s", TB->reason);
    cr_assert_eq(send_submit(1, 0), 0);
    struct wait_n w = {&f, 0, f.n0 + 1};
    cr_assert(th_run_until(&f.t.loop, pool_has, &w, 5000), "broadcast over ws");
    /* Polling every 30 s would not see these blocks in time: the newHeads subscription does. */
    anvil_mine(&f.a, 1);
    cr_assert(th_run_until(&f.t.loop, mined_cond, NULL, 3000), "receipt seen after a new head");
    anvil_mine(&f.a, 1);
    struct wait_n a = {&f, 1, 0};
    cr_assert(th_run_until(&f.t.loop, acked_n, &a, 3000), "acked after the second head");
    cr_assert_geq(fx_peer()->n_notifications, 2);
    cr_assert_eq(next_epoch(&f), 1);
    /* Requests keep their own ids over the shared socket. */
    struct qres q = {0};
    const char *req =
        "{\"jsonrpc\":\"2.0\",\"id\":\"mine\",\"method\":\"eth_chainId\",\"params\":[]}";
    cr_assert_eq(TB->ops->query(TB->arg, "l2", req, strlen(req), 5000, on_q, &q), 0);
    cr_assert(th_run_until(&f.t.loop, q_done, &q, 5000));
    cr_assert(strstr(q.resp, "\"id\":\"mine\"") && strstr(q.resp, "0x7a69"), "%s", q.resp);
    fx_done(&f);
}

/* ---- through the kernel's bridge core ---------------------------------------------------- */

/* A node with evm_l2 and the bridge peer `l2` on anvil; the real bridge core drives it. */
static int real_start(struct th_node *t, struct fx *f, const char *extra) {
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "node:\n  name: l3\n  data_dir: %s/data\n  rpc: {listen: \"off\"}\n"
             "  log: {level: warn}\n"
             "plugins:\n  - name: evm_l2\n    path: %s\n    config: %s\n"
             "bridge:\n  peers:\n    - name: l2\n      layer: L2\n      transport: evm_l2\n"
             "      address: %s\n      options: {confirmations: 2}\n",
             f->dir, PLUGIN_SO, fx_cfg(f, extra), f->a.url);
    int rc = th_node_start(t, f->dir, yaml);
    if (rc == 0) {
        /* L2 confirmations take longer than the kernel's default ack timeout (5 s). */
        ado_bridge_tune(t->node->bridge, 0, 60000);
        uint64_t id;
        ado_bus_subscribe(t->node->bus, "bridge.in.l2.>", NULL, on_event, NULL, &id);
    }
    return rc;
}

static int bridge_send_submit(struct th_node *t, uint64_t epoch) {
    char payload[512];
    snprintf(payload, sizeof payload,
             "{\"to\":\"settlement\",\"signature\":\"" SUBMIT_SIG
             "\",\"args\":[%llu,\"0x%064llx\",\"1000\",\"" EMPTY_HASH "\",0]}",
             (unsigned long long)epoch, (unsigned long long)epoch + 1);
    return ado_bridge_send(t->node->bridge, t->node->plugins[0], "l2", "settle", payload,
                           strlen(payload), NULL, 0);
}

struct real_wait {
    struct fx *f;
    struct th_node *t;
    uint64_t acked;
};

static int real_acked(void *arg) {
    struct real_wait *w = arg;
    struct ado_bridge_peer_info pi;
    return ado_bridge_peer_info(w->t->node->bridge, "l2", &pi) == 0 && pi.acked >= w->acked &&
           pi.depth == 0;
}

/* Mine a block at a time until the bridge reports `acked` acks and an empty outbox. */
static int real_mine_until(struct fx *f, struct th_node *t, uint64_t acked, int max_blocks) {
    struct real_wait w = {f, t, acked};
    for (int i = 0; i < max_blocks && !real_acked(&w); i++) {
        anvil_mine(&f->a, 1);
        th_run_until(&t->loop, real_acked, &w, 400);
    }
    return real_acked(&w);
}

static char local_resp[4096];

static void on_local(void *arg, const char *resp) {
    (void)arg;
    snprintf(local_resp, sizeof local_resp, "%s", resp ? resp : "");
}

static int local_done(void *arg) {
    (void)arg;
    return local_resp[0] != 0;
}

/* An RPC call in-process (admin role); the answer's JSON text. */
static const char *local_call(struct th_node *t, const char *req) {
    local_resp[0] = 0;
    cr_assert_eq(ado_rpc_call_local(t->node->rpc, req, "admin", on_local, NULL), 0);
    th_run_until(&t->loop, local_done, NULL, 5000);
    return local_resp;
}

Test(evm_l2, bridge_core_delivers_messages_to_the_contract_and_l2_events_come_back, .timeout = 60) {
    struct fx f;
    fx_anvil(&f, NULL);
    struct th_node t;
    int rc =
        real_start(&t, &f, "events: [{contract: settlement, signature: \"" ROOT_SUBMITTED "\"}]");
    cr_assert_eq(rc, 0, "%s", th_diag_text(&t));
    for (uint64_t e = 0; e < 3; e++)
        cr_assert_eq(bridge_send_submit(&t, e), 0);
    cr_assert(real_mine_until(&f, &t, 3, 15), "three messages acked through the bridge");
    cr_assert_eq(next_epoch(&f), 3);
    cr_assert_eq(mined_nonce(&f), f.n0 + 3);
    struct wait_n w = {&f, 3, 0};
    for (int i = 0; i < 5 && !events_n(&w); i++) {
        anvil_mine(&f.a, 1);
        th_run_until(&t.loop, events_n, &w, 400);
    }
    cr_assert_eq(TB->nevents, 3, "three RootSubmitted events on the bus");
    cr_assert(strstr(TB->events[2], "\"event\":\"RootSubmitted\""), "%s", TB->events[2]);
    /* Reads: l2_call with ABI decoding, a reverting l2_call, and the kernel's bridge_query. */
    const char *r = local_call(&t, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"l2_call\","
                                   "\"params\":{\"to\":\"settlement\",\"signature\":"
                                   "\"nextEpoch()\",\"returns\":\"(uint64)\"}}");
    cr_assert(strstr(r, "\"decoded\":[\"3\"]"), "%s", r);
    r = local_call(&t, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"l2_call\",\"params\":"
                       "{\"to\":\"settlement\",\"signature\":\"veto(uint64)\",\"args\":[0]}}");
    cr_assert(strstr(r, "\"code\":3") && strstr(r, "custom error"), "%s", r);
    r = local_call(&t, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"bridge_query\",\"params\":"
                       "{\"peer\":\"l2\",\"request\":{\"method\":\"eth_chainId\","
                       "\"params\":[]}}}");
    cr_assert(strstr(r, "\"result\":\"0x7a69\""), "%s", r);
    th_node_stop(&t);
    fx_done(&f);
}

Test(evm_l2, node_killed_mid_flight_restarts_without_a_lost_or_doubled_tx, .timeout = 90) {
    struct fx f;
    fx_anvil(&f, NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* The first life: five messages into the outbox, signed and broadcast, then SIGKILL
         * before any is confirmed. */
        struct th_node t;
        if (real_start(&t, &f, NULL) != 0)
            _exit(2);
        for (;;) {
            struct ado_bridge_peer_info pi;
            ado_bridge_peer_info(t.node->bridge, "l2", &pi);
            if (pi.up == 1)
                break;
            uv_run(&t.loop, UV_RUN_NOWAIT);
            usleep(1000);
        }
        for (uint64_t e = 0; e < 5; e++)
            if (bridge_send_submit(&t, e) != 0)
                _exit(3);
        for (;;) {
            uv_run(&t.loop, UV_RUN_NOWAIT);
            usleep(1000);
        }
    }
    struct wait_n w = {&f, 0, f.n0 + 5};
    int sent = 0;
    for (int i = 0; i < 1000 && !(sent = pool_has(&w)); i++)
        usleep(10000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(sent, "the first life broadcast its five txs (exit %d)", st);
    anvil_mine(&f.a, 1); /* mined while the node is down */
    /* The second life, same data dir: the outbox re-delivers 1..5 (evm_l2 awaits the txs it
     * already has), two new messages follow. */
    struct th_node t;
    cr_assert_eq(real_start(&t, &f, NULL), 0, "%s", th_diag_text(&t));
    for (uint64_t e = 5; e < 7; e++)
        cr_assert_eq(bridge_send_submit(&t, e), 0);
    cr_assert(real_mine_until(&f, &t, 7, 15), "all seven acked");
    cr_assert_eq(mined_nonce(&f), f.n0 + 7, "exactly seven transactions");
    cr_assert_eq(next_epoch(&f), 7);
    struct ado_bridge_peer_info pi;
    ado_bridge_peer_info(t.node->bridge, "l2", &pi);
    cr_assert_eq(pi.dead_total, 0);
    th_node_stop(&t);
    fx_done(&f);
}

/* One transaction per message under load. bench_evm at 10 000 messages once mined 11 392
 * transactions: a tx whose receipt was not in the tick's batch was taken for one replaced by a
 * foreign tx, failed, and its message re-sent. This test checks the exact count at 1 000; it
 * did not reproduce that failure at this size (bench_evm checks the count at 10 000). */
Test(evm_l2, a_thousand_messages_under_interval_mining_make_exactly_a_thousand_txs, .timeout = 90) {
    struct fx f;
    fx_anvil(&f, "--block-time 1");
    json_decref(anvil_rpc(&f.a, "evm_setAutomine", json_pack("[b]", 0), NULL));
    json_decref(anvil_rpc(&f.a, "evm_setIntervalMining", json_pack("[i]", 1), NULL));
    struct th_node t;
    cr_assert_eq(real_start(&t, &f, NULL), 0, "%s", th_diag_text(&t));
    ado_bridge_tune(t.node->bridge, 4096, 120000);
    const uint64_t n = 1000;
    for (uint64_t i = 0; i < n; i++) {
        char payload[256];
        int len = snprintf(payload, sizeof payload,
                           "{\"to\":\"0x000000000000000000000000000000000000bEEF\","
                           "\"signature\":\"ping(uint256)\",\"args\":[%llu],\"gas_limit\":30000}",
                           (unsigned long long)i);
        cr_assert_eq(ado_bridge_send(t.node->bridge, t.node->plugins[0], "l2", "load", payload,
                                     (size_t)len, NULL, 0),
                     0);
    }
    struct real_wait w = {&f, &t, n};
    cr_assert(th_run_until(&t.loop, real_acked, &w, 60000), "all acked");
    cr_assert_eq(mined_nonce(&f), f.n0 + n, "one transaction per message");
    th_node_stop(&t);
    fx_done(&f);
}
