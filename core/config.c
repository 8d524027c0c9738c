/* The kernel's configuration: its own schema (node, plugins, bridge), the checks a schema
 * cannot express (name patterns, listen addresses, "exactly one of"), loading a file and
 * filling struct ado_config. The YAML reader is in config_yaml.c, the validator in
 * config_schema.c. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ado/errors.h"

/* Largest configuration file read (a guard against reading a device or a huge file). */
#define ADO_CONFIG_MAX_BYTES (16 * 1024 * 1024)

#define KiB (1LL << 10)
#define MiB (1LL << 20)
#define GiB (1LL << 30)
#define TiB (1LL << 40)

/* ---- the kernel's schema ------------------------------------------------------------ */

static const char *const layers[] = {"L2", "L3", "L4", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const access_levels[] = {"none", "reader", "writer", "admin", NULL};
static const char *const roles[] = {"admin", "writer", "reader", NULL};

static const struct ado_schema log_fields[] = {
    {.key = "level",
     .type = ADO_T_ENUM,
     .choices = log_levels,
     .default_value = "info",
     .help = "least severe level written"},
    {.key = "format",
     .type = ADO_T_ENUM,
     .choices = log_formats,
     .default_value = "logfmt",
     .help = "line format"},
    ADO_SCHEMA_END,
};

static const struct ado_schema store_fields[] = {
    {.key = "map_size",
     .type = ADO_T_SIZE,
     .default_value = "64MiB",
     .flags = ADO_F_RANGE,
     .min = MiB,
     .max = TiB,
     .help = "initial LMDB map size"},
    {.key = "sync", .type = ADO_T_BOOL, .default_value = "true", .help = "fsync every commit"},
    ADO_SCHEMA_END,
};

static const struct ado_schema role_item[] = {
    {.key = "role", .type = ADO_T_ENUM, .choices = roles},
    ADO_SCHEMA_END,
};

static const struct ado_schema token_fields[] = {
    {.key = "name",
     .type = ADO_T_STRING,
     .flags = ADO_F_REQUIRED | ADO_F_RANGE,
     .min = 1,
     .max = 63,
     .help = "name of the token, for logs"},
    {.key = "token",
     .type = ADO_T_STRING,
     .flags = ADO_F_SECRET | ADO_F_RANGE,
     .min = 1,
     .max = 4096,
     .help = "the bearer token itself (use ${ENV})"},
    {.key = "token_file",
     .type = ADO_T_STRING,
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 4096,
     .help = "file holding the token"},
    {.key = "roles",
     .type = ADO_T_LIST,
     .flags = ADO_F_REQUIRED | ADO_F_RANGE,
     .min = 1,
     .max = 3,
     .fields = role_item,
     .help = "roles granted"},
    ADO_SCHEMA_END,
};

static const struct ado_schema token_item[] = {
    {.key = "token", .type = ADO_T_MAP, .fields = token_fields},
    ADO_SCHEMA_END,
};

static const struct ado_schema tls_fields[] = {
    {.key = "cert", .type = ADO_T_STRING, .flags = ADO_F_RANGE, .min = 1, .max = 4096},
    {.key = "key", .type = ADO_T_STRING, .flags = ADO_F_RANGE, .min = 1, .max = 4096},
    ADO_SCHEMA_END,
};

static const struct ado_schema string_item[] = {
    {.key = "item", .type = ADO_T_STRING},
    ADO_SCHEMA_END,
};

static const struct ado_schema rpc_fields[] = {
    {.key = "listen",
     .type = ADO_T_STRING,
     .default_value = "127.0.0.1:8645",
     .help = "HOST:PORT, [IPv6]:PORT, or off"},
    {.key = "max_request_size",
     .type = ADO_T_SIZE,
     .default_value = "1MiB",
     .flags = ADO_F_RANGE,
     .min = KiB,
     .max = 64 * MiB},
    {.key = "max_connections",
     .type = ADO_T_INT,
     .default_value = "1024",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 100000},
    {.key = "subscriber_queue",
     .type = ADO_T_INT,
     .default_value = "1024",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 1000000},
    {.key = "anonymous", .type = ADO_T_ENUM, .choices = access_levels, .default_value = "reader"},
    {.key = "tokens", .type = ADO_T_LIST, .fields = token_item},
    {.key = "tls", .type = ADO_T_MAP, .fields = tls_fields},
    {.key = "cors_origins", .type = ADO_T_LIST, .fields = string_item},
    ADO_SCHEMA_END,
};

static const struct ado_schema checkpoint_fields[] = {
    {.key = "every", .type = ADO_T_DURATION, .default_value = "0s"},
    {.key = "keep",
     .type = ADO_T_INT,
     .default_value = "5",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 1000},
    {.key = "dir", .type = ADO_T_STRING, .default_value = ""},
    ADO_SCHEMA_END,
};

static const struct ado_schema node_fields[] = {
    {.key = "name",
     .type = ADO_T_STRING,
     .flags = ADO_F_REQUIRED | ADO_F_RANGE,
     .min = 1,
     .max = 63},
    {.key = "layer", .type = ADO_T_ENUM, .choices = layers, .default_value = "L3"},
    {.key = "data_dir",
     .type = ADO_T_STRING,
     .default_value = "./data",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 4096},
    {.key = "log", .type = ADO_T_MAP, .fields = log_fields},
    {.key = "store", .type = ADO_T_MAP, .fields = store_fields},
    {.key = "rpc", .type = ADO_T_MAP, .fields = rpc_fields},
    {.key = "checkpoints", .type = ADO_T_MAP, .fields = checkpoint_fields},
    ADO_SCHEMA_END,
};

static const struct ado_schema limits_fields[] = {
    {.key = "memory",
     .type = ADO_T_SIZE,
     .default_value = "64MiB",
     .flags = ADO_F_RANGE,
     .min = 64 * KiB,
     .max = 4 * GiB},
    {.key = "instructions",
     .type = ADO_T_INT,
     .default_value = "10000000",
     .flags = ADO_F_RANGE,
     .min = 1000,
     .max = 1000000000000LL},
    ADO_SCHEMA_END,
};

static const struct ado_schema breaker_fields[] = {
    {.key = "failures",
     .type = ADO_T_INT,
     .default_value = "5",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 1000000},
    {.key = "cooldown", .type = ADO_T_DURATION, .default_value = "30s"},
    ADO_SCHEMA_END,
};

static const struct ado_schema plugin_fields[] = {
    {.key = "name",
     .type = ADO_T_STRING,
     .flags = ADO_F_REQUIRED | ADO_F_RANGE,
     .min = 1,
     .max = 63},
    {.key = "path",
     .type = ADO_T_STRING,
     .flags = ADO_F_REQUIRED | ADO_F_RANGE,
     .min = 1,
     .max = 4096},
    {.key = "optional", .type = ADO_T_BOOL, .default_value = "false"},
    {.key = "enabled", .type = ADO_T_BOOL, .default_value = "true"},
    {.key = "limits", .type = ADO_T_MAP, .fields = limits_fields},
    {.key = "breaker", .type = ADO_T_MAP, .fields = breaker_fields},
    /* Free-form here; validated with the plugin's own schema by the loader. */
    {.key = "config", .type = ADO_T_MAP},
    ADO_SCHEMA_END,
};

static const struct ado_schema plugin_item[] = {
    {.key = "plugin", .type = ADO_T_MAP, .fields = plugin_fields},
    ADO_SCHEMA_END,
};

static const struct ado_schema retry_fields[] = {
    {.key = "attempts",
     .type = ADO_T_INT,
     .default_value = "3",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 100},
    {.key = "backoff", .type = ADO_T_DURATION, .default_value = "200ms"},
    {.key = "max_backoff", .type = ADO_T_DURATION, .default_value = "10s"},
    ADO_SCHEMA_END,
};

static const struct ado_schema peer_fields[] = {
    {.key = "name",
     .type = ADO_T_STRING,
     .flags = ADO_F_REQUIRED | ADO_F_RANGE,
     .min = 1,
     .max = 63},
    {.key = "layer", .type = ADO_T_ENUM, .flags = ADO_F_REQUIRED, .choices = layers},
    {.key = "transport",
     .type = ADO_T_STRING,
     .flags = ADO_F_REQUIRED | ADO_F_RANGE,
     .min = 1,
     .max = 63},
    {.key = "address",
     .type = ADO_T_STRING,
     .flags = ADO_F_REQUIRED | ADO_F_RANGE,
     .min = 1,
     .max = 4096},
    {.key = "public_key", .type = ADO_T_STRING, .default_value = ""},
    {.key = "window",
     .type = ADO_T_INT,
     .default_value = "256",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 65536,
     .help = "messages in flight (sent, not yet acked) to this peer"},
    {.key = "ack_timeout",
     .type = ADO_T_DURATION,
     .default_value = "5s",
     .flags = ADO_F_RANGE,
     .min = 10,
     .max = 86400000,
     .help = "a sent message without an ack after this long counts as a failed attempt"},
    {.key = "retry", .type = ADO_T_MAP, .fields = retry_fields},
    {.key = "breaker", .type = ADO_T_MAP, .fields = breaker_fields},
    {.key = "options", .type = ADO_T_MAP},
    ADO_SCHEMA_END,
};

static const struct ado_schema peer_item[] = {
    {.key = "peer", .type = ADO_T_MAP, .fields = peer_fields},
    ADO_SCHEMA_END,
};

static const struct ado_schema bridge_fields[] = {
    {.key = "outbox_limit",
     .type = ADO_T_INT,
     .default_value = "100000",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 1000000000},
    {.key = "peers", .type = ADO_T_LIST, .fields = peer_item},
    ADO_SCHEMA_END,
};

static const struct ado_schema top_fields[] = {
    {.key = "node", .type = ADO_T_MAP, .flags = ADO_F_REQUIRED, .fields = node_fields},
    {.key = "plugins", .type = ADO_T_LIST, .fields = plugin_item},
    {.key = "bridge", .type = ADO_T_MAP, .fields = bridge_fields},
    ADO_SCHEMA_END,
};

/* ---- checks the schema cannot express ----------------------------------------------- */

static void check_err(struct ado_config *cfg, struct ado_diag *diag, int *errors,
                      const struct ado_cnode *at, int use_key_pos, const char *fmt, const char *a,
                      const char *b) {
    char path[512];
    path[0] = '\0';
    ado_cnode_path(at, path, sizeof(path));
    int line = use_key_pos ? at->key_line : at->line, col = use_key_pos ? at->key_col : at->col;
    char msg[768];
    snprintf(msg, sizeof(msg), fmt, a ? a : "", b ? b : "");
    ado_diag_add(diag, cfg->file, line, col, path, "%s", msg);
    (*errors)++;
}

/* A validated string node (NULL when absent or invalid). */
static struct ado_cnode *vstr(struct ado_cnode *from, const char *path) {
    struct ado_cnode *n = ado_cnode_get(from, path);
    return n && n->kind == ADO_CN_SCALAR && n->type == ADO_T_STRING ? n : NULL;
}

/* [first][rest]* up to the length checked by the schema. */
static int name_ok(const char *s, const char *first, const char *rest) {
    if (!*s || !strchr(first, *s))
        return 0;
    for (s++; *s; s++)
        if (!strchr(rest, *s))
            return 0;
    return 1;
}

#define LOWER  "abcdefghijklmnopqrstuvwxyz"
#define DIGITS "0123456789"

static int port_ok(const char *s) {
    if (!*s || strlen(s) > 5)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return atoi(s) <= 65535;
}

/* "off", "", HOST:PORT or [IPv6]:PORT; PORT 0 asks the system for a free port. */
static int listen_ok(const char *s) {
    if (!*s || strcmp(s, "off") == 0)
        return 1;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end == s + 1 || end[1] != ':')
            return 0;
        for (const char *p = s + 1; p < end; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return 0;
        return port_ok(end + 2);
    }
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return 0;
    for (const char *p = s; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '*')
            return 0;
    return port_ok(colon + 1);
}

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* Names in a list must be unique: report the second one. */
static void check_unique(struct ado_config *cfg, struct ado_diag *diag, int *errors,
                         struct ado_cnode *list, const char *what) {
    for (size_t i = 0; list && list->kind == ADO_CN_LIST && i < list->n; i++) {
        struct ado_cnode *a = vstr(list->items[i], "name");
        for (size_t j = 0; a && j < i; j++) {
            struct ado_cnode *b = vstr(list->items[j], "name");
            if (b && strcmp(a->text, b->text) == 0) {
                char where[64];
                snprintf(where, sizeof(where), "line %d", b->line);
                char fmt[128];
                snprintf(fmt, sizeof(fmt), "duplicate %s name \"%%s\" (first at %%s)", what);
                check_err(cfg, diag, errors, a, 0, fmt, a->text, where);
                break;
            }
        }
    }
}

