/* Lua 5.4 plugins: one sandboxed lua_State per loaded version of a script, its memory cap
 * and instruction budget, protected calls, the descriptor built from the table the script
 * returns, and reload. The `ado` API table is in lua_api.c, JSON in lua_json.c, the schema
 * built from the script's `schema` table in lua_schema.c.
 *
 * Invariant: no Lua error ever unwinds through kernel C frames. Every entry from the kernel
 * goes through ado_lua_run (a lua_pcall), and everything that may raise (pushing strings,
 * calling the script) happens inside the protected function. */
#include "lua_host.h"

#include <errno.h>
#include <stdarg.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_priv.h"
#include "node.h"

#define DEFAULT_MEMORY_BYTES ((int64_t)64 << 20)
#define DEFAULT_INSTRUCTIONS ((int64_t)10000000)
#define HANDLER_SLACK_BYTES  ((size_t)64 << 10) /* room for the traceback after an OOM */
#define MAX_SCRIPT_BYTES     ((size_t)16 << 20)

static int tramp_init(ado_ctx *ctx, const struct ado_api *api, void **state);
static int tramp_start(ado_ctx *ctx, void *state);
static void tramp_stop(ado_ctx *ctx, void *state);
static void tramp_fini(ado_ctx *ctx, void *state);

/* ---- small helpers -------------------------------------------------------------------- */

struct ado_lua_plugin *ado_lua_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

const struct ado_api *ado_lua_api(void) {
    return ado_node_api();
}

ado_ctx *ado_lua_ctx(struct ado_lua_plugin *lp) {
    return &lp->p->ctx;
}

static char *xstrdup(const char *s) {
    return s ? strdup(s) : NULL;
}

/* Read a whole file into a malloc'd buffer. 0, or -errno-ish ADO code with `err` set. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return ADO_EIO;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap >= MAX_SCRIPT_BYTES) {
                snprintf(err, errlen, "%s: larger than %zu bytes", path, MAX_SCRIPT_BYTES);
                free(buf);
                fclose(f);
                return ADO_ELIMIT;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: cannot read", path);
        free(buf);
        return buf ? ADO_EIO : ADO_ENOMEM;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Record "what: msg" as p->last_error (the old string is freed). */
static void set_last_error(struct ado_plugin *p, const char *what, const char *msg) {
    size_t n = strlen(what) + strlen(msg) + 3;
    char *s = malloc(n);
    if (!s)
        return;
    snprintf(s, n, "%s: %s", what, msg);
    free(p->last_error);
    p->last_error = s;
}

/* ---- allocator ------------------------------------------------------------------------ */

/* Where the script is when an allocation is refused: the innermost Lua frame. Reading the
 * call stack from inside the allocator is safe in 5.4.3/5.4.4, whose stack reallocation
 * allocates the new block before touching the old one; newer releases relocate first, so
 * there the message says only "not enough memory". */
static void note_oom(struct ado_lua_plugin *lp) {
    if (lp->oom_hit)
        return;
    lp->oom_hit = 1;
    lp->oom_where[0] = '\0';
#if LUA_VERSION_RELEASE_NUM >= 50403 && LUA_VERSION_RELEASE_NUM <= 50404
    if (!lp->L || lp->phase == ADO_LUA_CLOSING || lp->depth == 0)
        return;
    lua_Debug ar;
    for (int level = 0; level < 64 && lua_getstack(lp->L, level, &ar); level++) {
        if (lua_getinfo(lp->L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(lp->oom_where, sizeof lp->oom_where, "%s:%d", ar.short_src, ar.currentline);
            break;
        }
    }
#endif
}

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    struct ado_lua_plugin *lp = ud;
    size_t old = ptr ? osize : 0; /* for a new block osize is the object's type */
    if (nsize == 0) {
        free(ptr);
        lp->mem_used -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t cap = (size_t)lp->limits.memory_bytes;
        if (lp->in_handler)
            cap += HANDLER_SLACK_BYTES;
        if (lp->mem_used - old + nsize > cap) {
            note_oom(lp);
            return NULL;
        }
    }
    void *np = realloc(ptr, nsize);
    if (!np) {
        note_oom(lp);
        return NULL;
    }
    lp->mem_used = lp->mem_used - old + nsize;
    if (lp->mem_used > lp->mem_peak)
        lp->mem_peak = lp->mem_used;
    return np;
}

