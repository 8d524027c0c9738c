/* trn_oracle operations on an in-process node: durable acknowledgement, the ledger's money
 * flows (treasury gas, view rewards, boosts, burns), deposits, and errors that change nothing. */
#include <criterion/criterion.h>

#include "trn_test.h"

static struct th_node node;
static char *dir;

static void setup(void) {
    dir = th_tmpdir();
    cr_assert_eq(tt_start(&node, dir, NULL), 0, "%s", th_diag_text(&node));
}

static void teardown(void) {
    th_node_stop(&node);
    th_rmrf(dir);
    free(dir);
}

static void fund(const char *account, const char *amount, int n) {
    char tx[80];
    snprintf(tx, sizeof tx, "0x%064d", n);
    tt_deposit(&node, account, amount, tx, n);
}

/* Everything observable: the balances of our accounts, the open epoch's ops and total. */
static char *snapshot(void) {
    char *out = malloc(1024);
    size_t n = 0;
    const char *acct[] = {TREASURY, ALICE, BOB, CAROL};
    for (int i = 0; i < 4; i++)
        n += (size_t)snprintf(out + n, 1024 - n, "%s|", tt_balance(&node, acct[i]));
    json_t *e = tt_ok(&node, "trn_epoch", "{}");
    snprintf(out + n, 1024 - n, "%lld|%s", json_integer_value(json_object_get(e, "ops")),
             tt_str(e, "total"));
    json_decref(e);
    return out;
}

TestSuite(trn_ops, .init = setup, .fini = teardown, .timeout = 60);

Test(trn_ops, a_write_is_answered_only_after_it_is_durable) {
    fund(TREASURY, "1000", 1);
    char req[256];
    snprintf(req, sizeof req,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"trn_registerContent\","
             "\"params\":{\"content\":\"video-1\",\"creator\":\"%s\"}}",
             ALICE);
    struct tt_call c = {0};
    cr_assert_eq(ado_rpc_call_local(node.node->rpc, req, "writer", tt_cb, &c), 0);
    cr_assert_eq(c.n, 0, "answered before the commit");
    cr_assert(ado_store_pending(node.node->store), "the write waits for the turn's commit");
    cr_assert(th_run_until(&node.loop, tt_answered, &c, 5000));
    cr_assert(strstr(c.resp, "\"number\":1"), "%s", c.resp);
    free(c.resp);
    /* It survives a restart. */
    th_node_stop(&node);
    cr_assert_eq(tt_start(&node, dir, NULL), 0);
    cr_assert_eq(
        tt_err(&node, "trn_registerContent", "{\"content\":\"video-1\",\"creator\":\"" ALICE "\"}"),
        1003);
    cr_assert_str_eq(tt_balance(&node, TREASURY), "999");
}

Test(trn_ops, the_treasury_pays_gas_and_view_rewards_and_the_creator_earns) {
    fund(TREASURY, "1000", 1);
    fund(ALICE, "500", 2);
    json_decref(
        tt_ok(&node, "trn_registerContent", "{\"content\":\"song:1\",\"creator\":\"" BOB "\"}"));
    cr_assert_str_eq(tt_balance(&node, TREASURY), "999"); /* gas 1 */
    for (int i = 0; i < 3; i++) {
        json_t *r = tt_ok(&node, "trn_view", "{\"content\":\"song:1\",\"viewer\":\"" ALICE "\"}");
        cr_assert_str_eq(tt_str(r, "creator"), BOB);
        cr_assert_str_eq(tt_str(r, "reward"), "10");
        json_decref(r);
    }
    cr_assert_str_eq(tt_balance(&node, TREASURY), "966"); /* 3 × (10 reward + 1 gas) */
    cr_assert_str_eq(tt_balance(&node, ALICE), "500");    /* views are free for viewers */
    json_t *b = tt_ok(&node, "trn_balance", "{\"account\":\"" BOB "\"}");
    cr_assert_str_eq(tt_str(b, "earned"), "30");
    cr_assert_str_eq(tt_str(b, "balance"), "0");
    json_decref(b);
    /* A boost: alice pays 100 + fee 2; bob earns 100; the treasury gets the fee, pays gas. */
    json_decref(tt_ok(&node, "trn_boost",
                      "{\"content\":\"song:1\",\"account\":\"" ALICE "\",\"amount\":\"100\"}"));
    cr_assert_str_eq(tt_balance(&node, ALICE), "398");
    cr_assert_str_eq(tt_balance(&node, TREASURY), "967");
    /* A burn, with and without content. */
    json_decref(tt_ok(&node, "trn_burn", "{\"account\":\"" ALICE "\",\"amount\":\"0x10\"}"));
    json_decref(tt_ok(&node, "trn_burn",
                      "{\"account\":\"" ALICE "\",\"amount\":2,\"content\":\"song:1\"}"));
    cr_assert_str_eq(tt_balance(&node, ALICE), "380");
    cr_assert_str_eq(tt_balance(&node, TREASURY), "965");
    b = tt_ok(&node, "trn_balance", "{\"account\":\"" BOB "\"}");
    cr_assert_str_eq(tt_str(b, "earned"), "130");
    json_decref(b);
    json_t *e = tt_ok(&node, "trn_epoch", "{}");
    cr_assert_str_eq(tt_str(e, "status"), "open");
    cr_assert_str_eq(tt_str(e, "total"), "130");
    cr_assert_eq(json_integer_value(json_object_get(e, "ops")), 7);
    json_decref(e);
}

