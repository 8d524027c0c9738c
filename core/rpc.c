/* The JSON-RPC 2.0 method registry and dispatcher (transport-free).
 *
 * A message (one call or a batch) becomes a struct rpc_req with one slot per call; each call
 * with a method becomes an ado_call that lives until a handler answers it, now or later.
 * When every slot is filled the req assembles its answer and hands it to its connection, or
 * drops it when the client has gone (req->conn == NULL), or gives it to a local callback.
 * Built-in methods live in rpc_builtin.c, the network side in rpc_server.c. */
#include "rpc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ado/errors.h"
#include "log.h"
#include "node.h"
#include "rpc_priv.h"

const double ado_rpc_buckets[RPC_NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.5,    1.0};

void ado_rpc_builtins_register(struct ado_rpc *rpc);
void ado_rpc_echo_cancel_all(struct ado_rpc *rpc);

int ado_rpc_role_parse(const char *s) {
    if (!s)
        return -1;
    if (!strcmp(s, "none"))
        return RPC_ROLE_NONE;
    if (!strcmp(s, "reader"))
        return RPC_ROLE_READER;
    if (!strcmp(s, "writer"))
        return RPC_ROLE_WRITER;
    if (!strcmp(s, "admin"))
        return RPC_ROLE_ADMIN;
    return -1;
}

