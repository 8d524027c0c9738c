/* Kernel-private, shared by core/lua_*.c only: the state of one loaded version of a Lua
 * plugin and the helpers the binding files share. Nothing outside core/lua_*.c includes it.
 *
 * One struct ado_lua_plugin exists per loaded *version* of a script: ado_lua_reload builds
 * a new one next to the running one and swaps p->lua only once the new version is valid.
 * It is the lua_State's allocator userdata, so any binding finds it with lua_getallocf. */
#ifndef ADO_CORE_LUA_PRIV_H
#define ADO_CORE_LUA_PRIV_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "ado/plugin.h"
#include "lua_host.h"

struct ado_plugin;
struct ado_diag;

enum ado_lua_phase {
    ADO_LUA_LOADING = 0, /* running the script's top level: no bus, store, timers, rpc */
    ADO_LUA_READY,       /* init has begun: the whole `ado` API is usable */
    ADO_LUA_CLOSING,     /* lua_close runs finalizers: nothing reaches the kernel */
};

enum ado_lua_cb_kind { ADO_LUA_CB_SUB = 1, ADO_LUA_CB_TIMER, ADO_LUA_CB_RPC };

/* A Lua function registered with the kernel (subscriber, timer, RPC method). The kernel
 * holds a pointer to it as the callback's `arg`; the plugin version owns it. */
struct ado_lua_cb {
    struct ado_lua_cb *prev, *next;
    struct ado_lua_plugin *lp;
    int kind;    /* enum ado_lua_cb_kind */
    int ref;     /* luaL_ref of the function in the registry */
    uint64_t id; /* kernel subscription / timer id */
    int oneshot; /* ado.after: dropped after it fires */
    int busy;    /* > 0 while the function runs */
    int dead;    /* cancelled while busy: freed when the call returns */
    char *what;  /* "bus trn.view" / "timer 3" / "rpc x_y", for logs */
};

struct ado_lua_plugin {
    struct ado_plugin *p;
    lua_State *L;
    char *path; /* the script, as given */
    char *src;  /* its bytes when loaded, to detect a change at reload */
    size_t srclen;
    struct ado_lua_limits limits; /* copied */
    int phase;                    /* enum ado_lua_phase */

    /* allocator */
    size_t mem_used, mem_peak;
    int in_handler;     /* the message handler runs: a small overdraft is allowed */
    int oom_hit;        /* the allocator refused a block during the current call */
    char oom_where[96]; /* "script:line" of the first refusal of the current call */

    /* instruction budget */
    int hook_step;        /* count hook granularity (instructions) */
    int64_t budget_left;  /* instructions left in the current outermost call */
    int budget_exhausted; /* sticky until the outermost call returns */
    int depth;            /* nesting of calls into Lua */

    /* the descriptor built from the returned table */
    struct ado_plugin_desc desc;
    char *name, *version, *description;
    char **requires;
    struct ado_schema *schema;
    int init_ref, start_ref, stop_ref; /* LUA_NOREF when absent */

    ado_db kv;
    int kv_ok;

    struct ado_lua_cb *cbs; /* every registered callback */
    int json_array_ref;     /* registry ref of the metatable marking JSON arrays */
};

/* lua_host.c */
struct ado_lua_plugin *ado_lua_of(lua_State *L);
const struct ado_api *ado_lua_api(void);
ado_ctx *ado_lua_ctx(struct ado_lua_plugin *lp);
/* Run `fn(L)` with one light userdata argument `ud`, protected, with a traceback message
 * handler, the instruction budget (counted from the outermost call) and the memory cap.
 * Everything that may allocate Lua memory (pushing strings, calling the script) happens
 * inside `fn`, so that nothing raises outside a protected call. Stack: unchanged.
 * On failure: logs "what: message + traceback" (unless the version is still loading),
 * records "what: message" in p->last_error, and if `errmsg` is not NULL stores there a
 * malloc'd copy of the message without the traceback (caller frees).
 * Returns 0 or ADO_EPLUGIN. */
int ado_lua_run(struct ado_lua_plugin *lp, lua_CFunction fn, void *ud, const char *what,
                char **errmsg);
/* The message handler of ado_lua_run (for nested protected calls that want the same
 * message): converts the error to a string and appends a traceback. */
int ado_lua_msgh(lua_State *L);
/* Push a copy of `s` (len bytes) and free(s), also when pushing raises (the error is then
 * re-raised). s NULL raises "not enough memory". Stack: +1. */
void ado_lua_push_owned(lua_State *L, char *s, size_t len);
/* Unlink and free a callback record (or mark it dead if it is running). Does not talk to
 * the kernel. */
void ado_lua_cb_drop(struct ado_lua_plugin *lp, struct ado_lua_cb *cb);

/* lua_api.c: build the global `ado` table. Stack: unchanged. */
void ado_lua_open_api(struct ado_lua_plugin *lp);
/* Load ado.config from the kernel and push it (the table passed to init). Stack: +1. */
int ado_lua_push_config(struct ado_lua_plugin *lp);

/* lua_schema.c */
/* Build the schema array from the table at `idx` into *slot (attached as soon as it is
 * allocated, so a raised memory error leaks nothing; free the partial or whole tree with
 * ado_lua_schema_free). Returns 0 (stack unchanged) or -1 with "schema.key: problem" on top
 * of the stack (other values may lie under it). May raise memory errors. */
int ado_lua_schema_build(lua_State *L, int idx, struct ado_schema **slot);
void ado_lua_schema_free(struct ado_schema *s);

/* lua_json.c */
/* Encode the value at `idx` as compact JSON (malloc'd, *len set). On error returns NULL and
 * pushes nothing; *err receives a static description. Stack: unchanged. */
char *ado_lua_json_encode(lua_State *L, int idx, size_t *len, const char **err);
/* Decode `text`; on success pushes the value and returns 0; on error pushes an error
 * message string and returns -1. Stack: +1 either way. */
int ado_lua_json_decode(lua_State *L, const char *text, size_t len);
/* Build the `ado.json` table. Stack: +1. */
void ado_lua_open_json(lua_State *L);

#endif
