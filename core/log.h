/* Kernel-private: levelled, structured log lines (logfmt or JSON) on stderr. */
#ifndef ADO_CORE_LOG_H
#define ADO_CORE_LOG_H

#include <stdarg.h>

struct ado_log {
    int level; /* enum ado_log_level: lines above it are dropped */
    int json;  /* 1: one JSON object per line; 0: logfmt */
    void *out; /* FILE *, stderr by default */
};

/* One line: ts=... level=... plugin=... msg="...". `plugin` may be NULL (the kernel). */
void ado_log_write(const struct ado_log *log, int level, const char *plugin, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ado_log_vwrite(const struct ado_log *log, int level, const char *plugin, const char *fmt,
                    va_list ap);
/* "error" "warn" "info" "debug" "trace" -> level, or -1. */
int ado_log_level_parse(const char *s);
const char *ado_log_level_name(int level);

#endif
