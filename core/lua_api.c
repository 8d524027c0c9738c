/* The global `ado` table of a Lua plugin: its whole API, implemented with the kernel's api
 * table on the plugin's own ctx, and the C callbacks that the kernel calls for the Lua
 * functions a script registers (subscribers, timers, RPC methods).
 *
 * Conventions: every binding checks its arguments with luaL_check* and raises a Lua error
 * ("ado.NAME: reason") on failure, except lookups that report absence by returning nil
 * (kv.get) or false (unsubscribe, cancel). Each binding's stack effect is noted as
 * [-pops, +pushes] in the manner of the Lua manual. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_priv.h"
#include "node.h"

static const struct ado_api *api(void) {
    return ado_lua_api();
}

/* The plugin version of L, checked for the kernel calls that need a started plugin. */
static struct ado_lua_plugin *ready(lua_State *L, const char *fn) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    if (lp->phase == ADO_LUA_LOADING)
        luaL_error(L,
                   "ado.%s: not available while the script loads; call it from init or "
                   "start",
                   fn);
    if (lp->phase == ADO_LUA_CLOSING)
        luaL_error(L, "ado.%s: the plugin is closing", fn);
    return lp;
}

static int raise_rc(lua_State *L, const char *fn, int rc) {
    return luaL_error(L, "ado.%s: %s", fn, api()->strerror(rc));
}

/* ---- logging -------------------------------------------------------------------------- */

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace", NULL};

/* ado.log(level, msg) [-2, +0] */
static int l_log(lua_State *L) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    int level = luaL_checkoption(L, 1, NULL, level_names);
    const char *msg = luaL_checkstring(L, 2);
    if (lp->phase != ADO_LUA_CLOSING)
        api()->log(ado_lua_ctx(lp), level, "%s", msg);
    return 0;
}

/* ado.error/warn/info/debug(msg); upvalue 1: the level. [-1, +0] */
static int l_log_at(lua_State *L) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    int level = (int)lua_tointeger(L, lua_upvalueindex(1));
    const char *msg = luaL_checkstring(L, 1);
    if (lp->phase != ADO_LUA_CLOSING)
        api()->log(ado_lua_ctx(lp), level, "%s", msg);
    return 0;
}

/* ---- callback records ----------------------------------------------------------------- */

/* Reference the function at `fidx` and make a record for it. [-0, +0], may raise. */
static struct ado_lua_cb *cb_new(lua_State *L, struct ado_lua_plugin *lp, int fidx, int kind,
                                 const char *what) {
    lua_pushvalue(L, fidx);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    struct ado_lua_cb *cb = calloc(1, sizeof *cb);
    char *w = strdup(what);
    if (!cb || !w) {
        free(cb);
        free(w);
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        luaL_error(L, "not enough memory");
        return NULL;
    }
    cb->lp = lp;
    cb->kind = kind;
    cb->ref = ref;
    cb->what = w;
    cb->next = lp->cbs;
    if (lp->cbs)
        lp->cbs->prev = cb;
    lp->cbs = cb;
    return cb;
}

static struct ado_lua_cb *cb_find(struct ado_lua_plugin *lp, int kind, uint64_t id) {
    for (struct ado_lua_cb *cb = lp->cbs; cb; cb = cb->next)
        if (cb->kind == kind && cb->id == id)
            return cb;
    return NULL;
}

/* Before and after running a record's function: a record dropped while it runs (cancel
 * from inside its own callback) is freed when the call returns. */
static void cb_enter(struct ado_lua_cb *cb) {
    cb->busy++;
}

static void cb_leave(struct ado_lua_cb *cb) {
    if (--cb->busy == 0 && cb->dead) {
        free(cb->what);
        free(cb);
    }
}

static uint64_t check_id(lua_State *L, int idx) {
    lua_Integer id = luaL_checkinteger(L, idx);
    return (uint64_t)id;
}

/* ---- bus ------------------------------------------------------------------------------ */

/* Data to publish: a string as it is, any other value JSON-encoded. Returns malloc'd bytes
 * in *owned (or NULL when `*data` points into the Lua string). Raises on encoding errors. */
static const char *payload(lua_State *L, int idx, size_t *len, char **owned, const char *fn) {
    *owned = NULL;
    if (lua_type(L, idx) == LUA_TSTRING)
        return lua_tolstring(L, idx, len);
    const char *err = NULL;
    *owned = ado_lua_json_encode(L, idx, len, &err);
    if (!*owned)
        luaL_error(L, "ado.%s: %s", fn, err);
    return *owned;
}

