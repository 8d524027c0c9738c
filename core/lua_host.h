/* Kernel-private: Lua 5.4 plugins.
 *
 * Each Lua plugin is a script that returns a table of the same shape as a C descriptor:
 *   return {
 *     name = "hello", version = "1.0.0", description = "...",
 *     requires = {"other"},
 *     schema = { greeting = {type = "string", default = "hi"},
 *                every = {type = "duration", default = "10s", min = 100},
 *                mode = {type = "enum", choices = {"a", "b"}, required = true} },
 *     init = function(config) end, start = function() end, stop = function() end,
 *   }
 * Each runs in its own lua_State: base (without dofile/loadfile; load takes text only),
 * string, table, math, utf8, coroutine; no io, os, package, debug. A custom allocator caps
 * its memory and a count hook caps the instructions of each call into it; an error,
 * a runaway loop or a memory bomb is reported with script:line and counted against the
 * plugin's breaker; the node goes on. The global `ado` table is its API (see
 * docs/plugin-guide-lua.md).
 * Added notes: setmetatable refuses __gc (Lua runs finalizers with hooks off, so they could
 * outrun the budget); collectgarbage takes "collect", "count", "step", "isrunning" only;
 * print goes to the log. The implementation is split into lua_host.c (states, limits,
 * descriptor, reload), lua_api.c (`ado`), lua_json.c and lua_schema.c, sharing lua_priv.h.
 * ado_lua_load's diag messages are "script:LINE: message" (or "script: message"); the loader
 * prefixes them with the entry's position and the plugin's name. */
#ifndef ADO_CORE_LUA_HOST_H
#define ADO_CORE_LUA_HOST_H

#include <stdint.h>

#include "config.h"

struct ado_plugin;
struct ado_lua_plugin;

struct ado_lua_limits {
    int64_t memory_bytes; /* cap for the lua_State's allocator */
    int64_t instructions; /* budget per call into Lua (init, handlers, timers) */
};

/* Load the script at `path` into a new lua_State with `limits`, run it, and build
 * p->desc from the table it returns (p->lua owns it; p->kind = ADO_PK_LUA). Problems go
 * to diag as "path:line: message" naming the plugin. 0 or ADO_EPLUGIN. */
int ado_lua_load(struct ado_plugin *p, const char *path, const struct ado_lua_limits *limits,
                 struct ado_diag *diag);
/* Free the Lua side of p (closes the lua_State). Safe on a plugin that failed to load. */
void ado_lua_free(struct ado_plugin *p);

/* SIGHUP: if the script changed since it was loaded, load the new version; on success stop
 * the old one, release its subscriptions/timers/methods, init and start the new one;
 * on failure keep the old one and log why. Returns 1 if reloaded, 0 if unchanged,
 * negative on failure (old version still running). */
int ado_lua_reload(struct ado_plugin *p);

/* Memory in use by the plugin's lua_State, bytes. */
int64_t ado_lua_memory(const struct ado_plugin *p);

#endif
