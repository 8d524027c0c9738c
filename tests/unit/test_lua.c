/* The Lua host, through a real node: the `ado` API (bus, kv, timers, config, JSON, RPC), the
 * sandbox, the instruction budget and memory cap (with the state usable afterwards), the
 * circuit breaker, schemas declared in Lua, load errors with file:line, and reload. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lua_host.h"
#include "rpc.h"

/* ---- a node with Lua plugins, and a recorder of what they publish on test.> ----------- */

#define MAX_MSGS 64

struct msg {
    char topic[64];
    char data[512];
};

struct rec {
    struct msg msgs[MAX_MSGS];
    int n;
};

static int on_test(void *arg, const char *topic, const void *data, size_t len) {
    struct rec *r = arg;
    if (r->n == MAX_MSGS)
        return 0;
    struct msg *m = &r->msgs[r->n++];
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    snprintf(m->data, sizeof m->data, "%.*s", (int)len, (const char *)data);
    return 0;
}

/* The data of the last message on `topic`, or NULL. */
static const char *last(struct rec *r, const char *topic) {
    for (int i = r->n - 1; i >= 0; i--)
        if (strcmp(r->msgs[i].topic, topic) == 0)
            return r->msgs[i].data;
    return NULL;
}

static int count(struct rec *r, const char *topic) {
    int c = 0;
    for (int i = 0; i < r->n; i++)
        c += strcmp(r->msgs[i].topic, topic) == 0;
    return c;
}

struct ln {
    struct th_node t;
    struct rec rec;
    char *dir;
    int rc_load, rc_start;
    int up; /* node_up ran and node_down did not */
};

/* Write `script` as dir/<file>. */
static void script(struct ln *l, const char *file, const char *text) {
    free(th_write(l->dir, file, text));
}

/* Start a node whose plugins section is `plugins`, where DIR/ stands for the temp dir. */
static void node_up(struct ln *l, const char *plugins) {
    char expanded[4096] = "";
    for (const char *s = plugins, *d; *s; s = d + 4) {
        d = strstr(s, "DIR/");
        if (!d) {
            strcat(expanded, s);
            break;
        }
        strncat(expanded, s, (size_t)(d - s));
        strcat(expanded, l->dir);
        strcat(expanded, "/");
    }
    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "node:\n  name: lua-test\n  layer: L3\n  data_dir: %s/data\n  log: {level: error}\n"
             "  store: {sync: false}\n  rpc: {listen: \"off\"}\nplugins:\n%s",
             l->dir, expanded);
    struct th_node *t = &l->t;
    memset(t, 0, sizeof *t);
    memset(&l->rec, 0, sizeof l->rec);
    l->up = 1;
    ado_diag_init(&t->diag);
    uv_loop_init(&t->loop);
    char *path = th_write(l->dir, "chain.yaml", yaml);
    int rc = ado_config_load(path, &t->cfg, &t->diag);
    free(path);
    cr_assert_eq(rc, 0, "config: %s", th_diag_text(t));
    t->node = ado_node_new(&t->loop);
    cr_assert(t->node);
    t->node->log.level = ADO_LOG_ERROR;
    ado_bus_subscribe(t->node->bus, "test.>", NULL, on_test, &l->rec, NULL);
    l->rc_load = ado_node_load(t->node, t->cfg, &t->diag);
    l->rc_start = -1;
    if (l->rc_load == 0) {
        l->rc_start = ado_node_start(t->node, &t->diag);
        t->started = 1;
    }
}

static void node_down(struct ln *l) {
    if (l->up)
        th_node_stop(&l->t);
    l->up = 0;
}

static struct ln *ln_new(void) {
    struct ln *l = calloc(1, sizeof *l);
    l->dir = th_tmpdir();
    return l;
}

static void ln_free(struct ln *l) {
    node_down(l);
    th_rmrf(l->dir);
    free(l->dir);
    free(l);
}

static void publish(struct ln *l, const char *topic, const char *data) {
    ado_bus_publish(l->t.node->bus, topic, data, strlen(data));
    ado_node_flush(l->t.node);
}

