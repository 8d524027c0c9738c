/* The `schema` table of a Lua plugin turned into a heap-allocated struct ado_schema array,
 * so that the kernel validates a Lua plugin's YAML block exactly like a C plugin's.
 *
 *   schema = {
 *     greeting = {type = "string", default = "hi", help = "what to say"},
 *     every    = {type = "duration", default = "10s", min = "100ms", max = "1h"},
 *     mode     = {type = "enum", choices = {"fast", "safe"}, required = true},
 *     peers    = {type = "list", item = {type = "map", fields = {url = "string"}}},
 *     token    = {type = "string", secret = true},
 *     extra    = "any",              -- shorthand for {type = "any"}
 *   }
 *
 * Entries are sorted by key (Lua tables have no order). Every array is attached to its
 * parent as soon as it is allocated, so a memory error raised half way leaks nothing: the
 * caller frees the partial tree with ado_lua_schema_free. */
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lua_priv.h"

#define PATH_MAX_LEN 256

static const struct {
    const char *name;
    int type;
} type_names[] = {
    {"string", ADO_T_STRING},     {"int", ADO_T_INT},   {"bool", ADO_T_BOOL},
    {"duration", ADO_T_DURATION}, {"size", ADO_T_SIZE}, {"enum", ADO_T_ENUM},
    {"map", ADO_T_MAP},           {"list", ADO_T_LIST}, {"any", ADO_T_ANY},
};

static const char *const field_keys[] = {"type", "default", "required", "min",
                                         "max",  "choices", "fields",   "item",
                                         "help", "secret",  NULL};

/* Push "path: message" and return -1: the failure convention of this file. */
static int fail(lua_State *L, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(lua_State *L, const char *path, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushfstring(L, "%s: %s", path, msg);
    return -1;
}

static char *dup_or_raise(lua_State *L, const char *s) {
    char *d = strdup(s);
    if (!d)
        luaL_error(L, "not enough memory");
    return d;
}

static void *calloc_or_raise(lua_State *L, size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p)
        luaL_error(L, "not enough memory");
    return p;
}

/* Number of keys of the table at idx; -1 if one is not a string. Stack: unchanged. */
static int count_string_keys(lua_State *L, int idx, size_t *n) {
    *n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int ok = lua_type(L, -2) == LUA_TSTRING;
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            return -1;
        }
        (*n)++;
    }
    return 0;
}

static int by_key(const void *a, const void *b) {
    return strcmp(((const struct ado_schema *)a)->key, ((const struct ado_schema *)b)->key);
}

static int fill(lua_State *L, int idx, struct ado_schema *arr, const char *path);

/* A scalar default as text into *out (malloc'd). Stack: unchanged. */
static int default_text(lua_State *L, int idx, const char *path, char **out) {
    char buf[64];
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        *out = dup_or_raise(L, lua_tostring(L, idx));
        return 0;
    case LUA_TBOOLEAN:
        *out = dup_or_raise(L, lua_toboolean(L, idx) ? "true" : "false");
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(buf, sizeof buf, "%.17g", (double)lua_tonumber(L, idx));
        *out = dup_or_raise(L, buf);
        return 0;
    default:
        return fail(L, path, "default must be a string, a number or a boolean, not a %s",
                    luaL_typename(L, idx));
    }
}

/* min/max: an integer, or text in the field's unit ("100ms", "64KiB"). */
static int bound(lua_State *L, int idx, int type, const char *path, const char *which,
                 int64_t *out) {
    if (lua_isinteger(L, idx)) {
        *out = (int64_t)lua_tointeger(L, idx);
        return 0;
    }
    if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        int rc = type == ADO_T_DURATION ? ado_parse_duration_ms(s, out)
                 : type == ADO_T_SIZE   ? ado_parse_size_bytes(s, out)
                                        : ado_parse_int(s, out);
        if (rc == 0)
            return 0;
        return fail(L, path, "%s: cannot read '%s' as a bound of this type", which, s);
    }
    return fail(L, path, "%s must be an integer (or text in the field's unit), not a %s", which,
                luaL_typename(L, idx));
}

