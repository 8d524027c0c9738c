/* Kernel-private: the YAML configuration as a typed tree, and schema validation.
 *
 * ado_config_load reads one YAML file with libyaml into a tree of ado_cnode (every node
 * keeps its line and column), expands ${NAME} from the environment in scalars, then
 * validates the whole file against the kernel's schema (node, plugins, bridge, rpc ...)
 * and reports every error, not just the first, into an ado_diag as
 *   FILE:LINE:COLUMN: path.to.key: what is wrong
 * Plugin blocks are validated later, once each plugin's schema is known
 * (ado_config_validate), into the same ado_diag. */
#ifndef ADO_CORE_CONFIG_H
#define ADO_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "ado/schema.h"

enum ado_cnode_kind {
    ADO_CN_NULL = 0, /* `~`, `null` or an empty value */
    ADO_CN_SCALAR,
    ADO_CN_MAP,
    ADO_CN_LIST,
};

struct ado_cnode {
    int kind;                 /* enum ado_cnode_kind */
    char *key;                /* key in the parent map, NULL for list items and the root */
    char *text;               /* SCALAR: text after ${ENV} expansion */
    int quoted;               /* SCALAR: was quoted in the file */
    int line, col;            /* 1-based position of the value (of the key for map entries:
                                 key_line/key_col) */
    int key_line, key_col;    /* position of the key, for map entries */
    int type;                 /* after validation: the enum ado_type it satisfied, else 0 */
    int64_t ival;             /* after validation: INT value, DURATION ms, SIZE bytes, BOOL 0/1,
                                 ENUM index */
    int from_default;         /* created from a schema default */
    int secret;               /* ADO_F_SECRET */
    struct ado_cnode **items; /* MAP entries (in file order) or LIST items */
    size_t n;
    struct ado_cnode *parent;
};

/* `type` of a node whose problem was already reported while reading the file (an alias, an
 * unset ${VAR}): validation skips it instead of piling more errors on it. */
#define ADO_CN_TYPE_INVALID (-1)

/* Diagnostics: a growing list of formatted messages. */
struct ado_diag {
    char **msgs;
    size_t n, cap;
    int *lines, *cols; /* position of each message (0 when it has none), for sorting */
};

