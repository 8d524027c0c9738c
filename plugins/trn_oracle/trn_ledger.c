/* trn_oracle: the L3 ledger. Balances mirrored from L2 deposits, content, and the four
 * gasless operations. Each operation reads what it needs, checks everything, and only then
 * writes (balances, earned, op log, totals) into the loop turn's transaction: an operation
 * that fails changes nothing. The reply goes out once the write is durable. */
#include "trn.h"

#include <ado_eth/address.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONTENT_MAX 128

/* ---- small helpers ---- */

void trn_be64(uint64_t v, uint8_t out[8]) {
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

uint64_t trn_rd64(const uint8_t in[8]) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

void trn_dec(const struct ado_u256 *v, char out[ADO_U256_DEC_MAX]) {
    ado_u256_to_dec(v, out, ADO_U256_DEC_MAX);
}

void trn_hex32(const uint8_t in[32], char out[67]) {
    out[0] = '0', out[1] = 'x';
    ado_eth_hex_encode(in, 32, out + 2);
}

/* totals: six amounts (32 BE) then four u64 (8 BE) */
#define TOTALS_LEN (6 * 32 + 4 * 8)

int trn_save_totals(struct trn *s) {
    uint8_t b[TOTALS_LEN];
    const struct ado_u256 *a[6] = {&s->t.deposits, &s->t.balances, &s->t.earned_all,
                                   &s->t.burned,   &s->t.gas,      &s->t.epoch_total};
    for (int i = 0; i < 6; i++)
        ado_u256_to_be32(a[i], b + 32 * i);
    trn_be64(s->t.epoch, b + 192);
    trn_be64(s->t.opened_ms, b + 200);
    trn_be64(s->t.op_seq, b + 208);
    trn_be64(s->t.contents, b + 216);
    return s->api->store_put(s->ctx, s->db.state, "totals", 6, b, sizeof b);
}

int trn_load_totals(struct trn *s) {
    const void *v;
    size_t len;
    int rc = s->api->store_get(s->ctx, s->db.state, "totals", 6, &v, &len);
    if (rc == ADO_ENOTFOUND) {
        memset(&s->t, 0, sizeof s->t);
        s->t.epoch = s->first_epoch;
        s->t.opened_ms = s->api->wall_ms(s->ctx);
        return trn_save_totals(s);
    }
    if (rc < 0)
        return rc;
    if (len != TOTALS_LEN)
        return ADO_EIO;
    const uint8_t *b = v;
    struct ado_u256 *a[6] = {&s->t.deposits, &s->t.balances, &s->t.earned_all,
                             &s->t.burned,   &s->t.gas,      &s->t.epoch_total};
    for (int i = 0; i < 6; i++)
        ado_u256_from_be32(a[i], b + 32 * i);
    s->t.epoch = trn_rd64(b + 192);
    s->t.opened_ms = trn_rd64(b + 200);
    s->t.op_seq = trn_rd64(b + 208);
    s->t.contents = trn_rd64(b + 216);
    return 0;
}

int trn_balance_get(struct trn *s, const uint8_t addr[20], struct ado_u256 *out) {
    const void *v;
    size_t len;
    int rc = s->api->store_get(s->ctx, s->db.bal, addr, 20, &v, &len);
    if (rc == ADO_ENOTFOUND) {
        ado_u256_from_u64(out, 0);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (len != 32)
        return ADO_EIO;
    ado_u256_from_be32(out, v);
    return 0;
}

int trn_balance_put(struct trn *s, const uint8_t addr[20], const struct ado_u256 *v) {
    uint8_t be[32];
    ado_u256_to_be32(v, be);
    return s->api->store_put(s->ctx, s->db.bal, addr, 20, be, 32);
}

/* ---- params ---- */

json_t *trn_params(struct trn *s, ado_call *call, const char *params, size_t len) {
    json_t *o = json_loadb(params, len, JSON_DECODE_ANY, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        s->api->rpc_error(call, TRN_ERR_PARAMS, "invalid params: expected an object", NULL);
        return NULL;
    }
    return o;
}

int trn_get_addr(json_t *o, const char *key, uint8_t out[20]) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return ADO_ENOTFOUND;
    if (!json_is_string(v))
        return ADO_EINVAL;
    return ado_eth_address_parse(json_string_value(v), json_string_length(v), out);
}

int trn_get_amount(json_t *o, const char *key, struct ado_u256 *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return ADO_ENOTFOUND;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return ADO_EINVAL;
        ado_u256_from_u64(out, (uint64_t)json_integer_value(v));
        return 0;
    }
    if (!json_is_string(v))
        return ADO_EINVAL;
    return ado_u256_parse(out, json_string_value(v), json_string_length(v)) < 0 ? ADO_EINVAL : 0;
}