static void check_node(struct ado_config *cfg, struct ado_diag *diag, int *errors) {
    struct ado_cnode *root = cfg->root, *n;
    if ((n = vstr(root, "node.name")) && !name_ok(n->text, LOWER DIGITS, LOWER DIGITS "-"))
        check_err(cfg, diag, errors, n, 0,
                  "invalid node name \"%s\": use lowercase letters, digits and '-', starting "
                  "with a letter or digit%s",
                  n->text, NULL);
    if ((n = vstr(root, "node.rpc.listen")) && !listen_ok(n->text))
        check_err(cfg, diag, errors, n, 0,
                  "invalid listen address \"%s\": expected HOST:PORT, [IPv6]:PORT (port 0 to "
                  "65535) or \"off\"%s",
                  n->text, NULL);
    struct ado_cnode *tls = ado_cnode_get(root, "node.rpc.tls");
    if (tls && tls->type == ADO_T_MAP && !ado_cnode_get(tls, "cert") != !ado_cnode_get(tls, "key"))
        check_err(cfg, diag, errors, tls, 0,
                  "\"cert\" and \"key\" must be given together (or neither)%s%s", NULL, NULL);
    struct ado_cnode *tokens = ado_cnode_get(root, "node.rpc.tokens");
    for (size_t i = 0; tokens && tokens->type == ADO_T_LIST && i < tokens->n; i++) {
        struct ado_cnode *t = tokens->items[i];
        if (t->type != ADO_T_MAP)
            continue;
        if (!ado_cnode_get(t, "token") == !ado_cnode_get(t, "token_file"))
            check_err(cfg, diag, errors, t, 0,
                      "give exactly one of \"token\" and \"token_file\"%s%s", NULL, NULL);
    }
    check_unique(cfg, diag, errors, tokens, "token");
}

