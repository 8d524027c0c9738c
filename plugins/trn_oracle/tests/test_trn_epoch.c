/* trn_oracle epochs on an in-process node: close on the worker pool without blocking the loop,
 * proofs that verify, the compressed data that rebuilds the root, chunking, the period timer,
 * reconciliation stopping settlement, and proofs after a restart (tree rebuilt). */
#include <criterion/criterion.h>

#include <ado_eth/address.h>
#include <ado_eth/common.h>
#include <ado_eth/merkle.h>

#include "trn_activity.h"
#include "trn_test.h"

static struct th_node node;
static char *dir;

static void start(const char *extra) {
    dir = th_tmpdir();
    cr_assert_eq(tt_start(&node, dir, extra), 0, "%s", th_diag_text(&node));
}

static void teardown(void) {
    th_node_stop(&node);
    th_rmrf(dir);
    free(dir);
}

TestSuite(trn_epoch, .fini = teardown, .timeout = 90);

/* A deterministic address for creator number i. */
static void addr_of(int i, char out[43]) {
    uint8_t a[20] = {0xc0, 0xde};
    a[16] = (uint8_t)(i >> 24), a[17] = (uint8_t)(i >> 16), a[18] = (uint8_t)(i >> 8);
    a[19] = (uint8_t)i;
    ado_eth_address_checksum(a, out);
}

/* n creators each with one content; content k gets k+1 views. */
static void populate(int n) {
    char tx[80], p[256], a[43];
    snprintf(tx, sizeof tx, "0x%064d", 1);
    tt_deposit(&node, TREASURY, "100000000", tx, 0);
    for (int i = 0; i < n; i++) {
        addr_of(i, a);
        snprintf(p, sizeof p, "{\"content\":\"c%d\",\"creator\":\"%s\"}", i, a);
        json_decref(tt_ok(&node, "trn_registerContent", p));
        for (int v = 0; v <= i % 5; v++) {
            snprintf(p, sizeof p, "{\"content\":\"c%d\",\"viewer\":\"" ALICE "\"}", i);
            json_decref(tt_ok(&node, "trn_view", p));
        }
    }
}

static void hex32(const char *text, uint8_t out[32]) {
    size_t n;
    cr_assert_eq(ado_eth_hex_decode(text, strlen(text), out, 32, &n), 0);
    cr_assert_eq(n, 32);
}

/* trn_proof for account verifies against root with lib/eth. Returns the amount. */
static long long check_proof(uint64_t epoch, const char *account, const uint8_t root[32]) {
    char p[200];
    snprintf(p, sizeof p, "{\"epoch\":%llu,\"account\":\"%s\"}", (unsigned long long)epoch,
             account);
    json_t *r = tt_ok(&node, "trn_proof", p);
    uint8_t addr[20], amount[32], leaf[32], proof[ADO_MERKLE_MAX_PROOF][32];
    struct ado_u256 amt;
    cr_assert_eq(ado_eth_address_parse(account, strlen(account), addr), 0);
    cr_assert_eq(ado_u256_parse_str(&amt, tt_str(r, "amount")), 0);
    ado_u256_to_be32(&amt, amount);
    ado_merkle_leaf_addr_u256(addr, amount, leaf);
    uint8_t got[32];
    hex32(tt_str(r, "leaf"), got);
    cr_assert_eq(memcmp(got, leaf, 32), 0, "leaf hash");
    json_t *pr = json_object_get(r, "proof");
    size_t n = json_array_size(pr);
    for (size_t i = 0; i < n; i++)
        hex32(json_string_value(json_array_get(pr, i)), proof[i]);
    cr_assert(ado_merkle_verify(root, leaf, (const uint8_t(*)[32])proof, n), "proof verifies");
    /* A forged amount does not. */
    amount[31] ^= 1;
    ado_merkle_leaf_addr_u256(addr, amount, leaf);
    cr_assert_not(ado_merkle_verify(root, leaf, (const uint8_t(*)[32])proof, n));
    long long v = (long long)amt.w[0];
    json_decref(r);
    return v;
}