int trn_get_u64(json_t *o, const char *key, uint64_t *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return ADO_ENOTFOUND;
    struct ado_u256 u;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v) || ado_u256_parse(&u, json_string_value(v), json_string_length(v)) ||
        u.w[1] || u.w[2] || u.w[3])
        return ADO_EINVAL;
    *out = u.w[0];
    return 0;
}

void trn_bad_param(struct trn *s, ado_call *call, const char *key, int rc, const char *what) {
    char msg[192];
    snprintf(msg, sizeof msg, "invalid params: %s: %s", key,
             rc == ADO_ENOTFOUND ? "missing" : what);
    s->api->rpc_error(call, TRN_ERR_PARAMS, msg, NULL);
}

/* A content id: 1..128 chars of [A-Za-z0-9._:/-] (so it needs no escaping anywhere). */
static int get_content_id(json_t *o, const char *key, const char **id, size_t *len) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return ADO_ENOTFOUND;
    if (!json_is_string(v))
        return ADO_EINVAL;
    const char *p = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > CONTENT_MAX)
        return ADO_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '/' || c == '-'))
            return ADO_EINVAL;
    }
    *id = p;
    *len = n;
    return 0;
}

/* get_content_id, answering the call with invalid params when it fails. */
static int need_content(struct trn *s, ado_call *call, json_t *o, const char **id, size_t *len) {
    int rc = get_content_id(o, "content", id, len);
    if (rc < 0)
        trn_bad_param(s, call, "content", rc, "1 to 128 characters of A-Z a-z 0-9 . _ : / -");
    return rc;
}

int trn_need_addr(struct trn *s, ado_call *call, json_t *o, const char *key, uint8_t out[20]) {
    int rc = trn_get_addr(o, key, out);
    if (rc < 0)
        trn_bad_param(s, call, key, rc, "not an address (40 hex digits, EIP-55 if mixed)");
    return rc;
}

/* ---- a ledger transaction: read, check, then write ---- */

struct ltx {
    struct trn *s;
    struct trn_totals t; /* working copy of the totals */
    struct {
        uint8_t addr[20];
        struct ado_u256 bal;
    } acct[4];
    int nacct;
    int earn_set;
    uint8_t earn_addr[20];
    struct ado_u256 earn_amt;
    int err;        /* first failure: a TRN_ERR_* code, 0 = none */
    char msg[256];  /* its message */
    char data[256]; /* its JSON data, or "" */
};

static void ltx_init(struct ltx *x, struct trn *s) {
    memset(x, 0, sizeof *x);
    x->s = s;
    x->t = s->t;
}

static int ltx_fail(struct ltx *x, int code, const char *msg, const char *data) {
    if (!x->err) {
        x->err = code;
        snprintf(x->msg, sizeof x->msg, "%s", msg);
        snprintf(x->data, sizeof x->data, "%s", data ? data : "");
    }
    return -1;
}

static int ltx_acct(struct ltx *x, const uint8_t addr[20]) {
    for (int i = 0; i < x->nacct; i++)
        if (memcmp(x->acct[i].addr, addr, 20) == 0)
            return i;
    int i = x->nacct++;
    memcpy(x->acct[i].addr, addr, 20);
    if (trn_balance_get(x->s, addr, &x->acct[i].bal) < 0)
        return ltx_fail(x, TRN_ERR_INTERNAL, "store read failed", NULL);
    return i;
}