/* Choices of an enum: a non-empty list of strings. Stack: unchanged on success. */
static int choices(lua_State *L, int idx, struct ado_schema *e, const char *path) {
    lua_Integer n = luaL_len(L, idx);
    if (n <= 0 || n > 4096)
        return fail(L, path, "choices must be a non-empty list of strings");
    char **c = calloc_or_raise(L, (size_t)n + 1, sizeof *c);
    e->choices = (const char *const *)c;
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        if (t != LUA_TSTRING) {
            lua_pop(L, 1);
            return fail(L, path, "choices must be a non-empty list of strings");
        }
        c[i - 1] = dup_or_raise(L, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return 0;
}

/* One field spec (a table, or a type name) at idx into e (whose key is set). Stack: unchanged
 * on success; +1 message (and maybe more) on failure. */
static int field(lua_State *L, int idx, struct ado_schema *e, const char *path) {
    int top = lua_gettop(L);
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, idx);
        lua_setfield(L, -2, "type");
        idx = lua_gettop(L);
    } else if (!lua_istable(L, idx)) {
        return fail(L, path, "must be a table like {type = \"string\"} or a type name, not a %s",
                    luaL_typename(L, idx));
    }
    /* unknown keys are typos */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return fail(L, path, "keys of a field must be strings");
        const char *k = lua_tostring(L, -1);
        int known = 0;
        for (const char *const *f = field_keys; *f; f++)
            known |= strcmp(*f, k) == 0;
        if (!known)
            return fail(L, path,
                        "unknown key '%s' (expected type, default, required, min, max, choices, "
                        "fields, item, help or secret)",
                        k);
    }
    if (lua_getfield(L, idx, "type") != LUA_TSTRING)
        return fail(L, path,
                    "type is missing (string, int, bool, duration, size, enum, map, "
                    "list or any)");
    const char *tn = lua_tostring(L, -1);
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(type_names[i].name, tn) == 0)
            e->type = type_names[i].type;
    if (!e->type)
        return fail(L, path,
                    "unknown type '%s' (expected string, int, bool, duration, size, enum, map, "
                    "list or any)",
                    tn);
    lua_pop(L, 1);
    int t = e->type;
    int scalar = t != ADO_T_MAP && t != ADO_T_LIST && t != ADO_T_ANY;

    if (lua_getfield(L, idx, "default") != LUA_TNIL) {
        if (!scalar)
            return fail(L, path, "a %s field takes no default", tn);
        char *d = NULL;
        if (default_text(L, lua_gettop(L), path, &d) != 0)
            return -1;
        e->default_value = d;
    }
    lua_pop(L, 1);

    static const char *const flags[] = {"required", "secret"};
    static const unsigned bits[] = {ADO_F_REQUIRED, ADO_F_SECRET};
    for (int i = 0; i < 2; i++) {
        int ft = lua_getfield(L, idx, flags[i]);
        if (ft != LUA_TNIL && ft != LUA_TBOOLEAN)
            return fail(L, path, "%s must be true or false", flags[i]);
        if (lua_toboolean(L, -1))
            e->flags |= bits[i];
        lua_pop(L, 1);
    }

    int has_min = lua_getfield(L, idx, "min") != LUA_TNIL;
    int has_max = lua_getfield(L, idx, "max") != LUA_TNIL;
    if (has_min || has_max) {
        if (t != ADO_T_INT && t != ADO_T_DURATION && t != ADO_T_SIZE && t != ADO_T_STRING &&
            t != ADO_T_LIST)
            return fail(L, path, "min/max do not apply to a %s field", tn);
        e->flags |= ADO_F_RANGE;
        e->min = INT64_MIN;
        e->max = INT64_MAX;
        if (has_min && bound(L, -2, t, path, "min", &e->min) != 0)
            return -1;
        if (has_max && bound(L, -1, t, path, "max", &e->max) != 0)
            return -1;
        if (e->min > e->max)
            return fail(L, path, "min is greater than max");
    }
    lua_pop(L, 2);

    int ct = lua_getfield(L, idx, "choices");
    if (t == ADO_T_ENUM) {
        if (ct != LUA_TTABLE || choices(L, lua_gettop(L), e, path) != 0)
            return ct == LUA_TTABLE ? -1 : fail(L, path, "an enum needs choices = {...}");
    } else if (ct != LUA_TNIL) {
        return fail(L, path, "choices apply to enum fields only");
    }
    lua_pop(L, 1);

    int ht = lua_getfield(L, idx, "help");
    if (ht == LUA_TSTRING)
        e->help = dup_or_raise(L, lua_tostring(L, -1));
    else if (ht != LUA_TNIL)
        return fail(L, path, "help must be a string");
    lua_pop(L, 1);

    int ft = lua_getfield(L, idx, "fields");
    if (ft != LUA_TNIL) {
        if (t != ADO_T_MAP || ft != LUA_TTABLE)
            return fail(L, path, "fields = {...} applies to map fields only");
        size_t n;
        if (count_string_keys(L, lua_gettop(L), &n) != 0)
            return fail(L, path, "keys of fields must be strings");
        struct ado_schema *arr = calloc_or_raise(L, n + 1, sizeof *arr);
        e->fields = arr;
        char sub[PATH_MAX_LEN];
        snprintf(sub, sizeof sub, "%s.fields", path);
        if (fill(L, lua_gettop(L), arr, sub) != 0)
            return -1;
    }
    lua_pop(L, 1);

    int it = lua_getfield(L, idx, "item");
    if (it != LUA_TNIL) {
        if (t != ADO_T_LIST)
            return fail(L, path, "item applies to list fields only");
        struct ado_schema *arr = calloc_or_raise(L, 2, sizeof *arr);
        e->fields = arr;
        arr[0].key = dup_or_raise(L, "item");
        char sub[PATH_MAX_LEN];
        snprintf(sub, sizeof sub, "%s.item", path);
        if (field(L, lua_gettop(L), &arr[0], sub) != 0)
            return -1;
    }
    lua_settop(L, top);
    return 0;
}