Test(trn_epoch, close_builds_a_tree_whose_proofs_verify_and_opens_the_next_epoch) {
    start(NULL);
    populate(40);
    json_t *c = tt_ok(&node, "trn_closeEpoch", "{}");
    cr_assert_eq(json_integer_value(json_object_get(c, "epoch")), 1);
    cr_assert_str_eq(tt_str(c, "status"), "closed");
    cr_assert_eq(json_integer_value(json_object_get(c, "leaves")), 40);
    /* 40 creators, (i % 5) + 1 views of 10 each: 8 × (1+2+3+4+5) × 10 */
    cr_assert_str_eq(tt_str(c, "total"), "1200");
    uint8_t root[32];
    hex32(tt_str(c, "root"), root);
    long long sum = 0;
    for (int i = 0; i < 40; i++) {
        char a[43];
        addr_of(i, a);
        sum += check_proof(1, a, root);
    }
    cr_assert_eq(sum, 1200);
    /* Somebody with nothing in the epoch gets a clear error. */
    cr_assert_eq(tt_err(&node, "trn_proof", "{\"epoch\":1,\"account\":\"" BOB "\"}"), 1006);
    cr_assert_eq(tt_err(&node, "trn_proof", "{\"epoch\":2,\"account\":\"" BOB "\"}"), 1005);
    cr_assert_eq(tt_err(&node, "trn_epoch", "{\"epoch\":7}"), 1005);
    json_t *e = tt_ok(&node, "trn_epoch", "{}");
    cr_assert_eq(json_integer_value(json_object_get(e, "epoch")), 2);
    cr_assert_str_eq(tt_str(e, "status"), "open");
    json_decref(e);
    e = tt_ok(&node, "trn_epoch", "{\"epoch\":1}");
    cr_assert_str_eq(tt_str(e, "root"), tt_str(c, "root"));
    json_decref(e);
    json_decref(c);
}

static int answered_count(void *arg) {
    int *n = arg;
    return *n;
}

struct counted {
    int *n;
};

static void count_cb(void *arg, const char *resp) {
    (void)resp;
    (*(int *)arg)++;
}

Test(trn_epoch, the_loop_keeps_serving_while_the_tree_builds_on_a_worker) {
    start("      tuning: {close_delay: 400ms}\n");
    populate(5);
    struct tt_call close = {0};
    cr_assert_eq(ado_rpc_call_local(node.node->rpc,
                                    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"trn_closeEpoch\"}",
                                    "admin", tt_cb, &close),
                 0);
    /* Views go to the new epoch and are answered while the close is still on the worker. */
    int views = 0;
    for (int i = 0; i < 20; i++)
        ado_rpc_call_local(node.node->rpc,
                           "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"trn_view\",\"params\":"
                           "{\"content\":\"c1\",\"viewer\":\"" BOB "\"}}",
                           "writer", count_cb, &views);
    int want = 20;
    (void)want;
    cr_assert(th_run_until(&node.loop, answered_count, &views, 5000));
    cr_assert(th_run_until(&node.loop, answered_count, &views, 5000));
    while (views < 20)
        th_run_until(&node.loop, answered_count, &views, 100);
    cr_assert_eq(close.n, 0, "the close is still building");
    /* A second close while one runs is refused. */
    cr_assert_eq(tt_err(&node, "trn_closeEpoch", "{}"), 1008);
    cr_assert(th_run_until(&node.loop, tt_answered, &close, 10000));
    cr_assert(strstr(close.resp, "\"status\":\"closed\""), "%s", close.resp);
    free(close.resp);
    json_t *e = tt_ok(&node, "trn_epoch", "{}");
    cr_assert_eq(json_integer_value(json_object_get(e, "ops")), 20);
    cr_assert_str_eq(tt_str(e, "total"), "200");
    json_decref(e);
}