static struct ado_plugin *plugin(struct ln *l, const char *name) {
    for (size_t i = 0; i < l->t.node->nplugins; i++)
        if (strcmp(l->t.node->plugins[i]->name, name) == 0)
            return l->t.node->plugins[i];
    cr_assert_fail("no plugin %s", name);
    return NULL;
}

struct wait_msgs {
    struct rec *rec;
    const char *topic;
    int n;
};

static int has_msgs(void *arg) {
    struct wait_msgs *w = arg;
    return count(w->rec, w->topic) >= w->n;
}

/* Run the loop until `n` messages on `topic` arrived (or 5 s). */
static int wait_for(struct ln *l, const char *topic, int n) {
    struct wait_msgs w = {&l->rec, topic, n};
    return th_run_until(&l->t.loop, has_msgs, &w, 5000);
}

static int never(void *arg) {
    (void)arg;
    return 0;
}

static void run_for(struct ln *l, int ms) {
    th_run_until(&l->t.loop, never, NULL, ms);
}

#define STARTED(l)                                                                                 \
    do {                                                                                           \
        cr_assert_eq((l)->rc_load, 0, "load: %s", th_diag_text(&(l)->t));                          \
        cr_assert_eq((l)->rc_start, 0, "start: %s", th_diag_text(&(l)->t));                        \
    } while (0)

/* ---- bus ------------------------------------------------------------------------------ */

Test(lua, subscriber_receives_and_publishes_a_round_trip) {
    struct ln *l = ln_new();
    script(l, "echo.lua",
           "return {\n"
           "  name = 'echo', version = '1.2.3',\n"
           "  start = function()\n"
           "    ado.subscribe('ping.*', function(topic, data)\n"
           "      ado.publish('test.pong', {topic = topic, got = data})\n"
           "    end)\n"
           "    ado.publish('test.raw', 'raw bytes')\n"
           "  end,\n"
           "}\n");
    node_up(l, "  - {name: echo, path: DIR/echo.lua}\n");
    STARTED(l);
    cr_assert_str_eq(plugin(l, "echo")->desc->version, "1.2.3");
    cr_assert_eq(plugin(l, "echo")->kind, ADO_PK_LUA);
    cr_assert_str_eq(last(&l->rec, "test.raw"), "raw bytes");
    publish(l, "ping.one", "hello");
    cr_assert(wait_for(l, "test.pong", 1));
    const char *d = last(&l->rec, "test.pong");
    cr_assert(strstr(d, "\"topic\":\"ping.one\"") && strstr(d, "\"got\":\"hello\""), "%s", d);
    publish(l, "ping.two.deep", "no match");
    cr_assert_eq(count(&l->rec, "test.pong"), 1);
    ln_free(l);
}

Test(lua, unsubscribe_stops_delivery_even_from_inside_the_callback) {
    struct ln *l = ln_new();
    script(l, "once.lua",
           "local id\n"
           "return { start = function()\n"
           "  id = ado.subscribe('once', function(t, d)\n"
           "    ado.publish('test.once', d)\n"
           "    ado.publish('test.unsub', tostring(ado.unsubscribe(id)))\n"
           "    ado.publish('test.again', tostring(ado.unsubscribe(id)))\n"
           "  end)\n"
           "end }\n");
    node_up(l, "  - {name: once, path: DIR/once.lua}\n");
    STARTED(l);
    publish(l, "once", "1");
    publish(l, "once", "2");
    cr_assert_eq(count(&l->rec, "test.once"), 1);
    cr_assert_str_eq(last(&l->rec, "test.unsub"), "true");
    cr_assert_str_eq(last(&l->rec, "test.again"), "false");
    ln_free(l);
}

/* ---- kv ------------------------------------------------------------------------------- */

