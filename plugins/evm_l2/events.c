/* evm_l2: message payloads (to + calldata) and L2 events (logs -> bus).
 *
 * Events are polled with eth_getLogs over block ranges that have `confirmations`
 * confirmations, decoded with adoeth's ABI decoder (indexed parameters from the topics, the
 * others from the data), deduplicated by (block hash, log index) in the store, and published
 * as bridge.in.l2.<EventName>. The scan cursor and the dedupe marks are written in the same
 * turn as the publication. */
#include "evm_l2.h"

#include <ado_eth/abi.h>
#include <ado_eth/address.h>
#include <ado_eth/common.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- payloads ------------------------------------------------------------------------------ */

int evm_resolve_address(struct evm_peer *p, const char *text, uint8_t out[20]) {
    if (!text)
        return ADO_EINVAL;
    if (!strncmp(text, "0x", 2) || !strncmp(text, "0X", 2))
        return ado_eth_address_parse(text, strlen(text), out);
    const char *a = json_string_value(json_object_get(json_object_get(p->cfg, "contracts"), text));
    return a ? ado_eth_address_parse(a, strlen(a), out) : ADO_ENOTFOUND;
}

static int json_u64(json_t *v, uint64_t *out) {
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s)
        return ADO_EINVAL;
    char *end;
    *out = strtoull(s, &end, 0);
    return *end ? ADO_EINVAL : 0;
}

int evm_payload_parse(struct evm_peer *p, const void *payload, size_t len, uint8_t to[20],
                      uint8_t **data, size_t *data_len, struct ado_u256 *value, uint64_t *gas,
                      char why[256]) {
    json_error_t jerr;
    json_t *o = json_loadb(payload, len, 0, &jerr);
    int rc = ADO_EINVAL;
    *gas = 0;
    ado_u256_from_u64(value, 0);
    if (!o || !json_is_object(o)) {
        snprintf(why, 256, "payload is not a JSON object%s%s", o ? "" : ": ", o ? "" : jerr.text);
        goto out;
    }
    const char *to_s = json_string_value(json_object_get(o, "to"));
    const char *sig = json_string_value(json_object_get(o, "signature"));
    json_t *gl = json_object_get(o, "gas_limit");
    json_t *call = json_object_get(o, "call");
    if (call) {
        json_t *c = json_object_get(json_object_get(p->cfg, "calls"), json_string_value(call));
        if (!json_is_object(c)) {
            snprintf(why, 256, "unknown call \"%s\" (not in the calls map)",
                     json_string_value(call) ? json_string_value(call) : "?");
            goto out;
        }
        if (!to_s)
            to_s = json_string_value(json_object_get(c, "to"));
        if (!sig)
            sig = json_string_value(json_object_get(c, "signature"));
        if (!gl)
            gl = json_object_get(c, "gas_limit");
    }
    if (!to_s || !sig) {
        snprintf(why, 256, "payload needs \"to\" and \"signature\" (or \"call\")");
        goto out;
    }
    rc = evm_resolve_address(p, to_s, to);
    if (rc < 0) {
        snprintf(why, 256, "\"to\": %s is neither an address nor a contracts alias", to_s);
        rc = ADO_EINVAL;
        goto out;
    }
    if (gl && (json_u64(gl, gas) < 0 || *gas < 21000)) {
        snprintf(why, 256, "bad gas_limit");
        rc = ADO_EINVAL;
        goto out;
    }
    json_t *v = json_object_get(o, "value");
    if (v) {
        char buf[32];
        const char *vs = json_string_value(v);
        if (json_is_integer(v) && json_integer_value(v) >= 0) {
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            vs = buf;
        }
        if (!vs || ado_u256_parse_str(value, vs) < 0) {
            snprintf(why, 256, "bad value (wei as a decimal or 0x string)");
            rc = ADO_EINVAL;
            goto out;
        }
    }
    json_t *args = json_object_get(o, "args");
    char *args_s = args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("[]");
    if (!args_s) {
        rc = ADO_ENOMEM;
        goto out;
    }
    struct ado_eth_error ee = {{0}};
    rc = ado_abi_encode_call(sig, args_s, data, data_len, &ee);
    free(args_s);
    if (rc < 0)
        snprintf(why, 256, "%.80s: %.160s", sig,
                 ee.msg[0] ? ee.msg : "cannot encode the arguments");
out:
    json_decref(o);
    return rc;
}

