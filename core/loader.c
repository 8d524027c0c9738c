/* Loading plugins: find the file, dlopen (C) or hand it to the Lua host, check the
 * descriptor and its ABI, validate the plugin's config block, and order the plugins so
 * that every plugin starts after the ones it requires. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lua_host.h"
#include "node.h"

#ifndef ADO_PLUGIN_DIRS
#define ADO_PLUGIN_DIRS ""
#endif

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Resolve a bare plugin name (no '/') against $ADO_PLUGIN_PATH and the built-in folders:
 * DIR/NAME, DIR/NAME.so, DIR/NAME.lua. Returns a malloc'd path or NULL. */
static char *search_plugin(const char *name) {
    const char *env = getenv("ADO_PLUGIN_PATH");
    size_t len = (env ? strlen(env) : 0) + strlen(ADO_PLUGIN_DIRS) + 2;
    char *dirs = malloc(len);
    if (!dirs)
        return NULL;
    snprintf(dirs, len, "%s:%s", env ? env : "", ADO_PLUGIN_DIRS);
    static const char *const exts[] = {"", ".so", ".lua"};
    char *found = NULL, *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        for (size_t i = 0; i < 3 && !found; i++) {
            char buf[4096];
            snprintf(buf, sizeof buf, "%s/%s%s", d, name, exts[i]);
            if (is_file(buf))
                found = strdup(buf);
        }
    }
    free(dirs);
    return found;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Report a load problem: an error for a required plugin, a warning for an optional one. */
static void report(struct ado_node *node, struct ado_diag *diag, const struct ado_plugin_entry *e,
                   const char *path, const char *fmt, const char *detail) {
    char msg[1024];
    snprintf(msg, sizeof msg, fmt, detail ? detail : "");
    if (e->optional) {
        ado_log_write(&node->log, ADO_LOG_WARN, e->name,
                      "optional plugin skipped: plugin %s (%s): %s", e->name, path, msg);
        return;
    }
    ado_diag_add(diag, node->cfg->file, e->node->line, e->node->col, NULL, "plugin %s (%s): %s",
                 e->name, path, msg);
}

static int load_c(struct ado_node *node, struct ado_plugin *p, const char *path,
                  struct ado_diag *diag) {
    const struct ado_plugin_entry *e = p->entry;
    dlerror();
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        report(node, diag, e, path, "cannot load: %s", dlerror());
        return ADO_EPLUGIN;
    }
    const struct ado_plugin_desc *d = dlsym(p->dl, ADO_PLUGIN_SYMBOL);
    if (!d) {
        report(node, diag, e, path, "missing symbol `%s`: not an adonode plugin",
               ADO_PLUGIN_SYMBOL);
        return ADO_EPLUGIN;
    }
    uint32_t major = d->abi_version >> 16, minor = d->abi_version & 0xffff;
    if (major != ADO_ABI_MAJOR || minor > ADO_ABI_MINOR) {
        char detail[160];
        snprintf(detail, sizeof detail, "built for ABI %u.%u, this node speaks ABI %u.%u",
                 (unsigned)major, (unsigned)minor, ADO_ABI_MAJOR, ADO_ABI_MINOR);
        report(node, diag, e, path, "ABI mismatch: %s", detail);
        return ADO_EABI;
    }
    if (d->struct_size < sizeof(struct ado_plugin_desc)) {
        report(node, diag, e, path, "descriptor too small (struct_size %s)", "mismatch");
        return ADO_EABI;
    }
    if (!d->init) {
        report(node, diag, e, path, "descriptor has no init function%s", "");
        return ADO_EPLUGIN;
    }
    p->desc = d;
    p->kind = ADO_PK_C;
    return 0;
}

static struct ado_plugin *find(struct ado_plugin **list, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i]->name, name) == 0 ||
            (list[i]->desc && list[i]->desc->name && strcmp(list[i]->desc->name, name) == 0))
            return list[i];
    return NULL;
}

static size_t index_of(struct ado_plugin **list, size_t n, const struct ado_plugin *p) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == p)
            return i;
    return n;
}

static void plugin_free(struct ado_plugin *p) {
    if (!p)
        return;
    ado_api_release(p);
    if (p->kind == ADO_PK_LUA)
        ado_lua_free(p);
    if (p->dl)
        dlclose(p->dl);
    free(p->deps);
    free(p->degraded);
    free(p->last_error);
    free(p);
}

void ado_node_plugins_free(struct ado_node *node) {
    for (size_t i = 0; i < node->nplugins; i++)
        plugin_free(node->plugins[i]);
    free(node->plugins);
    node->plugins = NULL;
    node->nplugins = 0;
}

/* Order `ps` so that requirements come first (stable: config order among equals).
 * Plugins whose requirements are missing are dropped (optional) or reported. Returns the
 * number of errors added. */