Test(lua, kv_persists_across_a_node_restart) {
    struct ln *l = ln_new();
    script(
        l, "kv.lua",
        "return { start = function()\n"
        "  local n = tonumber(ado.kv.get('boots') or '0') + 1\n"
        "  ado.kv.put('boots', n)\n"
        "  ado.kv.put('k.' .. n, 'v' .. n)\n"
        "  ado.kv.put('z', 'outside the prefix')\n"
        "  ado.kv.put('gone', 'x')\n"
        "  local deleted = ado.kv.del('gone')\n"
        "  local seen = {}\n"
        "  local visited = ado.kv.scan('k.', function(k, v) seen[#seen + 1] = k .. '=' .. v end)\n"
        "  local first\n"
        "  ado.kv.scan('k.', function(k) first = k; return true end)\n"
        "  ado.publish('test.kv', string.format('%d %s %s %d %s %s', n, table.concat(seen, ','),\n"
        "    tostring(deleted), visited, first, tostring(ado.kv.get('gone'))))\n"
        "end }\n");
    node_up(l, "  - {name: kv, path: DIR/kv.lua}\n");
    STARTED(l);
    cr_assert_str_eq(last(&l->rec, "test.kv"), "1 k.1=v1 true 1 k.1 nil");
    node_down(l);
    node_up(l, "  - {name: kv, path: DIR/kv.lua}\n");
    STARTED(l);
    cr_assert_str_eq(last(&l->rec, "test.kv"), "2 k.1=v1,k.2=v2 true 2 k.1 nil");
    ln_free(l);
}

/* ---- timers --------------------------------------------------------------------------- */

Test(lua, timers_after_every_and_cancel) {
    struct ln *l = ln_new();
    script(l, "tick.lua",
           "return { start = function()\n"
           "  ado.after(5, function() ado.publish('test.after', 'fired') end)\n"
           "  local cancelled = ado.after(20, function() ado.publish('test.cancelled', 'x') end)\n"
           "  ado.publish('test.cancel', tostring(ado.cancel(cancelled)) .. ' ' ..\n"
           "              tostring(ado.cancel(cancelled)))\n"
           "  local n, id = 0\n"
           "  id = ado.every(2, function()\n"
           "    n = n + 1\n"
           "    ado.publish('test.every', tostring(n))\n"
           "    if n == 3 then ado.cancel(id) end\n"
           "  end)\n"
           "end }\n");
    node_up(l, "  - {name: tick, path: DIR/tick.lua}\n");
    STARTED(l);
    cr_assert_str_eq(last(&l->rec, "test.cancel"), "true false");
    cr_assert(wait_for(l, "test.after", 1));
    cr_assert(wait_for(l, "test.every", 3));
    run_for(l, 60);
    cr_assert_eq(count(&l->rec, "test.every"), 3);
    cr_assert_eq(count(&l->rec, "test.after"), 1);
    cr_assert_eq(count(&l->rec, "test.cancelled"), 0);
    ln_free(l);
}

/* ---- config, node info, JSON ---------------------------------------------------------- */

Test(lua, config_is_validated_and_passed_to_init_and_as_ado_config) {
    struct ln *l = ln_new();
    script(l, "cfg.lua",
           "local at_load = ado.node.name .. '/' .. ado.node.layer .. '/' .. ado.plugin\n"
           "return {\n"
           "  schema = {\n"
           "    greeting = {type = 'string', default = 'hi'},\n"
           "    every = {type = 'duration', default = '10s', min = '1s'},\n"
           "    n = {type = 'int', required = true, min = 1, max = 10},\n"
           "    mode = {type = 'enum', choices = {'a', 'b'}, default = 'a'},\n"
           "    on = 'bool',\n"
           "    peers = {type = 'list', item = {type = 'map', fields = {url = 'string'}}},\n"
           "  },\n"
           "  init = function(config)\n"
           "    assert(config == ado.config)\n"
           "    ado.publish('test.config', {greeting = config.greeting, every = config.every,\n"
           "      n = config.n, mode = config.mode, on = config.on, url = config.peers[2].url,\n"
           "      node = at_load})\n"
           "  end,\n"
           "}\n");
    node_up(l, "  - name: cfg\n    path: DIR/cfg.lua\n    config:\n      n: 5\n      mode: b\n"
               "      on: yes\n      peers: [{url: a}, {url: b}]\n");
    STARTED(l);
    const char *d = last(&l->rec, "test.config");
    cr_assert(d);
    const char *want[] = {"\"greeting\":\"hi\"",
                          "\"every\":10000",
                          "\"n\":5",
                          "\"mode\":\"b\"",
                          "\"on\":true",
                          "\"url\":\"b\"",
                          "\"node\":\"lua-test/L3/cfg\""};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(d, want[i]), "%s not in %s", want[i], d);
    ln_free(l);
}