/* ado.publish(topic, data) [-2, +0] */
static int l_publish(lua_State *L) {
    struct ado_lua_plugin *lp = ready(L, "publish");
    const char *topic = luaL_checkstring(L, 1);
    lua_settop(L, 2);
    size_t len = 0;
    char *owned;
    const char *data = payload(L, 2, &len, &owned, "publish");
    int rc = api()->bus_publish(ado_lua_ctx(lp), topic, data, len);
    free(owned);
    if (rc < 0)
        return raise_rc(L, "publish", rc);
    return 0;
}

struct bus_job {
    struct ado_lua_cb *cb;
    const char *topic;
    const void *data;
    size_t len;
};

/* Protected: fn(topic, data). */
static int bus_p(lua_State *L) {
    struct bus_job *j = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->cb->ref);
    lua_pushstring(L, j->topic);
    lua_pushlstring(L, j->data ? j->data : "", j->len);
    lua_call(L, 2, 0);
    return 0;
}

static int bus_cb(ado_ctx *ctx, const char *topic, const void *data, size_t len, void *arg) {
    (void)ctx;
    struct ado_lua_cb *cb = arg;
    if (cb->dead)
        return 0;
    struct bus_job j = {cb, topic, data, len};
    cb_enter(cb);
    int rc = ado_lua_run(cb->lp, bus_p, &j, cb->what, NULL);
    cb_leave(cb);
    return rc;
}

/* ado.subscribe(pattern, fn(topic, data)) -> id [-2, +1] */
static int l_subscribe(lua_State *L) {
    struct ado_lua_plugin *lp = ready(L, "subscribe");
    const char *pattern = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    char what[160];
    snprintf(what, sizeof what, "subscriber of %s", pattern);
    struct ado_lua_cb *cb = cb_new(L, lp, 2, ADO_LUA_CB_SUB, what);
    uint64_t id = 0;
    int rc = api()->bus_subscribe(ado_lua_ctx(lp), pattern, bus_cb, cb, &id);
    if (rc < 0) {
        ado_lua_cb_drop(lp, cb);
        return raise_rc(L, "subscribe", rc);
    }
    cb->id = id;
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* ado.unsubscribe(id) -> true, or false if unknown [-1, +1] */
static int l_unsubscribe(lua_State *L) {
    struct ado_lua_plugin *lp = ready(L, "unsubscribe");
    struct ado_lua_cb *cb = cb_find(lp, ADO_LUA_CB_SUB, check_id(L, 1));
    if (cb) {
        api()->bus_unsubscribe(ado_lua_ctx(lp), cb->id);
        ado_lua_cb_drop(lp, cb);
    }
    lua_pushboolean(L, cb != NULL);
    return 1;
}

/* ---- timers --------------------------------------------------------------------------- */

struct timer_job {
    struct ado_lua_cb *cb;
};

static int timer_p(lua_State *L) {
    struct timer_job *j = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->cb->ref);
    lua_call(L, 0, 0);
    return 0;
}

static int timer_cb(ado_ctx *ctx, void *arg) {
    (void)ctx;
    struct ado_lua_cb *cb = arg;
    if (cb->dead)
        return 0;
    struct ado_lua_plugin *lp = cb->lp;
    struct timer_job j = {cb};
    cb_enter(cb);
    int rc = ado_lua_run(lp, timer_p, &j, cb->what, NULL);
    /* A one-shot timer is gone once it fired: forget it (unless cancelled meanwhile). */
    if (cb->oneshot && !cb->dead)
        ado_lua_cb_drop(lp, cb);
    cb_leave(cb);
    return rc;
}