/* Take amt from addr; code says which error a shortfall is (balance or treasury). */
static int ltx_debit(struct ltx *x, const uint8_t addr[20], const struct ado_u256 *amt, int code) {
    if (x->err || ado_u256_is_zero(amt))
        return x->err ? -1 : 0;
    int i = ltx_acct(x, addr);
    if (i < 0)
        return -1;
    if (ado_u256_cmp(&x->acct[i].bal, amt) < 0) {
        char a[ADO_ETH_ADDRESS_TEXTLEN], b[ADO_U256_DEC_MAX], n[ADO_U256_DEC_MAX], d[256];
        ado_eth_address_checksum(addr, a);
        trn_dec(&x->acct[i].bal, b);
        trn_dec(amt, n);
        snprintf(d, sizeof d, "{\"account\":\"%s\",\"balance\":\"%s\",\"needed\":\"%s\"}", a, b, n);
        return ltx_fail(x, code,
                        code == TRN_ERR_TREASURY
                            ? "the treasury cannot pay for this operation"
                            : "insufficient balance: the operation would go below zero",
                        d);
    }
    ado_u256_sub(&x->acct[i].bal, &x->acct[i].bal, amt);
    ado_u256_sub(&x->t.balances, &x->t.balances, amt);
    return 0;
}

static int ltx_credit(struct ltx *x, const uint8_t addr[20], const struct ado_u256 *amt) {
    if (x->err || ado_u256_is_zero(amt))
        return x->err ? -1 : 0;
    int i = ltx_acct(x, addr);
    if (i < 0)
        return -1;
    if (ado_u256_add(&x->acct[i].bal, &x->acct[i].bal, amt) ||
        ado_u256_add(&x->t.balances, &x->t.balances, amt))
        return ltx_fail(x, TRN_ERR_PARAMS, "invalid params: amount overflows uint256", NULL);
    return 0;
}

/* addr earns amt in the open epoch (claimable on L2 once the epoch settles). */
static int ltx_earn(struct ltx *x, const uint8_t addr[20], const struct ado_u256 *amt) {
    if (x->err)
        return -1;
    memcpy(x->earn_addr, addr, 20);
    x->earn_amt = *amt;
    x->earn_set = 1;
    if (ado_u256_add(&x->t.epoch_total, &x->t.epoch_total, amt) ||
        ado_u256_add(&x->t.earned_all, &x->t.earned_all, amt))
        return ltx_fail(x, TRN_ERR_PARAMS, "invalid params: amount overflows uint256", NULL);
    return 0;
}

/* The invisible gas of one operation, paid by the treasury. */
static int ltx_gas(struct ltx *x) {
    if (ltx_debit(x, x->s->treasury, &x->s->gas_per_op, TRN_ERR_TREASURY) < 0)
        return -1;
    ado_u256_add(&x->t.gas, &x->t.gas, &x->s->gas_per_op);
    return 0;
}

/* Write everything, log the op. Returns 0 or a store error. */
static int ltx_commit(struct ltx *x, const struct trn_op *op) {
    struct trn *s = x->s;
    int rc = 0;
    for (int i = 0; i < x->nacct && rc == 0; i++)
        rc = trn_balance_put(s, x->acct[i].addr, &x->acct[i].bal);
    if (rc == 0 && x->earn_set && !ado_u256_is_zero(&x->earn_amt)) {
        uint8_t key[28], be[32];
        trn_be64(x->t.epoch, key);
        memcpy(key + 8, x->earn_addr, 20);
        const void *v;
        size_t len;
        struct ado_u256 cur;
        ado_u256_from_u64(&cur, 0);
        rc = s->api->store_get(s->ctx, s->db.earned, key, 28, &v, &len);
        if (rc == 0 && len == 32)
            ado_u256_from_be32(&cur, v);
        rc = rc == ADO_ENOTFOUND ? 0 : rc;
        if (rc == 0 && ado_u256_add(&cur, &cur, &x->earn_amt))
            rc = ADO_ELIMIT;
        ado_u256_to_be32(&cur, be);
        if (rc == 0)
            rc = s->api->store_put(s->ctx, s->db.earned, key, 28, be, 32);
    }
    if (rc == 0 && op) {
        uint8_t key[16], rec[TRN_OP_LEN];
        trn_be64(x->t.epoch, key);
        trn_be64(x->t.op_seq++, key + 8);
        trn_op_pack(op, rec);
        rc = s->api->store_put(s->ctx, s->db.ops, key, 16, rec, sizeof rec);
    }
    if (rc == 0) {
        s->t = x->t;
        rc = trn_save_totals(s);
    }
    return rc;
}