Test(lua, schema_declared_in_lua_is_enforced_with_the_kernel_messages) {
    struct ln *l = ln_new();
    script(l, "port.lua",
           "return { schema = {\n"
           "  port = {type = 'int', min = 1, max = 65535, required = true},\n"
           "  mode = {type = 'enum', choices = {'fast', 'safe'}},\n"
           "} }\n");
    node_up(l, "  - name: port\n    path: DIR/port.lua\n    config:\n      port: 70000\n"
               "      mode: slow\n      colour: red\n");
    cr_assert_eq(l->rc_load, ADO_ECONFIG);
    const char *msg = th_diag_text(&l->t);
    cr_assert(strstr(msg, "chain.yaml:12:13: plugins.0.config.port: 70000 is out of range: must "
                          "be between 1 and 65535\n"),
              "%s", msg);
    cr_assert(strstr(msg, "chain.yaml:13:13: plugins.0.config.mode: expected one of fast, safe, "
                          "got \"slow\"\n"),
              "%s", msg);
    cr_assert(strstr(msg, "chain.yaml:14:7: plugins.0.config.colour: unknown key \"colour\" "
                          "(known keys: mode, port)\n"),
              "%s", msg);
    ln_free(l);
}

Test(lua, a_bad_schema_is_refused_at_load_naming_the_field) {
    struct ln *l = ln_new();
    script(l, "bad.lua", "return { schema = { port = {type = 'integer'} } }\n");
    node_up(l, "  - {name: bad, path: DIR/bad.lua}\n");
    cr_assert_neq(l->rc_load, 0);
    const char *msg = th_diag_text(&l->t);
    cr_assert(strstr(msg, "schema.port: unknown type 'integer' (expected string, int, bool, "
                          "duration, size, enum, map, list or any)"),
              "%s", msg);
    ln_free(l);
}

Test(lua, json_keeps_integers_and_null) {
    struct ln *l = ln_new();
    script(l, "json.lua",
           "return { start = function()\n"
           "  local t = ado.json.decode('{\"i\":3,\"f\":1.5,\"a\":[1,null,3],\"s\":\"x\"}')\n"
           "  assert(math.type(t.i) == 'integer' and math.type(t.f) == 'float')\n"
           "  assert(#t.a == 3 and t.a[2] == ado.json.null)\n"
           "  ado.publish('test.json', ado.json.encode({t.a, 7, ado.json.array({}), {}, true}))\n"
           "  local ok, err = pcall(ado.json.decode, '{bad')\n"
           "  ado.publish('test.err', err)\n"
           "end }\n");
    node_up(l, "  - {name: json, path: DIR/json.lua}\n");
    STARTED(l);
    cr_assert_str_eq(last(&l->rec, "test.json"), "[[1,null,3],7,[],{},true]");
    cr_assert(strstr(last(&l->rec, "test.err"), "ado.json.decode: invalid JSON at line 1"), "%s",
              last(&l->rec, "test.err"));
    ln_free(l);
}

/* ---- limits ----------------------------------------------------------------------------- */

Test(lua, runaway_loop_is_stopped_with_script_line_and_the_state_goes_on) {
    struct ln *l = ln_new();
    script(l, "loop.lua",
           "return { start = function()\n"
           "  ado.subscribe('loop.go', function()\n"
           "    while true do end\n"
           "  end)\n"
           "  ado.subscribe('loop.sneaky', function()\n"
           "    pcall(function() while true do end end)\n"
           "    ado.publish('test.escaped', 'yes')\n"
           "  end)\n"
           "  ado.subscribe('loop.ok', function() ado.publish('test.ok', 'fine') end)\n"
           "end }\n");
    node_up(l, "  - name: loop\n    path: DIR/loop.lua\n    limits: {instructions: 100000}\n");
    STARTED(l);
    struct ado_plugin *p = plugin(l, "loop");
    publish(l, "loop.go", "");
    cr_assert(p->last_error && strstr(p->last_error, "loop.lua:3: instruction budget exceeded"),
              "%s", p->last_error ? p->last_error : "(none)");
    publish(l, "loop.ok", "");
    cr_assert_str_eq(last(&l->rec, "test.ok"), "fine");
    publish(l, "loop.sneaky", "");
    cr_assert_eq(count(&l->rec, "test.escaped"), 0, "pcall must not escape the budget");
    cr_assert(strstr(p->last_error, "instruction budget exceeded"), "%s", p->last_error);
    publish(l, "loop.ok", "");
    cr_assert_eq(count(&l->rec, "test.ok"), 2);
    cr_assert_eq(p->state, ADO_PS_RUNNING);
    ln_free(l);
}

