/* Levelled, structured log lines: logfmt (ts=... level=... plugin=... msg="...") or JSON. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "ado/plugin.h"

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

const char *ado_log_level_name(int level) {
    if (level < 0 || level > ADO_LOG_TRACE)
        return "?";
    return level_names[level];
}

int ado_log_level_parse(const char *s) {
    for (int i = 0; i <= ADO_LOG_TRACE; i++)
        if (s && strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

/* Append `s` quoted for logfmt (json=0) or JSON (json=1) into buf at *pos. */
static void put_quoted(char *buf, size_t cap, size_t *pos, const char *s, int json) {
    size_t p = *pos;
    if (p + 1 < cap)
        buf[p++] = '"';
    for (; *s && p + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[p++] = '\\';
            buf[p++] = (char)c;
        } else if (c == '\n') {
            buf[p++] = '\\';
            buf[p++] = 'n';
        } else if (c == '\t') {
            buf[p++] = '\\';
            buf[p++] = 't';
        } else if (c < 0x20) {
            p += (size_t)snprintf(buf + p, cap - p, json ? "\\u%04x" : "\\x%02x", c);
        } else {
            buf[p++] = (char)c;
        }
    }
    if (p + 1 < cap)
        buf[p++] = '"';
    buf[p] = 0;
    *pos = p;
}

void ado_log_vwrite(const struct ado_log *log, int level, const char *plugin, const char *fmt,
                    va_list ap) {
    if (log && level > log->level)
        return;
    FILE *out = (log && log->out) ? log->out : stderr;
    int json = log ? log->json : 0;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof ts - tl, ".%03dZ", (int)(tv.tv_usec / 1000));

    char line[4096];
    size_t p = 0;
    if (json) {
        p += (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\"", ts,
                              ado_log_level_name(level));
        if (plugin) {
            p += (size_t)snprintf(line + p, sizeof line - p, ",\"plugin\":");
            put_quoted(line, sizeof line, &p, plugin, 1);
        }
        p += (size_t)snprintf(line + p, sizeof line - p, ",\"msg\":");
        put_quoted(line, sizeof line, &p, msg, 1);
        snprintf(line + p, sizeof line - p, "}");
    } else {
        p += (size_t)snprintf(line, sizeof line, "ts=%s level=%s", ts, ado_log_level_name(level));
        if (plugin)
            p += (size_t)snprintf(line + p, sizeof line - p, " plugin=%s", plugin);
        p += (size_t)snprintf(line + p, sizeof line - p, " msg=");
        put_quoted(line, sizeof line, &p, msg, 0);
    }
    fprintf(out, "%s\n", line);
    fflush(out);
}

void ado_log_write(const struct ado_log *log, int level, const char *plugin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ado_log_vwrite(log, level, plugin, fmt, ap);
    va_end(ap);
}