/* ---- instruction budget --------------------------------------------------------------- */

/* Count hook, every hook_step instructions of any coroutine of the state. The budget is
 * shared by nested calls and sticky once spent, so a script that catches the error with
 * pcall is stopped again a few instructions later. Lua code outside any call (a finalizer
 * run by a GC step at an odd time) gets no budget at all. */
static void count_hook(lua_State *L, lua_Debug *ar) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    if (lp->depth > 0 && !lp->budget_exhausted) {
        lp->budget_left -= lua_gethookcount(L);
        if (lp->budget_left > 0)
            return;
    }
    lp->budget_exhausted = 1;
    /* From now on stop at the very next instruction of this thread. */
    if (lua_gethookcount(L) != 1)
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        lua_pushfstring(L, "%s:%d: instruction budget exceeded", ar->short_src, ar->currentline);
    else
        lua_pushliteral(L, "instruction budget exceeded");
    lua_error(L);
}

/* A fresh budget for an outermost call. */
static void budget_reset(struct ado_lua_plugin *lp) {
    lp->budget_left = lp->limits.instructions;
    lp->budget_exhausted = 0;
    if (lua_gethookcount(lp->L) != lp->hook_step)
        lua_sethook(lp->L, count_hook, LUA_MASKCOUNT, lp->hook_step);
}

/* ---- protected calls ------------------------------------------------------------------ */

/* Message handler: the error message plus a traceback. A message that already carries one
 * (an error caught by a nested handler and raised again) is kept as it is.
 * Stack: [msg] -> [msg, ..., traceback]. */
int ado_lua_msgh(lua_State *L) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    lp->in_handler = 1;
    const char *msg = lua_tostring(L, 1);
    if (msg && strstr(msg, "\nstack traceback:"))
        return 1;
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Split "message\nstack traceback:..." into the message. Returns a malloc'd copy. */
static char *strip_traceback(const char *full) {
    const char *tb = strstr(full, "\nstack traceback:");
    size_t n = tb ? (size_t)(tb - full) : strlen(full);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, full, n);
        s[n] = '\0';
    }
    return s;
}

int ado_lua_run(struct ado_lua_plugin *lp, lua_CFunction fn, void *ud, const char *what,
                char **errmsg) {
    lua_State *L = lp->L;
    if (errmsg)
        *errmsg = NULL;
    if (!lua_checkstack(L, 4)) {
        set_last_error(lp->p, what, "not enough memory (Lua stack)");
        return ADO_EPLUGIN;
    }
    int top = lua_gettop(L);
    if (lp->depth++ == 0) {
        budget_reset(lp);
        lp->oom_hit = 0;
        lp->oom_where[0] = '\0';
    }
    lua_pushcfunction(L, ado_lua_msgh);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    int rc = lua_pcall(L, 1, 0, top + 1);
    lp->in_handler = 0;
    if (rc == LUA_OK) {
        lp->depth--;
        lua_settop(L, top);
        return 0;
    }
    /* Stack: [handler, error]. */
    char *full;
    if (rc == LUA_ERRMEM) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s%snot enough memory (limit %lld bytes)", lp->oom_where,
                 lp->oom_where[0] ? ": " : "", (long long)lp->limits.memory_bytes);
        full = strdup(buf);
    } else {
        const char *m = lua_tostring(L, -1);
        if (m && lp->oom_hit && lp->oom_where[0] && strncmp(m, "not enough memory", 17) == 0) {
            /* a memory error caught by a nested pcall and raised again as a string */
            char buf[256];
            snprintf(buf, sizeof buf, "%s: %s", lp->oom_where, m);
            full = strdup(buf);
        } else {
            full = strdup(m ? m : "(error object is not a string)");
        }
    }
    lua_settop(L, top);
    if (lp->depth == 1) {
        /* Give the garbage of the failed call back before the next one (finalizers that
         * run here still count against this call's budget). */
        budget_reset(lp);
        lua_gc(L, LUA_GCCOLLECT, 0);
    }
    lp->depth--;
    char *msg = full ? strip_traceback(full) : NULL;
    if (lp->phase != ADO_LUA_LOADING)
        ado_lua_api()->log(ado_lua_ctx(lp), ADO_LOG_ERROR, "%s: %s", what,
                           full ? full : "not enough memory");
    set_last_error(lp->p, what, msg ? msg : "not enough memory");
    if (errmsg)
        *errmsg = msg;
    else
        free(msg);
    free(full);
    return ADO_EPLUGIN;
}