static void check_plugins(struct ado_config *cfg, struct ado_diag *diag, int *errors) {
    struct ado_cnode *list = ado_cnode_get(cfg->root, "plugins");
    for (size_t i = 0; list && list->type == ADO_T_LIST && i < list->n; i++) {
        struct ado_cnode *n;
        if ((n = vstr(list->items[i], "name")) && !name_ok(n->text, LOWER, LOWER DIGITS "_"))
            check_err(cfg, diag, errors, n, 0,
                      "invalid plugin name \"%s\": use lowercase letters, digits and '_', "
                      "starting with a letter%s",
                      n->text, NULL);
        if ((n = vstr(list->items[i], "path")) && strchr(n->text, '/') &&
            !ends_with(n->text, ".so") && !ends_with(n->text, ".lua"))
            check_err(cfg, diag, errors, n, 0,
                      "\"%s\" is not a .so or .lua file (a bare name without '/' is searched "
                      "for)%s",
                      n->text, NULL);
    }
    check_unique(cfg, diag, errors, list, "plugin");
}

static void check_bridge(struct ado_config *cfg, struct ado_diag *diag, int *errors) {
    struct ado_cnode *peers = ado_cnode_get(cfg->root, "bridge.peers");
    for (size_t i = 0; peers && peers->type == ADO_T_LIST && i < peers->n; i++) {
        struct ado_cnode *k = vstr(peers->items[i], "public_key");
        if (!k || !k->text[0])
            continue;
        const char *p = k->text;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
            p += 2;
        size_t len = strlen(p);
        int ok = len > 0 && len % 2 == 0;
        for (size_t j = 0; ok && j < len; j++)
            ok = isxdigit((unsigned char)p[j]) != 0;
        if (!ok)
            check_err(cfg, diag, errors, k, 0,
                      "expected an even number of hex digits (optionally after 0x)%s%s", NULL,
                      NULL);
    }
    check_unique(cfg, diag, errors, peers, "peer");
}