static int start_timer(lua_State *L, const char *fn, int repeat) {
    struct ado_lua_plugin *lp = ready(L, fn);
    lua_Integer ms = luaL_checkinteger(L, 1);
    luaL_argcheck(L, repeat ? ms >= 1 : ms >= 0, 1,
                  repeat ? "the period must be at least 1 ms" : "the delay must not be negative");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    char what[64];
    snprintf(what, sizeof what, "%s(%lld ms)", repeat ? "every" : "after", (long long)ms);
    struct ado_lua_cb *cb = cb_new(L, lp, 2, ADO_LUA_CB_TIMER, what);
    cb->oneshot = !repeat;
    uint64_t id = 0;
    int rc = api()->timer_start(ado_lua_ctx(lp), (uint64_t)ms, repeat ? (uint64_t)ms : 0, timer_cb,
                                cb, &id);
    if (rc < 0) {
        ado_lua_cb_drop(lp, cb);
        return raise_rc(L, fn, rc);
    }
    cb->id = id;
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* ado.after(ms, fn) -> id [-2, +1] */
static int l_after(lua_State *L) {
    return start_timer(L, "after", 0);
}

/* ado.every(ms, fn) -> id [-2, +1] */
static int l_every(lua_State *L) {
    return start_timer(L, "every", 1);
}

/* ado.cancel(id) -> true, or false if unknown or already fired [-1, +1] */
static int l_cancel(lua_State *L) {
    struct ado_lua_plugin *lp = ready(L, "cancel");
    struct ado_lua_cb *cb = cb_find(lp, ADO_LUA_CB_TIMER, check_id(L, 1));
    if (cb) {
        api()->timer_stop(ado_lua_ctx(lp), cb->id);
        ado_lua_cb_drop(lp, cb);
    }
    lua_pushboolean(L, cb != NULL);
    return 1;
}

/* ---- kv: the plugin's own store database "kv" ------------------------------------------ */

static struct ado_lua_plugin *kv_ready(lua_State *L, const char *fn) {
    struct ado_lua_plugin *lp = ready(L, fn);
    if (!lp->kv_ok)
        luaL_error(L, "ado.%s: the kv database is not open", fn);
    return lp;
}

/* ado.kv.get(key) -> value or nil [-1, +1] */
static int l_kv_get(lua_State *L) {
    struct ado_lua_plugin *lp = kv_ready(L, "kv.get");
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const void *val = NULL;
    size_t vlen = 0;
    int rc = api()->store_get(ado_lua_ctx(lp), lp->kv, key, klen, &val, &vlen);
    if (rc == ADO_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0)
        return raise_rc(L, "kv.get", rc);
    lua_pushlstring(L, val ? val : "", vlen);
    return 1;
}

/* ado.kv.put(key, value) [-2, +0]; value: a string (numbers are converted) */
static int l_kv_put(lua_State *L) {
    struct ado_lua_plugin *lp = kv_ready(L, "kv.put");
    size_t klen, vlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *val = luaL_checklstring(L, 2, &vlen);
    int rc = api()->store_put(ado_lua_ctx(lp), lp->kv, key, klen, val, vlen);
    if (rc < 0)
        return raise_rc(L, "kv.put", rc);
    return 0;
}

/* ado.kv.del(key) -> true if it existed [-1, +1] */
static int l_kv_del(lua_State *L) {
    struct ado_lua_plugin *lp = kv_ready(L, "kv.del");
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    int rc = api()->store_del(ado_lua_ctx(lp), lp->kv, key, klen);
    if (rc < 0 && rc != ADO_ENOTFOUND)
        return raise_rc(L, "kv.del", rc);
    lua_pushboolean(L, rc == 0);
    return 1;
}

struct scan_job {
    lua_State *L;
    struct ado_lua_plugin *lp;
    const char *prefix;
    size_t plen;
    int fn_idx;
    int failed; /* 1: the callback raised (its error is on the stack); 2: no stack left */
    size_t visited;
};

struct scan_item {
    struct scan_job *sj;
    const void *key, *val;
    size_t klen, vlen;
    int stop;
};

/* Protected: stop = fn(key, value). Stack: [item, fn]. */
static int scan_item_p(lua_State *L) {
    struct scan_item *it = lua_touserdata(L, 1);
    lua_pushvalue(L, 2);
    lua_pushlstring(L, it->key, it->klen);
    lua_pushlstring(L, it->val ? it->val : "", it->vlen);
    lua_call(L, 2, 1);
    it->stop = lua_toboolean(L, -1);
    return 0;
}

/* Store iteration callback (kernel frames are below: nothing may raise through here). */
static int scan_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    struct scan_job *sj = arg;
    if (klen < sj->plen || memcmp(key, sj->prefix, sj->plen) != 0)
        return 1; /* past the prefix */
    struct scan_item it = {sj, key, val, klen, vlen, 0};
    lua_State *L = sj->L;
    if (!lua_checkstack(L, 4)) {
        sj->failed = 2; /* nothing pushed */
        return 1;
    }
    lua_pushcfunction(L, scan_item_p);
    lua_pushlightuserdata(L, &it);
    lua_pushvalue(L, sj->fn_idx);
    lua_insert(L, -2);
    lua_insert(L, -2); /* [scan_item_p, item, fn]: fn becomes the call's second argument */
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        sj->failed = 1; /* the error stays on the stack */
        return 1;
    }
    sj->visited++;
    return it.stop;
}

/* ado.kv.scan(prefix, fn(key, value) -> stop?) -> number of keys visited [-2, +1]
 * Keys come in byte order; returning a true value from fn stops the scan. An error raised
 * by fn ends the scan and is raised again by kv.scan. */