Test(lua, memory_bomb_is_stopped_with_script_line_and_the_state_goes_on) {
    struct ln *l = ln_new();
    script(l, "mem.lua",
           "local hoard = {}\n"
           "return { start = function()\n"
           "  ado.subscribe('mem.go', function()\n"
           "    local t = {}\n"
           "    for i = 1, 1e9 do\n"
           "      t[#t + 1] = string.rep('x', 1000) .. i\n"
           "    end\n"
           "  end)\n"
           "  ado.subscribe('mem.big', function()\n"
           "    hoard[1] = string.rep('x', 1 << 30)\n"
           "  end)\n"
           "  ado.subscribe('mem.ok', function()\n"
           "    local s = {}\n"
           "    for i = 1, 100 do s[i] = tostring(i) end\n"
           "    ado.publish('test.ok', table.concat(s, ','):sub(1, 8))\n"
           "  end)\n"
           "end }\n");
    node_up(l, "  - name: mem\n    path: DIR/mem.lua\n    limits: {memory: 1MiB}\n");
    STARTED(l);
    struct ado_plugin *p = plugin(l, "mem");
    publish(l, "mem.go", "");
    cr_assert(p->last_error && strstr(p->last_error, "mem.lua:6: not enough memory"), "%s",
              p->last_error ? p->last_error : "(none)");
    cr_assert_lt(ado_lua_memory(p), 1 << 20);
    /* What node_plugins and /metrics report for a Lua plugin is its lua_State's memory. */
    cr_assert_gt(ado_plugin_memory(p), 0);
    cr_assert_eq(ado_plugin_memory(p), ado_lua_memory(p) + p->mem_bytes);
    publish(l, "mem.ok", "");
    cr_assert_str_eq(last(&l->rec, "test.ok"), "1,2,3,4,");
    publish(l, "mem.big", "");
    cr_assert(strstr(p->last_error, "mem.lua:10: not enough memory"), "%s", p->last_error);
    publish(l, "mem.ok", "");
    cr_assert_eq(count(&l->rec, "test.ok"), 2);
    ln_free(l);
}

/* ---- sandbox ---------------------------------------------------------------------------- */

Test(lua, sandbox_has_no_way_out) {
    struct ln *l = ln_new();
    script(l, "box.lua",
           "local absent = {}\n"
           "for _, name in ipairs({'io', 'os', 'package', 'debug', 'require', 'dofile',\n"
           "                       'loadfile'}) do\n"
           "  if _G[name] ~= nil then absent[#absent + 1] = name end\n"
           "end\n"
           "if string.dump ~= nil or ('').dump ~= nil then absent[#absent + 1] = 'dump' end\n"
           "local bin = '\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10'\n"
           "local f1, e1 = load(bin)\n"
           "local f2, e2 = load(bin, 'x', 'b')\n"
           "local f3, e3 = load(function() local s = bin; bin = nil; return s end, 'y', 'bt')\n"
           "local okstop, estop = pcall(collectgarbage, 'stop')\n"
           "local text = load('return 1 + 1')()\n"
           "local env = load('return x', 'c', 't', {x = 42})()\n"
           "return { start = function()\n"
           "  ado.publish('test.box', table.concat({#absent == 0 and 'none' or\n"
           "    table.concat(absent, ','), tostring(f1), e1, tostring(f2), e2, tostring(f3), e3,\n"
           "    tostring(okstop), tostring(text), tostring(env),\n"
           "    tostring(collectgarbage('count') > 0)}, '|'))\n"
           "end }\n");
    node_up(l, "  - {name: box, path: DIR/box.lua}\n");
    STARTED(l);
    const char *d = last(&l->rec, "test.box");
    cr_assert(d);
    cr_assert_str_eq(d, "none|nil|attempt to load a binary chunk (mode is 't')|nil|attempt to "
                        "load a binary chunk (mode is 't')|nil|attempt to load a binary chunk "
                        "(mode is 't')|false|2|42|true");
    ln_free(l);
}