/* ---- filling struct ado_config -------------------------------------------------------- */

static int64_t ival(struct ado_cnode *from, const char *path, int64_t fallback) {
    struct ado_cnode *n = ado_cnode_get(from, path);
    return n && n->kind == ADO_CN_SCALAR && n->type > 0 ? n->ival : fallback;
}

static const char *text(struct ado_cnode *from, const char *path, const char *fallback) {
    struct ado_cnode *n = ado_cnode_get(from, path);
    return n && n->kind == ADO_CN_SCALAR ? n->text : fallback;
}

static int resolve_path(struct ado_config *cfg, struct ado_plugin_entry *e, const char *p) {
    e->path = p;
    if (p[0] == '/' || !strchr(p, '/') || strcmp(cfg->dir, ".") == 0)
        return 0;
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    size_t len = strlen(cfg->dir) + strlen(p) + 2;
    if (!(e->path_alloc = malloc(len)))
        return ADO_ENOMEM;
    snprintf(e->path_alloc, len, "%s/%s", cfg->dir, p);
    e->path = e->path_alloc;
    return 0;
}

static int fill_plugins(struct ado_config *cfg) {
    struct ado_cnode *list = ado_cnode_get(cfg->root, "plugins");
    if (!list || list->kind != ADO_CN_LIST || list->n == 0)
        return 0;
    cfg->plugins = calloc(list->n, sizeof(*cfg->plugins));
    if (!cfg->plugins)
        return ADO_ENOMEM;
    for (size_t i = 0; i < list->n; i++) {
        struct ado_cnode *it = list->items[i];
        if (!ival(it, "enabled", 1))
            continue;
        struct ado_plugin_entry *e = &cfg->plugins[cfg->nplugins++];
        e->node = it;
        e->index = i;
        e->enabled = 1;
        e->name = text(it, "name", "");
        if (resolve_path(cfg, e, text(it, "path", "")) != 0)
            return ADO_ENOMEM;
        e->is_lua = ends_with(e->path, ".lua");
        e->optional = (int)ival(it, "optional", 0);
        e->lua_memory_bytes = ival(it, "limits.memory", 64 * MiB);
        e->lua_instructions = ival(it, "limits.instructions", 10000000);
        e->breaker_failures = ival(it, "breaker.failures", 5);
        e->breaker_cooldown_ms = ival(it, "breaker.cooldown", 30000);
        e->config = ado_cnode_get(it, "config");
        if (!e->config) { /* the schema creates it; kept for safety */
            struct ado_cnode *c = ado_cnode_new(ADO_CN_MAP, "config");
            if (!c || ado_cnode_append(it, c) != 0) {
                ado_cnode_free(c);
                return ADO_ENOMEM;
            }
            c->from_default = 1;
            c->type = ADO_T_MAP;
            c->line = c->key_line = it->line;
            c->col = c->key_col = it->col;
            e->config = c;
        }
    }
    return 0;
}

