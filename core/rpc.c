/* The JSON-RPC 2.0 method registry and dispatcher (transport-free).
 *
 * A message (one call or a batch) becomes a struct rpc_req with one slot per call; each call
 * with a method becomes an ado_call that lives until a handler answers it, now or later.
 * When every slot is filled the req assembles its answer and hands it to its connection, or
 * drops it when the client has gone (req->conn == NULL), or gives it to a local callback.
 * Built-in methods live in rpc_builtin.c, the network side in rpc_server.c. */
#include "rpc.h"

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

static struct rpc_method *method_find(struct ado_rpc *rpc, const char *name) {
    for (size_t i = 0; i < rpc->nmethods; i++)
        if (!strcmp(rpc->methods[i]->name, name))
            return rpc->methods[i];
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
    if (method_find(rpc, method))
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
    m->role = r;
    m->fn = fn;
    m->bfn = bfn;
    m->arg = arg;
    m->owner = owner;
    rpc->methods[rpc->nmethods++] = m;
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
}

/* ---- answers ---------------------------------------------------------------------------- */

static char *dump_id(const json_t *id) {
    return json_dumps(id ? id : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
}

static char *result_text(const json_t *id, const char *result, size_t rlen, size_t *len) {
    char *ids = dump_id(id);
    if (!ids)
        return NULL;
    static const char a[] = "{\"jsonrpc\":\"2.0\",\"id\":", b[] = ",\"result\":";
    size_t il = strlen(ids), n = sizeof a - 1 + il + sizeof b - 1 + rlen + 1;
    char *s = malloc(n + 1);
    if (s) {
        char *p = s;
        memcpy(p, a, sizeof a - 1);
        p += sizeof a - 1;
        memcpy(p, ids, il);
        p += il;
        memcpy(p, b, sizeof b - 1);
        p += sizeof b - 1;
        memcpy(p, result, rlen);
        p += rlen;
        *p++ = '}';
        *p = 0;
        *len = n;
    }
    free(ids);
    return s;
}

static char *error_text(const json_t *id, int code, const char *message, json_t *data,
                        size_t *len) {
    json_t *err = json_pack("{s:i,s:s}", "code", code, "message", message ? message : "error");
    if (!err) {
        json_decref(data);
        return NULL;
    }
    if (data)
        json_object_set_new(err, "data", data);
    json_t *o =
        json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", err);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s)
        *len = strlen(s);
    return s;
}

char *ado_rpc_error_text(int code, const char *message, size_t *len) {
    return error_text(NULL, code, message, NULL, len);
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
    for (size_t i = 0; i < req->n; i++)
        free(req->out[i]);
    free(req->out);
    free(req->outlen);
    free(req);
}

/* Fill `slot` (text owned, may be NULL for no answer). */
static void req_set(struct rpc_req *req, size_t slot, char *text, size_t len) {
    req->out[slot] = text;
    req->outlen[slot] = text ? len : 0;
    if (--req->pending == 0)
        req_finish(req);
}

static void slot_error(struct rpc_req *req, size_t slot, const json_t *id, int code,
                       const char *msg) {
    size_t len = 0;
    char *t = error_text(id, code, msg, NULL, &len);
    req_set(req, slot, t, len);
}

void ado_rpc_detach_reqs(struct rpc_req *reqs) {
    for (struct rpc_req *r = reqs; r; r = r->next)
        r->conn = NULL;
}

static uint64_t now_ns(void) {
    return uv_hrtime();
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
    json_decref(call->id);
    free(call);
    req_set(req, slot, text, len);
}

int ado_rpc_reply(ado_call *call, const char *result, size_t len) {
    if (!call)
        return ADO_EINVAL;
    if (!result) {
        result = "null";
        len = 4;
    }
    json_error_t e;
    json_t *chk = json_loadb(result, len, JSON_DECODE_ANY, &e);
    if (!chk) {
        ado_rpc_error(call, -32603, "internal error: the handler returned invalid JSON", NULL);
        return ADO_EINVAL;
    }
    json_decref(chk);
    size_t n = 0;
    char *t = call->id ? result_text(call->id, result, len, &n) : NULL;
    call_answer(call, t, n, 0);
    return 0;
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
    size_t n = 0;
    char *t = call->id ? result_text(call->id, r, strlen(r), &n) : NULL;
    free(r);
    call_answer(call, t, n, 0);
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
    char *t = call->id ? error_text(call->id, code, message, d, &n) : (json_decref(d), NULL);
    call_answer(call, t, n, 1);
    return 0;
}

/* ---- dispatch --------------------------------------------------------------------------- */

static int id_valid(const json_t *id) {
    return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

static void dispatch_one(struct rpc_req *req, size_t slot, json_t *v, int role, int auth) {
    struct ado_rpc *rpc = req->rpc;
    if (!json_is_object(v)) {
        rpc->rej.invalid_request++;
        slot_error(req, slot, NULL, -32600, "invalid request: not an object");
        return;
    }
    json_t *jv = json_object_get(v, "jsonrpc"), *jm = json_object_get(v, "method");
    json_t *jp = json_object_get(v, "params"), *jid = json_object_get(v, "id");
    if (jid && !id_valid(jid)) {
        rpc->rej.invalid_request++;
        slot_error(req, slot, NULL, -32600, "invalid request: id must be a string or number");
        return;
    }
    if (!json_is_string(jv) || strcmp(json_string_value(jv), "2.0")) {
        rpc->rej.invalid_request++;
        slot_error(req, slot, jid, -32600, "invalid request: jsonrpc must be \"2.0\"");
        return;
    }
    if (!json_is_string(jm)) {
        rpc->rej.invalid_request++;
        slot_error(req, slot, jid, -32600, "invalid request: method must be a string");
        return;
    }
    if (jp && !json_is_array(jp) && !json_is_object(jp)) {
        rpc->rej.invalid_request++;
        slot_error(req, slot, jid, -32600, "invalid request: params must be an array or object");
        return;
    }
    /* From here on, a notification (no id) gets no answer even for an error. */
    const char *name = json_string_value(jm);
    struct rpc_method *m = method_find(rpc, name);
    int code = 0;
    const char *msg = NULL;
    if (auth < 0) {
        rpc->rej.unauthorized++;
        code = -32001;
        msg = "unauthorized: invalid token";
    } else if (!m) {
        rpc->rej.not_found++;
        code = -32601;
        msg = "method not found";
    } else if (role < m->role) {
        if (auth > 0) {
            rpc->rej.forbidden++;
            code = -32002;
            msg = "forbidden: the token's roles do not allow this method";
        } else {
            rpc->rej.unauthorized++;
            code = -32001;
            msg = "unauthorized: this method needs a token";
        }
    } else if (m->owner && !ado_plugin_callable(m->owner)) {
        rpc->rej.isolated++;
        code = -32004;
        msg = "plugin isolated by its circuit breaker";
    }
    if (code) {
        if (jid)
            slot_error(req, slot, jid, code, msg);
        else
            req_set(req, slot, NULL, 0);
        return;
    }
    ado_call *call = calloc(1, sizeof *call);
    if (!call) {
        slot_error(req, slot, jid, -32603, "internal error: out of memory");
        return;
    }
    call->rpc = rpc;
    call->req = req;
    call->m = m;
    call->id = jid ? json_incref(jid) : NULL;
    call->slot = slot;
    call->seq = ++rpc->next_seq;
    call->t0_ns = now_ns();
    call->next = rpc->calls;
    if (rpc->calls)
        rpc->calls->prev = call;
    rpc->calls = call;
    if (m->bfn) {
        m->bfn(rpc, call, jp);
        return;
    }
    char *params = jp ? json_dumps(jp, JSON_COMPACT) : strdup("null");
    if (!params) {
        ado_rpc_error(call, -32603, "internal error: out of memory", NULL);
        return;
    }
    struct ado_plugin *owner = m->owner;
    uint64_t saved_seq = rpc->cur_seq;
    int saved_failed = rpc->cur_failed;
    rpc->cur_seq = call->seq;
    rpc->cur_failed = 0;
    m->fn(owner ? &owner->ctx : NULL, call, params, strlen(params), m->arg);
    int failed = rpc->cur_failed;
    rpc->cur_seq = saved_seq;
    rpc->cur_failed = saved_failed;
    if (owner)
        ado_plugin_outcome(owner, failed ? ADO_EPLUGIN : 0, name);
    free(params);
}

void ado_rpc_handle(struct ado_rpc *rpc, struct rpc_conn *conn, const char *text, size_t len,
                    int role, int auth, ado_rpc_local_cb cb, void *arg) {
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY, &e);
    size_t n = 1;
    int batch = 0;
    if (root && json_is_array(root)) {
        batch = 1;
        n = json_array_size(root);
    }
    struct rpc_req *req = calloc(1, sizeof *req);
    if (req && n) {
        req->out = calloc(n, sizeof *req->out);
        req->outlen = calloc(n, sizeof *req->outlen);
    }
    if (!req || (n && (!req->out || !req->outlen))) {
        if (req) {
            free(req->out);
            free(req->outlen);
            free(req);
        }
        json_decref(root);
        size_t l = 0;
        char *t = ado_rpc_error_text(-32603, "internal error: out of memory", &l);
        if (!conn && cb)
            cb(arg, t);
        if (conn && t)
            ado_rpc_conn_send(conn, t, l);
        else
            free(t);
        return;
    }
    req->rpc = rpc;
    req->conn = conn;
    req->local = conn == NULL;
    req->local_cb = cb;
    req->local_arg = arg;
    req->batch = batch && n > 0;
    req->n = n;
    req->pending = n + 1; /* held until dispatch ends, so nothing finishes under our feet */
    if (conn)
        ado_rpc_conn_req_add(conn, req);
    if (!root) {
        rpc->rej.parse_error++;
        slot_error(req, 0, NULL, -32700, "parse error");
    } else if (batch && n == 0) {
        /* An empty batch is one invalid request answered by a single error object. */
        req->n = 1;
        req->batch = 0;
        req->out = calloc(1, sizeof *req->out);
        req->outlen = calloc(1, sizeof *req->outlen);
        req->pending = 2;
        rpc->rej.invalid_request++;
        if (req->out && req->outlen)
            slot_error(req, 0, NULL, -32600, "invalid request: empty batch");
        else
            req_set(req, 0, NULL, 0);
    } else if (batch) {
        for (size_t i = 0; i < n; i++)
            dispatch_one(req, i, json_array_get(root, i), role, auth);
    } else {
        dispatch_one(req, 0, root, role, auth);
    }
    json_decref(root);
    if (--req->pending == 0)
        req_finish(req);
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
