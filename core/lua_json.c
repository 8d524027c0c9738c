/* JSON for Lua plugins (jansson): ado.json.encode / decode, and the conversions used by
 * ado.publish, ado.config and ado.rpc.
 *
 * Lua -> JSON: nil and ado.json.null -> null; booleans; integers stay integers; floats
 * (finite only); strings (valid UTF-8 only); a table whose keys are exactly 1..n (n > 0),
 * or any table marked with ado.json.array(t), -> array; any other table -> object (string
 * keys, integer keys written in decimal); an empty table -> {}. Nesting is limited to
 * MAX_DEPTH (which also stops cycles).
 * JSON -> Lua: objects and arrays -> tables (arrays from 1), null -> ado.json.null (so that
 * arrays keep their length), integers -> integers, reals -> floats. */
#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_priv.h"

#define MAX_DEPTH 128

/* The address of this object is ado.json.null (a light userdata); it is never written. */
static const char null_tag = 0;

static void *null_value(void) {
    return (void *)(uintptr_t)&null_tag;
}

/* Stack: unchanged. Never raises (lua_checkstack fails softly, nothing else allocates). */
static json_t *to_json(lua_State *L, int idx, int depth, const char **err);

static int is_marked_array(lua_State *L, int idx) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    if (lp->json_array_ref == LUA_NOREF || !lua_getmetatable(L, idx))
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->json_array_ref);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static json_t *table_to_json(lua_State *L, int idx, int depth, const char **err) {
    if (depth > MAX_DEPTH) {
        *err = "nesting too deep (or a cycle)";
        return NULL;
    }
    if (!lua_checkstack(L, 4)) {
        *err = "not enough memory";
        return NULL;
    }
    /* Array if the keys are exactly 1..n. */
    size_t count = 0;
    lua_Integer max = 0;
    int only_ints = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > max)
                max = k;
        } else {
            only_ints = 0;
        }
    }
    int array =
        (only_ints && count > 0 && (size_t)max == count) || (count == 0 && is_marked_array(L, idx));
    if (array) {
        json_t *a = json_array();
        for (lua_Integer i = 1; a && i <= max; i++) {
            lua_rawgeti(L, idx, i);
            json_t *v = to_json(L, lua_gettop(L), depth + 1, err);
            lua_pop(L, 1);
            if (!v || json_array_append_new(a, v) != 0) {
                if (!*err)
                    *err = "not enough memory";
                json_decref(a);
                return NULL;
            }
        }
        if (!a && !*err)
            *err = "not enough memory";
        return a;
    }
    json_t *o = json_object();
    if (!o) {
        *err = "not enough memory";
        return NULL;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char kbuf[64];
        const char *k;
        size_t klen;
        switch (lua_type(L, -2)) {
        case LUA_TSTRING:
            k = lua_tolstring(L, -2, &klen); /* a string: not converted in place */
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, -2))
                snprintf(kbuf, sizeof kbuf, "%lld", (long long)lua_tointeger(L, -2));
            else
                snprintf(kbuf, sizeof kbuf, "%.17g", (double)lua_tonumber(L, -2));
            k = kbuf;
            klen = strlen(kbuf);
            break;
        default:
            *err = "object keys must be strings or numbers";
            lua_pop(L, 2);
            json_decref(o);
            return NULL;
        }
        json_t *v = to_json(L, lua_gettop(L), depth + 1, err);
        lua_pop(L, 1);
        if (!v || json_object_setn_new(o, k, klen, v) != 0) {
            if (!*err)
                *err = "object keys must be valid UTF-8";
            lua_pop(L, 1);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *to_json(lua_State *L, int idx, int depth, const char **err) {
    json_t *j = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        j = json_null();
        break;
    case LUA_TBOOLEAN:
        j = json_boolean(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            j = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (!isfinite(d)) {
                *err = "cannot encode NaN or infinity";
                return NULL;
            }
            j = json_real(d);
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        j = json_stringn(s, n);
        if (!j) {
            *err = "strings must be valid UTF-8";
            return NULL;
        }
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == null_value()) {
            j = json_null();
            break;
        }
        *err = "cannot encode a userdata";
        return NULL;
    case LUA_TTABLE:
        return table_to_json(L, lua_absindex(L, idx), depth, err);
    default:
        *err = lua_type(L, idx) == LUA_TFUNCTION ? "cannot encode a function"
                                                 : "cannot encode this type";
        return NULL;
    }
    if (!j)
        *err = "not enough memory";
    return j;
}

char *ado_lua_json_encode(lua_State *L, int idx, size_t *len, const char **err) {
    *err = NULL;
    json_t *j = to_json(L, lua_absindex(L, idx), 0, err);
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!s) {
        *err = "not enough memory";
        return NULL;
    }
    *len = strlen(s);
    return s;
}

/* Push the Lua value of j. May raise (memory): only call it inside push_tree_p. */
static void push_json(lua_State *L, json_t *j) {
    luaL_checkstack(L, 4, "JSON nesting");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            push_json(L, v);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_json(L, json_array_get(j, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(j));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(j));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    case JSON_NULL:
        lua_pushlightuserdata(L, null_value());
        break;
    }
}

static int push_tree_p(lua_State *L) {
    json_t *j = lua_touserdata(L, 1);
    push_json(L, j);
    return 1;
}

int ado_lua_json_decode(lua_State *L, const char *text, size_t len) {
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &e);
    if (!j) {
        lua_pushfstring(L, "invalid JSON at line %d, column %d: %s", e.line, e.column, e.text);
        return -1;
    }
    /* Build the Lua value in a nested protected call so that the tree is freed whatever
     * happens (a memory error while building is returned as a message). */
    lua_pushcfunction(L, push_tree_p);
    lua_pushlightuserdata(L, j);
    int rc = lua_pcall(L, 1, 1, 0);
    json_decref(j);
    if (rc != LUA_OK) {
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_pushliteral(L, "not enough memory");
        }
        return -1;
    }
    return 0;
}

/* ado.json.encode(value) -> text. Raises on a value that JSON cannot hold. [-1, +1] */
static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    size_t len = 0;
    const char *err = NULL;
    char *s = ado_lua_json_encode(L, 1, &len, &err);
    if (!s)
        return luaL_error(L, "ado.json.encode: %s", err);
    ado_lua_push_owned(L, s, len);
    return 1;
}

/* ado.json.decode(text) -> value. Raises "ado.json.decode: invalid JSON at ...". [-1, +1] */
static int l_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (ado_lua_json_decode(L, s, len) != 0)
        return luaL_error(L, "ado.json.decode: %s", lua_tostring(L, -1));
    return 1;
}

/* ado.json.array([t]) -> t, marked so that it encodes as an array even when empty. [-1, +1] */
static int l_array(lua_State *L) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->json_array_ref);
    lua_setmetatable(L, 1);
    return 1;
}

void ado_lua_open_json(lua_State *L) {
    struct ado_lua_plugin *lp = ado_lua_of(L);
    lua_newtable(L);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lp->json_array_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    static const luaL_Reg fns[] = {
        {"encode", l_encode}, {"decode", l_decode}, {"array", l_array}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, null_value());
    lua_setfield(L, -2, "null");
}