/* ---- errors and the breaker -------------------------------------------------------------- */

Test(lua, failing_handler_is_counted_until_the_breaker_isolates_the_plugin) {
    struct ln *l = ln_new();
    script(l, "bad.lua",
           "return { start = function()\n"
           "  ado.subscribe('bad.go', function()\n"
           "    error('boom')\n"
           "  end)\n"
           "end }\n");
    node_up(l, "  - name: bad\n    path: DIR/bad.lua\n    breaker: {failures: 3, cooldown: 1h}\n");
    STARTED(l);
    struct ado_plugin *p = plugin(l, "bad");
    publish(l, "bad.go", "");
    publish(l, "bad.go", "");
    cr_assert_eq(p->state, ADO_PS_RUNNING);
    cr_assert_eq(p->consecutive_failures, 2);
    cr_assert(strstr(p->last_error, "bad.lua:3: boom"), "%s", p->last_error);
    cr_assert_null(strstr(p->last_error, "stack traceback"), "%s", p->last_error);
    publish(l, "bad.go", "");
    cr_assert_eq(p->state, ADO_PS_ISOLATED);
    cr_assert_not(ado_plugin_callable(p));
    uint64_t failures = p->failures_total;
    publish(l, "bad.go", "");
    cr_assert_eq(p->failures_total, failures, "an isolated plugin is not called");
    ln_free(l);
}

Test(lua, syntax_error_is_refused_with_file_and_line) {
    struct ln *l = ln_new();
    script(l, "syntax.lua",
           "return {\n"
           "  name = 'x',\n"
           "  start = function( end,\n"
           "}\n");
    node_up(l, "  - {name: syntax, path: DIR/syntax.lua}\n");
    cr_assert_neq(l->rc_load, 0);
    const char *msg = th_diag_text(&l->t);
    char want[512];
    snprintf(
        want, sizeof want,
        "plugin syntax (%s/syntax.lua): %s/syntax.lua:3: <name> or '...' expected near 'end'\n",
        l->dir, l->dir);
    cr_assert(strstr(msg, want), "want %s in:\n%s", want, msg);
    ln_free(l);
}

Test(lua, top_level_errors_and_a_wrong_shape_are_refused) {
    struct ln *l = ln_new();
    script(l, "top.lua", "local x = nil\nreturn x.y\n");
    script(l, "shape.lua", "return 42\n");
    script(l, "fn.lua", "return { start = 'soon' }\n");
    script(l, "early.lua", "ado.subscribe('x', print)\nreturn {}\n");
    node_up(l, "  - {name: top, path: DIR/top.lua}\n  - {name: shape, path: DIR/shape.lua}\n"
               "  - {name: fn, path: DIR/fn.lua}\n  - {name: early, path: DIR/early.lua}\n");
    cr_assert_neq(l->rc_load, 0);
    const char *msg = th_diag_text(&l->t);
    cr_assert(strstr(msg, "top.lua:2: attempt to index a nil value (local 'x')"), "%s", msg);
    cr_assert(strstr(msg, "shape.lua: the script must return its plugin table, not a number "
                          "value"),
              "%s", msg);
    cr_assert(strstr(msg, "fn.lua: 'start' must be a function, not a string"), "%s", msg);
    cr_assert(strstr(msg, "early.lua:1: ado.subscribe: not available while the script loads"), "%s",
              msg);
    ln_free(l);
}

/* ---- RPC ------------------------------------------------------------------------------- */

struct rpc_answer {
    char text[1024];
    int done;
};

static void on_answer(void *arg, const char *json) {
    struct rpc_answer *a = arg;
    snprintf(a->text, sizeof a->text, "%s", json ? json : "");
    a->done = 1;
}

static int answered(void *arg) {
    return ((struct rpc_answer *)arg)->done;
}

static const char *call(struct ln *l, const char *req, struct rpc_answer *a) {
    memset(a, 0, sizeof *a);
    int rc = ado_rpc_call_local(l->t.node->rpc, req, "admin", on_answer, a);
    cr_assert_eq(rc, 0);
    th_run_until(&l->t.loop, answered, a, 5000);
    cr_assert(a->done, "no answer to %s", req);
    return a->text;
}