struct owned {
    char *s;
    size_t len;
};

static int push_owned_p(lua_State *L) {
    struct owned *o = lua_touserdata(L, 1);
    lua_pushlstring(L, o->s, o->len);
    return 1;
}

void ado_lua_push_owned(lua_State *L, char *s, size_t len) {
    if (!s)
        luaL_error(L, "not enough memory");
    struct owned o = {s, len};
    lua_pushcfunction(L, push_owned_p);
    lua_pushlightuserdata(L, &o);
    int rc = lua_pcall(L, 1, 1, 0);
    free(s);
    if (rc != LUA_OK)
        lua_error(L);
}

/* ---- the sandbox ---------------------------------------------------------------------- */

/* load(chunk [, chunkname [, mode [, env]]]) with mode forced to "t": binary chunks are
 * refused whatever the caller asks. Upvalue 1: the original load. Stack: args -> results. */
static int sandbox_load(lua_State *L) {
    lua_settop(L, 4);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L);
}

/* collectgarbage with the options that cannot change how the collector runs: "collect"
 * (default), "count", "step", "isrunning". Upvalue 1: the original. */
static int sandbox_collectgarbage(lua_State *L) {
    static const char *const allowed[] = {"collect", "count", "step", "isrunning", NULL};
    luaL_checkoption(L, 1, "collect", allowed);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* setmetatable refusing __gc: Lua runs finalizers with hooks off, so a finalizer could loop
 * beyond the instruction budget. Lua marks an object for finalization only if its metatable
 * has __gc when it is set, so refusing it here leaves no way to get a finalizer (scripts
 * cannot make userdata). Upvalue 1: the original. */
static int sandbox_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in plugins");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* print(...) goes to the node's log at info level, arguments separated by tabs. */
static int sandbox_print(lua_State *L) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    if (lp->phase != ADO_LUA_CLOSING)
        ado_lua_api()->log(ado_lua_ctx(lp), ADO_LOG_INFO, "%s", lua_tostring(L, -1));
    return 0;
}

/* Open the allowed libraries and close the holes in them. Stack: unchanged. */
static void open_sandbox(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},
        {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
        {LUA_COLIBNAME, luaopen_coroutine},
        {NULL, NULL},
    };
    for (const luaL_Reg *l = libs; l->name; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    lua_pushnil(L);
    lua_setfield(L, -2, "dofile");
    lua_pushnil(L);
    lua_setfield(L, -2, "loadfile");
    lua_getfield(L, -1, "load");
    lua_pushcclosure(L, sandbox_load, 1);
    lua_setfield(L, -2, "load");
    lua_getfield(L, -1, "collectgarbage");
    lua_pushcclosure(L, sandbox_collectgarbage, 1);
    lua_setfield(L, -2, "collectgarbage");
    lua_getfield(L, -1, "setmetatable");
    lua_pushcclosure(L, sandbox_setmetatable, 1);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, sandbox_print);
    lua_setfield(L, -2, "print");
    lua_getfield(L, -1, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 2);
}

/* ---- loading a version ---------------------------------------------------------------- */

struct load_job {
    struct ado_lua_plugin *lp;
    char *fail; /* a message for diag without traceback noise (syntax, shape), malloc'd */
};