/* ---- revert reasons -------------------------------------------------------------------- */

void evm_revert_reason(const char *hex, char *out, size_t cap) {
    size_t hl = strlen(hex);
    uint8_t *b = malloc(hl / 2 + 1);
    size_t n = 0;
    if (!b || ado_eth_hex_decode(hex, hl, b, hl / 2 + 1, &n) < 0 || n < 4) {
        snprintf(out, cap, "reverted%s%s", n ? " with data " : "", n ? hex : "");
        free(b);
        return;
    }
    char *dec = NULL;
    if (!memcmp(b, "\x08\xc3\x79\xa0", 4) &&
        ado_abi_decode_json("string", b + 4, n - 4, &dec, NULL) == 0) {
        json_t *a = json_loads(dec, 0, NULL);
        snprintf(out, cap, "reverted: %s", json_string_value(json_array_get(a, 0)));
        json_decref(a);
    } else if (!memcmp(b, "\x4e\x48\x7b\x71", 4) &&
               ado_abi_decode_json("uint256", b + 4, n - 4, &dec, NULL) == 0) {
        snprintf(out, cap, "panic %s", dec);
    } else {
        snprintf(out, cap, "reverted with custom error %.*s (data %s)", 10, hex, hex);
    }
    free(dec);
    free(b);
}

/* ---- event signatures ------------------------------------------------------------------- */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = 0;
    return s;
}

/* Split "Name(type [indexed] [name], ...)" into the event's parameters. */
static int event_parse(struct evm_event *ev, const char *sig, char why[256]) {
    const char *lp = strchr(sig, '(');
    size_t sl = strlen(sig);
    if (!lp || lp == sig || sig[sl - 1] != ')') {
        snprintf(why, 256, "event signature \"%s\" is not Name(types)", sig);
        return ADO_ECONFIG;
    }
    ev->name = strndup(sig, (size_t)(lp - sig));
    char *body = strndup(lp + 1, sl - (size_t)(lp - sig) - 2);
    struct ado_eth_error ee = {{0}};
    if (!ev->name || !body || ado_abi_canonical_signature(sig, &ev->canonical, &ee) < 0 ||
        ado_abi_event_topic(ev->canonical, ev->topic0, &ee) < 0) {
        snprintf(why, 256, "event \"%.80s\": %.160s", sig, ee.msg[0] ? ee.msg : "out of memory");
        free(body);
        return ADO_ECONFIG;
    }
    /* Canonical types, one per parameter, from the canonical signature. */
    const char *ct = strchr(ev->canonical, '(') + 1;
    size_t cap = 8;
    ev->ptypes = calloc(cap, sizeof *ev->ptypes);
    ev->pnames = calloc(cap, sizeof *ev->pnames);
    ev->indexed = calloc(cap, sizeof *ev->indexed);
    char *src = body;
    int depth = 0;
    int done = !*trim(body);
    while (!done && ev->ptypes && ev->pnames && ev->indexed) {
        /* next top-level comma in the original and in the canonical text */
        char *q = src;
        for (depth = 0; *q && !(*q == ',' && depth == 0); q++)
            depth += *q == '(' ? 1 : *q == ')' ? -1 : 0;
        done = !*q;
        *q = 0;
        const char *cq = ct;
        for (depth = 0; *cq && !((*cq == ',' || *cq == ')') && depth == 0); cq++)
            depth += *cq == '(' ? 1 : *cq == ')' ? -1 : 0;
        if (ev->nparams == cap) {
            cap *= 2;
            char **a = realloc(ev->ptypes, cap * sizeof *a);
            if (a)
                ev->ptypes = a;
            char **b = realloc(ev->pnames, cap * sizeof *b);
            if (b)
                ev->pnames = b;
            int *c = realloc(ev->indexed, cap * sizeof *c);
            if (c)
                ev->indexed = c;
            if (!a || !b || !c)
                break;
        }
        size_t i = ev->nparams++;
        ev->ptypes[i] = strndup(ct, (size_t)(cq - ct));
        ev->pnames[i] = NULL;
        ev->indexed[i] = -1;
        ct = *cq ? cq + 1 : cq;
        /* words after the type: "indexed" and/or a name (after the closing paren of a
         * tuple type) */
        char *p = trim(src);
        char *tail = p;
        for (depth = 0; *tail && !(*tail == ' ' && depth == 0); tail++)
            depth += *tail == '(' ? 1 : *tail == ')' ? -1 : 0;
        char *tok = strtok(tail, " \t");
        while (tok) {
            if (!strcmp(tok, "indexed")) {
                ev->indexed[i] = 1;
                ev->any_marked = 1;
            } else {
                free(ev->pnames[i]);
                ev->pnames[i] = strdup(tok);
            }
            tok = strtok(NULL, " \t");
        }
        src = q + 1;
    }
    free(body);
    if (!ev->ptypes || !ev->pnames || !ev->indexed) {
        snprintf(why, 256, "out of memory");
        return ADO_ENOMEM;
    }
    if (ev->any_marked)
        for (size_t i = 0; i < ev->nparams; i++)
            if (ev->indexed[i] < 0)
                ev->indexed[i] = 0;
    return 0;
}