const char *ado_rpc_role_name(int role) {
    switch (role) {
    case RPC_ROLE_READER:
        return "reader";
    case RPC_ROLE_WRITER:
        return "writer";
    case RPC_ROLE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

int ado_rpc_new(struct ado_node *node, struct ado_rpc **out) {
    if (!node || !out)
        return ADO_EINVAL;
    struct ado_rpc *rpc = calloc(1, sizeof *rpc);
    if (!rpc)
        return ADO_ENOMEM;
    rpc->node = node;
    rpc->anonymous = RPC_ROLE_READER;
    rpc->max_request = 1 << 20;
    rpc->max_connections = 1024;
    rpc->sub_queue = 1024;
    rpc->next_sub_id = 1;
    ado_rpc_builtins_register(rpc);
    if (!rpc->nmethods) {
        free(rpc);
        return ADO_ENOMEM;
    }
    *out = rpc;
    return 0;
}

static void method_free(struct rpc_method *m) {
    if (!m)
        return;
    free(m->name);
    free(m->desc);
    free(m);
}

void ado_rpc_free(struct ado_rpc *rpc) {
    if (!rpc)
        return;
    rpc->closing = 1;
    ado_rpc_echo_cancel_all(rpc);
    ado_rpc_server_close(rpc);
    while (rpc->calls)
        ado_rpc_error(rpc->calls, -32000, "node stopping", NULL);
    for (size_t i = 0; i < rpc->nmethods; i++)
        method_free(rpc->methods[i]);
    free(rpc->methods);
    free(rpc->mtab);
    ado_rpc_settings_free(rpc);
    free(rpc);
}

int ado_rpc_listen(struct ado_rpc *rpc, struct ado_diag *diag) {
    if (!rpc)
        return 0;
    return ado_rpc_server_listen(rpc, diag);
}

static int method_name_valid(const char *s) {
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return 0;
    const char *p = s + 1;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
        p++;
    if (*p++ != '_' || !*p)
        return 0;
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return p - s <= 128;
}

/* FNV-1a of a method name. */
static uint64_t name_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Rebuild the name index after the method set changed (rare). Without memory the index is
 * dropped and lookups search the array. */
static void mtab_rebuild(struct ado_rpc *rpc) {
    free(rpc->mtab);
    rpc->mtab = NULL;
    rpc->mcap = 0;
    size_t cap = 16;
    while (cap < rpc->nmethods * 2)
        cap *= 2;
    struct rpc_method **t = calloc(cap, sizeof *t);
    if (!t)
        return;
    for (size_t i = 0; i < rpc->nmethods; i++) {
        struct rpc_method *m = rpc->methods[i];
        size_t k = name_hash(m->name, m->nlen) & (cap - 1);
        while (t[k])
            k = (k + 1) & (cap - 1);
        t[k] = m;
    }
    rpc->mtab = t;
    rpc->mcap = cap;
}

/* The method called `name` (`n` bytes, not NUL-terminated), or NULL. */
static struct rpc_method *method_findn(struct ado_rpc *rpc, const char *name, size_t n) {
    if (!rpc->mtab) {
        for (size_t i = 0; i < rpc->nmethods; i++) {
            struct rpc_method *m = rpc->methods[i];
            if (m->nlen == n && !memcmp(m->name, name, n))
                return m;
        }
        return NULL;
    }
    size_t k = name_hash(name, n) & (rpc->mcap - 1);
    for (struct rpc_method *m; (m = rpc->mtab[k]); k = (k + 1) & (rpc->mcap - 1))
        if (m->nlen == n && !memcmp(m->name, name, n))
            return m;
    return NULL;
}

static int method_add(struct ado_rpc *rpc, struct ado_plugin *owner, const char *method,
                      const char *role, const char *description, ado_rpc_fn fn, rpc_builtin_fn bfn,
                      void *arg) {
    if (!rpc || !method_name_valid(method) || (!fn && !bfn))
        return ADO_EINVAL;
    int r = role ? ado_rpc_role_parse(role) : RPC_ROLE_READER;
    if (r < RPC_ROLE_READER)
        return ADO_EINVAL;
    if (method_findn(rpc, method, strlen(method)))
        return ADO_EEXIST;
    if (rpc->nmethods == rpc->capmethods) {
        size_t nc = rpc->capmethods ? rpc->capmethods * 2 : 32;
        struct rpc_method **nm = realloc(rpc->methods, nc * sizeof *nm);
        if (!nm)
            return ADO_ENOMEM;
        rpc->methods = nm;
        rpc->capmethods = nc;
    }
    struct rpc_method *m = calloc(1, sizeof *m);
    if (!m)
        return ADO_ENOMEM;
    m->name = strdup(method);
    m->desc = strdup(description ? description : "");
    if (!m->name || !m->desc) {
        method_free(m);
        return ADO_ENOMEM;
    }
    m->nlen = strlen(method);
    m->role = r;
    m->fn = fn;
    m->bfn = bfn;
    m->arg = arg;
    m->owner = owner;
    rpc->methods[rpc->nmethods++] = m;
    mtab_rebuild(rpc);
    return 0;
}

int ado_rpc_register(struct ado_rpc *rpc, struct ado_plugin *owner, const char *method,
                     const char *role, const char *description, ado_rpc_fn fn, void *arg) {
    return method_add(rpc, owner, method, role, description, fn, NULL, arg);
}

int ado_rpc_register_builtin(struct ado_rpc *rpc, const char *method, const char *role,
                             const char *description, rpc_builtin_fn fn) {
    return method_add(rpc, NULL, method, role, description, NULL, fn, rpc);
}

void ado_rpc_unregister_owner(struct ado_rpc *rpc, struct ado_plugin *owner) {
    if (!rpc || !owner)
        return;
    /* Answer the owner's pending calls first: they point at its methods. */
    for (struct ado_call *c = rpc->calls, *next; c; c = next) {
        next = c->next;
        if (c->m && c->m->owner == owner) {
            ado_rpc_error(c, -32000, "method unavailable: its plugin stopped", NULL);
            next = rpc->calls; /* the list changed: start over (rare path) */
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < rpc->nmethods; i++) {
        if (rpc->methods[i]->owner == owner)
            method_free(rpc->methods[i]);
        else
            rpc->methods[k++] = rpc->methods[i];
    }
    rpc->nmethods = k;
    mtab_rebuild(rpc);
}

/* ---- JSON scanner ----------------------------------------------------------------------- */

/* The request path reads the common call without building a jansson tree: a strict scanner
 * finds the members of a call object as slices of the text, and params are handed on as text
 * when that text is exactly what jansson would print for them ("canonical"). The scanner only
 * vouches for what it fully understands: it answers SCAN_NO for anything else (invalid text,
 * but also non-ASCII bytes, \u escapes, exponents, long numbers, deep nesting), and the
 * message then takes the jansson path, so every verdict and every answer is jansson's. */

enum { SCAN_OK = 0, SCAN_NO = -1 };

#define SCAN_MAX_DEPTH 32
#define SCAN_MAX_KEYS  16 /* keys per object checked for duplicates (jansson merges them) */

struct scan {
    const char *p, *end;
    int canon; /* no whitespace, escapes, fractions, -0 or duplicate keys seen */
};

static int scan_value(struct scan *s, int depth);

static void scan_ws(struct scan *s) {
    const char *p = s->p;
    while (p < s->end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (p != s->p)
        s->canon = 0;
    s->p = p;
}

/* A string at s->p (the opening quote). */
static int scan_string(struct scan *s) {
    for (const char *p = s->p + 1; p < s->end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            s->p = p + 1;
            return SCAN_OK;
        }
        if (c < 0x20 || c >= 0x80) /* control (invalid) or UTF-8 (jansson checks it) */
            return SCAN_NO;
        if (c == '\\') {
            /* simple escapes only: \u (surrogates, \u0000) is for jansson to judge */
            if (++p == s->end || !*p || !strchr("\"\\/bfnrt", *p))
                return SCAN_NO;
            s->canon = 0;
        }
    }
    return SCAN_NO;
}

static int is_digit(const struct scan *s, const char *p) {
    return p < s->end && *p >= '0' && *p <= '9';
}

/* A number: integers up to 18 digits (always an int64 to jansson), fractions without an
 * exponent up to 300 digits (always a finite double). */
static int scan_number(struct scan *s) {
    const char *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    const char *d = p;
    if (p < s->end && *p == '0')
        p++;
    else if (is_digit(s, p))
        while (is_digit(s, p))
            p++;
    else
        return SCAN_NO;
    size_t nd = (size_t)(p - d);
    if (p < s->end && *p == '.') {
        p++;
        if (!is_digit(s, p))
            return SCAN_NO;
        while (is_digit(s, p))
            p++, nd++;
        s->canon = 0; /* jansson prints doubles its own way */
    } else if (nd > 18) {
        return SCAN_NO;
    } else if (d != s->p && *d == '0') {
        s->canon = 0; /* -0 prints as 0 */
    }
    if (nd > 300 || (p < s->end && (*p == 'e' || *p == 'E')))
        return SCAN_NO;
    s->p = p;
    return SCAN_OK;
}

static int scan_literal(struct scan *s, const char *lit, size_t n) {
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n))
        return SCAN_NO;
    s->p += n;
    return SCAN_OK;
}

/* After an element: 1 at `close`, 0 after a comma, SCAN_NO otherwise. */
static int scan_next(struct scan *s, char close) {
    scan_ws(s);
    if (s->p == s->end)
        return SCAN_NO;
    char c = *s->p++;
    if (c == close)
        return 1;
    if (c != ',')
        return SCAN_NO;
    scan_ws(s);
    return 0;
}

static int scan_array(struct scan *s, int depth) {
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return SCAN_OK;
    }
    for (;;) {
        int r = scan_value(s, depth + 1);
        if (r == SCAN_OK)
            r = scan_next(s, ']');
        if (r != 0)
            return r > 0 ? SCAN_OK : r;
    }
}