static void job_fail(struct load_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void job_fail(struct load_job *j, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(j->fail);
    j->fail = strdup(buf);
}

/* An optional string field of the table at index 1 into *out (malloc'd). 0 or -1. */
static int get_string_field(lua_State *L, struct load_job *j, const char *key, char **out) {
    int t = lua_getfield(L, 1, key);
    if (t == LUA_TSTRING) {
        *out = xstrdup(lua_tostring(L, -1));
        if (!*out)
            luaL_error(L, "not enough memory");
    } else if (t != LUA_TNIL) {
        job_fail(j, "%s: '%s' must be a string, not a %s", j->lp->path, key, lua_typename(L, t));
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}

/* Read the descriptor table at index 1 into lp. Stack: unchanged on return. */
static int read_desc(lua_State *L, struct load_job *j) {
    struct ado_lua_plugin *lp = j->lp;
    if (get_string_field(L, j, "name", &lp->name) ||
        get_string_field(L, j, "version", &lp->version) ||
        get_string_field(L, j, "description", &lp->description))
        return -1;
    /* requires: a list of plugin names */
    int t = lua_getfield(L, 1, "requires");
    if (t == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        if (n < 0 || n > 1024)
            n = 0;
        lp->requires = calloc((size_t)n + 1, sizeof *lp->requires);
        if (!lp->requires)
            luaL_error(L, "not enough memory");
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
                job_fail(j, "%s: requires[%lld] must be a plugin name (a string)", lp->path,
                         (long long)i);
                lua_pop(L, 2);
                return -1;
            }
            lp->requires[i - 1] = xstrdup(lua_tostring(L, -1));
            lua_pop(L, 1);
            if (!lp->requires[i - 1])
                luaL_error(L, "not enough memory");
        }
    } else if (t != LUA_TNIL) {
        job_fail(j, "%s: 'requires' must be a list of plugin names, not a %s", lp->path,
                 lua_typename(L, t));
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    /* schema */
    t = lua_getfield(L, 1, "schema");
    if (t == LUA_TTABLE) {
        int top = lua_gettop(L);
        if (ado_lua_schema_build(L, top, &lp->schema) != 0) {
            job_fail(j, "%s: %s", lp->path, lua_tostring(L, -1));
            lua_settop(L, top - 1);
            return -1;
        }
    } else if (t != LUA_TNIL) {
        job_fail(j, "%s: 'schema' must be a table, not a %s", lp->path, lua_typename(L, t));
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    /* functions */
    static const char *const fns[] = {"init", "start", "stop"};
    int *refs[] = {&lp->init_ref, &lp->start_ref, &lp->stop_ref};
    for (int i = 0; i < 3; i++) {
        t = lua_getfield(L, 1, fns[i]);
        if (t == LUA_TFUNCTION) {
            *refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
            continue;
        }
        lua_pop(L, 1);
        if (t != LUA_TNIL) {
            job_fail(j, "%s: '%s' must be a function, not a %s", lp->path, fns[i],
                     lua_typename(L, t));
            return -1;
        }
    }
    return 0;
}

/* Protected: build the sandbox and the `ado` table, compile and run the script, read the
 * table it returns. Stack: [job] -> anything (the caller's pcall discards it). */
static int load_p(lua_State *L) {
    struct load_job *j = lua_touserdata(L, 1);
    struct ado_lua_plugin *lp = j->lp;
    open_sandbox(L);
    ado_lua_open_api(lp);
    int rc = luaL_loadbufferx(L, lp->src, lp->srclen, lua_pushfstring(L, "@%s", lp->path), "t");
    if (rc == LUA_ERRMEM)
        lua_error(L);
    if (rc != LUA_OK) {
        job_fail(j, "%s", lua_tostring(L, -1));
        return 0;
    }
    lua_remove(L, -2); /* the chunk name */
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1)) {
        job_fail(j, "%s: the script must return its plugin table, not a %s value", lp->path,
                 luaL_typename(L, -1));
        return 0;
    }
    lua_replace(L, 1);
    lua_settop(L, 1);
    read_desc(L, j);
    return 0;
}

static void version_free(struct ado_lua_plugin *lp);

