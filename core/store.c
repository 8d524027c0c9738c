/* One LMDB environment; per-plugin named databases; one write transaction per loop turn.
 *
 * Every write of the turn is also appended to an in-memory log so that MDB_MAP_FULL (from a
 * put or from the commit) is handled by aborting, doubling the map, and replaying the turn.
 * The map also grows ahead of time when a turn starts with the data file more than 75%
 * full. Durable callbacks run after the commit that covers the writes made before them. */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ado/errors.h"
#include "node.h"

#define KEY_MAX 511

struct dbent {
    char *name; /* LMDB name: "<plugin>/<name>" or "@<name>" */
    MDB_dbi dbi;
    struct ado_plugin *owner;
};

struct oplog {
    int del;
    ado_db db;
    void *key, *val;
    size_t klen, vlen;
};

struct durable {
    ado_store_durable_cb cb;
    void *arg;
};

struct ado_store {
    MDB_env *env;
    MDB_txn *txn;       /* the turn's write transaction, or NULL */
    uint64_t txn_epoch; /* bumps when txn is replaced (replay), to re-seek cursors */
    struct dbent *dbs;
    size_t ndbs, capdbs;
    struct oplog *ops;
    size_t nops, capops;
    struct durable *dur;
    size_t ndur, capdur;
    size_t mapsize;
    struct ado_store_stats stats;
};