/* Keep canon only while the object's keys are distinct (keys are raw, escape-free text). */
static void note_key(struct scan *s, const char **keys, size_t *klen, size_t *nk, const char *k,
                     size_t n) {
    if (!s->canon)
        return;
    if (*nk == SCAN_MAX_KEYS) {
        s->canon = 0;
        return;
    }
    for (size_t i = 0; i < *nk; i++)
        if (klen[i] == n && !memcmp(keys[i], k, n))
            s->canon = 0;
    keys[*nk] = k;
    klen[(*nk)++] = n;
}

static int scan_object(struct scan *s, int depth) {
    const char *keys[SCAN_MAX_KEYS];
    size_t klen[SCAN_MAX_KEYS], nk = 0;
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return SCAN_OK;
    }
    for (;;) {
        const char *k = s->p;
        if (k == s->end || *k != '"' || scan_string(s))
            return SCAN_NO;
        note_key(s, keys, klen, &nk, k, (size_t)(s->p - k));
        scan_ws(s);
        if (s->p == s->end || *s->p++ != ':')
            return SCAN_NO;
        scan_ws(s);
        int r = scan_value(s, depth + 1);
        if (r == SCAN_OK)
            r = scan_next(s, '}');
        if (r != 0)
            return r > 0 ? SCAN_OK : r;
    }
}

/* One value at s->p (no leading whitespace). */
static int scan_value(struct scan *s, int depth) {
    if (depth > SCAN_MAX_DEPTH || s->p == s->end)
        return SCAN_NO;
    switch (*s->p) {
    case '{':
        return scan_object(s, depth);
    case '[':
        return scan_array(s, depth);
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true", 4);
    case 'f':
        return scan_literal(s, "false", 5);
    case 'n':
        return scan_literal(s, "null", 4);
    default:
        return scan_number(s);
    }
}