/* Split "src:LINE: rest" into its location and the rest, for diag. */
static void diag_lua_message(struct ado_diag *diag, const char *path, const char *msg) {
    const char *c = msg;
    while ((c = strchr(c, ':')) != NULL) {
        const char *d = c + 1;
        while (*d >= '0' && *d <= '9')
            d++;
        if (d > c + 1 && d[0] == ':' && d[1] == ' ') {
            char loc[512];
            snprintf(loc, sizeof loc, "%.*s", (int)(d - msg), msg);
            if (!strchr(loc, ' ') || strncmp(msg, path, strlen(path)) == 0) {
                ado_diag_add(diag, loc, 0, 0, NULL, "%s", d + 2);
                return;
            }
        }
        c++;
    }
    /* No position: the message names the script itself when it starts with its path. */
    size_t pl = strlen(path);
    if (strncmp(msg, path, pl) == 0 && msg[pl] == ':' && msg[pl + 1] == ' ')
        ado_diag_add(diag, path, 0, 0, NULL, "%s", msg + pl + 2);
    else
        ado_diag_add(diag, path, 0, 0, NULL, "%s", msg);
}

/* Build a new version of p's script from `src` (taken over on success and failure).
 * On failure returns ADO_EPLUGIN with the reason in *err (malloc'd). */
static int version_new(struct ado_plugin *p, const char *path, char *src, size_t srclen,
                       const struct ado_lua_limits *limits, struct ado_lua_plugin **out,
                       char **err) {
    *out = NULL;
    *err = NULL;
    struct ado_lua_plugin *lp = calloc(1, sizeof *lp);
    if (!lp) {
        free(src);
        *err = strdup("out of memory");
        return ADO_ENOMEM;
    }
    lp->p = p;
    lp->src = src;
    lp->srclen = srclen;
    lp->path = strdup(path);
    lp->limits = *limits;
    if (lp->limits.memory_bytes <= 0)
        lp->limits.memory_bytes = DEFAULT_MEMORY_BYTES;
    if (lp->limits.instructions <= 0)
        lp->limits.instructions = DEFAULT_INSTRUCTIONS;
    lp->hook_step = lp->limits.instructions < 1000 ? (int)lp->limits.instructions : 1000;
    lp->init_ref = lp->start_ref = lp->stop_ref = LUA_NOREF;
    lp->json_array_ref = LUA_NOREF;
    lp->phase = ADO_LUA_LOADING;
    if (!lp->path)
        goto nomem;
    lp->L = lua_newstate(lua_alloc, lp);
    if (!lp->L) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s: cannot create a Lua state within %lld bytes", path,
                 (long long)lp->limits.memory_bytes);
        *err = strdup(buf);
        version_free(lp);
        return ADO_EPLUGIN;
    }
    lua_sethook(lp->L, count_hook, LUA_MASKCOUNT, lp->hook_step);
    struct load_job job = {lp, NULL};
    char *msg = NULL;
    int rc = ado_lua_run(lp, load_p, &job, "load", &msg);
    if (rc != 0 || job.fail) {
        *err = job.fail ? job.fail : msg;
        if (job.fail)
            free(msg);
        if (!*err)
            *err = strdup("out of memory");
        version_free(lp);
        return ADO_EPLUGIN;
    }
    /* The descriptor, owned by lp. */
    if (!lp->name && !(lp->name = xstrdup(p->name ? p->name : "lua")))
        goto nomem;
    lp->desc.abi_version = ADO_ABI_VERSION;
    lp->desc.struct_size = sizeof lp->desc;
    lp->desc.name = lp->name;
    lp->desc.version = lp->version ? lp->version : "0.0.0";
    lp->desc.description = lp->description ? lp->description : "";
    lp->desc.requires = (const char *const *)lp->requires;
    lp->desc.schema = lp->schema;
    lp->desc.init = tramp_init;
    lp->desc.start = tramp_start;
    lp->desc.stop = tramp_stop;
    lp->desc.fini = tramp_fini;
    *out = lp;
    return 0;
nomem:
    version_free(lp);
    *err = strdup("out of memory");
    return ADO_ENOMEM;
}