Test(trn_epoch, the_compressed_data_is_chunked_and_rebuilds_the_root) {
    start("      l2: {submit: false, chunk_size: 1KiB}\n"
          "      tuning: {compression_quality: 5}\n");
    populate(300);
    json_t *c = tt_ok(&node, "trn_closeEpoch", "{}");
    int chunks = (int)json_integer_value(json_object_get(c, "chunks"));
    cr_assert_gt(chunks, 1, "several chunks of 1 KiB");
    json_t *d = tt_ok(&node, "trn_epochData", "{\"epoch\":1}");
    const char *hex = tt_str(d, "data");
    size_t cap = strlen(hex) / 2, len;
    uint8_t *data = malloc(cap);
    cr_assert_eq(ado_eth_hex_decode(hex, strlen(hex), data, cap, &len), 0);
    cr_assert_eq((long long)len, json_integer_value(json_object_get(d, "size")));
    /* chunk hashes and dataHash as TRNSettlement computes them */
    json_t *cl = json_object_get(d, "chunks");
    cr_assert_eq((int)json_array_size(cl), chunks);
    uint8_t hashes[64][32], dh[32], want[32];
    trn_data_hash(data, len, 1024, hashes, dh);
    for (int i = 0; i < chunks; i++) {
        json_t *ch = json_array_get(cl, (size_t)i);
        cr_assert_leq(json_integer_value(json_object_get(ch, "size")), 1024);
        hex32(tt_str(ch, "hash"), want);
        cr_assert_eq(memcmp(want, hashes[i], 32), 0);
    }
    hex32(tt_str(d, "data_hash"), want);
    cr_assert_eq(memcmp(want, dh, 32), 0);
    /* One chunk alone, in base64. */
    json_t *one =
        tt_ok(&node, "trn_epochData", "{\"epoch\":1,\"chunk\":1,\"encoding\":\"base64\"}");
    cr_assert_eq(json_integer_value(json_object_get(one, "chunk")), 1);
    cr_assert_eq(strlen(tt_str(one, "data")), 4 * ((1024 + 2) / 3));
    json_decref(one);
    /* Decompress, decode, rebuild: the same root. */
    uint8_t *raw, *leaves;
    size_t rawlen, nleaves, nops;
    uint64_t epoch;
    cr_assert_eq(trn_brotli_decompress(data, len, 1 << 26, &raw, &rawlen), 0);
    cr_assert_eq((long long)rawlen, json_integer_value(json_object_get(d, "raw_size")));
    cr_assert_eq(trn_activity_decode_leaves(raw, rawlen, &epoch, &nops, &leaves, &nleaves), 0);
    cr_assert_eq(epoch, 1);
    cr_assert_eq(nleaves, 300);
    cr_assert_eq((long long)nops, json_integer_value(json_object_get(c, "ops")));
    struct ado_merkle *m;
    cr_assert_eq(ado_merkle_build_addr_u256(leaves, nleaves, 2, &m), 0);
    uint8_t root[32];
    ado_merkle_root(m, root);
    hex32(tt_str(c, "root"), want);
    cr_assert_eq(memcmp(root, want, 32), 0);
    ado_merkle_free(m);
    free(raw), free(leaves), free(data);
    json_decref(d);
    json_decref(c);
}

Test(trn_epoch, proofs_after_a_restart_come_from_a_tree_rebuilt_from_the_store) {
    start(NULL);
    populate(12);
    json_t *c = tt_ok(&node, "trn_closeEpoch", "{}");
    uint8_t root[32];
    hex32(tt_str(c, "root"), root);
    json_decref(c);
    th_node_stop(&node);
    cr_assert_eq(tt_start(&node, dir, NULL), 0);
    char a[43];
    addr_of(7, a);
    cr_assert_eq(check_proof(1, a, root), 30);
    addr_of(11, a);
    cr_assert_eq(check_proof(1, a, root), 20);
}

Test(trn_epoch, an_empty_epoch_settles_with_an_unclaimable_treasury_leaf) {
    start(NULL);
    json_t *c = tt_ok(&node, "trn_closeEpoch", "{}");
    cr_assert_eq(json_integer_value(json_object_get(c, "leaves")), 1);
    cr_assert_str_eq(tt_str(c, "total"), "0");
    cr_assert_eq(tt_err(&node, "trn_proof", "{\"epoch\":1,\"account\":\"" TREASURY "\"}"), 1006);
    json_decref(c);
}

static int epoch_is_3(void *arg) {
    struct th_node *n = arg;
    json_t *e = tt_ok(n, "trn_epoch", "{}");
    int ok = json_integer_value(json_object_get(e, "epoch")) >= 3;
    json_decref(e);
    return ok;
}

Test(trn_epoch, the_period_closes_epochs_by_itself) {
    start("      epoch: {period: 300ms, first: 1}\n");
    populate(2);
    cr_assert(th_run_until(&node.loop, epoch_is_3, &node, 10000));
    json_t *e = tt_ok(&node, "trn_epoch", "{\"epoch\":1}");
    cr_assert_str_eq(tt_str(e, "status"), "closed");
    cr_assert_str_eq(tt_str(e, "total"), "30");
    json_decref(e);
}

static const char *plugin_state(void) {
    static char buf[4096];
    json_t *v = tt_call(&node, "node_plugins", "{}");
    char *s = json_dumps(v, 0);
    snprintf(buf, sizeof buf, "%s", s);
    free(s);
    json_decref(v);
    return buf;
}

