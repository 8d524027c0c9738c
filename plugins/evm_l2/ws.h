/* evm_l2: JSON-RPC over one WebSocket (RFC 6455 client) on the libuv loop, behind jrpc.h.
 *
 * Requests are pipelined on one connection; each request's ids are rewritten to unique wire
 * ids and restored in the answer, so callers may reuse ids. Messages without an id
 * (eth_subscription notifications) go to the notify callback. The connection is opened on
 * demand and again after a loss (generation counts the connections, so that callers know to
 * subscribe again). Private to the plugin. */
#ifndef EVM_L2_WS_H
#define EVM_L2_WS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "jrpc.h"

struct jws;

/* url: "ws://host[:port][/path]". Returns 0, ADO_EINVAL or ADO_ENOMEM. */
int jws_new(uv_loop_t *loop, const char *url, uint64_t timeout_ms, struct jws **out);
/* Fails every pending request with ADO_ECLOSED (now), closes the socket, frees. */
void jws_free(struct jws *w);
int jws_post(struct jws *w, const char *body, size_t len, jrpc_raw_fn cb, void *arg);
size_t jws_pending(const struct jws *w);
void jws_on_notify(struct jws *w, jrpc_notify_fn fn, void *arg);
uint64_t jws_generation(const struct jws *w);

/* libuv alloc callback body shared by the HTTP and WebSocket clients: make at least 16 KiB
 * free in the growable read buffer (*buf, *len used, *cap; first size `initial`, doubling),
 * keep one byte for a terminating NUL, and point *out at the free part (an empty buffer when
 * out of memory, which libuv reports as UV_ENOBUFS). */
void jws_rbuf_alloc(char **buf, size_t len, size_t *cap, size_t initial, uv_buf_t *out);

#endif