void ado_diag_init(struct ado_diag *d);
void ado_diag_fini(struct ado_diag *d);
/* Append "FILE:LINE:COLUMN: PATH: MESSAGE" (PATH omitted when NULL or ""). */
void ado_diag_add(struct ado_diag *d, const char *file, int line, int col, const char *path,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Print every message, one per line, to `f` (a FILE *). */
void ado_diag_print(const struct ado_diag *d, void *f);
/* Sort messages [from, n) by position (line, then column), keeping the order of equals.
 * ado_config_load and ado_config_validate do this for the messages they add. */
void ado_diag_sort(struct ado_diag *d, size_t from);

struct ado_plugin_entry {
    struct ado_cnode *node; /* the list item */
    const char *name;       /* borrowed from the tree */
    const char *path;       /* C shared object (.so) or Lua script (.lua), resolved against
                               the config file's folder when relative */
    int is_lua;
    int optional;
    int64_t lua_memory_bytes;    /* limits.memory, default 64MiB */
    int64_t lua_instructions;    /* limits.instructions per call, default 10,000,000 */
    int64_t breaker_failures;    /* breaker.failures, default 5 */
    int64_t breaker_cooldown_ms; /* breaker.cooldown, default 30s */
    struct ado_cnode *config;    /* the plugin's `config` block (a MAP, created empty if absent) */
    /* Added: */
    size_t index;     /* position of the entry in the file's `plugins` list (disabled
                         entries are skipped in cfg->plugins, so it may differ from the
                         index in cfg->plugins); its config path is plugins.<index>.config */
    int enabled;      /* always 1 in cfg->plugins (disabled entries are left out) */
    char *path_alloc; /* owned storage behind `path` when it was resolved, else NULL */
};

struct ado_config {
    char *file;             /* path as given */
    char *dir;              /* folder of the file */
    struct ado_cnode *root; /* the whole tree, owned */
    /* The node block, after validation and defaults (borrowed from the tree). */
    const char *node_name;
    const char *layer;      /* "L2", "L3", "L4" */
    const char *data_dir;   /* as written: a relative path is relative to the current working
                               directory (not to the config file's folder) */
    int log_level;          /* enum ado_log_level */
    int log_json;           /* log format json (1) or logfmt (0) */
    const char *rpc_listen; /* "127.0.0.1:8645"; "" or "off" disables */
    int64_t store_map_size; /* node.store.map_size initial bytes */
    int64_t store_sync;     /* node.store.sync: 1 fsync each commit (default), 0 no */
    struct ado_plugin_entry *plugins;
    size_t nplugins;
};

/* Load and validate `path`. On success *out is the config (free with ado_config_free) and
 * 0 is returned. On failure every problem is in `diag`, *out is NULL and ADO_ECONFIG (or
 * ADO_EIO when the file cannot be read) is returned. */
int ado_config_load(const char *path, struct ado_config **out, struct ado_diag *diag);
/* Same from text in memory; `name` is used as FILE in messages. */
int ado_config_load_string(const char *name, const char *text, size_t len, struct ado_config **out,
                           struct ado_diag *diag);
void ado_config_free(struct ado_config *cfg);

/* Validate `block` (a MAP node, or NULL meaning empty) against `schema`, adding defaults,
 * setting type/ival on every node, reporting each problem with its position and its path
 * (`path` is the prefix, e.g. "plugins.2.config"). Unknown keys are errors with a
 * did-you-mean suggestion. Returns the number of errors added. */
int ado_config_validate(struct ado_config *cfg, struct ado_cnode *block,
                        const struct ado_schema *schema, const char *path, struct ado_diag *diag);
/* Notes on ado_config_validate (added):
 * - `path` NULL means "derive it from the block's place in the tree" (ado_cnode_path).
 * - `cfg` may be NULL (messages then name "<config>" as FILE).
 * - A MAP field whose .fields is NULL is a free-form map: it must be a map (or empty),
 *   its content is not validated. A LIST field with .fields NULL checks only the count.
 * - An empty value (`key:` or `key: ~`) for a MAP or LIST field counts as an empty one.
 * - An absent optional MAP field with no required keys inside is created (from_default=1)
 *   with its own defaults, so ado_cnode_get finds "node.store.map_size" when `store` is
 *   absent. default_value is ignored for MAP, LIST and ANY fields.
 * - Validating the same block twice adds nothing the second time but new errors. */

/* Look up a dotted path ("a.b.0.c") under `from`. NULL if absent. */
struct ado_cnode *ado_cnode_get(struct ado_cnode *from, const char *path);
/* Serialize a node as JSON text (malloc'd). Scalars use their validated type: INT, SIZE,
 * DURATION as numbers, BOOL as true/false, the rest as strings. */
char *ado_cnode_to_json(const struct ado_cnode *n);
/* Added. As ado_cnode_to_json, with flags: ADO_JSON_REDACT prints every node marked secret
 * (ADO_F_SECRET) as "***" (for dumps and logs). Scalars that were never validated (inside
 * ANY blocks) are rendered by their look: plain integers and JSON-style numbers as numbers,
 * plain true/false as booleans, everything else (and anything quoted) as a string.
 * NULL on out of memory. */
#define ADO_JSON_REDACT 1u
char *ado_cnode_to_json_ex(const struct ado_cnode *n, unsigned flags);

/* Added: tree helpers (used by config*.c and the node).
 * ado_cnode_new: a node of `kind` with a copy of `key` (may be NULL); NULL on no memory.
 * ado_cnode_append: append `child` to a MAP/LIST, which then owns it; 0 or ADO_ENOMEM.
 * ado_cnode_free: free a node and everything under it (NULL is fine).
 * ado_cnode_path: write the dotted path of `n` from the root ("plugins.0.config") into buf;
 *   0, or ADO_ELIMIT when it does not fit. */
struct ado_cnode *ado_cnode_new(int kind, const char *key);
int ado_cnode_append(struct ado_cnode *parent, struct ado_cnode *child);
void ado_cnode_free(struct ado_cnode *n);
int ado_cnode_path(const struct ado_cnode *n, char *buf, size_t size);

/* Added: read YAML text into a tree (no schema), expanding ${NAME} and $$ in scalars.
 * *root is NULL for an empty document. Returns 0; ADO_ECONFIG with the problems in diag
 * (on recoverable problems such as duplicate keys *root is still set, so that the caller
 * can validate the rest and report everything; the caller frees it); ADO_ENOMEM. */
int ado_cnode_parse(const char *file, const char *text, size_t len, struct ado_cnode **root,
                    struct ado_diag *diag);

/* Parse helpers, shared with the Lua host: 0 on success, ADO_EINVAL otherwise (also on
 * overflow of int64). No leading/trailing spaces.
 * duration: "250ms", "10s", "5m", "24h", "7d", combinations in decreasing units ("1h30m"),
 *   or a bare number of ms; not negative. size: a number of bytes with an optional unit
 *   B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000), an optional
 *   space before the unit. int: optional sign, decimal or 0x hex. bool: true/false, yes/no,
 *   on/off in any case. */
int ado_parse_duration_ms(const char *s, int64_t *out);
int ado_parse_size_bytes(const char *s, int64_t *out);
int ado_parse_int(const char *s, int64_t *out);
int ado_parse_bool(const char *s, int *out);

#endif