Test(lua, rpc_methods_reply_with_the_result_or_the_error_message) {
    struct ln *l = ln_new();
    script(l, "rpc.lua",
           "return { start = function()\n"
           "  ado.rpc('hello_greet', nil, 'greets', function(params)\n"
           "    return {hello = params.name, n = 1}\n"
           "  end)\n"
           "  ado.rpc('hello_fail', 'reader', 'fails', function(params)\n"
           "    error('no such account')\n"
           "  end)\n"
           "  ado.rpc('hello_refuse', nil, 'refuses', function(params)\n"
           "    error({code = -32602, message = 'bad name', data = {field = 'name'}})\n"
           "  end)\n"
           "end }\n");
    node_up(l, "  - {name: rpc, path: DIR/rpc.lua}\n");
    if (l->rc_start != 0 && strstr(th_diag_text(&l->t), "ado.rpc"))
        cr_skip("RPC registry not available: %s", th_diag_text(&l->t));
    STARTED(l);
    struct rpc_answer a;
    const char *r = call(
        l,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hello_greet\",\"params\":{\"name\":\"ann\"}}",
        &a);
    cr_assert(strstr(r, "\"hello\":\"ann\"") && strstr(r, "\"n\":1"), "%s", r);
    r = call(l, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"hello_fail\"}", &a);
    cr_assert(strstr(r, "-32000") && strstr(r, "\"no such account\""), "%s", r);
    cr_assert_null(strstr(r, "traceback"), "%s", r);
    cr_assert_eq(plugin(l, "rpc")->failures_total, 1);
    r = call(l, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"hello_refuse\"}", &a);
    cr_assert(strstr(r, "-32602") && strstr(r, "\"bad name\"") && strstr(r, "\"field\":\"name\""),
              "%s", r);
    cr_assert_eq(plugin(l, "rpc")->failures_total, 1, "a client error is not counted");
    ln_free(l);
}

/* ---- reload ----------------------------------------------------------------------------- */

static const char *versioned(int v, const char *extra) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "return {\n"
             "  version = '%d.0.0',\n"
             "  schema = { greeting = {type = 'string', default = 'hi'} %s },\n"
             "  start = function()\n"
             "    ado.subscribe('rl.ping', function() ado.publish('test.pong', 'v%d') end)\n"
             "  end,\n"
             "}\n",
             v, extra, v);
    return buf;
}

Test(lua, reload_keeps_the_old_version_on_failure_and_swaps_on_success) {
    struct ln *l = ln_new();
    script(l, "rl.lua", versioned(1, ""));
    node_up(l, "  - name: rl\n    path: DIR/rl.lua\n    config: {greeting: hey}\n");
    STARTED(l);
    struct ado_plugin *p = plugin(l, "rl");
    cr_assert_eq(ado_lua_reload(p), 0, "unchanged");

    script(l, "rl.lua", "return {\n  start = function(\n}\n");
    cr_assert_lt(ado_lua_reload(p), 0, "syntax error");
    publish(l, "rl.ping", "");
    cr_assert_str_eq(last(&l->rec, "test.pong"), "v1");

    script(l, "rl.lua", versioned(2, ", must = {type = 'int', required = true}"));
    cr_assert_lt(ado_lua_reload(p), 0, "config does not fit the new schema");
    publish(l, "rl.ping", "");
    cr_assert_eq(count(&l->rec, "test.pong"), 2);
    cr_assert_str_eq(last(&l->rec, "test.pong"), "v1");
    cr_assert_str_eq(p->desc->version, "1.0.0");

    script(l, "rl.lua", versioned(3, ", extra = {type = 'int', default = 7}"));
    cr_assert_eq(ado_lua_reload(p), 1);
    cr_assert_str_eq(p->desc->version, "3.0.0");
    cr_assert_eq(p->state, ADO_PS_RUNNING);
    publish(l, "rl.ping", "");
    cr_assert_eq(count(&l->rec, "test.pong"), 3, "the old subscription is gone");
    cr_assert_str_eq(last(&l->rec, "test.pong"), "v3");

    /* A new version that loads but fails to start: the previous one is started again. */
    script(l, "rl.lua",
           "return { version = '4.0.0', schema = { greeting = 'string' },\n"
           "  start = function() error('not today') end }\n");
    cr_assert_lt(ado_lua_reload(p), 0);
    cr_assert_str_eq(p->desc->version, "3.0.0");
    cr_assert_eq(p->state, ADO_PS_RUNNING);
    publish(l, "rl.ping", "");
    cr_assert_eq(count(&l->rec, "test.pong"), 4);
    cr_assert_str_eq(last(&l->rec, "test.pong"), "v3");
    ln_free(l);
}