int evm_events_parse(struct evm_peer *p, char why[256]) {
    json_t *list = json_object_get(p->cfg, "events");
    size_t n = json_array_size(list);
    if (!n)
        return 0;
    p->events = calloc(n, sizeof *p->events);
    if (!p->events)
        return ADO_ENOMEM;
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        struct evm_event *ev = &p->events[p->nevents++];
        const char *sig = json_string_value(json_object_get(it, "signature"));
        const char *c = json_string_value(json_object_get(it, "contract"));
        if (!sig) {
            snprintf(why, 256, "events[%zu]: signature is required", i);
            return ADO_ECONFIG;
        }
        int rc = event_parse(ev, sig, why);
        if (rc < 0)
            return rc;
        if (c) {
            if (evm_resolve_address(p, c, ev->addr) < 0) {
                snprintf(why, 256,
                         "events[%zu]: contract \"%s\" is neither an address nor a "
                         "contracts alias",
                         i, c);
                return ADO_ECONFIG;
            }
            ev->has_addr = 1;
        }
    }
    return 0;
}

void evm_events_free(struct evm_peer *p) {
    for (size_t i = 0; i < p->nevents; i++) {
        struct evm_event *ev = &p->events[i];
        for (size_t j = 0; j < ev->nparams; j++) {
            free(ev->ptypes ? ev->ptypes[j] : NULL);
            free(ev->pnames ? ev->pnames[j] : NULL);
        }
        free(ev->ptypes);
        free(ev->pnames);
        free(ev->indexed);
        free(ev->name);
        free(ev->canonical);
    }
    free(p->events);
    p->events = NULL;
    p->nevents = 0;
}

/* ---- decoding and publishing ------------------------------------------------------------ */

static int is_dynamic(const char *t) {
    return !strcmp(t, "string") || !strcmp(t, "bytes") || strchr(t, '[') || t[0] == '(';
}

