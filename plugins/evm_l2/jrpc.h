/* evm_l2: a small JSON-RPC 2.0 client over HTTP/1.1 on a libuv loop.
 *
 * Keep-alive connections (a small pool), one request in flight per connection, requests
 * queued FIFO, a deadline per request. Content-Length and chunked responses. Everything runs
 * on the loop thread; nothing blocks. Private to the plugin. */
#ifndef EVM_L2_JRPC_H
#define EVM_L2_JRPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct jrpc;

/* The raw reply: status 0 with the HTTP body (borrowed for the call), or a negative ADO_E*
 * code (ADO_EIO: connection failed or closed, ADO_ETIMEDOUT, ADO_EINVAL: not HTTP). */
typedef void (*jrpc_raw_fn)(void *arg, int status, const char *body, size_t len);

/* A parsed reply: status 0 and `result` (borrowed), or ADO_EPLUGIN with the JSON-RPC `error`
 * object (borrowed), or a transport error as above with both NULL. */
typedef void (*jrpc_fn)(void *arg, int status, json_t *result, json_t *error);

/* A notification (a message without id, e.g. eth_subscription): `msg` is borrowed. */
typedef void (*jrpc_notify_fn)(void *arg, json_t *msg);

/* A client for `url`: "http://host[:port][/path]" (HTTP/1.1 keep-alive pool) or
 * "ws://host[:port][/path]" (one WebSocket, see ws.h). Returns 0, ADO_EINVAL (bad URL, other
 * scheme) or ADO_ENOMEM. */
int jrpc_new(uv_loop_t *loop, const char *url, unsigned max_conns, uint64_t timeout_ms,
             struct jrpc **out);

/* Call every pending request back with ADO_ECLOSED (now, before returning), close the
 * connections (through the loop), free the client. A callback must not use the client
 * then. NULL is accepted. */
void jrpc_free(struct jrpc *c);

/* POST `body` (copied). cb is called exactly once, later (ADO_ECLOSED from jrpc_free). */
int jrpc_post(struct jrpc *c, const char *body, size_t len, jrpc_raw_fn cb, void *arg);

/* Call `method` with `params` (a JSON array, reference stolen; NULL for []). */
int jrpc_call(struct jrpc *c, const char *method, json_t *params, jrpc_fn cb, void *arg);

/* Requests queued or in flight. */
size_t jrpc_pending(const struct jrpc *c);

/* WebSocket only (no-ops over HTTP): notifications go to fn; generation counts the
 * connections made (subscriptions do not survive a new connection). */
void jrpc_on_notify(struct jrpc *c, jrpc_notify_fn fn, void *arg);
uint64_t jrpc_generation(const struct jrpc *c);
int jrpc_is_ws(const struct jrpc *c);

/* The JSON-RPC error's message (or "unknown error"), and its `data` as text or NULL. */
const char *jrpc_error_message(json_t *error);
const char *jrpc_error_data(json_t *error);

#endif
