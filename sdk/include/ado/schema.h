/* adonode SDK: the schema a plugin declares for its own YAML `config` block.
 *
 * A schema is a static array of struct ado_schema terminated by an entry whose key is NULL
 * (ADO_SCHEMA_END). The kernel validates the plugin's block against it before anything
 * starts, fills defaults, and reports every error as FILE:LINE:COLUMN: path.to.key: message.
 *
 * Example:
 *   static const char *const modes[] = {"fast", "safe", NULL};
 *   static const struct ado_schema schema[] = {
 *       {.key = "greeting", .type = ADO_T_STRING, .default_value = "hello"},
 *       {.key = "every", .type = ADO_T_DURATION, .default_value = "10s",
 *        .flags = ADO_F_RANGE, .min = 10, .max = 86400000},
 *       {.key = "mode", .type = ADO_T_ENUM, .choices = modes, .default_value = "safe"},
 *       ADO_SCHEMA_END,
 *   };
 */
#ifndef ADO_SCHEMA_H
#define ADO_SCHEMA_H

#include <stdint.h>

enum ado_type {
    ADO_T_STRING = 1, /* any scalar, kept as text */
    ADO_T_INT,        /* signed 64-bit integer: 42, -7, 0x2a */
    ADO_T_BOOL,       /* true/false, yes/no, on/off */
    ADO_T_DURATION,   /* "250ms", "10s", "5m", "24h", "7d" or a bare number of ms; read as ms */
    ADO_T_SIZE,       /* "512", "64KiB", "64MiB", "1GiB", "10MB"; read as bytes */
    ADO_T_ENUM,       /* one of .choices */
    ADO_T_MAP,        /* a mapping whose keys are described by .fields */
    ADO_T_LIST,       /* a sequence; .fields[0] describes every item (its .key is ignored) */
    ADO_T_ANY,        /* anything; not validated (read it with config_json) */
};

enum ado_schema_flags {
    ADO_F_REQUIRED = 1u << 0, /* the key must be present (a default is then ignored) */
    ADO_F_RANGE = 1u << 1,    /* .min/.max apply (INT: value, DURATION: ms, SIZE: bytes,
                                 STRING: length, LIST: item count) */
    ADO_F_SECRET = 1u << 2,   /* never printed in logs or config dumps */
};

struct ado_schema {
    const char *key;                 /* NULL ends the array */
    int type;                        /* enum ado_type */
    unsigned flags;                  /* enum ado_schema_flags */
    const char *default_value;       /* text parsed as .type when the key is absent, or NULL */
    int64_t min, max;                /* with ADO_F_RANGE */
    const char *const *choices;      /* ADO_T_ENUM: NULL-terminated list */
    const struct ado_schema *fields; /* ADO_T_MAP: keys; ADO_T_LIST: fields[0] is the item */
    const char *help;                /* one line for docs and --help-plugin */
};

#define ADO_SCHEMA_END {0}

#endif