static int fill(struct ado_config *cfg) {
    struct ado_cnode *r = cfg->root;
    cfg->node_name = text(r, "node.name", "");
    cfg->layer = text(r, "node.layer", "L3");
    cfg->data_dir = text(r, "node.data_dir", "./data");
    cfg->log_level = (int)ival(r, "node.log.level", 2);
    cfg->log_json = ival(r, "node.log.format", 0) == 1;
    cfg->rpc_listen = text(r, "node.rpc.listen", "127.0.0.1:8645");
    cfg->store_map_size = ival(r, "node.store.map_size", 64 * MiB);
    cfg->store_sync = ival(r, "node.store.sync", 1);
    return fill_plugins(cfg);
}

/* ---- loading ------------------------------------------------------------------------ */

void ado_config_free(struct ado_config *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nplugins; i++)
        free(cfg->plugins[i].path_alloc);
    free(cfg->plugins);
    ado_cnode_free(cfg->root);
    free(cfg->file);
    free(cfg->dir);
    free(cfg);
}

static char *dir_of(const char *file) {
    const char *slash = strrchr(file, '/');
    if (!slash)
        return strdup(".");
    if (slash == file)
        return strdup("/");
    return strndup(file, (size_t)(slash - file));
}

static const char *kind_name(int kind) {
    return kind == ADO_CN_LIST ? "a list" : kind == ADO_CN_SCALAR ? "a scalar" : "nothing";
}