static int map_err(int rc) {
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return ADO_ENOTFOUND;
    case MDB_MAP_FULL:
        return ADO_ELIMIT;
    case MDB_BAD_VALSIZE:
        return ADO_EINVAL;
    case ENOMEM:
        return ADO_ENOMEM;
    default:
        return ADO_EIO;
    }
}

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int ado_store_open(const struct ado_store_opts *opts, struct ado_store **out, char *err,
                   size_t errlen) {
    *out = NULL;
    struct ado_store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return ADO_ENOMEM;
    }
    if (mkdir(opts->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data_dir %s: %s", opts->dir, strerror(errno));
        free(st);
        return ADO_EIO;
    }
    st->mapsize = opts->map_size > 0 ? (size_t)opts->map_size : (size_t)64 << 20;
    int rc = mdb_env_create(&st->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(st->env, opts->max_dbs ? opts->max_dbs : 256);
    if (rc == 0)
        rc = mdb_env_set_mapsize(st->env, st->mapsize);
    unsigned flags = MDB_NOTLS | (opts->sync ? 0 : MDB_NOSYNC);
    if (rc == 0)
        rc = mdb_env_open(st->env, opts->dir, flags, 0600);
    if (rc != 0) {
        snprintf(err, errlen, "cannot open store in %s: %s", opts->dir, mdb_strerror(rc));
        if (st->env)
            mdb_env_close(st->env);
        free(st);
        return ADO_EIO;
    }
    /* The environment may be larger than asked (an earlier run grew it). */
    MDB_envinfo info;
    if (mdb_env_info(st->env, &info) == 0 && info.me_mapsize > st->mapsize)
        st->mapsize = info.me_mapsize;
    st->stats.map_size = st->mapsize;
    *out = st;
    return 0;
}

static void ops_clear(struct ado_store *st) {
    for (size_t i = 0; i < st->nops; i++) {
        free(st->ops[i].key);
        free(st->ops[i].val);
    }
    st->nops = 0;
}

static void run_durable(struct ado_store *st, int status) {
    /* Callbacks may register new ones: take the current list first. */
    struct durable *list = st->dur;
    size_t n = st->ndur;
    st->dur = NULL;
    st->ndur = st->capdur = 0;
    for (size_t i = 0; i < n; i++)
        list[i].cb(list[i].arg, status);
    free(list);
}

void ado_store_close(struct ado_store *st) {
    if (!st)
        return;
    ado_store_flush(st);
    if (st->ndur)
        run_durable(st, ADO_ECLOSED);
    for (size_t i = 0; i < st->ndbs; i++)
        free(st->dbs[i].name);
    free(st->dbs);
    ops_clear(st);
    free(st->ops);
    mdb_env_close(st->env);
    free(st);
}

static int grow(struct ado_store *st) {
    size_t ns = st->mapsize * 2;
    int rc = mdb_env_set_mapsize(st->env, ns);
    if (rc != 0)
        return map_err(rc);
    st->mapsize = ns;
    st->stats.map_grows++;
    st->stats.map_size = ns;
    return 0;
}

/* Grow ahead of time when the data file is more than 75% of the map. No txn is open. */
static void grow_if_close(struct ado_store *st) {
    MDB_envinfo info;
    MDB_stat s;
    if (mdb_env_info(st->env, &info) != 0 || mdb_env_stat(st->env, &s) != 0)
        return;
    size_t used = ((size_t)info.me_last_pgno + 1) * s.ms_psize;
    if (used > st->mapsize / 4 * 3)
        grow(st);
}

static int begin(struct ado_store *st) {
    if (st->txn)
        return 0;
    grow_if_close(st);
    int rc = mdb_txn_begin(st->env, NULL, 0, &st->txn);
    if (rc != 0) {
        st->txn = NULL;
        return map_err(rc);
    }
    st->txn_epoch++;
    return 0;
}

static int apply(struct ado_store *st, const struct oplog *op) {
    MDB_val k = {op->klen, op->key}, v = {op->vlen, op->val};
    MDB_dbi dbi = st->dbs[op->db].dbi;
    int rc = op->del ? mdb_del(st->txn, dbi, &k, NULL) : mdb_put(st->txn, dbi, &k, &v, 0);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The txn hit MDB_MAP_FULL: abort it (if still alive), grow, and replay the log. */
static int regrow_and_replay(struct ado_store *st, int txn_alive) {
    for (int attempt = 0; attempt < 16; attempt++) {
        if (txn_alive && st->txn)
            mdb_txn_abort(st->txn);
        st->txn = NULL;
        int rc = grow(st);
        if (rc < 0)
            return rc;
        rc = mdb_txn_begin(st->env, NULL, 0, &st->txn);
        if (rc != 0) {
            st->txn = NULL;
            return map_err(rc);
        }
        st->txn_epoch++;
        txn_alive = 1;
        rc = 0;
        for (size_t i = 0; i < st->nops && rc == 0; i++)
            rc = apply(st, &st->ops[i]);
        if (rc == 0)
            return 0;
        if (rc != MDB_MAP_FULL)
            return map_err(rc);
    }
    return ADO_ELIMIT;
}

static int check_db(struct ado_store *st, struct ado_plugin *owner, ado_db db) {
    if (db >= st->ndbs)
        return ADO_EINVAL;
    if (st->dbs[db].owner != owner)
        return ADO_EPERM;
    return 0;
}

static int name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

int ado_store_open_db(struct ado_store *st, struct ado_plugin *owner, const char *name,
                      ado_db *db) {
    if (!name_ok(name))
        return ADO_EINVAL;
    char full[160];
    if (owner)
        snprintf(full, sizeof full, "%s/%s", owner->name, name);
    else
        snprintf(full, sizeof full, "@%s", name);
    for (size_t i = 0; i < st->ndbs; i++) {
        if (strcmp(st->dbs[i].name, full) == 0) {
            if (st->dbs[i].owner != owner)
                return ADO_EPERM;
            *db = (ado_db)i;
            return 0;
        }
    }
    if (st->ndbs == st->capdbs) {
        size_t ncap = st->capdbs ? st->capdbs * 2 : 16;
        struct dbent *nd = realloc(st->dbs, ncap * sizeof *nd);
        if (!nd)
            return ADO_ENOMEM;
        st->dbs = nd;
        st->capdbs = ncap;
    }
    /* Open in a transaction of its own, so the handle outlives any later abort. */
    int rc = ado_store_flush(st);
    if (rc < 0)
        return rc;
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return map_err(rc);
    MDB_dbi dbi;
    rc = mdb_dbi_open(txn, full, MDB_CREATE, &dbi);
    if (rc == MDB_MAP_FULL) {
        mdb_txn_abort(txn);
        if ((rc = grow(st)) < 0)
            return rc;
        return ado_store_open_db(st, owner, name, db);
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0)
        return rc == MDB_DBS_FULL ? ADO_ELIMIT : map_err(rc);
    char *copy = strdup(full);
    if (!copy)
        return ADO_ENOMEM;
    st->dbs[st->ndbs] = (struct dbent){copy, dbi, owner};
    *db = (ado_db)st->ndbs++;
    return 0;
}

int ado_store_get(struct ado_store *st, struct ado_plugin *owner, ado_db db, const void *key,
                  size_t klen, const void **val, size_t *vlen) {
    int rc = check_db(st, owner, db);
    if (rc < 0)
        return rc;
    if (!key || klen == 0 || klen > KEY_MAX)
        return ADO_EINVAL;
    if ((rc = begin(st)) < 0)
        return rc;
    MDB_val k = {klen, (void *)key}, v;
    rc = mdb_get(st->txn, st->dbs[db].dbi, &k, &v);
    if (rc != 0)
        return map_err(rc);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return 0;
}

static int write_op(struct ado_store *st, struct ado_plugin *owner, int del, ado_db db,
                    const void *key, size_t klen, const void *val, size_t vlen) {
    int rc = check_db(st, owner, db);
    if (rc < 0)
        return rc;
    if (!key || klen == 0 || klen > KEY_MAX || (!del && vlen && !val))
        return ADO_EINVAL;
    if ((rc = begin(st)) < 0)
        return rc;
    if (st->nops == st->capops) {
        size_t ncap = st->capops ? st->capops * 2 : 64;
        struct oplog *no = realloc(st->ops, ncap * sizeof *no);
        if (!no)
            return ADO_ENOMEM;
        st->ops = no;
        st->capops = ncap;
    }
    struct oplog op = {del, db, malloc(klen), NULL, klen, vlen};
    if (!del)
        op.val = malloc(vlen ? vlen : 1);
    if (!op.key || (!del && !op.val)) {
        free(op.key);
        free(op.val);
        return ADO_ENOMEM;
    }
    memcpy(op.key, key, klen);
    if (!del && vlen)
        memcpy(op.val, val, vlen);
    st->ops[st->nops++] = op;
    rc = apply(st, &op);
    if (rc == MDB_MAP_FULL)
        rc = regrow_and_replay(st, 1);
    else
        rc = map_err(rc);
    if (rc < 0) {
        /* Not applied: forget it so a later replay does not resurrect it. The txn may
         * be unusable now (LMDB marks it broken): the commit will report that. */
        st->nops--;
        free(op.key);
        free(op.val);
        return rc;
    }
    st->stats.writes++;
    return 0;
}

int ado_store_put(struct ado_store *st, struct ado_plugin *owner, ado_db db, const void *key,
                  size_t klen, const void *val, size_t vlen) {
    return write_op(st, owner, 0, db, key, klen, val, vlen);
}

int ado_store_del(struct ado_store *st, struct ado_plugin *owner, ado_db db, const void *key,
                  size_t klen) {
    return write_op(st, owner, 1, db, key, klen, NULL, 0);
}

int ado_store_iter(struct ado_store *st, struct ado_plugin *owner, ado_db db, const void *start,
                   size_t slen, ado_iter_fn fn, void *arg) {
    int rc = check_db(st, owner, db);
    if (rc < 0)
        return rc;
    if (!fn || (start && (slen == 0 || slen > KEY_MAX)))
        return ADO_EINVAL;
    if ((rc = begin(st)) < 0)
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(st->txn, st->dbs[db].dbi, &cur);
    if (rc != 0)
        return map_err(rc);
    uint64_t epoch = st->txn_epoch;
    unsigned char last[KEY_MAX];
    size_t lastlen = 0;
    MDB_val k = {slen, (void *)start}, v;
    rc =
        start ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        memcpy(last, k.mv_data, k.mv_size);
        lastlen = k.mv_size;
        if (fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size) != 0)
            break;
        if (st->txn_epoch != epoch) {
            /* The callback's write replaced the transaction: re-seek after `last`. */
            if ((rc = mdb_cursor_open(st->txn, st->dbs[db].dbi, &cur)) != 0)
                return map_err(rc);
            epoch = st->txn_epoch;
            k = (MDB_val){lastlen, last};
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (rc == 0 && k.mv_size == lastlen && memcmp(k.mv_data, last, lastlen) == 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (st->txn_epoch == epoch)
        mdb_cursor_close(cur);
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : map_err(rc);
}

int ado_store_on_durable(struct ado_store *st, ado_store_durable_cb cb, void *arg) {
    if (!cb)
        return ADO_EINVAL;
    if (st->ndur == st->capdur) {
        size_t ncap = st->capdur ? st->capdur * 2 : 32;
        struct durable *nd = realloc(st->dur, ncap * sizeof *nd);
        if (!nd)
            return ADO_ENOMEM;
        st->dur = nd;
        st->capdur = ncap;
    }
    st->dur[st->ndur++] = (struct durable){cb, arg};
    return 0;
}

int ado_store_flush(struct ado_store *st) {
    int status = 0;
    if (st->txn) {
        uint64_t t0 = now_us();
        size_t batch = st->nops;
        int rc = mdb_txn_commit(st->txn);
        st->txn = NULL;
        if (rc == MDB_MAP_FULL) {
            /* The commit freed the txn. Grow, replay, commit again. */
            rc = regrow_and_replay(st, 0);
            if (rc == 0) {
                rc = mdb_txn_commit(st->txn);
                st->txn = NULL;
            }
        }
        status = map_err(rc);
        if (rc > 0 || rc < 0) {
            if (st->txn) {
                mdb_txn_abort(st->txn);
                st->txn = NULL;
            }
            st->stats.commit_errors++;
        } else if (batch) {
            uint64_t dt = now_us() - t0;
            st->stats.commits++;
            st->stats.last_commit_us = dt;
            st->stats.commit_us_total += dt;
            st->stats.last_batch = batch;
        }
        ops_clear(st);
    }
    if (st->ndur)
        run_durable(st, status);
    return status;
}

int ado_store_pending(const struct ado_store *st) {
    return st->txn != NULL || st->ndur > 0;
}

void ado_store_stats(const struct ado_store *st, struct ado_store_stats *out) {
    *out = st->stats;
}

int ado_store_copy(struct ado_store *st, const char *path) {
    int rc = ado_store_flush(st);
    if (rc < 0)
        return rc;
    rc = mdb_env_copy2(st->env, path, MDB_CP_COMPACT);
    return map_err(rc);
}