Test(trn_epoch, a_reconciliation_mismatch_stops_settlement_and_degrades_the_plugin) {
    /* The L2 can pay at most 25 for an epoch; 30 was earned. */
    start("      l2: {submit: false, max_epoch_total: \"25\"}\n");
    populate(2);
    json_t *v = tt_call(&node, "trn_closeEpoch", "{}");
    json_t *err = json_object_get(v, "error");
    cr_assert_eq(json_integer_value(json_object_get(err, "code")), 1007);
    char *s = json_dumps(err, 0);
    cr_assert(strstr(s, "l2_capacity"), "%s", s);
    free(s);
    json_decref(v);
    cr_assert(strstr(plugin_state(), "reconciliation mismatch"), "%s", plugin_state());
    /* Nothing was settled: epoch 1 is still open, operations still work. */
    json_t *e = tt_ok(&node, "trn_epoch", "{}");
    cr_assert_eq(json_integer_value(json_object_get(e, "epoch")), 1);
    cr_assert(json_is_true(json_object_get(e, "halted")));
    json_decref(e);
    cr_assert_eq(tt_err(&node, "trn_epoch", "{\"epoch\":2}"), 1005);
    json_decref(tt_ok(&node, "trn_view", "{\"content\":\"c0\",\"viewer\":\"" BOB "\"}"));
}

/* The tree of a stored epoch is the one @openzeppelin/merkle-tree builds: the published data
 * is decompressed and decoded in Node (tests/oz/rebuild.mjs), StandardMerkleTree.of() gives
 * the same root and the same proofs as trn_epoch / trn_proof, and the same dataHash. */
Test(trn_epoch, the_openzeppelin_library_rebuilds_the_same_tree_from_the_published_data) {
    if (system("node --version >/dev/null 2>&1") != 0)
        cr_skip_test("node is not installed");
    const char *oz = ADO_SOURCE_DIR "/plugins/trn_oracle/tests/oz";
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && (test -d node_modules/@openzeppelin/merkle-tree || "
             "npm ci --no-audit --no-fund --loglevel=error) >/dev/null 2>&1",
             oz);
    cr_assert_eq(system(cmd), 0, "npm ci in %s", oz);
    start("      l2: {submit: false, chunk_size: 2KiB}\n");
    populate(60);
    json_t *c = tt_ok(&node, "trn_closeEpoch", "{}");
    json_t *d = tt_ok(&node, "trn_epochData", "{\"epoch\":1}");
    json_t *accounts = json_array();
    char a[3][43];
    for (int i = 0; i < 3; i++) {
        addr_of(i * 17, a[i]);
        json_array_append_new(accounts, json_string(a[i]));
    }
    json_object_set_new(d, "accounts", accounts);
    char path[600], out[600];
    snprintf(path, sizeof path, "%s/epoch.json", dir);
    snprintf(out, sizeof out, "%s/oz.json", dir);
    cr_assert_eq(json_dump_file(d, path, 0), 0);
    snprintf(cmd, sizeof cmd, "node %s/rebuild.mjs < %s > %s", oz, path, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    json_t *r = json_load_file(out, 0, NULL);
    cr_assert(r, "oz output");
    cr_assert_str_eq(tt_str(r, "root"), tt_str(c, "root"));
    cr_assert_str_eq(tt_str(r, "dataHash"), tt_str(c, "data_hash"));
    cr_assert_str_eq(tt_str(r, "total"), tt_str(c, "total"));
    cr_assert_eq(json_integer_value(json_object_get(r, "leaves")), 60);
    cr_assert_eq(json_integer_value(json_object_get(r, "ops")),
                 json_integer_value(json_object_get(c, "ops")));
    for (int i = 0; i < 3; i++) {
        char p[200];
        snprintf(p, sizeof p, "{\"epoch\":1,\"account\":\"%s\"}", a[i]);
        json_t *mine = tt_ok(&node, "trn_proof", p);
        json_t *theirs = json_object_get(json_object_get(r, "proofs"), a[i]);
        cr_assert(theirs, "OZ has %s", a[i]);
        cr_assert_str_eq(tt_str(mine, "amount"), tt_str(theirs, "amount"));
        cr_assert(json_equal(json_object_get(mine, "proof"), json_object_get(theirs, "proof")),
                  "proof of %s", a[i]);
        json_decref(mine);
    }
    json_decref(r);
    json_decref(d);
    json_decref(c);
}