Test(trn_ops, uint256_amounts_are_exact_and_the_supply_cannot_overflow) {
    /* 2^256 - 1 - 1000: with the treasury's 1000 the supply is exactly 2^256 - 1. */
    const char *big =
        "115792089237316195423570985008687907853269984665640564039457584007913129638935";
    fund(TREASURY, "1000", 1);
    fund(ALICE, big, 2);
    cr_assert_str_eq(tt_balance(&node, ALICE), big);
    fund(BOB, "1", 3); /* would overflow the supply: refused */
    cr_assert_str_eq(tt_balance(&node, BOB), "0");
    json_decref(tt_ok(&node, "trn_burn",
                      "{\"account\":\"" ALICE "\",\"amount\":\"115792089237316195423570985008687907"
                      "853269984665640564039457584007913129638934\"}"));
    cr_assert_str_eq(tt_balance(&node, ALICE), "1");
    json_decref(tt_ok(&node, "trn_closeEpoch", "{}")); /* and it reconciles */
}

Test(trn_ops, refused_operations_change_nothing) {
    fund(TREASURY, "1000", 1);
    fund(ALICE, "50", 2);
    json_decref(tt_ok(&node, "trn_registerContent", "{\"content\":\"v\",\"creator\":\"" BOB "\"}"));
    char *before = snapshot();
    static const struct {
        const char *method, *params;
        int code;
    } bad[] = {
        /* below zero */
        {"trn_boost", "{\"content\":\"v\",\"account\":\"" ALICE "\",\"amount\":\"49\"}", 1001},
        {"trn_burn", "{\"account\":\"" ALICE "\",\"amount\":\"51\"}", 1001},
        {"trn_burn", "{\"account\":\"" CAROL "\",\"amount\":\"1\"}", 1001},
        /* unknown content */
        {"trn_view", "{\"content\":\"nope\",\"viewer\":\"" ALICE "\"}", 1002},
        {"trn_boost", "{\"content\":\"nope\",\"account\":\"" ALICE "\",\"amount\":\"1\"}", 1002},
        {"trn_burn", "{\"account\":\"" ALICE "\",\"amount\":\"1\",\"content\":\"nope\"}", 1002},
        {"trn_registerContent", "{\"content\":\"v\",\"creator\":\"" ALICE "\"}", 1003},
        /* bad addresses: wrong checksum, short, not hex, missing, not a string */
        {"trn_view",
         "{\"content\":\"v\",\"viewer\":\"0x3c44CdDdB6a900fa2b585dd299e03d12FA4293BC\"}", -32602},
        {"trn_view", "{\"content\":\"v\",\"viewer\":\"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293\"}",
         -32602},
        {"trn_view",
         "{\"content\":\"v\",\"viewer\":\"0xZZ44CdDdB6a900fa2b585dd299e03d12FA4293BC\"}", -32602},
        {"trn_view", "{\"content\":\"v\"}", -32602},
        {"trn_balance", "{\"account\":12}", -32602},
        /* bad amounts: zero, negative, fraction, too large, text, float */
        {"trn_boost", "{\"content\":\"v\",\"account\":\"" ALICE "\",\"amount\":\"0\"}", -32602},
        {"trn_burn", "{\"account\":\"" ALICE "\",\"amount\":-5}", -32602},
        {"trn_burn", "{\"account\":\"" ALICE "\",\"amount\":\"1.5\"}", -32602},
        {"trn_burn", "{\"account\":\"" ALICE "\",\"amount\":1.5}", -32602},
        {"trn_burn",
         "{\"account\":\"" ALICE "\",\"amount\":\"1157920892373161954235709850086879078532699846656"
         "40564039457584007913129639936\"}",
         -32602},
        {"trn_burn", "{\"account\":\"" ALICE "\",\"amount\":\"ten\"}", -32602},
        {"trn_burn", "{\"account\":\"" ALICE "\",\"amount\":\"-1\"}", -32602},
        /* bad content ids, bad params */
        {"trn_registerContent", "{\"content\":\"\",\"creator\":\"" ALICE "\"}", -32602},
        {"trn_registerContent", "{\"content\":\"a b\",\"creator\":\"" ALICE "\"}", -32602},
        {"trn_registerContent", "{\"content\":\"a\\\"b\",\"creator\":\"" ALICE "\"}", -32602},
        {"trn_view", "[\"v\",\"" ALICE "\"]", -32602},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(tt_err(&node, bad[i].method, bad[i].params), bad[i].code, "%s %s",
                     bad[i].method, bad[i].params);
    char *after = snapshot();
    cr_assert_str_eq(before, after);
    free(before);
    free(after);
    /* The ledger still reconciles: the epoch closes. */
    json_t *r = tt_ok(&node, "trn_closeEpoch", "{}");
    cr_assert_str_eq(tt_str(r, "status"), "closed");
    json_decref(r);
}

Test(trn_ops, an_exhausted_treasury_refuses_operations_without_change) {
    fund(TREASURY, "12", 1);
    json_decref(tt_ok(&node, "trn_registerContent", "{\"content\":\"v\",\"creator\":\"" BOB "\"}"));
    json_decref(tt_ok(&node, "trn_view", "{\"content\":\"v\",\"viewer\":\"" ALICE "\"}"));
    cr_assert_str_eq(tt_balance(&node, TREASURY), "0");
    cr_assert_eq(tt_err(&node, "trn_view", "{\"content\":\"v\",\"viewer\":\"" ALICE "\"}"), 1004);
    cr_assert_eq(
        tt_err(&node, "trn_registerContent", "{\"content\":\"w\",\"creator\":\"" BOB "\"}"), 1004);
    /* The failed registration did not take the name. */
    fund(TREASURY, "5", 2);
    json_decref(tt_ok(&node, "trn_registerContent", "{\"content\":\"w\",\"creator\":\"" BOB "\"}"));
    cr_assert_str_eq(tt_balance(&node, TREASURY), "4");
}

Test(trn_ops, deposits_credit_once_per_l2_log) {
    fund(ALICE, "70", 7);
    fund(ALICE, "70", 7); /* the same (tx, log_index) again: a re-delivery */
    cr_assert_str_eq(tt_balance(&node, ALICE), "70");
    tt_deposit(&node, ALICE, "5",
               "0x"
               "ab",
               0);
    tt_deposit(&node, ALICE, "5",
               "0x"
               "ab",
               1); /* same tx, another log */
    cr_assert_str_eq(tt_balance(&node, ALICE), "80");
    /* Malformed events are ignored. */
    const char *junk[] = {"not json", "{\"args\":{\"account\":\"x\",\"amount\":\"1\"}}",
                          "{\"tx\":\"0x1\",\"log_index\":0,\"args\":{\"account\":\"" ALICE
                          "\",\"amount\":\"-1\"}}"};
    for (size_t i = 0; i < 3; i++)
        ado_bus_publish(node.node->bus, "bridge.in.l2.Deposited", junk[i], strlen(junk[i]));
    uv_run(&node.loop, UV_RUN_NOWAIT);
    cr_assert_str_eq(tt_balance(&node, ALICE), "80");
    /* A wrapped event (the bridge's {"payload": ...} envelope) is read too. */
    const char *wrapped =
        "{\"payload\":{\"tx\":\"0x2\",\"log_index\":3,\"args\":{\"account\":\"" ALICE
        "\",\"amount\":\"20\"}}}";
    ado_bus_publish(node.node->bus, "bridge.in.l2.Deposited", wrapped, strlen(wrapped));
    uv_run(&node.loop, UV_RUN_NOWAIT);
    cr_assert_str_eq(tt_balance(&node, ALICE), "100");
}

Test(trn_ops, writes_need_the_writer_role) {
    json_t *v =
        tt_call_role(&node, "reader", "trn_view", "{\"content\":\"v\",\"viewer\":\"" ALICE "\"}");
    cr_assert(json_object_get(v, "error"));
    json_decref(v);
    v = tt_call_role(&node, "writer", "trn_closeEpoch", "{}");
    cr_assert(json_object_get(v, "error"));
    json_decref(v);
    v = tt_call_role(&node, "reader", "trn_balance", "{\"account\":\"" ALICE "\"}");
    cr_assert(json_object_get(v, "result"));
    json_decref(v);
}

/* Random operations: balances never go below zero, refusals change nothing, and the ledger
 * equation (deposits = balances + earned + burned + gas) holds: every close reconciles. */
Test(trn_ops, random_operations_keep_the_ledger_reconciled) {
    const char *acct[] = {ALICE, BOB, CAROL, TREASURY};
    fund(TREASURY, "400", 1);
    fund(ALICE, "300", 2);
    fund(BOB, "50", 3);
    json_decref(
        tt_ok(&node, "trn_registerContent", "{\"content\":\"a\",\"creator\":\"" CAROL "\"}"));
    uint32_t r = 12345;
    int refused = 0;
    for (int i = 0; i < 300; i++) {
        r = r * 1103515245 + 12345;
        const char *who = acct[(r >> 8) % 3];
        char p[256];
        unsigned amt = (r >> 12) % 90;
        switch ((r >> 20) % 3) {
        case 0:
            snprintf(p, sizeof p, "{\"content\":\"a\",\"viewer\":\"%s\"}", who);
            break;
        case 1:
            snprintf(p, sizeof p, "{\"content\":\"a\",\"account\":\"%s\",\"amount\":%u}", who,
                     amt + 1);
            break;
        default:
            snprintf(p, sizeof p, "{\"account\":\"%s\",\"amount\":%u}", who, amt + 1);
        }
        const char *m = (r >> 20) % 3 == 0   ? "trn_view"
                        : (r >> 20) % 3 == 1 ? "trn_boost"
                                             : "trn_burn";
        json_t *v = tt_call(&node, m, p);
        if (json_object_get(v, "error")) {
            int code =
                (int)json_integer_value(json_object_get(json_object_get(v, "error"), "code"));
            cr_assert(code == 1001 || code == 1004, "code %d", code);
            refused++;
        }
        json_decref(v);
        if (i % 100 == 99) {
            json_t *c = tt_ok(&node, "trn_closeEpoch", "{}");
            json_decref(c);
        }
    }
    cr_assert(refused > 0, "some operations should have run out of money");
    for (int i = 0; i < 4; i++)
        cr_assert_neq(tt_balance(&node, acct[i])[0], '-');
}

/* Deposit events name their contract by address: an evm_l2 alias in l2.deposits_contract
 * matched no event at all, and every deposit was silently ignored. */
Test(trn_config, a_deposits_contract_that_is_not_an_address_is_refused_at_start) {
    char *d = th_tmpdir();
    struct th_node n;
    int rc = tt_start(&n, d, "      l2: {submit: false, deposits_contract: deposits}\n");
    cr_assert_lt(rc, 0, "the node started with deposits_contract: deposits");
    th_node_stop(&n);
    th_rmrf(d);
    free(d);
}
