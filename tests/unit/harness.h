/* Shared helpers for the kernel's tests: temporary folders, files, an in-process node
 * started from YAML text, and running its loop until a condition holds. */
#ifndef ADO_TEST_HARNESS_H
#define ADO_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "node.h"

static inline char *th_tmpdir(void) {
    char tmpl[] = "/tmp/ado-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert(d, "mkdtemp");
    return strdup(d);
}

static inline char *th_write(const char *dir, const char *name, const char *text) {
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "open %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static inline void th_rmrf(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

struct th_node {
    uv_loop_t loop;
    struct ado_node *node;
    struct ado_config *cfg;
    struct ado_diag diag;
    char *dir;
    int started;
};

/* Write `yaml` (a printf format; %1$s is replaced by the temp dir) to dir/chain.yaml, load,
 * validate, load plugins and start. Returns 0 or the failing step's code (diag has why). */
static inline int th_node_start(struct th_node *t, const char *dir, const char *yaml) {
    memset(t, 0, sizeof *t);
    ado_diag_init(&t->diag);
    t->dir = strdup(dir);
    uv_loop_init(&t->loop);
    char *path = th_write(dir, "chain.yaml", yaml);
    int rc = ado_config_load(path, &t->cfg, &t->diag);
    free(path);
    if (rc < 0)
        return rc;
    t->node = ado_node_new(&t->loop);
    cr_assert(t->node);
    t->node->log.level = t->cfg->log_level;
    rc = ado_node_load(t->node, t->cfg, &t->diag);
    if (rc < 0)
        return rc;
    rc = ado_node_start(t->node, &t->diag);
    t->started = 1;
    return rc;
}

static inline void th_node_stop(struct th_node *t) {
    if (t->node) {
        if (t->started)
            ado_node_stop(t->node);
        ado_node_free(t->node);
    }
    if (t->cfg)
        ado_config_free(t->cfg);
    ado_diag_fini(&t->diag);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    uv_loop_close(&t->loop);
    free(t->dir);
    memset(t, 0, sizeof *t);
}

/* Run the loop until cond(arg) is true or timeout_ms passes; returns the last cond. */
static inline int th_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, int timeout_ms) {
    uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    while (!cond(arg) && uv_hrtime() < end) {
        uv_update_time(loop);
        uv_run(loop, UV_RUN_NOWAIT);
        if (!cond(arg))
            usleep(1000);
    }
    return cond(arg);
}

/* The joined diagnostics, for assertions on messages. */
static inline const char *th_diag_text(struct th_node *t) {
    static __thread char buf[8192];
    buf[0] = 0;
    for (size_t i = 0; i < t->diag.n; i++) {
        strncat(buf, t->diag.msgs[i], sizeof buf - strlen(buf) - 2);
        strncat(buf, "\n", sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

#endif