static void cb_free(struct ado_lua_cb *cb) {
    free(cb->what);
    free(cb);
}

void ado_lua_cb_drop(struct ado_lua_plugin *lp, struct ado_lua_cb *cb) {
    if (cb->prev)
        cb->prev->next = cb->next;
    else if (lp->cbs == cb)
        lp->cbs = cb->next;
    if (cb->next)
        cb->next->prev = cb->prev;
    cb->prev = cb->next = NULL;
    if (lp->L && lp->phase != ADO_LUA_CLOSING && cb->ref != LUA_NOREF)
        luaL_unref(lp->L, LUA_REGISTRYINDEX, cb->ref);
    cb->ref = LUA_NOREF;
    if (cb->busy > 0)
        cb->dead = 1;
    else
        cb_free(cb);
}

/* Free every callback record (the kernel has already dropped them: release). */
static void version_drop_cbs(struct ado_lua_plugin *lp) {
    while (lp->cbs)
        ado_lua_cb_drop(lp, lp->cbs);
}

static void version_free(struct ado_lua_plugin *lp) {
    if (!lp)
        return;
    if (lp->L) {
        /* Finalizers run here: give them one call's budget and no kernel access. */
        lp->phase = ADO_LUA_CLOSING;
        lp->depth = 1;
        budget_reset(lp);
        lua_close(lp->L);
        lp->L = NULL;
    }
    version_drop_cbs(lp);
    free(lp->path);
    free(lp->src);
    free(lp->name);
    free(lp->version);
    free(lp->description);
    if (lp->requires) {
        for (char **r = lp->requires; *r; r++)
            free(*r);
        free(lp->requires);
    }
    ado_lua_schema_free(lp->schema);
    free(lp);
}

/* ---- lifecycle trampolines (the descriptor's functions) ------------------------------- */

struct call_job {
    struct ado_lua_plugin *lp;
    int ref;
    int with_config;
};

/* Protected: call the function `ref`, with ado.config as argument for init. */
static int call_p(lua_State *L) {
    struct call_job *j = lua_touserdata(L, 1);
    if (j->with_config) {
        ado_lua_push_config(j->lp); /* sets ado.config too */
        if (j->ref == LUA_NOREF)
            return 0;
        lua_rawgeti(L, LUA_REGISTRYINDEX, j->ref);
        lua_insert(L, -2);
        lua_call(L, 1, 0);
        return 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->ref);
    lua_call(L, 0, 0);
    return 0;
}

static int tramp_init(ado_ctx *ctx, const struct ado_api *api, void **state) {
    struct ado_lua_plugin *lp = ctx->plugin->lua;
    *state = lp;
    lp->phase = ADO_LUA_READY;
    int rc = api->store_open_db(ctx, "kv", &lp->kv);
    lp->kv_ok = rc == 0;
    if (rc < 0)
        api->log(ctx, ADO_LOG_WARN, "cannot open the kv database: %s", api->strerror(rc));
    struct call_job j = {lp, lp->init_ref, 1};
    return ado_lua_run(lp, call_p, &j, "init", NULL);
}

static int tramp_start(ado_ctx *ctx, void *state) {
    (void)ctx;
    struct ado_lua_plugin *lp = state;
    if (lp->start_ref == LUA_NOREF)
        return 0;
    struct call_job j = {lp, lp->start_ref, 0};
    return ado_lua_run(lp, call_p, &j, "start", NULL);
}

static void tramp_stop(ado_ctx *ctx, void *state) {
    (void)ctx;
    struct ado_lua_plugin *lp = state;
    if (!lp || lp->stop_ref == LUA_NOREF)
        return;
    struct call_job j = {lp, lp->stop_ref, 0};
    ado_lua_run(lp, call_p, &j, "stop", NULL);
}

/* The kernel has released the plugin's subscriptions, timers and methods: forget ours.
 * The lua_State itself lives until ado_lua_free. */
static void tramp_fini(ado_ctx *ctx, void *state) {
    (void)ctx;
    struct ado_lua_plugin *lp = state;
    if (lp)
        version_drop_cbs(lp);
}