/* ---- the example a plugin author copies ------------------------------------------------ */

Test(lua, the_hello_example_loads_greets_and_answers) {
    struct ln *l = ln_new();
    node_up(l, "  - name: hello\n    path: " ADO_SOURCE_DIR "/examples/plugins/lua/hello.lua\n"
               "    config: {greeting: hey, every: 100ms}\n");
    STARTED(l);
    ado_bus_subscribe(l->t.node->bus, "hello.>", NULL, on_test, &l->rec, NULL);
    publish(l, "hello.ping", "bob");
    const char *d = last(&l->rec, "hello.pong");
    cr_assert(d && strstr(d, "\"text\":\"hey, bob! (#1)\""), "%s", d ? d : "(none)");
    cr_assert(wait_for(l, "hello.greeting", 1));
    cr_assert(strstr(last(&l->rec, "hello.greeting"), "hey, everyone! (#2)"), "%s",
              last(&l->rec, "hello.greeting"));
    struct rpc_answer a;
    const char *r = call(l,
                         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hello_greet\","
                         "\"params\":{\"name\":\"ann\"}}",
                         &a);
    cr_assert(strstr(r, "hey, ann!"), "%s", r);
    r = call(l, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"hello_greet\",\"params\":[]}", &a);
    cr_assert(strstr(r, "-32602") && strstr(r, "\"params.name (a string) is required\""), "%s", r);
    cr_assert_eq(plugin(l, "hello")->failures_total, 0, "a client error is not the plugin's");
    ln_free(l);
}

Test(lua, publishing_from_a_coroutine_to_its_own_subscriber_works) {
    struct ln *l = ln_new();
    script(l, "co.lua",
           "return { start = function()\n"
           "  ado.subscribe('co.self', function(t, d) ado.publish('test.co', d) end)\n"
           "  ado.subscribe('co.go', function()\n"
           "    local co = coroutine.wrap(function(x)\n"
           "      ado.publish('co.self', x)\n"
           "      x = coroutine.yield(1)\n"
           "      ado.publish('co.self', x)\n"
           "    end)\n"
           "    co('first'); co('second')\n"
           "  end)\n"
           "  ado.after(0, function()\n"
           "    coroutine.wrap(function() ado.publish('co.self', 'timer') end)()\n"
           "  end)\n"
           "end }\n");
    node_up(l, "  - {name: co, path: DIR/co.lua}\n");
    STARTED(l);
    publish(l, "co.go", "");
    cr_assert(wait_for(l, "test.co", 3));
    cr_assert_str_eq(l->rec.msgs[0].data, "first");
    cr_assert_str_eq(l->rec.msgs[1].data, "second");
    cr_assert_str_eq(l->rec.msgs[2].data, "timer");
    cr_assert_eq(plugin(l, "co")->failures_total, 0);
    ln_free(l);
}

Test(lua, finalizers_are_refused_so_they_cannot_outrun_the_budget) {
    struct ln *l = ln_new();
    script(l, "gc.lua",
           "local ok, err = pcall(setmetatable, {}, {__gc = function() while true do end end})\n"
           "local mt = {}\n"
           "local t = setmetatable({}, mt)\n"
           "mt.__gc = function() while true do end end -- too late: never a finalizer\n"
           "t = nil\n"
           "return { start = function()\n"
           "  collectgarbage()\n"
           "  ado.publish('test.gc', tostring(ok) .. ' ' .. err)\n"
           "end }\n");
    node_up(l, "  - name: gc\n    path: DIR/gc.lua\n    limits: {instructions: 100000}\n");
    STARTED(l);
    cr_assert_str_eq(last(&l->rec, "test.gc"),
                     "false setmetatable: __gc metamethods are not allowed in plugins");
    ln_free(l);
}
