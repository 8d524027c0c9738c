/* Checkpoints: compacted LMDB copies with a digest of every plugin's data, the schedule, the
 * RPC methods node_checkpoint / node_checkpoints, restore, and divergence reports to the
 * upper layer (see checkpoint.h and docs/bridge.md). */
#define ADO_BRIDGE_INTERNAL
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "metrics.h"
#include "node.h"
#include "rpc.h"

#define DIGEST_LEN 32

/* Paths are bounded (data_dir <= 4096 bytes by the schema); a truncated one fails to open. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

struct ado_checkpoints {
    struct ado_node *node;
    char dir[4096];
    uint64_t every_ms;
    int64_t keep;
    uv_timer_t *timer;
    uint64_t sub_id;
    int subscribed;
    uint64_t taken, diverged_total;
    /* toward the upper peer */
    char last_reported[64], last_agreed[64];
    json_t *divergence; /* {checkpoint, expected, reported, peer, at_ms} or NULL */
};

static void cp_log(struct ado_checkpoints *cp, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cp_log(struct ado_checkpoints *cp, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ado_log_vwrite(&cp->node->log, level, "checkpoint", fmt, ap);
    va_end(ap);
}

static void hex(const unsigned char *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
    out[2 * n] = 0;
}

static void le64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++, v >>= 8)
        b[i] = (unsigned char)v;
}

static void h_item(crypto_generichash_state *h, const void *d, size_t n) {
    unsigned char l[8];
    le64(l, n);
    crypto_generichash_update(h, l, 8);
    if (n)
        crypto_generichash_update(h, d, n);
}

/* ---- digest ---------------------------------------------------------------------------------- */

/* A plugin's databases are all hashed: record its digest and fold it into the overall one. */
static void plugin_done(crypto_generichash_state *plug, crypto_generichash_state *all,
                        json_t *plugins, const char *name) {
    unsigned char pd[DIGEST_LEN];
    char ph[2 * DIGEST_LEN + 1];
    crypto_generichash_final(plug, pd, DIGEST_LEN);
    hex(pd, DIGEST_LEN, ph);
    json_object_set_new(plugins, name, json_string(ph));
    h_item(all, name, strlen(name));
    crypto_generichash_update(all, pd, DIGEST_LEN);
}

int ado_checkpoint_digest(const char *dir, json_t **out, char *err, size_t errlen) {
    *out = NULL;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(env, 4096);
    if (rc == 0)
        rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    MDB_dbi main_db;
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &main_db);
    if (rc == 0)
        rc = mdb_cursor_open(txn, main_db, &cur);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read the store in %s: %s", dir, mdb_strerror(rc));
        if (txn)
            mdb_txn_abort(txn);
        if (env)
            mdb_env_close(env);
        return ADO_EIO;
    }
    json_t *plugins = json_object(), *dbs = json_object();
    crypto_generichash_state all, plug;
    crypto_generichash_init(&all, NULL, 0, DIGEST_LEN);
    char cur_plugin[256] = "";
    int have_plugin = 0;
    MDB_val k, v;
    int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; r == 0; r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char name[512];
        if (k.mv_size == 0 || k.mv_size >= sizeof name)
            continue;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = 0;
        if (name[0] == '@' || strlen(name) != k.mv_size)
            continue; /* the kernel's own databases are node-local state */
        const char *slash = strchr(name, '/');
        if (!slash)
            continue;
        MDB_dbi dbi;
        if (mdb_dbi_open(txn, name, 0, &dbi) != 0)
            continue;
        char plugin[256];
        snprintf(plugin, sizeof plugin, "%.*s", (int)(slash - name), name);
        if (!have_plugin || strcmp(plugin, cur_plugin) != 0) {
            if (have_plugin)
                plugin_done(&plug, &all, plugins, cur_plugin);
            snprintf(cur_plugin, sizeof cur_plugin, "%s", plugin);
            crypto_generichash_init(&plug, NULL, 0, DIGEST_LEN);
            have_plugin = 1;
        }
        crypto_generichash_state h;
        crypto_generichash_init(&h, NULL, 0, DIGEST_LEN);
        MDB_cursor *c2;
        uint64_t entries = 0;
        if (mdb_cursor_open(txn, dbi, &c2) == 0) {
            MDB_val dk, dv;
            for (int q = mdb_cursor_get(c2, &dk, &dv, MDB_FIRST); q == 0;
                 q = mdb_cursor_get(c2, &dk, &dv, MDB_NEXT)) {
                h_item(&h, dk.mv_data, dk.mv_size);
                h_item(&h, dv.mv_data, dv.mv_size);
                entries++;
            }
            mdb_cursor_close(c2);
        }
        unsigned char dd[DIGEST_LEN];
        char dh[2 * DIGEST_LEN + 1];
        crypto_generichash_final(&h, dd, DIGEST_LEN);
        hex(dd, DIGEST_LEN, dh);
        json_object_set_new(dbs, name,
                            json_pack("{s:s,s:I}", "digest", dh, "entries", (json_int_t)entries));
        h_item(&plug, slash + 1, strlen(slash + 1));
        crypto_generichash_update(&plug, dd, DIGEST_LEN);
    }
    if (have_plugin)
        plugin_done(&plug, &all, plugins, cur_plugin);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    unsigned char ad[DIGEST_LEN];
    char ah[2 * DIGEST_LEN + 1];
    crypto_generichash_final(&all, ad, DIGEST_LEN);
    hex(ad, DIGEST_LEN, ah);
    *out = json_pack("{s:s,s:o,s:o}", "digest", ah, "plugins", plugins, "databases", dbs);
    if (!*out) {
        snprintf(err, errlen, "out of memory");
        return ADO_ENOMEM;
    }
    return 0;
}