/* Fill arr (zeroed, sized for the table's keys + 1) from the table at idx, then sort it.
 * Stack: unchanged on success; a message on top on failure. */
static int fill(lua_State *L, int idx, struct ado_schema *arr, const char *path) {
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_tostring(L, -2); /* a string: checked by count_string_keys */
        arr[i].key = dup_or_raise(L, k);
        char sub[PATH_MAX_LEN];
        snprintf(sub, sizeof sub, "%s.%s", path, k);
        if (field(L, lua_gettop(L), &arr[i], sub) != 0)
            return -1;
        i++;
        lua_pop(L, 1);
    }
    qsort(arr, i, sizeof *arr, by_key);
    return 0;
}

int ado_lua_schema_build(lua_State *L, int idx, struct ado_schema **slot) {
    size_t n;
    *slot = NULL;
    if (count_string_keys(L, idx, &n) != 0)
        return fail(L, "schema", "keys must be strings (schema = {name = {type = ...}})");
    struct ado_schema *arr = calloc_or_raise(L, n + 1, sizeof *arr);
    *slot = arr;
    return fill(L, idx, arr, "schema");
}

void ado_lua_schema_free(struct ado_schema *s) {
    if (!s)
        return;
    for (struct ado_schema *e = s; e->key; e++) {
        free((char *)e->key);
        free((char *)e->default_value);
        free((char *)e->help);
        if (e->choices) {
            for (const char *const *c = e->choices; *c; c++)
                free((char *)*c);
            free((void *)e->choices);
        }
        ado_lua_schema_free((struct ado_schema *)e->fields);
    }
    free(s);
}