/* ---- replies once durable ---- */

struct pending {
    struct trn *s;
    ado_call *call;
    const char *topic; /* bus topic published once durable, or NULL */
    size_t len;
    char json[];
};

static void on_durable(ado_ctx *ctx, int status, void *arg) {
    struct pending *p = arg;
    struct trn *s = p->s;
    if (status < 0) {
        s->api->metric_add(ctx, "trn_ops_failed_total", NULL, 1);
        if (p->call)
            s->api->rpc_error(p->call, TRN_ERR_INTERNAL, "the write did not commit", NULL);
    } else {
        if (p->topic)
            s->api->bus_publish(ctx, p->topic, p->json, p->len);
        if (p->call)
            s->api->rpc_reply(p->call, p->json, p->len);
    }
    free(p);
}

/* Answer `call` with json once durable, publishing it on topic too. */
static void reply_durable(struct trn *s, ado_call *call, const char *topic, const char *json,
                          int len) {
    struct pending *p = malloc(sizeof *p + (size_t)len + 1);
    if (!p) {
        if (call)
            s->api->rpc_error(call, TRN_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    p->s = s, p->call = call, p->topic = topic, p->len = (size_t)len;
    memcpy(p->json, json, (size_t)len + 1);
    int rc = s->api->store_on_durable(s->ctx, on_durable, p);
    if (rc < 0) {
        if (call)
            s->api->rpc_error(call, TRN_ERR_INTERNAL, s->api->strerror(rc), NULL);
        free(p);
    }
}

static int finish(struct ltx *x, ado_call *call, const struct trn_op *op, const char *metric,
                  const char *topic, const char *json, int len) {
    struct trn *s = x->s;
    if (x->err) {
        s->api->metric_add(s->ctx, "trn_ops_refused_total", metric, 1);
        s->api->rpc_error(call, x->err, x->msg, x->data[0] ? x->data : NULL);
        return 0;
    }
    int rc = ltx_commit(x, op);
    if (rc < 0) {
        s->api->log(s->ctx, ADO_LOG_ERROR, "ledger write failed: %s", s->api->strerror(rc));
        s->api->rpc_error(call, TRN_ERR_INTERNAL, "ledger write failed", NULL);
        return rc;
    }
    s->api->metric_add(s->ctx, "trn_ops_total", metric, 1);
    reply_durable(s, call, topic, json, len);
    return 0;
}

/* Content number and creator of `id`: 0, ADO_ENOTFOUND or a store error. */
static int content_get(struct trn *s, const char *id, size_t len, uint32_t *num,
                       uint8_t creator[20]) {
    const void *v;
    size_t vlen;
    int rc = s->api->store_get(s->ctx, s->db.content, id, len, &v, &vlen);
    if (rc < 0)
        return rc;
    if (vlen != 24)
        return ADO_EIO;
    const uint8_t *b = v;
    *num = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    memcpy(creator, b + 4, 20);
    return 0;
}

/* Look content up for an operation; on failure the error is set in x. */
static int ltx_content(struct ltx *x, const char *id, size_t len, uint32_t *num,
                       uint8_t creator[20]) {
    int rc = content_get(x->s, id, len, num, creator);
    if (rc == ADO_ENOTFOUND) {
        char d[200];
        snprintf(d, sizeof d, "{\"content\":\"%.*s\"}", (int)len, id);
        return ltx_fail(x, TRN_ERR_CONTENT, "unknown content", d);
    }
    if (rc < 0)
        return ltx_fail(x, TRN_ERR_INTERNAL, "store read failed", NULL);
    return 0;
}

/* ---- the operations ---- */

static void rpc_register_content(ado_ctx *ctx, ado_call *call, const char *params, size_t plen,
                                 void *arg) {
    struct trn *s = arg;
    (void)ctx;
    json_t *o = trn_params(s, call, params, plen);
    if (!o)
        return;
    const char *id;
    size_t idlen;
    uint8_t creator[20];
    int rc = need_content(s, call, o, &id, &idlen);
    if (rc < 0)
        goto out;
    if ((rc = trn_need_addr(s, call, o, "creator", creator)) < 0)
        goto out;
    struct ltx x;
    ltx_init(&x, s);
    uint32_t num;
    uint8_t other[20];
    rc = content_get(s, id, idlen, &num, other);
    if (rc == 0) {
        char d[200];
        snprintf(d, sizeof d, "{\"content\":\"%.*s\"}", (int)idlen, id);
        ltx_fail(&x, TRN_ERR_EXISTS, "content already registered", d);
    } else if (rc != ADO_ENOTFOUND) {
        ltx_fail(&x, TRN_ERR_INTERNAL, "store read failed", NULL);
    } else if (x.t.contents >= UINT32_MAX) {
        ltx_fail(&x, TRN_ERR_INTERNAL, "content numbers exhausted", NULL);
    }
    ltx_gas(&x);
    num = (uint32_t)(x.t.contents + 1);
    if (!x.err) {
        uint8_t rec[24], nkey[4], rrec[20 + CONTENT_MAX];
        nkey[0] = rec[0] = (uint8_t)(num >> 24), nkey[1] = rec[1] = (uint8_t)(num >> 16);
        nkey[2] = rec[2] = (uint8_t)(num >> 8), nkey[3] = rec[3] = (uint8_t)num;
        memcpy(rec + 4, creator, 20);
        memcpy(rrec, creator, 20);
        memcpy(rrec + 20, id, idlen);
        x.t.contents = num;
        rc = s->api->store_put(s->ctx, s->db.content, id, idlen, rec, sizeof rec);
        if (rc == 0)
            rc = s->api->store_put(s->ctx, s->db.contentn, nkey, 4, rrec, 20 + idlen);
        if (rc < 0)
            ltx_fail(&x, TRN_ERR_INTERNAL, "store write failed", NULL);
    }
    struct trn_op op = {.type = TRN_OP_REGISTER, .content = num};
    memcpy(op.account, creator, 20);
    char a[ADO_ETH_ADDRESS_TEXTLEN], out[400];
    ado_eth_address_checksum(creator, a);
    int n = snprintf(out, sizeof out,
                     "{\"content\":\"%.*s\",\"number\":%u,\"creator\":\"%s\",\"epoch\":%llu}",
                     (int)idlen, id, num, a, (unsigned long long)x.t.epoch);
    finish(&x, call, &op, "op=\"register\"", "trn.content", out, n);
out:
    json_decref(o);
}

static void rpc_view(ado_ctx *ctx, ado_call *call, const char *params, size_t plen, void *arg) {
    struct trn *s = arg;
    (void)ctx;
    json_t *o = trn_params(s, call, params, plen);
    if (!o)
        return;
    const char *id;
    size_t idlen;
    uint8_t viewer[20], creator[20];
    int rc = need_content(s, call, o, &id, &idlen);
    if (rc < 0)
        goto out;
    if ((rc = trn_need_addr(s, call, o, "viewer", viewer)) < 0)
        goto out;
    struct ltx x;
    ltx_init(&x, s);
    uint32_t num = 0;
    ltx_content(&x, id, idlen, &num, creator);
    /* The viewer pays view_cost to the treasury; the treasury pays the creator's reward and
     * the gas. */
    ltx_debit(&x, viewer, &s->view_cost, TRN_ERR_BALANCE);
    ltx_credit(&x, s->treasury, &s->view_cost);
    ltx_debit(&x, s->treasury, &s->view_reward, TRN_ERR_TREASURY);
    ltx_earn(&x, creator, &s->view_reward);
    ltx_gas(&x);
    struct trn_op op = {.type = TRN_OP_VIEW, .content = num};
    memcpy(op.account, viewer, 20);
    char va[ADO_ETH_ADDRESS_TEXTLEN], ca[ADO_ETH_ADDRESS_TEXTLEN], r[ADO_U256_DEC_MAX], out[512];
    ado_eth_address_checksum(viewer, va);
    ado_eth_address_checksum(creator, ca);
    trn_dec(&s->view_reward, r);
    int n = snprintf(out, sizeof out,
                     "{\"content\":\"%.*s\",\"viewer\":\"%s\",\"creator\":\"%s\",\"reward\":\"%s\","
                     "\"epoch\":%llu}",
                     (int)idlen, id, va, ca, r, (unsigned long long)x.t.epoch);
    finish(&x, call, &op, "op=\"view\"", "trn.view", out, n);
out:
    json_decref(o);
}

static void rpc_boost(ado_ctx *ctx, ado_call *call, const char *params, size_t plen, void *arg) {
    struct trn *s = arg;
    (void)ctx;
    json_t *o = trn_params(s, call, params, plen);
    if (!o)
        return;
    const char *id;
    size_t idlen;
    uint8_t account[20], creator[20];
    struct ado_u256 amount, cost;
    int rc = need_content(s, call, o, &id, &idlen);
    if (rc < 0)
        goto out;
    if ((rc = trn_need_addr(s, call, o, "account", account)) < 0)
        goto out;
    rc = trn_get_amount(o, "amount", &amount);
    if (rc == 0 && ado_u256_is_zero(&amount))
        rc = ADO_EINVAL;
    if (rc < 0 || ado_u256_add(&cost, &amount, &s->boost_fee)) {
        trn_bad_param(s, call, "amount", rc ? rc : ADO_EINVAL,
                      "expected a positive integer in the uint256 range (decimal or 0x string)");
        goto out;
    }
    struct ltx x;
    ltx_init(&x, s);
    uint32_t num = 0;
    ltx_content(&x, id, idlen, &num, creator);
    /* The booster pays amount + fee; the creator earns amount; the fee goes to the treasury. */
    ltx_debit(&x, account, &cost, TRN_ERR_BALANCE);
    ltx_credit(&x, s->treasury, &s->boost_fee);
    ltx_earn(&x, creator, &amount);
    ltx_gas(&x);
    struct trn_op op = {.type = TRN_OP_BOOST, .content = num};
    memcpy(op.account, account, 20);
    ado_u256_to_be32(&amount, op.amount);
    char aa[ADO_ETH_ADDRESS_TEXTLEN], ca[ADO_ETH_ADDRESS_TEXTLEN], am[ADO_U256_DEC_MAX],
        fe[ADO_U256_DEC_MAX], out[600];
    ado_eth_address_checksum(account, aa);
    ado_eth_address_checksum(creator, ca);
    trn_dec(&amount, am);
    trn_dec(&s->boost_fee, fe);
    int n =
        snprintf(out, sizeof out,
                 "{\"content\":\"%.*s\",\"account\":\"%s\",\"creator\":\"%s\",\"amount\":\"%s\","
                 "\"fee\":\"%s\",\"epoch\":%llu}",
                 (int)idlen, id, aa, ca, am, fe, (unsigned long long)x.t.epoch);
    finish(&x, call, &op, "op=\"boost\"", "trn.boost", out, n);
out:
    json_decref(o);
}

static void rpc_burn(ado_ctx *ctx, ado_call *call, const char *params, size_t plen, void *arg) {
    struct trn *s = arg;
    (void)ctx;
    json_t *o = trn_params(s, call, params, plen);
    if (!o)
        return;
    const char *id = NULL;
    size_t idlen = 0;
    uint8_t account[20], creator[20];
    struct ado_u256 amount;
    int rc = get_content_id(o, "content", &id, &idlen);
    if (rc == ADO_EINVAL) {
        trn_bad_param(s, call, "content", rc, "1 to 128 characters of A-Z a-z 0-9 . _ : / -");
        goto out;
    }
    if ((rc = trn_need_addr(s, call, o, "account", account)) < 0)
        goto out;
    rc = trn_get_amount(o, "amount", &amount);
    if (rc < 0 || ado_u256_is_zero(&amount)) {
        trn_bad_param(s, call, "amount", rc ? rc : ADO_EINVAL,
                      "expected a positive integer in the uint256 range (decimal or 0x string)");
        goto out;
    }
    struct ltx x;
    ltx_init(&x, s);
    uint32_t num = 0;
    if (id)
        ltx_content(&x, id, idlen, &num, creator);
    ltx_debit(&x, account, &amount, TRN_ERR_BALANCE);
    ado_u256_add(&x.t.burned, &x.t.burned, &amount);
    ltx_gas(&x);
    struct trn_op op = {.type = id ? TRN_OP_BURN_FOR : TRN_OP_BURN, .content = num};
    memcpy(op.account, account, 20);
    ado_u256_to_be32(&amount, op.amount);
    char aa[ADO_ETH_ADDRESS_TEXTLEN], am[ADO_U256_DEC_MAX], out[512];
    ado_eth_address_checksum(account, aa);
    trn_dec(&amount, am);
    int n = snprintf(out, sizeof out,
                     "{\"account\":\"%s\",\"amount\":\"%s\",\"content\":%s%.*s%s,\"epoch\":%llu}",
                     aa, am, id ? "\"" : "", id ? (int)idlen : 4, id ? id : "null", id ? "\"" : "",
                     (unsigned long long)x.t.epoch);
    finish(&x, call, &op, "op=\"burn\"", "trn.burn", out, n);
out:
    json_decref(o);
}

static void rpc_balance(ado_ctx *ctx, ado_call *call, const char *params, size_t plen, void *arg) {
    struct trn *s = arg;
    (void)ctx;
    json_t *o = trn_params(s, call, params, plen);
    if (!o)
        return;
    uint8_t account[20];
    int rc = trn_need_addr(s, call, o, "account", account);
    json_decref(o);
    if (rc < 0)
        return;
    struct ado_u256 bal, earned;
    ado_u256_from_u64(&earned, 0);
    uint8_t key[28];
    trn_be64(s->t.epoch, key);
    memcpy(key + 8, account, 20);
    const void *v;
    size_t len;
    if (s->api->store_get(s->ctx, s->db.earned, key, 28, &v, &len) == 0 && len == 32)
        ado_u256_from_be32(&earned, v);
    if (trn_balance_get(s, account, &bal) < 0) {
        s->api->rpc_error(call, TRN_ERR_INTERNAL, "store read failed", NULL);
        return;
    }
    char aa[ADO_ETH_ADDRESS_TEXTLEN], b[ADO_U256_DEC_MAX], e[ADO_U256_DEC_MAX], out[300];
    ado_eth_address_checksum(account, aa);
    trn_dec(&bal, b);
    trn_dec(&earned, e);
    int n = snprintf(out, sizeof out,
                     "{\"account\":\"%s\",\"balance\":\"%s\",\"earned\":\"%s\",\"epoch\":%llu}", aa,
                     b, e, (unsigned long long)s->t.epoch);
    s->api->rpc_reply(call, out, (size_t)n);
}

int trn_register_ledger_rpc(struct trn *s) {
    const struct ado_api *a = s->api;
    int rc = a->rpc_register(s->ctx, "trn_registerContent", "writer",
                             "Register content {content, creator}", rpc_register_content, s);
    if (rc == 0)
        rc = a->rpc_register(s->ctx, "trn_view", "writer",
                             "Record a view {content, viewer}; the creator earns the view reward",
                             rpc_view, s);
    if (rc == 0)
        rc = a->rpc_register(s->ctx, "trn_boost", "writer",
                             "Boost content {content, account, amount}", rpc_boost, s);
    if (rc == 0)
        rc = a->rpc_register(s->ctx, "trn_burn", "writer", "Burn {account, amount, content?}",
                             rpc_burn, s);
    if (rc == 0)
        rc = a->rpc_register(s->ctx, "trn_balance", "reader",
                             "Balance and open-epoch earnings of {account}", rpc_balance, s);
    return rc;
}

/* ---- deposits observed on L2 ---- */

/* The event object: evm_l2's {contract, event, block, tx, log_index, args}, either as the bus
 * payload itself or wrapped by the bridge as {"payload": ...}. Returns a new reference. */
json_t *trn_l2_event(const void *data, size_t len) {
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY, NULL);
    for (int depth = 0; v && depth < 2; depth++) {
        if (json_is_object(v) && json_object_get(v, "args"))
            return v;
        json_t *p = json_is_object(v) ? json_object_get(v, "payload") : NULL;
        json_t *next = NULL;
        if (json_is_object(p))
            next = json_incref(p);
        else if (json_is_string(p))
            next = json_loadb(json_string_value(p), json_string_length(p), 0, NULL);
        json_decref(v);
        v = next;
    }
    json_decref(v);
    return NULL;
}

/* Does the event's contract match `want` (an address or alias; "" matches anything)? */
int trn_contract_matches(json_t *ev, const char *want) {
    if (!want || !*want)
        return 1;
    const char *c = json_string_value(json_object_get(ev, "contract"));
    return c && strcasecmp(c, want) == 0;
}

static int on_deposit(ado_ctx *ctx, const char *topic, const void *data, size_t len, void *arg) {
    struct trn *s = arg;
    (void)topic;
    json_t *ev = trn_l2_event(data, len);
    if (!ev) {
        s->api->log(ctx, ADO_LOG_WARN, "deposit event ignored: not an L2 event object");
        return 0;
    }
    int rc = 0;
    if (!trn_contract_matches(ev, s->deposits_contract))
        goto out;
    json_t *args = json_object_get(ev, "args");
    uint8_t account[20];
    struct ado_u256 amount;
    const char *tx = json_string_value(json_object_get(ev, "tx"));
    json_t *li = json_object_get(ev, "log_index");
    if (!tx || !json_is_integer(li) || trn_get_addr(args, "account", account) < 0 ||
        trn_get_amount(args, "amount", &amount) < 0) {
        s->api->log(ctx, ADO_LOG_WARN,
                    "deposit event ignored: needs tx, log_index, "
                    "args.account and args.amount");
        s->api->metric_add(ctx, "trn_deposits_malformed_total", NULL, 1);
        goto out;
    }
    char key[160];
    int kn = snprintf(key, sizeof key, "%.100s:%lld", tx, (long long)json_integer_value(li));
    const void *v;
    size_t vl;
    if (s->api->store_get(ctx, s->db.deposits, key, (size_t)kn, &v, &vl) == 0) {
        s->api->metric_add(ctx, "trn_deposits_duplicate_total", NULL, 1);
        goto out; /* seen already (a re-delivery or a re-org replay) */
    }
    struct ltx x;
    ltx_init(&x, s);
    ltx_credit(&x, account, &amount);
    if (ado_u256_add(&x.t.deposits, &x.t.deposits, &amount))
        ltx_fail(&x, TRN_ERR_PARAMS, "deposit overflows", NULL);
    if (x.err) {
        s->api->log(ctx, ADO_LOG_ERROR, "deposit %s refused: %s", key, x.msg);
        goto out;
    }
    rc = s->api->store_put(ctx, s->db.deposits, key, (size_t)kn, "1", 1);
    if (rc == 0)
        rc = ltx_commit(&x, NULL);
    if (rc < 0) {
        s->api->log(ctx, ADO_LOG_ERROR, "deposit %s not recorded: %s", key, s->api->strerror(rc));
        goto out;
    }
    s->api->metric_add(ctx, "trn_deposits_total", NULL, 1);
    char aa[ADO_ETH_ADDRESS_TEXTLEN], am[ADO_U256_DEC_MAX], out[400];
    ado_eth_address_checksum(account, aa);
    trn_dec(&amount, am);
    int n = snprintf(out, sizeof out, "{\"account\":\"%s\",\"amount\":\"%s\",\"tx\":\"%.100s\"}",
                     aa, am, tx);
    reply_durable(s, NULL, "trn.deposit", out, n);
out:
    json_decref(ev);
    return rc;
}

int trn_subscribe_deposits(struct trn *s) {
    char pat[200];
    snprintf(pat, sizeof pat, "bridge.in.%s.%s", s->peer, s->deposit_event);
    return s->api->bus_subscribe(s->ctx, pat, on_deposit, s, NULL);
}