/* 1 when `text` is one JSON value (whitespace around it allowed) the scanner vouches for. */
static int scan_whole(const char *text, size_t len) {
    struct scan s = {text, text + len, 1};
    scan_ws(&s);
    if (scan_value(&s, 0))
        return 0;
    scan_ws(&s);
    return s.p == s.end;
}

/* ---- call envelopes --------------------------------------------------------------------- */

/* One call's members as the dispatcher needs them, from the fast path or from jansson. */
struct rpc_env {
    int object; /* the call is a JSON object */
    int has_id, id_ok;
    const char *id; /* the id's JSON text as it is answered */
    size_t idlen;
    int version_ok; /* "jsonrpc": "2.0" */
    const char *method;
    size_t mlen;
    int method_ok;
    int params_ok;
    struct rpc_params params;
};

/* A member of the call object; SCAN_NO when jansson must look at the message. */
static int env_member(struct rpc_env *e, const char *k, size_t kn, const char *v, size_t vn,
                      int canon) {
    if (kn == 7 && !memcmp(k, "jsonrpc", 7)) {
        if (*v == '"' && !canon)
            return SCAN_NO;
        e->version_ok = vn == 5 && !memcmp(v, "\"2.0\"", 5);
    } else if (kn == 6 && !memcmp(k, "method", 6)) {
        if (*v == '"' && !canon)
            return SCAN_NO;
        e->method_ok = *v == '"';
        e->method = v + 1;
        e->mlen = vn >= 2 ? vn - 2 : 0;
    } else if (kn == 2 && !memcmp(k, "id", 2)) {
        if (!canon) /* answered as jansson prints it */
            return SCAN_NO;
        e->has_id = 1;
        e->id_ok = *v == '"' || *v == '-' || (*v >= '0' && *v <= '9') || *v == 'n';
        e->id = v;
        e->idlen = vn;
    } else if (kn == 6 && !memcmp(k, "params", 6)) {
        e->params.present = 1;
        e->params_ok = *v == '[' || *v == '{';
        e->params.text = v;
        e->params.len = vn;
        e->params.canon = canon;
    }
    return SCAN_OK;
}

/* Read a single call object with the scanner. SCAN_NO: not one, or not vouched for. */
static int env_scan(const char *text, size_t len, struct rpc_env *e) {
    struct scan s = {text, text + len, 1};
    memset(e, 0, sizeof *e);
    e->object = 1;
    scan_ws(&s);
    if (s.p == s.end || *s.p != '{')
        return SCAN_NO;
    s.p++;
    scan_ws(&s);
    int r = 0; /* 1 once the closing brace is read */
    if (s.p < s.end && *s.p == '}') {
        s.p++;
        r = 1;
    }
    while (r == 0) {
        const char *k = s.p;
        s.canon = 1;
        if (k == s.end || *k != '"' || scan_string(&s) || !s.canon)
            return SCAN_NO; /* escaped keys: jansson */
        size_t kn = (size_t)(s.p - k) - 2;
        scan_ws(&s);
        if (s.p == s.end || *s.p++ != ':')
            return SCAN_NO;
        scan_ws(&s);
        const char *v = s.p;
        s.canon = 1;
        if (scan_value(&s, 1) || env_member(e, k + 1, kn, v, (size_t)(s.p - v), s.canon))
            return SCAN_NO;
        r = scan_next(&s, '}');
    }
    scan_ws(&s);
    return r > 0 && s.p == s.end ? SCAN_OK : SCAN_NO;
}