static int l_kv_scan(lua_State *L) {
    struct ado_lua_plugin *lp = kv_ready(L, "kv.scan");
    size_t plen;
    const char *prefix = luaL_checklstring(L, 1, &plen);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    struct scan_job sj = {L, lp, prefix, plen, 2, 0, 0};
    int rc = api()->store_iter(ado_lua_ctx(lp), lp->kv, plen ? prefix : NULL, plen, scan_cb, &sj);
    if (sj.failed == 2)
        return luaL_error(L, "ado.kv.scan: not enough memory");
    if (sj.failed)
        return lua_error(L);
    if (rc < 0)
        return raise_rc(L, "kv.scan", rc);
    lua_pushinteger(L, (lua_Integer)sj.visited);
    return 1;
}

/* ---- RPC ------------------------------------------------------------------------------ */

struct rpc_job {
    struct ado_lua_cb *cb;
    const char *params;
    size_t len;
    int bad_params;
    char *result; /* malloc'd JSON */
    size_t rlen;
    /* error({code = c, message = m, data = d}) raised by the method */
    int ecode;
    char *emsg, *edata; /* malloc'd */
};

/* Handler of the method's call: a table error with an integer `code` is kept as it is (an
 * error meant for the client), anything else gets the usual message and traceback. */
static int rpc_msgh(lua_State *L) {
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_pushliteral(L, "code");
        int t = lua_rawget(L, 1);
        lua_pop(L, 1);
        if (t == LUA_TNUMBER) {
            lua_settop(L, 1);
            return 1;
        }
    }
    return ado_lua_msgh(L);
}

/* Read the client error table at the top of the stack into j. Stack: unchanged. */
static void rpc_client_error(lua_State *L, struct rpc_job *j) {
    int t = lua_gettop(L);
    lua_pushliteral(L, "code");
    lua_rawget(L, t);
    j->ecode = (int)lua_tointeger(L, -1);
    if (j->ecode == 0)
        j->ecode = -32000;
    lua_pushliteral(L, "message");
    const char *m = lua_rawget(L, t) == LUA_TSTRING ? lua_tostring(L, -1) : "error";
    j->emsg = strdup(m);
    lua_pushliteral(L, "data");
    if (lua_rawget(L, t) != LUA_TNIL) {
        size_t n;
        const char *err;
        j->edata = ado_lua_json_encode(L, -1, &n, &err);
    }
    lua_settop(L, t);
    if (!j->emsg)
        luaL_error(L, "not enough memory");
}

/* Protected: result = fn(decoded params), encoded into j->result. */
static int rpc_p(lua_State *L) {
    struct rpc_job *j = lua_touserdata(L, 1);
    lua_pushcfunction(L, rpc_msgh);
    int h = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->cb->ref);
    if (ado_lua_json_decode(L, j->params ? j->params : "null", j->params ? j->len : 4) != 0) {
        j->bad_params = 1;
        return 0;
    }
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
        lua_pop(L, 1); /* params null (the only light userdata decode makes): pass nil */
        lua_pushnil(L);
    }
    if (lua_pcall(L, 1, 1, h) != LUA_OK) {
        if (lua_istable(L, -1)) {
            rpc_client_error(L, j);
            return 0;
        }
        return lua_error(L); /* message and traceback are already there */
    }
    const char *err = NULL;
    j->result = ado_lua_json_encode(L, -1, &j->rlen, &err);
    if (!j->result)
        return luaL_error(L, "the result cannot be encoded as JSON: %s", err);
    return 0;
}

/* "script.lua:12: boom" -> "boom": the client gets the message without the position. */
static const char *client_message(const char *msg) {
    const char *c = msg;
    while ((c = strchr(c, ':')) != NULL) {
        const char *d = c + 1;
        while (*d >= '0' && *d <= '9')
            d++;
        if (d > c + 1 && d[0] == ':' && d[1] == ' ') {
            int spaces = 0;
            for (const char *s = msg; s < c; s++)
                spaces |= *s == ' ';
            return spaces ? msg : d + 2;
        }
        c++;
    }
    return msg;
}

static void rpc_cb(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx;
    struct ado_lua_cb *cb = arg;
    if (cb->dead) {
        api()->rpc_error(call, -32601, "method not found", NULL);
        return;
    }
    struct rpc_job j = {cb, params, len, 0, NULL, 0, 0, NULL, NULL};
    char *err = NULL;
    cb_enter(cb);
    int rc = ado_lua_run(cb->lp, rpc_p, &j, cb->what, &err);
    cb_leave(cb);
    if (rc == 0 && j.bad_params)
        api()->rpc_error(call, -32602, "invalid params: not JSON", NULL);
    else if (rc == 0 && j.emsg)
        api()->rpc_error(call, j.ecode, j.emsg, j.edata);
    else if (rc == 0)
        api()->rpc_reply(call, j.result, j.rlen);
    else
        api()->rpc_error(call, -32000, client_message(err ? err : "plugin error"), NULL);
    free(j.result);
    free(j.emsg);
    free(j.edata);
    free(err);
}

