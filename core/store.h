/* Kernel-private: one LMDB environment under data_dir, named databases per plugin, group
 * commit per loop turn. Owned by the loop thread.
 *
 * The first store access of a loop turn opens one write transaction; every read and write
 * of the turn goes through it; ado_store_flush (called by the loop when the turn ends)
 * commits it with one fsync and then runs the durable callbacks. Every write is also kept
 * in an in-memory log of the turn so that MDB_MAP_FULL is handled by growing the map and
 * replaying the turn, not by failing. */
#ifndef ADO_CORE_STORE_H
#define ADO_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ado/plugin.h"

struct ado_store;
struct ado_plugin;

struct ado_store_opts {
    const char *dir;  /* created if missing (0700) */
    int64_t map_size; /* initial map size in bytes (default 64 MiB); grows as needed */
    int sync;         /* 1: fsync on each commit (default); 0: MDB_NOSYNC (tests only) */
    unsigned max_dbs; /* default 256 */
};

int ado_store_open(const struct ado_store_opts *opts, struct ado_store **out, char *err,
                   size_t errlen);
/* Commits what is pending, then closes. */
void ado_store_close(struct ado_store *st);

/* Open (creating) database `name` of `owner` ("<owner>/<name>" in LMDB). The handle is
 * only usable by that owner (ADO_EPERM otherwise). owner NULL: a kernel database, named
 * "@<name>". */
int ado_store_open_db(struct ado_store *st, struct ado_plugin *owner, const char *name, ado_db *db);
int ado_store_get(struct ado_store *st, struct ado_plugin *owner, ado_db db, const void *key,
                  size_t klen, const void **val, size_t *vlen);
int ado_store_put(struct ado_store *st, struct ado_plugin *owner, ado_db db, const void *key,
                  size_t klen, const void *val, size_t vlen);
int ado_store_del(struct ado_store *st, struct ado_plugin *owner, ado_db db, const void *key,
                  size_t klen);
int ado_store_iter(struct ado_store *st, struct ado_plugin *owner, ado_db db, const void *start,
                   size_t slen, ado_iter_fn fn, void *arg);

typedef void (*ado_store_durable_cb)(void *arg, int status);
/* Run cb(arg, status) after the next commit (immediately at the next flush if nothing is
 * pending). */
int ado_store_on_durable(struct ado_store *st, ado_store_durable_cb cb, void *arg);

/* Commit the turn's transaction (if any) and run durable callbacks. Returns 0 or the
 * commit's error (the callbacks got it too). */
int ado_store_flush(struct ado_store *st);
/* 1 if a transaction or durable callbacks are pending. */
int ado_store_pending(const struct ado_store *st);

struct ado_store_stats {
    uint64_t commits, commit_errors, writes, map_grows;
    uint64_t map_size, last_commit_us, last_batch;
    uint64_t commit_us_total;
};
void ado_store_stats(const struct ado_store *st, struct ado_store_stats *out);

/* Copy the environment, compacted and consistent (LMDB's own copy), into the folder `path`,
 * which must exist and be empty. */
int ado_store_copy(struct ado_store *st, const char *path);

#endif