/* The same from a jansson value; *idtext (malloc'd, caller frees) backs e->id. */
static void env_json(json_t *v, struct rpc_env *e, char **idtext) {
    memset(e, 0, sizeof *e);
    *idtext = NULL;
    if (!(e->object = json_is_object(v)))
        return;
    json_t *jv = json_object_get(v, "jsonrpc"), *jm = json_object_get(v, "method");
    json_t *jp = json_object_get(v, "params"), *jid = json_object_get(v, "id");
    if ((e->has_id = jid != NULL)) {
        e->id_ok = json_is_string(jid) || json_is_number(jid) || json_is_null(jid);
        *idtext = e->id_ok ? json_dumps(jid, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        e->id = *idtext ? *idtext : "null"; /* out of memory: answered with id null */
        e->idlen = strlen(e->id);
    }
    e->version_ok = json_is_string(jv) && !strcmp(json_string_value(jv), "2.0");
    if ((e->method_ok = json_is_string(jm))) {
        e->method = json_string_value(jm);
        e->mlen = json_string_length(jm);
    }
    e->params.present = jp != NULL;
    e->params_ok = json_is_array(jp) || json_is_object(jp);
    e->params.json = jp;
}

json_t *ado_rpc_params_json(struct rpc_params *p) {
    if (!p->json && p->text) {
        json_error_t err;
        p->json = json_loadb(p->text, p->len, JSON_DECODE_ANY, &err);
        p->owned = p->json != NULL;
    }
    return p->json;
}

/* ---- answers ---------------------------------------------------------------------------- */

static void req_free(struct rpc_req *req);

/* {"jsonrpc":"2.0","id":ID,"<key>":VALUE} (malloc'd). */
static char *answer_text(const char *id, size_t idlen, const char *key, const char *value,
                         size_t vlen, size_t *len) {
    static const char a[] = "{\"jsonrpc\":\"2.0\",\"id\":";
    if (!id) {
        id = "null";
        idlen = 4;
    }
    size_t kl = strlen(key), n = sizeof a - 1 + idlen + 4 + kl + vlen + 1;
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    char *p = s;
    memcpy(p, a, sizeof a - 1);
    p += sizeof a - 1;
    memcpy(p, id, idlen);
    p += idlen;
    *p++ = ',';
    *p++ = '"';
    memcpy(p, key, kl);
    p += kl;
    *p++ = '"';
    *p++ = ':';
    memcpy(p, value, vlen);
    p += vlen;
    *p++ = '}';
    *p = 0;
    *len = n;
    return s;
}

/* An error answer for `id` (JSON text, NULL: null); `data` is stolen. */
static char *error_text(const char *id, size_t idlen, int code, const char *message, json_t *data,
                        size_t *len) {
    json_t *err = json_pack("{s:i,s:s}", "code", code, "message", message ? message : "error");
    if (!err) {
        json_decref(data);
        return NULL;
    }
    if (data)
        json_object_set_new(err, "data", data);
    char *e = json_dumps(err, JSON_COMPACT);
    json_decref(err);
    if (!e)
        return NULL;
    char *s = answer_text(id, idlen, "error", e, strlen(e), len);
    free(e);
    return s;
}

char *ado_rpc_error_text(int code, const char *message, size_t *len) {
    return error_text(NULL, 0, code, message, NULL, len);
}

static void req_finish(struct rpc_req *req) {
    size_t total = 0, parts = 0;
    for (size_t i = 0; i < req->n; i++)
        if (req->out[i]) {
            total += req->outlen[i];
            parts++;
        }
    char *text = NULL;
    size_t len = 0;
    if (parts) {
        if (!req->batch) {
            text = req->out[0];
            len = req->outlen[0];
            req->out[0] = NULL;
        } else if ((text = malloc(total + parts + 2))) {
            char *p = text;
            *p++ = '[';
            for (size_t i = 0; i < req->n; i++) {
                if (!req->out[i])
                    continue;
                if (p != text + 1)
                    *p++ = ',';
                memcpy(p, req->out[i], req->outlen[i]);
                p += req->outlen[i];
            }
            *p++ = ']';
            *p = 0;
            len = (size_t)(p - text);
        }
    }
    if (req->local) {
        if (req->local_cb)
            req->local_cb(req->local_arg, text);
        free(text);
    } else if (req->conn) {
        struct rpc_conn *conn = req->conn;
        ado_rpc_conn_req_done(conn, req);
        if (text)
            ado_rpc_conn_send(conn, text, len);
        else
            ado_rpc_conn_nothing(conn);
    } else {
        free(text);
    }
    req_free(req);
}

/* Fill `slot` (text owned, may be NULL for no answer). */
static void req_set(struct rpc_req *req, size_t slot, char *text, size_t len) {
    req->out[slot] = text;
    req->outlen[slot] = text ? len : 0;
    if (--req->pending == 0)
        req_finish(req);
}

static void slot_error(struct rpc_req *req, size_t slot, const char *id, size_t idlen, int code,
                       const char *msg) {
    size_t len = 0;
    char *t = error_text(id, idlen, code, msg, NULL, &len);
    req_set(req, slot, t, len);
}

void ado_rpc_detach_reqs(struct rpc_req *reqs) {
    for (struct rpc_req *r = reqs; r; r = r->next)
        r->conn = NULL;
}

static uint64_t now_ns(void) {
    return uv_hrtime();
}

static void call_free(ado_call *call) {
    if (call->id != call->idbuf)
        free(call->id);
    free(call);
}

/* Record stats, hand the text to the req, free the call. `text` owned (NULL: none). */
static void call_answer(ado_call *call, char *text, size_t len, int failed) {
    struct ado_rpc *rpc = call->rpc;
    struct rpc_method *m = call->m;
    if (m) {
        double s = (double)(now_ns() - call->t0_ns) / 1e9;
        size_t b = 0;
        while (b < RPC_NBUCKETS && s > ado_rpc_buckets[b])
            b++;
        m->hist[b]++;
        m->sum_s += s;
        if (failed)
            m->err++;
        else
            m->ok++;
    }
    if (call->prev)
        call->prev->next = call->next;
    else
        rpc->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    struct rpc_req *req = call->req;
    size_t slot = call->slot;
    if (!call->id) { /* a notification gets no answer */
        free(text);
        text = NULL;
    }
    call_free(call);
    req_set(req, slot, text, len);
}

int ado_rpc_reply_valid(ado_call *call, const char *result, size_t len) {
    if (!call)
        return ADO_EINVAL;
    size_t n = 0;
    char *t = call->id ? answer_text(call->id, call->idlen, "result", result, len, &n) : NULL;
    call_answer(call, t, n, 0);
    return 0;
}

/* 1 when `text` is JSON: the scanner's word when it gives one, jansson's otherwise. */
static int json_valid(const char *text, size_t len) {
    if (scan_whole(text, len))
        return 1;
    json_error_t e;
    json_t *chk = json_loadb(text, len, JSON_DECODE_ANY, &e);
    json_decref(chk);
    return chk != NULL;
}

int ado_rpc_reply(ado_call *call, const char *result, size_t len) {
    if (!call)
        return ADO_EINVAL;
    if (!result) {
        result = "null";
        len = 4;
    }
    if (!json_valid(result, len)) {
        ado_rpc_error(call, -32603, "internal error: the handler returned invalid JSON", NULL);
        return ADO_EINVAL;
    }
    return ado_rpc_reply_valid(call, result, len);
}

/* Built-ins answer with a json_t (stolen). */
int ado_rpc_reply_json(ado_call *call, json_t *result) {
    if (!call) {
        json_decref(result);
        return ADO_EINVAL;
    }
    if (!result)
        return ado_rpc_error(call, -32603, "internal error: out of memory", NULL);
    char *r = json_dumps(result, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(result);
    if (!r)
        return ado_rpc_error(call, -32603, "internal error: out of memory", NULL);
    ado_rpc_reply_valid(call, r, strlen(r));
    free(r);
    return 0;
}

int ado_rpc_error(ado_call *call, int code, const char *message, const char *data) {
    if (!call)
        return ADO_EINVAL;
    struct ado_rpc *rpc = call->rpc;
    if (call->seq == rpc->cur_seq && (code == -32603 || code == -32000))
        rpc->cur_failed = 1;
    json_t *d = NULL;
    if (data) {
        json_error_t e;
        d = json_loads(data, JSON_DECODE_ANY, &e);
        if (!d)
            d = json_string(data); /* not JSON: pass it on as a string */
    }
    size_t n = 0;
    char *t =
        call->id ? error_text(call->id, call->idlen, code, message, d, &n) : (json_decref(d), NULL);
    call_answer(call, t, n, 1);
    return 0;
}

/* ---- dispatch --------------------------------------------------------------------------- */

/* The first reason a well-formed call is refused (0: none); counts it. */
static int call_refusal(struct ado_rpc *rpc, const struct rpc_method *m, int role, int auth,
                        const char **msg) {
    if (auth < 0) {
        rpc->rej.unauthorized++;
        *msg = "unauthorized: invalid token";
        return -32001;
    }
    if (!m) {
        rpc->rej.not_found++;
        *msg = "method not found";
        return -32601;
    }
    if (role < m->role) {
        if (auth > 0) {
            rpc->rej.forbidden++;
            *msg = "forbidden: the token's roles do not allow this method";
            return -32002;
        }
        rpc->rej.unauthorized++;
        *msg = "unauthorized: this method needs a token";
        return -32001;
    }
    if (m->owner && !ado_plugin_callable(m->owner)) {
        rpc->rej.isolated++;
        *msg = "plugin isolated by its circuit breaker";
        return -32004;
    }
    return 0;
}

/* The first way the envelope breaks JSON-RPC 2.0 (NULL: none). */
static const char *env_invalid(const struct rpc_env *e) {
    if (!e->version_ok)
        return "invalid request: jsonrpc must be \"2.0\"";
    if (!e->method_ok)
        return "invalid request: method must be a string";
    if (e->params.present && !e->params_ok)
        return "invalid request: params must be an array or object";
    return NULL;
}

static ado_call *call_new(struct rpc_req *req, size_t slot, struct rpc_method *m,
                          const struct rpc_env *e) {
    ado_call *call = calloc(1, sizeof *call);
    if (!call)
        return NULL;
    if (e->has_id) {
        call->id = e->idlen < sizeof call->idbuf ? call->idbuf : malloc(e->idlen + 1);
        if (!call->id) {
            free(call);
            return NULL;
        }
        memcpy(call->id, e->id, e->idlen);
        call->id[e->idlen] = 0;
        call->idlen = e->idlen;
    }
    struct ado_rpc *rpc = req->rpc;
    call->rpc = rpc;
    call->req = req;
    call->m = m;
    call->slot = slot;
    call->seq = ++rpc->next_seq;
    call->t0_ns = now_ns();
    call->next = rpc->calls;
    if (rpc->calls)
        rpc->calls->prev = call;
    rpc->calls = call;
    return call;
}

/* Run a plugin's handler with the params as NUL-terminated compact JSON text. */
static void call_plugin(struct ado_rpc *rpc, ado_call *call, struct rpc_params *p) {
    struct rpc_method *m = call->m;
    char stackbuf[512], *params = NULL;
    size_t plen = 4;
    if (!p->present) {
        params = strdup("null");
    } else if (p->text && p->canon) { /* the request's own text: nothing to rebuild */
        plen = p->len;
        params = plen < sizeof stackbuf ? stackbuf : malloc(plen + 1);
        if (params) {
            memcpy(params, p->text, plen);
            params[plen] = 0;
        }
    } else if (ado_rpc_params_json(p) && (params = json_dumps(p->json, JSON_COMPACT))) {
        plen = strlen(params);
    }
    if (!params) {
        ado_rpc_error(call, -32603, "internal error: out of memory", NULL);
        return;
    }
    struct ado_plugin *owner = m->owner;
    uint64_t saved_seq = rpc->cur_seq;
    int saved_failed = rpc->cur_failed;
    rpc->cur_seq = call->seq;
    rpc->cur_failed = 0;
    m->fn(owner ? &owner->ctx : NULL, call, params, plen, m->arg);
    int failed = rpc->cur_failed;
    rpc->cur_seq = saved_seq;
    rpc->cur_failed = saved_failed;
    if (owner)
        ado_plugin_outcome(owner, failed ? ADO_EPLUGIN : 0, m->name);
    if (params != stackbuf)
        free(params);
}

static void dispatch_env(struct rpc_req *req, size_t slot, struct rpc_env *e, int role, int auth) {
    struct ado_rpc *rpc = req->rpc;
    const char *msg = NULL;
    if (!e->object || (e->has_id && !e->id_ok)) {
        rpc->rej.invalid_request++;
        slot_error(req, slot, NULL, 0, -32600,
                   e->object ? "invalid request: id must be a string or number"
                             : "invalid request: not an object");
        return;
    }
    if ((msg = env_invalid(e))) {
        rpc->rej.invalid_request++;
        slot_error(req, slot, e->id, e->idlen, -32600, msg);
        return;
    }
    /* From here on, a notification (no id) gets no answer even for an error. */
    struct rpc_method *m = method_findn(rpc, e->method, e->mlen);
    int code = call_refusal(rpc, m, role, auth, &msg);
    if (code) {
        if (e->has_id)
            slot_error(req, slot, e->id, e->idlen, code, msg);
        else
            req_set(req, slot, NULL, 0);
        return;
    }
    ado_call *call = call_new(req, slot, m, e);
    if (!call) {
        slot_error(req, slot, e->id, e->idlen, -32603, "internal error: out of memory");
        return;
    }
    if (m->bfn)
        m->bfn(rpc, call, &e->params);
    else
        call_plugin(rpc, call, &e->params);
    if (e->params.owned)
        json_decref(e->params.json);
    e->params.json = NULL;
    e->params.owned = 0;
}

static void dispatch_json(struct rpc_req *req, size_t slot, json_t *v, int role, int auth) {
    struct rpc_env e;
    char *idtext;
    env_json(v, &e, &idtext);
    dispatch_env(req, slot, &e, role, auth);
    free(idtext);
}

static void req_free(struct rpc_req *req) {
    for (size_t i = 0; i < req->n; i++)
        free(req->out[i]);
    if (req->out != req->out1)
        free(req->out);
    if (req->outlen != req->outlen1)
        free(req->outlen);
    free(req);
}

/* A req with `n` slots (a single call uses the inline slot), registered with `conn`. */
static struct rpc_req *req_new(struct ado_rpc *rpc, struct rpc_conn *conn, size_t n, int batch,
                               ado_rpc_local_cb cb, void *arg) {
    struct rpc_req *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->out = n > 1 ? calloc(n, sizeof *req->out) : req->out1;
    req->outlen = n > 1 ? calloc(n, sizeof *req->outlen) : req->outlen1;
    if (!req->out || !req->outlen) {
        req_free(req);
        return NULL;
    }
    req->rpc = rpc;
    req->conn = conn;
    req->local = conn == NULL;
    req->local_cb = cb;
    req->local_arg = arg;
    req->batch = batch;
    req->n = n;
    req->pending = n + 1; /* held until dispatch ends, so nothing finishes under our feet */
    if (conn)
        ado_rpc_conn_req_add(conn, req);
    return req;
}

/* Out of memory before a req exists: answer the message with a bare error. */
static void answer_oom(struct rpc_conn *conn, ado_rpc_local_cb cb, void *arg) {
    size_t l = 0;
    char *t = ado_rpc_error_text(-32603, "internal error: out of memory", &l);
    if (!conn && cb)
        cb(arg, t);
    if (conn && t)
        ado_rpc_conn_send(conn, t, l);
    else
        free(t);
}

/* Release the dispatch hold; the req finishes here when every slot is already answered. */
static void req_release(struct rpc_req *req) {
    if (--req->pending == 0)
        req_finish(req);
}

/* The jansson path: batches, and whatever the scanner did not vouch for. */
static void handle_json(struct ado_rpc *rpc, struct rpc_conn *conn, const char *text, size_t len,
                        int role, int auth, ado_rpc_local_cb cb, void *arg) {
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY, &err);
    int batch = root && json_is_array(root);
    size_t n = batch ? json_array_size(root) : 1;
    /* An empty batch is one invalid request answered by a single error object. */
    struct rpc_req *req = req_new(rpc, conn, n ? n : 1, batch && n > 0, cb, arg);
    if (!req) {
        json_decref(root);
        answer_oom(conn, cb, arg);
        return;
    }
    if (!root) {
        rpc->rej.parse_error++;
        slot_error(req, 0, NULL, 0, -32700, "parse error");
    } else if (batch && n == 0) {
        rpc->rej.invalid_request++;
        slot_error(req, 0, NULL, 0, -32600, "invalid request: empty batch");
    } else if (batch) {
        for (size_t i = 0; i < n; i++)
            dispatch_json(req, i, json_array_get(root, i), role, auth);
    } else {
        dispatch_json(req, 0, root, role, auth);
    }
    json_decref(root);
    req_release(req);
}

void ado_rpc_handle(struct ado_rpc *rpc, struct rpc_conn *conn, const char *text, size_t len,
                    int role, int auth, ado_rpc_local_cb cb, void *arg) {
    struct rpc_env e;
    if (env_scan(text, len, &e) != SCAN_OK) {
        handle_json(rpc, conn, text, len, role, auth, cb, arg);
        return;
    }
    struct rpc_req *req = req_new(rpc, conn, 1, 0, cb, arg);
    if (!req) {
        answer_oom(conn, cb, arg);
        return;
    }
    dispatch_env(req, 0, &e, role, auth);
    req_release(req);
}

int ado_rpc_call_local(struct ado_rpc *rpc, const char *request_json, const char *role,
                       ado_rpc_local_cb done, void *arg) {
    if (!rpc || !request_json)
        return ADO_EINVAL;
    int r = role ? ado_rpc_role_parse(role) : RPC_ROLE_ADMIN;
    if (r < 0)
        return ADO_EINVAL;
    ado_rpc_handle(rpc, NULL, request_json, strlen(request_json), r, 1, done, arg);
    return 0;
}