int ado_config_load_string(const char *name, const char *text_, size_t len, struct ado_config **out,
                           struct ado_diag *diag) {
    *out = NULL;
    if (!name)
        name = "<config>";
    size_t first = diag ? diag->n : 0;
    struct ado_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg || !(cfg->file = strdup(name)) || !(cfg->dir = dir_of(name))) {
        ado_config_free(cfg);
        return ADO_ENOMEM;
    }
    int rc = ado_cnode_parse(name, text_ ? text_ : "", text_ ? len : 0, &cfg->root, diag);
    if (rc == ADO_ENOMEM)
        goto fail;
    int errors = rc != 0;
    if (!cfg->root && rc == 0) {
        ado_diag_add(diag, name, 1, 1, NULL,
                     "the file is empty (expected a map with a \"node\" "
                     "block)");
        rc = ADO_ECONFIG;
        goto fail;
    }
    if (!cfg->root)
        goto fail;
    if (cfg->root->kind != ADO_CN_MAP) {
        ado_diag_add(diag, name, cfg->root->line, cfg->root->col, NULL,
                     "the top level must be a map with \"node\", \"plugins\" and \"bridge\", "
                     "got %s",
                     kind_name(cfg->root->kind));
        rc = ADO_ECONFIG;
        goto fail;
    }
    errors += ado_config_validate(cfg, cfg->root, top_fields, "", diag);
    check_node(cfg, diag, &errors);
    check_plugins(cfg, diag, &errors);
    check_bridge(cfg, diag, &errors);
    if (diag)
        ado_diag_sort(diag, first);
    if (errors) {
        rc = ADO_ECONFIG;
        goto fail;
    }
    if ((rc = fill(cfg)) != 0)
        goto fail;
    *out = cfg;
    return 0;
fail:
    ado_config_free(cfg);
    return rc ? rc : ADO_ECONFIG;
}

int ado_config_load(const char *path, struct ado_config **out, struct ado_diag *diag) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        ado_diag_add(diag, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return ADO_EIO;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (len == cap) {
            if (cap >= ADO_CONFIG_MAX_BYTES) {
                ado_diag_add(diag, path, 0, 0, NULL, "file is larger than %d bytes",
                             ADO_CONFIG_MAX_BYTES);
                rc = ADO_ECONFIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = ADO_ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                ado_diag_add(diag, path, 0, 0, NULL, "cannot read: %s", strerror(errno));
                rc = ADO_EIO;
            }
            break;
        }
    }
    fclose(f);
    if (!buf)
        return ADO_ENOMEM;
    if (rc == 0)
        rc = ado_config_load_string(path, buf, len, out, diag);
    free(buf);
    return rc;
}