/* ado.rpc(method, role, description, fn(params) -> result) [-4, +0]
 * role: "admin", "writer", "reader" or nil (anyone allowed anonymous calls). */
static int l_rpc(lua_State *L) {
    struct ado_lua_plugin *lp = ready(L, "rpc");
    const char *method = luaL_checkstring(L, 1);
    const char *role = luaL_optstring(L, 2, NULL);
    const char *desc = luaL_optstring(L, 3, "");
    luaL_checktype(L, 4, LUA_TFUNCTION);
    char what[160];
    snprintf(what, sizeof what, "rpc %s", method);
    struct ado_lua_cb *cb = cb_new(L, lp, 4, ADO_LUA_CB_RPC, what);
    int rc = api()->rpc_register(ado_lua_ctx(lp), method, role, desc, rpc_cb, cb);
    if (rc < 0) {
        ado_lua_cb_drop(lp, cb);
        return raise_rc(L, "rpc", rc);
    }
    return 0;
}

/* ---- clocks --------------------------------------------------------------------------- */

/* ado.now_ms() -> loop clock, ms [-0, +1] */
static int l_now_ms(lua_State *L) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    lua_pushinteger(L, (lua_Integer)api()->now_ms(ado_lua_ctx(lp)));
    return 1;
}

/* ado.wall_ms() -> ms since the Unix epoch [-0, +1] */
static int l_wall_ms(lua_State *L) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    lua_pushinteger(L, (lua_Integer)api()->wall_ms(ado_lua_ctx(lp)));
    return 1;
}

/* ---- config --------------------------------------------------------------------------- */

int ado_lua_push_config(struct ado_lua_plugin *lp) {
    lua_State *L = lp->L;
    char *json = NULL;
    ado_ctx *ctx = ado_lua_ctx(lp);
    int rc = api()->config_json(ctx, "", &json);
    if (rc < 0 || !json) {
        lua_newtable(L);
    } else {
        int drc = ado_lua_json_decode(L, json, strlen(json));
        api()->free(ctx, json);
        if (drc != 0)
            return lua_error(L);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
        }
    }
    lua_getglobal(L, "ado");
    if (lua_istable(L, -1)) {
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "config");
    }
    lua_pop(L, 1);
    return 0;
}

/* ---- the table ------------------------------------------------------------------------ */

void ado_lua_open_api(struct ado_lua_plugin *lp) {
    lua_State *L = lp->L;
    ado_ctx *ctx = ado_lua_ctx(lp);
    static const luaL_Reg fns[] = {
        {"log", l_log},
        {"publish", l_publish},
        {"subscribe", l_subscribe},
        {"unsubscribe", l_unsubscribe},
        {"after", l_after},
        {"every", l_every},
        {"cancel", l_cancel},
        {"rpc", l_rpc},
        {"now_ms", l_now_ms},
        {"wall_ms", l_wall_ms},
        {NULL, NULL},
    };
    luaL_newlib(L, fns); /* ado */

    static const char *const shortcut[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++) {
        lua_pushinteger(L, i); /* enum ado_log_level */
        lua_pushcclosure(L, l_log_at, 1);
        lua_setfield(L, -2, shortcut[i]);
    }

    static const luaL_Reg kv[] = {
        {"get", l_kv_get}, {"put", l_kv_put}, {"del", l_kv_del}, {"scan", l_kv_scan}, {NULL, NULL}};
    luaL_newlib(L, kv);
    lua_setfield(L, -2, "kv");

    ado_lua_open_json(L);
    lua_setfield(L, -2, "json");

    const char *pname = lp->p->name ? lp->p->name : "";
    const char *nname = ctx->node ? api()->node_name(ctx) : NULL;
    const char *layer = ctx->node ? api()->node_layer(ctx) : NULL;
    lua_pushstring(L, pname);
    lua_setfield(L, -2, "plugin");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, nname ? nname : "");
    lua_setfield(L, -2, "name");
    lua_pushstring(L, layer ? layer : "");
    lua_setfield(L, -2, "layer");
    lua_setfield(L, -2, "node");
    lua_newtable(L); /* ado.config: filled at init */
    lua_setfield(L, -2, "config");

    lua_setglobal(L, "ado");
}
