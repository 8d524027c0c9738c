/* Kernel-private: the JSON-RPC 2.0 method registry and its server (WebSocket /ws, HTTP POST
 * /rpc, /healthz, /readyz, /metrics) on the node's libuv loop via libwebsockets.
 *
 * The registry exists even when the server is off (rpc.listen: off), so plugins can always
 * register methods; tests can call methods in-process with ado_rpc_call_local. */
#ifndef ADO_CORE_RPC_H
#define ADO_CORE_RPC_H

#include <stddef.h>

#include "ado/plugin.h"
#include "config.h"

struct ado_node;
struct ado_plugin;
struct ado_rpc;

/* Create the registry and register the built-in methods. */
int ado_rpc_new(struct ado_node *node, struct ado_rpc **out);
/* Start listening as configured (node->cfg); errors go to diag. 0 when off. */
int ado_rpc_listen(struct ado_rpc *rpc, struct ado_diag *diag);
/* Stop listening, answer pending calls with an error, free everything. */
void ado_rpc_free(struct ado_rpc *rpc);

/* Register `method`; owner NULL for the kernel's own. ADO_EEXIST if taken, ADO_EINVAL for a
 * bad name ([a-z][a-zA-Z0-9]*_[a-zA-Z0-9_]+) or role. */
int ado_rpc_register(struct ado_rpc *rpc, struct ado_plugin *owner, const char *method,
                     const char *role, const char *description, ado_rpc_fn fn, void *arg);
/* Remove every method of `owner` and answer its pending calls with an error. */
void ado_rpc_unregister_owner(struct ado_rpc *rpc, struct ado_plugin *owner);

int ado_rpc_reply(ado_call *call, const char *result, size_t len);
int ado_rpc_error(ado_call *call, int code, const char *message, const char *data);

/* In-process call (tests, bridge_query): `done` gets the response object's JSON text. */
typedef void (*ado_rpc_local_cb)(void *arg, const char *response_json);
int ado_rpc_call_local(struct ado_rpc *rpc, const char *request_json, const char *role,
                       ado_rpc_local_cb done, void *arg);

#endif