static int order(struct ado_node *node, struct ado_plugin **ps, size_t n, struct ado_diag *diag) {
    int errors = 0;
    /* Drop plugins whose requirements are absent, repeatedly (a drop can cascade). */
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            const char *const *req = ps[i]->desc->requires;
            for (; req && *req; req++) {
                if (find(ps, n, *req))
                    continue;
                const struct ado_plugin_entry *e = ps[i]->entry;
                report(node, diag, e, e->path, "requires plugin \"%s\", which is not loaded", *req);
                if (!e->optional)
                    errors++;
                plugin_free(ps[i]);
                memmove(&ps[i], &ps[i + 1], (n - i - 1) * sizeof *ps);
                n--;
                changed = 1;
                break;
            }
            if (changed)
                break;
        }
    }
    if (errors)
        goto out;
    /* Kahn's algorithm, picking the first ready plugin in config order each time. */
    struct ado_plugin **sorted = calloc(n ? n : 1, sizeof *sorted);
    int *placed = calloc(n ? n : 1, sizeof *placed);
    if (!sorted || !placed) {
        free(sorted);
        free(placed);
        ado_diag_add(diag, node->cfg->file, 0, 0, NULL, "out of memory");
        return 1;
    }
    size_t done = 0;
    while (done < n) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            if (placed[i])
                continue;
            int ready = 1;
            for (const char *const *req = ps[i]->desc->requires; req && *req; req++) {
                size_t j = index_of(ps, n, find(ps, n, *req));
                if (!placed[j])
                    ready = 0;
            }
            if (ready)
                pick = i;
        }
        if (pick == n) {
            /* A cycle: name every plugin still waiting. */
            char names[1024] = "";
            size_t len = 0;
            for (size_t i = 0; i < n; i++)
                if (!placed[i])
                    len +=
                        (size_t)snprintf(names + len, len < sizeof names ? sizeof names - len : 0,
                                         "%s%s", len ? " -> " : "", ps[i]->name);
            for (size_t i = 0; i < n; i++) {
                if (placed[i])
                    continue;
                const struct ado_plugin_entry *e = ps[i]->entry;
                ado_diag_add(diag, node->cfg->file, e->node->line, e->node->col, NULL,
                             "plugin %s (%s): dependency cycle among: %s", e->name, e->path, names);
                errors++;
                break;
            }
            break;
        }
        placed[pick] = 1;
        sorted[done++] = ps[pick];
    }
    if (!errors) {
        memcpy(ps, sorted, n * sizeof *ps);
        for (size_t i = 0; i < n; i++) {
            size_t nr = 0;
            for (const char *const *req = ps[i]->desc->requires; req && *req; req++)
                nr++;
            ps[i]->deps = calloc(nr ? nr : 1, sizeof *ps[i]->deps);
            for (const char *const *req = ps[i]->desc->requires; req && *req && ps[i]->deps; req++)
                ps[i]->deps[ps[i]->ndeps++] = (int)index_of(ps, n, find(ps, n, *req));
        }
    }
    free(sorted);
    free(placed);
out:
    node->nplugins = n;
    return errors;
}

int ado_node_load(struct ado_node *node, struct ado_config *cfg, struct ado_diag *diag) {
    node->cfg = cfg;
    size_t before = diag->n;
    struct ado_plugin **ps = calloc(cfg->nplugins ? cfg->nplugins : 1, sizeof *ps);
    if (!ps)
        return ADO_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nplugins; i++) {
        const struct ado_plugin_entry *e = &cfg->plugins[i];
        struct ado_plugin *p = calloc(1, sizeof *p);
        if (!p)
            break;
        p->node = node;
        p->entry = e;
        p->name = e->name;
        p->ctx.node = node;
        p->ctx.plugin = p;
        char *path = strchr(e->path, '/') ? strdup(e->path) : search_plugin(e->path);
        int rc;
        if (!path) {
            report(node, diag, e, e->path, "not found (searched $ADO_PLUGIN_PATH and %s)",
                   ADO_PLUGIN_DIRS);
            rc = ADO_ENOTFOUND;
        } else if (!is_file(path)) {
            report(node, diag, e, path, "no such file%s", "");
            rc = ADO_ENOTFOUND;
        } else if (ends_with(path, ".lua")) {
            struct ado_lua_limits lim = {e->lua_memory_bytes, e->lua_instructions};
            struct ado_diag ld;
            ado_diag_init(&ld);
            rc = ado_lua_load(p, path, &lim, &ld);
            for (size_t k = 0; k < ld.n; k++)
                report(node, diag, e, path, "%s", ld.msgs[k]);
            ado_diag_fini(&ld);
        } else {
            rc = load_c(node, p, path, diag);
        }
        free(path);
        if (rc < 0) {
            plugin_free(p);
            continue;
        }
        char prefix[128];
        snprintf(prefix, sizeof prefix, "plugins.%zu.config", e->index);
        /* A bad block is an error even for an optional plugin: the file is wrong whatever
         * happens at run time. */
        ado_config_validate(cfg, e->config, p->desc->schema, prefix, diag);
        ps[n++] = p;
    }
    node->plugins = ps;
    node->nplugins = n;
    order(node, ps, n, diag); /* adds its errors to diag */
    return diag->n > before ? ADO_ECONFIG : 0;
}