/* ---- files ------------------------------------------------------------------------------------
 */

void ado_checkpoints_dir_of(const struct ado_config *cfg, char *out, size_t outlen) {
    struct ado_cnode *d = ado_cnode_get(cfg->root, "node.checkpoints.dir");
    if (d && d->kind == ADO_CN_SCALAR && d->text && d->text[0])
        snprintf(out, outlen, "%s", d->text);
    else
        snprintf(out, outlen, "%s/checkpoints", cfg->data_dir ? cfg->data_dir : "./data");
}

const char *ado_checkpoints_dir(const struct ado_checkpoints *cp) {
    return cp->dir;
}

static int mkdirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* Remove a checkpoint folder: its files, then itself (no sub-folders in there). */
static void rm_shallow(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char f[4400];
            snprintf(f, sizeof f, "%s/%s", path, e->d_name);
            unlink(f);
        }
        closedir(d);
    }
    rmdir(path);
}

static int write_file_sync(const char *path, const char *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static json_t *read_manifest(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    json_error_t e;
    json_t *m = json_load_file(p, 0, &e);
    if (m && !json_is_object(m)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids of complete checkpoints (with a manifest) in dir, sorted oldest first. */
static char **list_ids(const char *dir, size_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **ids = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp"))
            continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s/manifest.json", dir, e->d_name);
        if (access(p, R_OK) != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **ni = realloc(ids, cap * sizeof *ni);
            if (!ni)
                break;
            ids = ni;
        }
        ids[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (ids)
        qsort(ids, *n, sizeof *ids, cmp_str);
    return ids;
}

static void free_ids(char **ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static void prune(struct ado_checkpoints *cp) {
    size_t n;
    char **ids = list_ids(cp->dir, &n);
    for (size_t i = 0; n > (size_t)cp->keep && i < n - (size_t)cp->keep; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", cp->dir, ids[i]);
        rm_shallow(p);
        cp_log(cp, ADO_LOG_INFO, "deleted old checkpoint %s (keep %lld)", ids[i],
               (long long)cp->keep);
    }
    free_ids(ids, n);
}

/* ---- taking one --------------------------------------------------------------------------- */

static void report_upper(struct ado_checkpoints *cp, const char *id, const char *digest,
                         uint64_t t) {
    struct ado_node *node = cp->node;
    const char *peer = ado_bridge_upper_peer(node->bridge);
    if (!peer)
        return;
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:I}", "node", node->cfg->node_name, "layer", node->cfg->layer,
                  "checkpoint", id, "digest", digest, "time_ms", (json_int_t)t);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return;
    int rc =
        ado_bridge_send(node->bridge, NULL, peer, "checkpoint.digest", text, strlen(text), NULL, 0);
    free(text);
    if (rc < 0)
        cp_log(cp, ADO_LOG_WARN, "cannot report checkpoint %s to %s: %s", id, peer,
               ado_node_api()->strerror(rc));
    else
        snprintf(cp->last_reported, sizeof cp->last_reported, "%s", id);
}

int ado_checkpoint_take(struct ado_checkpoints *cp, json_t **manifest, char *err, size_t errlen) {
    struct ado_node *node = cp->node;
    if (manifest)
        *manifest = NULL;
    if (mkdirs(cp->dir) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", cp->dir, strerror(errno));
        return ADO_EIO;
    }
    uint64_t t = br_wall_ms();
    time_t secs = (time_t)(t / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[64], id[80], tmp[4400], fin[4400];
    strftime(base, sizeof base, "%Y%m%dT%H%M%S", &tm);
    for (int i = 0;; i++) {
        if (i == 0)
            snprintf(id, sizeof id, "%s%03uZ", base, (unsigned)(t % 1000));
        else
            snprintf(id, sizeof id, "%s%03uZ-%d", base, (unsigned)(t % 1000), i);
        snprintf(fin, sizeof fin, "%s/%s", cp->dir, id);
        if (access(fin, F_OK) != 0)
            break;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", fin);
    rm_shallow(tmp);
    if (mkdir(tmp, 0700) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return ADO_EIO;
    }
    uint64_t t0 = uv_hrtime();
    int rc = ado_store_copy(node->store, tmp);
    if (rc < 0) {
        snprintf(err, errlen, "store copy failed: %s", ado_node_api()->strerror(rc));
        rm_shallow(tmp);
        return rc;
    }
    json_t *dg;
    if ((rc = ado_checkpoint_digest(tmp, &dg, err, errlen)) < 0) {
        rm_shallow(tmp);
        return rc;
    }
    char iso[40], dp[4500];
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(iso + strlen(iso), sizeof iso - strlen(iso), ".%03uZ", (unsigned)(t % 1000));
    snprintf(dp, sizeof dp, "%s/data.mdb", tmp);
    struct stat sb;
    json_t *m = json_pack("{s:i,s:s,s:s,s:s,s:I,s:s,s:I}", "format", 1, "id", id, "node",
                          node->cfg->node_name, "layer", node->cfg->layer, "time_ms", (json_int_t)t,
                          "time", iso, "bytes", (json_int_t)(stat(dp, &sb) == 0 ? sb.st_size : 0));
    json_object_update(m, dg);
    json_decref(dg);
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
    char mp[4500];
    snprintf(mp, sizeof mp, "%s/manifest.json", tmp);
    if (!text || write_file_sync(mp, text, strlen(text)) < 0 || rename(tmp, fin) < 0) {
        snprintf(err, errlen, "cannot write the checkpoint %s: %s", fin, strerror(errno));
        free(text);
        json_decref(m);
        rm_shallow(tmp);
        return ADO_EIO;
    }
    free(text);
    json_object_set_new(m, "path", json_string(fin));
    cp->taken++;
    const char *digest = json_string_value(json_object_get(m, "digest"));
    cp_log(cp, ADO_LOG_INFO, "checkpoint %s taken in %.1f ms: digest %s", id,
           (double)(uv_hrtime() - t0) / 1e6, digest);
    if (node->metrics) {
        ado_metrics_add(node->metrics, "ado_checkpoints_total", NULL, 1);
        ado_metrics_set(node->metrics, "ado_checkpoint_last_ms", NULL, (double)t);
    }
    prune(cp);
    report_upper(cp, id, digest, t);
    if (manifest)
        *manifest = m;
    else
        json_decref(m);
    return 0;
}

/* ---- schedule and RPC ----------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t) {
    struct ado_checkpoints *cp = t->data;
    char err[512];
    if (ado_checkpoint_take(cp, NULL, err, sizeof err) < 0)
        cp_log(cp, ADO_LOG_ERROR, "scheduled checkpoint failed: %s", err);
}

static void reply_json(ado_call *call, json_t *j) {
    char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (t)
        ado_rpc_reply(call, t, strlen(t));
    else
        ado_rpc_error(call, -32603, "internal error: out of memory", NULL);
    free(t);
}

static struct ado_checkpoints *cp_of(void *arg, ado_call *call) {
    struct ado_node *node = arg;
    struct ado_checkpoints *cp = node->bridge ? ado_bridge_checkpoints(node->bridge) : NULL;
    if (!cp)
        ado_rpc_error(call, -32010, "checkpoints are not available (node stopping)", NULL);
    return cp;
}

static void m_take(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx, (void)params, (void)len;
    struct ado_checkpoints *cp = cp_of(arg, call);
    if (!cp)
        return;
    json_t *m;
    char err[512];
    if (ado_checkpoint_take(cp, &m, err, sizeof err) < 0) {
        ado_rpc_error(call, -32000, err, NULL);
        return;
    }
    reply_json(call, m);
}

static json_t *status_obj(struct ado_checkpoints *cp) {
    return json_pack("{s:o,s:o,s:o}", "last_reported",
                     cp->last_reported[0] ? json_string(cp->last_reported) : json_null(),
                     "last_agreed", cp->last_agreed[0] ? json_string(cp->last_agreed) : json_null(),
                     "divergence", cp->divergence ? json_deep_copy(cp->divergence) : json_null());
}

static void m_list(ado_ctx *ctx, ado_call *call, const char *params, size_t len, void *arg) {
    (void)ctx, (void)params, (void)len;
    struct ado_checkpoints *cp = cp_of(arg, call);
    if (!cp)
        return;
    size_t n;
    char **ids = list_ids(cp->dir, &n);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", cp->dir, ids[i]);
        json_t *m = read_manifest(p);
        if (!m)
            continue;
        json_object_del(m, "databases");
        json_object_set_new(m, "path", json_string(p));
        json_array_append_new(a, m);
    }
    free_ids(ids, n);
    json_t *r = json_pack("{s:s,s:I,s:I,s:o}", "dir", cp->dir, "every_ms", (json_int_t)cp->every_ms,
                          "keep", (json_int_t)cp->keep, "checkpoints", a);
    json_t *st = status_obj(cp);
    json_object_update(r, st);
    json_decref(st);
    reply_json(call, r);
}

/* ---- divergence ------------------------------------------------------------------------------ */

static ado_db meta_db(struct ado_checkpoints *cp) {
    return cp->node->bridge->db_meta;
}

static void meta_put(struct ado_checkpoints *cp, const char *key, const char *val) {
    ado_store_put(cp->node->store, NULL, meta_db(cp), key, strlen(key), val, strlen(val));
}

static char *meta_get(struct ado_checkpoints *cp, const char *key) {
    const void *v;
    size_t vl;
    if (ado_store_get(cp->node->store, NULL, meta_db(cp), key, strlen(key), &v, &vl) < 0)
        return NULL;
    char *s = malloc(vl + 1);
    if (s) {
        memcpy(s, v, vl);
        s[vl] = 0;
    }
    return s;
}

static void send_verdict(struct ado_checkpoints *cp, const char *peer, const char *node,
                         const char *id, const char *expected, const char *reported) {
    int agree = strcmp(expected, reported) == 0;
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "node", node, "checkpoint", id, "verdict",
                          agree ? "agree" : "disagree", "expected", expected, "reported", reported);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return;
    int rc = ado_bridge_send(cp->node->bridge, NULL, peer, "checkpoint.verdict", text, strlen(text),
                             NULL, 0);
    free(text);
    cp_log(cp, agree ? ADO_LOG_INFO : ADO_LOG_WARN,
           "checkpoint %s of node %s: %s with the expected digest; verdict to %s%s", id, node,
           agree ? "agrees" : "DISAGREES", peer, rc < 0 ? " could not be queued" : " queued");
}

/* The authority side: a lower node reported its digest. */
static void on_digest(struct ado_checkpoints *cp, const char *peer, json_t *j) {
    const char *node = json_string_value(json_object_get(j, "node"));
    const char *id = json_string_value(json_object_get(j, "checkpoint"));
    const char *dg = json_string_value(json_object_get(j, "digest"));
    if (!node || !id || !dg || strlen(node) > 63 || strlen(id) > 63 || strlen(dg) > 128)
        return;
    char k[200], v[300];
    snprintf(k, sizeof k, "cp.report/%s/%s", node, id);
    snprintf(v, sizeof v, "%s %s", peer, dg);
    meta_put(cp, k, v);
    snprintf(k, sizeof k, "cp.expect/%s/%s", node, id);
    char *exp = meta_get(cp, k);
    if (exp)
        send_verdict(cp, peer, node, id, exp, dg);
    free(exp);
}

/* Kernel bus subscriber: checkpoint.expect {node, checkpoint, digest} records what the
 * authority expects (a settlement plugin, or an operator through bus_publish). */
static int on_expect(void *arg, const char *topic, const void *data, size_t len) {
    (void)topic;
    struct ado_checkpoints *cp = arg;
    if (!cp->node->bridge)
        return 0;
    json_error_t e;
    json_t *j = json_loadb(data, len, 0, &e);
    const char *node = json_string_value(json_object_get(j, "node"));
    const char *id = json_string_value(json_object_get(j, "checkpoint"));
    const char *dg = json_string_value(json_object_get(j, "digest"));
    if (!node || !id || !dg || strlen(node) > 63 || strlen(id) > 63 || strlen(dg) > 128) {
        json_decref(j);
        return ADO_EINVAL;
    }
    char k[200];
    snprintf(k, sizeof k, "cp.expect/%s/%s", node, id);
    meta_put(cp, k, dg);
    snprintf(k, sizeof k, "cp.report/%s/%s", node, id);
    char *rep = meta_get(cp, k);
    char *sp = rep ? strchr(rep, ' ') : NULL;
    if (sp) {
        *sp = 0;
        send_verdict(cp, rep, node, id, dg, sp + 1);
    }
    free(rep);
    json_decref(j);
    return 0;
}

static void save_status(struct ado_checkpoints *cp) {
    json_t *s = status_obj(cp);
    char *t = s ? json_dumps(s, JSON_COMPACT) : NULL;
    json_decref(s);
    if (t)
        meta_put(cp, "cp.status", t);
    free(t);
}

/* The reporting side: the upper peer answered. */
static void on_verdict(struct ado_checkpoints *cp, const char *peer, json_t *j) {
    struct ado_node *node = cp->node;
    const char *who = json_string_value(json_object_get(j, "node"));
    const char *id = json_string_value(json_object_get(j, "checkpoint"));
    const char *verdict = json_string_value(json_object_get(j, "verdict"));
    if (!who || !id || !verdict || strcmp(who, node->cfg->node_name) != 0 || strlen(id) > 63)
        return;
    if (strcmp(verdict, "agree") == 0) {
        if (strcmp(id, cp->last_agreed) > 0)
            snprintf(cp->last_agreed, sizeof cp->last_agreed, "%s", id);
        const char *div_id = cp->divergence
                                 ? json_string_value(json_object_get(cp->divergence, "checkpoint"))
                                 : NULL;
        if (div_id && strcmp(id, div_id) > 0) {
            cp_log(cp, ADO_LOG_INFO, "checkpoint %s agrees with %s: divergence cleared", id, peer);
            json_decref(cp->divergence);
            cp->divergence = NULL;
        }
    } else {
        cp->diverged_total++;
        json_decref(cp->divergence);
        cp->divergence =
            json_pack("{s:s,s:s,s:O,s:O,s:I}", "checkpoint", id, "peer", peer, "expected",
                      json_object_get(j, "expected"), "reported", json_object_get(j, "reported"),
                      "at_ms", (json_int_t)br_wall_ms());
        cp_log(cp, ADO_LOG_ERROR,
               "DIVERGENCE: the state at checkpoint %s disagrees with %s (the authority): "
               "expected %s, reported %s. Last agreed checkpoint: %s (restore it with adonode "
               "--restore %s --config FILE)",
               id, peer, json_string_value(json_object_get(j, "expected")),
               json_string_value(json_object_get(j, "reported")),
               cp->last_agreed[0] ? cp->last_agreed : "none",
               cp->last_agreed[0] ? cp->last_agreed : "ID");
        if (node->metrics)
            ado_metrics_add(node->metrics, "ado_checkpoint_divergence_total", NULL, 1);
    }
    if (node->metrics)
        ado_metrics_set(node->metrics, "ado_checkpoint_diverged", NULL, cp->divergence ? 1 : 0);
    save_status(cp);
}

void ado_checkpoint_on_message(struct ado_checkpoints *cp, const char *peer, const char *topic,
                               const void *payload, size_t len) {
    json_error_t e;
    json_t *j = json_loadb(payload, len, 0, &e);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    if (strcmp(topic, "checkpoint.digest") == 0)
        on_digest(cp, peer, j);
    else if (strcmp(topic, "checkpoint.verdict") == 0)
        on_verdict(cp, peer, j);
    json_decref(j);
}

json_t *ado_checkpoint_peer_status(struct ado_checkpoints *cp, const char *peer) {
    const char *up = ado_bridge_upper_peer(cp->node->bridge);
    if (!up || strcmp(up, peer) != 0)
        return NULL;
    return status_obj(cp);
}

/* ---- life cycle -------------------------------------------------------------------------------
 */

static void timer_closed(uv_handle_t *h) {
    free(h);
}

int ado_checkpoints_new(struct ado_node *node, struct ado_checkpoints **out,
                        struct ado_diag *diag) {
    (void)diag;
    *out = NULL;
    if (sodium_init() < 0)
        return ADO_EIO;
    struct ado_checkpoints *cp = calloc(1, sizeof *cp);
    if (!cp)
        return ADO_ENOMEM;
    cp->node = node;
    ado_checkpoints_dir_of(node->cfg, cp->dir, sizeof cp->dir);
    struct ado_cnode *c = ado_cnode_get(node->cfg->root, "node.checkpoints.every");
    cp->every_ms = c && c->type > 0 && c->ival > 0 ? (uint64_t)c->ival : 0;
    c = ado_cnode_get(node->cfg->root, "node.checkpoints.keep");
    cp->keep = c && c->type > 0 && c->ival > 0 ? c->ival : 5;
    if (node->rpc) {
        ado_rpc_register(node->rpc, NULL, "node_checkpoint", "admin",
                         "take a checkpoint now (compacted store copy + digests); returns its "
                         "manifest",
                         m_take, node);
        ado_rpc_register(node->rpc, NULL, "node_checkpoints", "reader",
                         "the checkpoints kept, newest last, and the divergence status", m_list,
                         node);
    }
    if (ado_bus_subscribe(node->bus, "checkpoint.expect", NULL, on_expect, cp, &cp->sub_id) == 0)
        cp->subscribed = 1;
    *out = cp;
    return 0;
}

void ado_checkpoints_start(struct ado_checkpoints *cp) {
    /* The status survives restarts. */
    char *s = meta_get(cp, "cp.status");
    if (s) {
        json_error_t e;
        json_t *j = json_loads(s, 0, &e);
        const char *a = json_string_value(json_object_get(j, "last_agreed"));
        const char *r = json_string_value(json_object_get(j, "last_reported"));
        json_t *d = json_object_get(j, "divergence");
        if (a)
            snprintf(cp->last_agreed, sizeof cp->last_agreed, "%s", a);
        if (r)
            snprintf(cp->last_reported, sizeof cp->last_reported, "%s", r);
        if (json_is_object(d))
            cp->divergence = json_incref(d);
        json_decref(j);
        free(s);
        if (cp->node->metrics)
            ado_metrics_set(cp->node->metrics, "ado_checkpoint_diverged", NULL,
                            cp->divergence ? 1 : 0);
    }
    if (!cp->every_ms)
        return;
    cp->timer = calloc(1, sizeof *cp->timer);
    if (!cp->timer)
        return;
    uv_timer_init(cp->node->loop, cp->timer);
    cp->timer->data = cp;
    uv_timer_start(cp->timer, on_tick, cp->every_ms, cp->every_ms);
}

void ado_checkpoints_free(struct ado_checkpoints *cp) {
    if (!cp)
        return;
    if (cp->timer) {
        uv_timer_stop(cp->timer);
        uv_close((uv_handle_t *)cp->timer, timer_closed);
    }
    if (cp->subscribed && cp->node->bus)
        ado_bus_unsubscribe(cp->node->bus, cp->sub_id, NULL);
    json_decref(cp->divergence);
    free(cp);
}

/* ---- restore ----------------------------------------------------------------------------------
 */

int ado_checkpoint_resolve(const struct ado_config *cfg, const char *arg, char *out,
                           size_t outlen) {
    char p[4400];
    snprintf(p, sizeof p, "%s/manifest.json", arg);
    if (access(p, R_OK) == 0) {
        snprintf(out, outlen, "%s", arg);
        return 0;
    }
    char dir[4096];
    ado_checkpoints_dir_of(cfg, dir, sizeof dir);
    snprintf(p, sizeof p, "%s/%s/manifest.json", dir, arg);
    if (!strchr(arg, '/') && access(p, R_OK) == 0) {
        snprintf(out, outlen, "%s/%s", dir, arg);
        return 0;
    }
    return ADO_ENOTFOUND;
}

/* 1 if another process has the LMDB environment in `dir` open (it holds a shared lock on the
 * first byte of lock.mdb, as LMDB does), 0 if not, -1 on error. */
static int env_in_use(const char *dir) {
    char p[4400];
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int busy = fcntl(fd, F_SETLK, &l) < 0 && (errno == EACCES || errno == EAGAIN);
    close(fd); /* drops our lock */
    return busy;
}

static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY);
    if (in < 0)
        return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w <= 0) {
                rc = -1;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    if (n < 0 || fsync(out) < 0)
        rc = -1;
    close(in);
    close(out);
    return rc;
}

/* Move the restored store's bridge sequences past everything this node may have sent since
 * the checkpoint: a floor of wall-clock ms * 1000 (see docs/bridge.md). */
static int set_seq_floor(const char *file, char *err, size_t errlen) {
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    struct stat sb;
    int rc = stat(file, &sb) < 0 ? ENOENT : mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(env, 4096);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env, (size_t)sb.st_size * 2 + (64u << 20));
    if (rc == 0)
        rc = mdb_env_open(env, file, MDB_NOSUBDIR | MDB_NOLOCK, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "@bridge.meta", MDB_CREATE, &dbi);
    if (rc == 0) {
        unsigned char v[8];
        br_be64(v, br_wall_ms() * 1000u);
        MDB_val k = {9, "seq_floor"}, val = {8, v};
        rc = mdb_put(txn, dbi, &k, &val, 0);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    if (rc != 0)
        snprintf(err, errlen, "cannot prepare the restored store: %s", mdb_strerror(rc));
    return rc == 0 ? 0 : ADO_EIO;
}

int ado_checkpoint_restore(const char *checkpoint_dir, const char *data_dir, char *err,
                           size_t errlen) {
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return ADO_EIO;
    }
    json_t *m = read_manifest(checkpoint_dir);
    if (!m) {
        snprintf(err, errlen, "%s is not a checkpoint (no readable manifest.json)", checkpoint_dir);
        return ADO_ENOTFOUND;
    }
    json_t *d;
    int rc = ado_checkpoint_digest(checkpoint_dir, &d, err, errlen);
    if (rc < 0) {
        json_decref(m);
        return rc;
    }
    const char *want = json_string_value(json_object_get(m, "digest"));
    const char *got = json_string_value(json_object_get(d, "digest"));
    int ok = want && got && strcmp(want, got) == 0 &&
             json_equal(json_object_get(m, "plugins"), json_object_get(d, "plugins"));
    if (!ok) {
        snprintf(err, errlen,
                 "checkpoint %s refused: its data does not match its manifest (manifest digest "
                 "%.16s..., data digest %.16s...): tampered or corrupt",
                 checkpoint_dir, want ? want : "none", got ? got : "none");
        json_decref(m);
        json_decref(d);
        return ADO_EPERM;
    }
    json_decref(d);
    if (mkdirs(data_dir) < 0) {
        snprintf(err, errlen, "cannot create data_dir %s: %s", data_dir, strerror(errno));
        json_decref(m);
        return ADO_EIO;
    }
    int busy = env_in_use(data_dir);
    if (busy != 0) {
        snprintf(err, errlen, "%s: %s", data_dir,
                 busy > 0 ? "the store is open in a running node: stop it first"
                          : "cannot check whether the store is in use");
        json_decref(m);
        return ADO_EBUSY;
    }
    char src[4400], tmp[4400], dst[4400], lock[4400];
    snprintf(src, sizeof src, "%s/data.mdb", checkpoint_dir);
    snprintf(tmp, sizeof tmp, "%s/data.mdb.restore", data_dir);
    snprintf(dst, sizeof dst, "%s/data.mdb", data_dir);
    snprintf(lock, sizeof lock, "%s/lock.mdb", data_dir);
    if (copy_file(src, tmp) < 0) {
        snprintf(err, errlen, "cannot copy %s to %s: %s", src, tmp, strerror(errno));
        unlink(tmp);
        json_decref(m);
        return ADO_EIO;
    }
    if ((rc = set_seq_floor(tmp, err, errlen)) < 0 || rename(tmp, dst) < 0) {
        if (rc == 0)
            snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
        unlink(tmp);
        json_decref(m);
        return ADO_EIO;
    }
    unlink(lock); /* its reader table described the old file */
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    json_decref(m);
    return 0;
}
