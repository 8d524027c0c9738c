/* Kernel-private, RPC only: the structures shared by rpc.c (registry, JSON-RPC dispatch,
 * built-in methods) and rpc_server.c (libwebsockets transport, auth, operations endpoints).
 * Nothing outside core/rpc*.c includes this. Everything is owned by the loop thread. */
#ifndef ADO_CORE_RPC_PRIV_H
#define ADO_CORE_RPC_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "rpc.h"

/* Caller and method roles, ordered: admin > writer > reader > none. */
enum rpc_role { RPC_ROLE_NONE = 0, RPC_ROLE_READER = 1, RPC_ROLE_WRITER = 2, RPC_ROLE_ADMIN = 3 };

/* Latency histogram buckets (seconds), upper bounds; a last +Inf bucket follows. */
#define RPC_NBUCKETS 12
extern const double ado_rpc_buckets[RPC_NBUCKETS];

#define RPC_MAX_INFLIGHT 4096 /* unanswered calls per connection */
#define RPC_MAX_SUBS     256  /* subscriptions per WebSocket connection */

struct rpc_conn;
struct rpc_req;

/* A call's params while its handler runs: the request's own text when the fast path read it,
 * and a jansson tree made on first demand (ado_rpc_params_json). */
struct rpc_params {
    const char *text; /* NULL: none in the text (absent, or only `json` is known) */
    size_t len;
    int canon;    /* `text` is byte for byte jansson's compact dump of the value */
    int present;  /* the call had params */
    json_t *json; /* borrowed from the request's tree, or parsed from `text` (then owned) */
    int owned;
};

typedef void (*rpc_builtin_fn)(struct ado_rpc *rpc, ado_call *call, struct rpc_params *params);

struct rpc_method {
    char *name;
    size_t nlen;
    char *desc;
    int role;           /* enum rpc_role required (RPC_ROLE_READER for "anyone allowed") */
    ado_rpc_fn fn;      /* plugin handler, or NULL */
    rpc_builtin_fn bfn; /* kernel handler, or NULL */
    void *arg;
    struct ado_plugin *owner;
    uint64_t ok, err;
    uint64_t hist[RPC_NBUCKETS + 1];
    double sum_s;
};

struct ado_call {
    struct ado_rpc *rpc;
    struct rpc_req *req;
    struct rpc_method *m;
    char *id; /* the id's JSON text (idbuf or malloc'd); NULL: a notification, no answer */
    size_t idlen;
    char idbuf[24];
    size_t slot;
    uint64_t seq;
    uint64_t t0_ns;
    struct ado_call *prev, *next; /* rpc->calls */
};

/* One message from a client: a single call or a batch. Answered when every call is. */
struct rpc_req {
    struct ado_rpc *rpc;
    struct rpc_conn *conn; /* NULL for local calls, or once the client went away */
    int local;
    ado_rpc_local_cb local_cb;
    void *local_arg;
    int batch;
    size_t n, pending;
    char **out; /* answer text per slot (NULL: notification); out1 for a single call */
    size_t *outlen;
    char *out1[1];
    size_t outlen1[1];
    struct rpc_req *prev, *next; /* conn->reqs */
};

struct rpc_token {
    char *name;
    char *token;
    size_t len;
    int role;
};

struct rpc_rejects {
    uint64_t parse_error, invalid_request, not_found, invalid_params, unauthorized, forbidden,
        too_large, isolated, limit;
};

struct ado_rpc {
    struct ado_node *node;
    struct rpc_method **methods;
    size_t nmethods, capmethods;
    struct rpc_method **mtab; /* open-addressing index by name (NULL: search the array) */
    size_t mcap;
    struct ado_call *calls; /* every unanswered call */
    uint64_t next_seq, cur_seq;
    int cur_failed;
    struct rpc_rejects rej;
    uint64_t unknown_calls;
    /* settings */
    int anonymous; /* enum rpc_role */
    int64_t max_request;
    int64_t max_connections;
    int64_t sub_queue;
    struct rpc_token *tokens;
    size_t ntokens;
    char **cors;
    size_t ncors;
    /* server */
    struct lws_context *lws;
    struct rpc_conn *conns;
    size_t nconns;
    uint64_t conns_total, conns_rejected;
    uint64_t sub_dropped, notifications;
    uint64_t next_sub_id;
    uint64_t last_commit_errors;
    struct rpc_echo *echoes; /* delayed rpc_echo replies */
    unsigned char *wbuf;     /* WebSocket write batch, reused by every connection */
    size_t wcap;
    int closing;
    /* Answers are written at the end of the loop turn that made them (see rpc_server.c) */
    struct rpc_conn *flushq; /* connections with an answer to write directly */
    uv_check_t flush_check;  /* after the I/O callbacks of a turn */
    uv_idle_t flush_idle;    /* while flushq is not empty: the loop does not block first */
    int flush_on;
};

/* rpc.c */
int ado_rpc_role_parse(const char *s);
const char *ado_rpc_role_name(int role);
/* Handle one message (JSON text) from `conn` (NULL: local) with the caller's `role`.
 * `auth_failed`: the caller presented a wrong token (every call gets -32001). */
void ado_rpc_handle(struct ado_rpc *rpc, struct rpc_conn *conn, const char *text, size_t len,
                    int role, int auth_failed, ado_rpc_local_cb cb, void *arg);
/* The JSON text of an error response with id null (malloc'd). */
char *ado_rpc_error_text(int code, const char *message, size_t *len);
/* The client went away: its requests are answered into the void. */
void ado_rpc_detach_reqs(struct rpc_req *reqs);
int ado_rpc_render_metrics(struct ado_rpc *rpc, char **out, size_t *len);
int ado_rpc_register_builtin(struct ado_rpc *rpc, const char *method, const char *role,
                             const char *description, rpc_builtin_fn fn);
/* Answer with `result` (stolen). */
int ado_rpc_reply_json(ado_call *call, json_t *result);
/* Answer with JSON text already known to be valid (not checked again). */
int ado_rpc_reply_valid(ado_call *call, const char *result, size_t len);
/* The params as a jansson tree (NULL when absent or out of memory); borrowed. */
json_t *ado_rpc_params_json(struct rpc_params *p);
/* 1 when the node is ready: required plugins running and the store writable. `why` gets a
 * reason otherwise. */
int ado_rpc_ready(struct ado_rpc *rpc, char *why, size_t whylen);

/* rpc_server.c */
/* Queue an answer for `conn` (takes ownership of `text`, malloc'd). */
void ado_rpc_conn_send(struct rpc_conn *conn, char *text, size_t len);
/* No answer at all (only notifications): HTTP replies 204. */
void ado_rpc_conn_nothing(struct rpc_conn *conn);
int ado_rpc_conn_is_ws(const struct rpc_conn *conn);
void ado_rpc_conn_req_add(struct rpc_conn *conn, struct rpc_req *req);
void ado_rpc_conn_req_done(struct rpc_conn *conn, struct rpc_req *req);
/* Subscriptions (WebSocket only). */
int ado_rpc_conn_subscribe(struct rpc_conn *conn, const char *pattern, uint64_t *id);
int ado_rpc_conn_unsubscribe(struct rpc_conn *conn, uint64_t id);
int ado_rpc_server_listen(struct ado_rpc *rpc, struct ado_diag *diag);
void ado_rpc_server_close(struct ado_rpc *rpc);
void ado_rpc_settings_free(struct ado_rpc *rpc);

#endif