/* ---- the contract (lua_host.h) -------------------------------------------------------- */

int ado_lua_load(struct ado_plugin *p, const char *path, const struct ado_lua_limits *limits,
                 struct ado_diag *diag) {
    if (!p->ctx.node) {
        p->ctx.node = p->node;
        p->ctx.plugin = p;
    }
    char ebuf[512];
    char *src = NULL;
    size_t len = 0;
    if (read_file(path, &src, &len, ebuf, sizeof ebuf) < 0) {
        diag_lua_message(diag, path, ebuf);
        return ADO_EPLUGIN;
    }
    struct ado_lua_plugin *lp = NULL;
    char *err = NULL;
    if (version_new(p, path, src, len, limits, &lp, &err) < 0) {
        diag_lua_message(diag, path, err ? err : "out of memory");
        free(err);
        return ADO_EPLUGIN;
    }
    p->lua = lp;
    p->desc = &lp->desc;
    p->kind = ADO_PK_LUA;
    return 0;
}

void ado_lua_free(struct ado_plugin *p) {
    if (!p || !p->lua)
        return;
    struct ado_lua_plugin *lp = p->lua;
    if (p->desc == &lp->desc)
        p->desc = NULL;
    if (p->pstate == lp)
        p->pstate = NULL;
    p->lua = NULL;
    version_free(lp);
}

int64_t ado_lua_memory(const struct ado_plugin *p) {
    return p && p->lua ? (int64_t)p->lua->mem_used : 0;
}

/* Validate the plugin's config block against a new version's schema without touching the
 * live tree: a copy without the defaults filled in for the old schema is validated. */
static struct ado_cnode *copy_block(const struct ado_cnode *n) {
    struct ado_cnode *c = ado_cnode_new(n->kind, n->key);
    if (!c)
        return NULL;
    c->quoted = n->quoted;
    c->line = n->line;
    c->col = n->col;
    c->key_line = n->key_line;
    c->key_col = n->key_col;
    if (n->type == ADO_CN_TYPE_INVALID)
        c->type = n->type;
    if (n->text && !(c->text = strdup(n->text))) {
        ado_cnode_free(c);
        return NULL;
    }
    for (size_t i = 0; i < n->n; i++) {
        if (n->items[i]->from_default)
            continue;
        struct ado_cnode *k = copy_block(n->items[i]);
        if (!k || ado_cnode_append(c, k) != 0) {
            ado_cnode_free(k);
            ado_cnode_free(c);
            return NULL;
        }
    }
    return c;
}

/* Remove what validation with the old schema added (defaults), so that validating with the
 * new schema fills the new defaults and does not see the old ones as unknown keys. */
static void prune_defaults(struct ado_cnode *n) {
    size_t k = 0;
    for (size_t i = 0; i < n->n; i++) {
        if (n->items[i]->from_default) {
            ado_cnode_free(n->items[i]);
            continue;
        }
        prune_defaults(n->items[i]);
        n->items[k++] = n->items[i];
    }
    n->n = k;
}

static void log_diag(struct ado_plugin *p, const char *head, const struct ado_diag *d) {
    for (size_t i = 0; i < d->n; i++)
        ado_lua_api()->log(&p->ctx, ADO_LOG_ERROR, "%s: %s", head, d->msgs[i]);
}

/* Bring `lp` to running: init then start. On failure it is stopped and released again. */
static int version_up(struct ado_plugin *p, struct ado_lua_plugin *lp) {
    const struct ado_api *api = ado_lua_api();
    void *state = NULL;
    p->lua = lp;
    p->desc = &lp->desc;
    int rc = lp->desc.init(&p->ctx, api, &state);
    if (rc == 0) {
        p->pstate = state;
        rc = lp->desc.start(&p->ctx, state);
        if (rc != 0)
            lp->desc.stop(&p->ctx, state);
    }
    if (rc != 0) {
        ado_plugin_release(p);
        lp->desc.fini(&p->ctx, state);
    }
    return rc;
}