/* Decode one log with ev into {name-or-index: value}. Returns NULL if it does not fit. */
static json_t *event_decode(const struct evm_event *ev, json_t *topics, const uint8_t *data,
                            size_t dlen) {
    size_t nt = json_array_size(topics);
    if (nt == 0)
        return NULL;
    size_t nidx = nt - 1, marked = 0;
    int idx[64];
    if (ev->nparams > 64)
        return NULL;
    for (size_t i = 0; i < ev->nparams; i++) {
        /* Unmarked signatures: the first (topics - 1) parameters are the indexed ones. */
        idx[i] = ev->indexed[i] >= 0 ? ev->indexed[i] : i < nidx;
        marked += (size_t)idx[i];
    }
    if (marked != nidx)
        return NULL;
    json_t *args = json_object();
    char types[1024] = "";
    size_t ti = 1, ndata = 0;
    for (size_t i = 0; i < ev->nparams; i++) {
        if (idx[i])
            continue;
        if (strlen(types) + strlen(ev->ptypes[i]) + 2 >= sizeof types)
            goto fail;
        if (ndata++)
            strcat(types, ",");
        strcat(types, ev->ptypes[i]);
    }
    json_t *vals = NULL;
    if (ndata) {
        char *dec = NULL;
        if (ado_abi_decode_json(types, data, dlen, &dec, NULL) < 0)
            goto fail;
        vals = json_loads(dec, 0, NULL);
        free(dec);
        if (!vals)
            goto fail;
    }
    size_t di = 0;
    for (size_t i = 0; i < ev->nparams; i++) {
        json_t *val = NULL;
        if (idx[i]) {
            const char *th = json_string_value(json_array_get(topics, ti++));
            uint8_t word[32];
            size_t wl = 0;
            if (!th || ado_eth_hex_decode(th, strlen(th), word, 32, &wl) < 0 || wl != 32)
                goto fail_vals;
            if (is_dynamic(ev->ptypes[i])) {
                val = json_string(th); /* the keccak256 of the value */
            } else {
                char *dec = NULL;
                if (ado_abi_decode_json(ev->ptypes[i], word, 32, &dec, NULL) < 0)
                    goto fail_vals;
                json_t *a = json_loads(dec, 0, NULL);
                free(dec);
                val = json_incref(json_array_get(a, 0));
                json_decref(a);
            }
        } else {
            val = json_incref(json_array_get(vals, di++));
        }
        if (!val)
            goto fail_vals;
        char key[24];
        snprintf(key, sizeof key, "%zu", i);
        json_object_set_new(args, ev->pnames[i] ? ev->pnames[i] : key, val);
    }
    json_decref(vals);
    return args;
fail_vals:
    json_decref(vals);
fail:
    json_decref(args);
    return NULL;
}

struct logs_req {
    struct evm_peer *p;
    uint64_t from, to;
};

static int seen_key(struct evm_peer *p, const char *bh, uint64_t li, char *k, size_t cap) {
    return snprintf(k, cap, "%s/s/%s/%" PRIu64, p->name, bh, li);
}

static void save_cursor(struct evm_peer *p) {
    char k[160], v[32];
    int kl = snprintf(k, sizeof k, "%s/e", p->name);
    int vl = snprintf(v, sizeof v, "%" PRIu64, p->ev_next);
    p->e->api->store_put(p->e->ctx, p->e->db, k, (size_t)kl, v, (size_t)vl);
}

static void publish_log(struct evm_peer *p, json_t *log) {
    struct evm *e = p->e;
    const char *addr = json_string_value(json_object_get(log, "address"));
    json_t *topics = json_object_get(log, "topics");
    const char *t0 = json_string_value(json_array_get(topics, 0));
    const char *bh = json_string_value(json_object_get(log, "blockHash"));
    const char *txh = json_string_value(json_object_get(log, "transactionHash"));
    uint64_t blk = 0, li = 0;
    uint8_t a[20], topic0[32];
    size_t tl = 0;
    if (!addr || !t0 || !bh || !txh || evm_hex_u64(json_object_get(log, "blockNumber"), &blk) ||
        evm_hex_u64(json_object_get(log, "logIndex"), &li) ||
        ado_eth_address_parse(addr, strlen(addr), a) < 0 ||
        ado_eth_hex_decode(t0, strlen(t0), topic0, 32, &tl) < 0 || tl != 32)
        return;
    if (json_is_true(json_object_get(log, "removed")))
        return;
    char k[300];
    int kl = seen_key(p, bh, li, k, sizeof k);
    const void *v;
    size_t vl;
    if (e->api->store_get(e->ctx, e->db, k, (size_t)kl, &v, &vl) == 0)
        return; /* published before */
    const char *dh = json_string_value(json_object_get(log, "data"));
    size_t dlen = dh ? strlen(dh) / 2 : 0;
    uint8_t *data = malloc(dlen + 1);
    if (!data || !dh || ado_eth_hex_decode(dh, strlen(dh), data, dlen + 1, &dlen) < 0) {
        free(data);
        return;
    }
    for (size_t i = 0; i < p->nevents; i++) {
        struct evm_event *ev = &p->events[i];
        if (memcmp(ev->topic0, topic0, 32) || (ev->has_addr && memcmp(ev->addr, a, 20)))
            continue;
        json_t *args = event_decode(ev, topics, data, dlen);
        if (!args)
            continue;
        char addr_cs[43], topic[200];
        ado_eth_address_checksum(a, addr_cs);
        json_t *body =
            json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:o}", "contract", addr_cs, "event", ev->name,
                      "signature", ev->canonical, "block", (json_int_t)blk, "block_hash", bh, "tx",
                      txh, "log_index", (json_int_t)li, "args", args);
        char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        snprintf(topic, sizeof topic, "bridge.in.%.64s.%.100s", p->name, ev->name);
        if (txt) {
            int rc = e->api->bus_publish(e->ctx, topic, txt, strlen(txt));
            if (rc < 0)
                e->api->log(e->ctx, ADO_LOG_WARN, "publish %s: %s", topic, e->api->strerror(rc));
            else
                evm_metric(p, "evm_l2_events_total", 1);
        }
        free(txt);
        e->api->store_put(e->ctx, e->db, k, (size_t)kl, "1", 1);
        break;
    }
    free(data);
}