int ado_lua_reload(struct ado_plugin *p) {
    if (!p || !p->lua)
        return ADO_EINVAL;
    struct ado_lua_plugin *old = p->lua;
    const struct ado_api *api = ado_lua_api();
    char ebuf[512];
    char *src = NULL;
    size_t len = 0;
    if (read_file(old->path, &src, &len, ebuf, sizeof ebuf) < 0) {
        api->log(&p->ctx, ADO_LOG_ERROR, "reload: %s; keeping the running version", ebuf);
        return ADO_EIO;
    }
    if (len == old->srclen && memcmp(src, old->src, len) == 0) {
        free(src);
        return 0;
    }
    /* The new version must load and accept the current config block. p->last_error is
     * kept: a failed reload must not look like a failure of the running version. */
    char *saved_error = xstrdup(p->last_error);
    struct ado_lua_plugin *nv = NULL;
    char *err = NULL;
    int rc = version_new(p, old->path, src, len, &old->limits, &nv, &err);
    if (rc < 0) {
        api->log(&p->ctx, ADO_LOG_ERROR, "reload of %s failed: %s; keeping the running version",
                 old->path, err ? err : "out of memory");
        free(err);
        free(p->last_error);
        p->last_error = saved_error;
        return ADO_EPLUGIN;
    }
    struct ado_config *cfg = p->node ? p->node->cfg : NULL;
    struct ado_cnode *block = p->entry ? p->entry->config : NULL;
    struct ado_diag d;
    ado_diag_init(&d);
    struct ado_cnode *copy = block ? copy_block(block) : NULL;
    if (block && !copy) {
        ado_diag_add(&d, old->path, 0, 0, NULL, "out of memory");
    } else if (copy) {
        copy->parent = block->parent; /* for the paths in messages; not linked into it */
        ado_config_validate(cfg, copy, nv->desc.schema, NULL, &d);
        copy->parent = NULL;
    }
    ado_cnode_free(copy);
    if (d.n > 0) {
        log_diag(p, "reload rejected, keeping the running version", &d);
        ado_diag_fini(&d);
        version_free(nv);
        free(p->last_error);
        p->last_error = saved_error;
        return ADO_ECONFIG;
    }
    free(saved_error);
    /* Swap: stop the old version, drop what the kernel holds for it, start the new one. */
    int state = p->state;
    int live = state == ADO_PS_RUNNING || state == ADO_PS_ISOLATED || state == ADO_PS_INITED;
    if (state == ADO_PS_RUNNING || state == ADO_PS_ISOLATED)
        old->desc.stop(&p->ctx, p->pstate);
    if (live || state == ADO_PS_FAILED) {
        ado_plugin_release(p);
        version_drop_cbs(old);
    }
    if (block) {
        prune_defaults(block);
        ado_config_validate(cfg, block, nv->desc.schema, NULL, &d);
    }
    if (state == ADO_PS_LOADED) {
        /* Not started yet: the node will init the new version. */
        p->lua = nv;
        p->desc = &nv->desc;
        version_free(old);
        ado_diag_fini(&d);
        return 1;
    }
    rc = version_up(p, nv);
    if (rc != 0) {
        api->log(&p->ctx, ADO_LOG_ERROR,
                 "reload: the new version failed to start (%s); restarting the previous one",
                 p->last_error ? p->last_error : "?");
        version_free(nv);
        if (block) {
            prune_defaults(block);
            ado_config_validate(cfg, block, old->desc.schema, NULL, &d);
        }
        p->pstate = NULL;
        if (!live || version_up(p, old) != 0)
            p->state = ADO_PS_FAILED;
        p->lua = old;
        p->desc = &old->desc;
        ado_diag_fini(&d);
        return ADO_EPLUGIN;
    }
    ado_diag_fini(&d);
    version_free(old);
    p->state = ADO_PS_RUNNING;
    p->breaker = ADO_BR_CLOSED;
    p->consecutive_failures = 0;
    api->log(&p->ctx, ADO_LOG_INFO, "reloaded %s (version %s)", nv->path, nv->desc.version);
    return 1;
}