static void on_logs(void *arg, int status, json_t *result, json_t *error) {
    struct logs_req *r = arg;
    struct evm_peer *p = r->p;
    uint64_t to = r->to;
    free(r);
    if (status == ADO_ECLOSED)
        return;
    p->ev_busy = 0;
    if (status < 0 || !json_is_array(result)) {
        evm_metric(p, "evm_l2_rpc_errors_total", 1);
        if (error)
            p->e->api->log(p->e->ctx, ADO_LOG_WARN, "peer %s eth_getLogs: %s", p->name,
                           jrpc_error_message(error));
        return;
    }
    size_t i;
    json_t *log;
    json_array_foreach(result, i, log) {
        publish_log(p, log);
    }
    p->ev_next = to + 1;
    save_cursor(p); /* same turn as the publications and their dedupe marks */
}

void evm_events_poll(struct evm_peer *p) {
    struct evm *e = p->e;
    if (!p->nevents || p->ev_busy || p->head + 1 < p->confirmations)
        return;
    uint64_t safe = p->head + 1 - p->confirmations; /* newest block with enough confirmations */
    if (!p->ev_started) {
        p->ev_started = 1;
        char k[160];
        int kl = snprintf(k, sizeof k, "%s/e", p->name);
        const void *v;
        size_t vl;
        uint64_t from_cfg = 0;
        json_t *fb = json_object_get(p->cfg, "events_from_block");
        if (e->api->store_get(e->ctx, e->db, k, (size_t)kl, &v, &vl) == 0 && vl < 30) {
            char num[32];
            memcpy(num, v, vl);
            num[vl] = 0;
            p->ev_next = strtoull(num, NULL, 10);
        } else if (fb && json_u64(fb, &from_cfg) == 0) {
            p->ev_next = from_cfg;
        } else {
            p->ev_next = safe; /* default: from now on */
        }
    }
    if (p->ev_next > safe)
        return;
    uint64_t to = safe;
    if (to - p->ev_next > 2000)
        to = p->ev_next + 2000;
    struct logs_req *r = calloc(1, sizeof *r);
    json_t *addrs = json_array(), *t0s = json_array();
    if (!r || !addrs || !t0s) {
        free(r);
        json_decref(addrs);
        json_decref(t0s);
        return;
    }
    int all_addr = 0;
    for (size_t i = 0; i < p->nevents; i++) {
        char h[67] = "0x";
        ado_eth_hex_encode(p->events[i].topic0, 32, h + 2);
        json_array_append_new(t0s, json_string(h));
        if (p->events[i].has_addr) {
            char a[43];
            ado_eth_address_lower(p->events[i].addr, a);
            json_array_append_new(addrs, json_string(a));
        } else {
            all_addr = 1;
        }
    }
    char fb[32], tb[32];
    snprintf(fb, sizeof fb, "0x%" PRIx64, p->ev_next);
    snprintf(tb, sizeof tb, "0x%" PRIx64, to);
    json_t *filter = json_pack("{s:s,s:s,s:[o]}", "fromBlock", fb, "toBlock", tb, "topics", t0s);
    if (filter && !all_addr)
        json_object_set(filter, "address", addrs);
    json_decref(addrs);
    r->p = p;
    r->from = p->ev_next;
    r->to = to;
    if (!filter || jrpc_call(p->rpc, "eth_getLogs", json_pack("[o]", filter), on_logs, r) < 0) {
        free(r);
        return;
    }
    p->ev_busy = 1;
}
