/* The store: namespaces, group commit, durability callbacks, reopen, map growth. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "store.h"

static struct ado_store *open_at(const char *dir, int64_t map) {
    struct ado_store_opts o = {dir, map, 1, 0};
    struct ado_store *st = NULL;
    char err[256];
    cr_assert_eq(ado_store_open(&o, &st, err, sizeof err), 0, "%s", err);
    return st;
}

/* Two fake owners: the store only compares the pointers and reads ->name. */
static struct ado_plugin owner_a = {.name = "alpha"}, owner_b = {.name = "beta"};

Test(store, each_plugin_only_reaches_its_own_databases) {
    char *dir = th_tmpdir();
    struct ado_store *st = open_at(dir, 0);
    ado_db da, db;
    cr_assert_eq(ado_store_open_db(st, &owner_a, "kv", &da), 0);
    cr_assert_eq(ado_store_open_db(st, &owner_b, "kv", &db), 0);
    cr_assert_neq(da, db, "same name, different plugins: different databases");
    cr_assert_eq(ado_store_put(st, &owner_a, da, "k", 1, "A", 1), 0);
    cr_assert_eq(ado_store_put(st, &owner_b, da, "k", 1, "B", 1), ADO_EPERM);
    const void *v;
    size_t n;
    cr_assert_eq(ado_store_get(st, &owner_b, da, "k", 1, &v, &n), ADO_EPERM);
    cr_assert_eq(ado_store_get(st, &owner_b, db, "k", 1, &v, &n), ADO_ENOTFOUND);
    cr_assert_eq(ado_store_get(st, &owner_a, da, "k", 1, &v, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(*(const char *)v, 'A');
    cr_assert_eq(ado_store_open_db(st, &owner_a, "bad/name", &da), ADO_EINVAL);
    cr_assert_eq(ado_store_get(st, &owner_a, 9999, "k", 1, &v, &n), ADO_EINVAL);
    cr_assert_eq(ado_store_put(st, &owner_a, da, "", 0, "x", 1), ADO_EINVAL);
    ado_store_close(st);
    th_rmrf(dir);
    free(dir);
}

struct dur {
    int calls, status;
    uint64_t commits_seen;
    struct ado_store *st;
};
static void on_dur(void *arg, int status) {
    struct dur *d = arg;
    d->calls++;
    d->status = status;
    struct ado_store_stats s;
    ado_store_stats(d->st, &s);
    d->commits_seen = s.commits;
}

Test(store, a_burst_of_writes_costs_one_commit_and_callbacks_follow_it) {
    char *dir = th_tmpdir();
    struct ado_store *st = open_at(dir, 0);
    ado_db d;
    cr_assert_eq(ado_store_open_db(st, &owner_a, "burst", &d), 0);
    struct ado_store_stats s0, s1;
    ado_store_stats(st, &s0);
    struct dur dd[100];
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%03d", i);
        cr_assert_eq(ado_store_put(st, &owner_a, d, k, strlen(k), &i, sizeof i), 0);
        dd[i] = (struct dur){.st = st};
        cr_assert_eq(ado_store_on_durable(st, on_dur, &dd[i]), 0);
    }
    for (int i = 0; i < 100; i++)
        cr_assert_eq(dd[i].calls, 0, "not durable before the commit");
    cr_assert_eq(ado_store_flush(st), 0);
    ado_store_stats(st, &s1);
    cr_assert_eq(s1.commits - s0.commits, 1, "100 writes, one commit");
    cr_assert_eq(s1.last_batch, 100);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(dd[i].calls, 1);
        cr_assert_eq(dd[i].status, 0);
        cr_assert_eq(dd[i].commits_seen, s1.commits, "called after the commit");
    }
    ado_store_close(st);
    th_rmrf(dir);
    free(dir);
}

Test(store, reopened_store_sees_every_committed_write_and_not_uncommitted_ones) {
    char *dir = th_tmpdir();
    struct ado_store *st = open_at(dir, 0);
    ado_db d;
    cr_assert_eq(ado_store_open_db(st, &owner_a, "persist", &d), 0);
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%05d", i);
        cr_assert_eq(ado_store_put(st, &owner_a, d, k, strlen(k), k, strlen(k)), 0);
        if (i % 100 == 99)
            cr_assert_eq(ado_store_flush(st), 0);
    }
    cr_assert_eq(ado_store_del(st, &owner_a, d, "k00007", 6), 0);
    ado_store_close(st); /* commits what is pending */

    st = open_at(dir, 0);
    cr_assert_eq(ado_store_open_db(st, &owner_a, "persist", &d), 0);
    int count = 0;
    const void *v;
    size_t n;
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%05d", i);
        int rc = ado_store_get(st, &owner_a, d, k, strlen(k), &v, &n);
        if (i == 7) {
            cr_assert_eq(rc, ADO_ENOTFOUND);
            continue;
        }
        cr_assert_eq(rc, 0, "key %s", k);
        cr_assert(n == strlen(k) && memcmp(v, k, n) == 0);
        count++;
    }
    cr_assert_eq(count, 999);
    ado_store_close(st);
    th_rmrf(dir);
    free(dir);
}

struct iter_state {
    int n;
    char first[16], last[16];
};
static int collect(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    (void)val, (void)vlen;
    struct iter_state *s = arg;
    if (s->n == 0)
        snprintf(s->first, sizeof s->first, "%.*s", (int)klen, (const char *)key);
    snprintf(s->last, sizeof s->last, "%.*s", (int)klen, (const char *)key);
    return ++s->n == 5;
}

Test(store, iterates_in_key_order_from_a_start_key_and_stops_on_request) {
    char *dir = th_tmpdir();
    struct ado_store *st = open_at(dir, 0);
    ado_db d;
    ado_store_open_db(st, &owner_a, "iter", &d);
    for (int i = 20; i-- > 0;) {
        char k[8];
        snprintf(k, sizeof k, "k%02d", i);
        ado_store_put(st, &owner_a, d, k, 3, "v", 1);
    }
    struct iter_state s = {0};
    cr_assert_eq(ado_store_iter(st, &owner_a, d, "k07", 3, collect, &s), 0);
    cr_assert_eq(s.n, 5);
    cr_assert_str_eq(s.first, "k07");
    cr_assert_str_eq(s.last, "k11");
    ado_store_close(st);
    th_rmrf(dir);
    free(dir);
}

Test(store, map_full_grows_the_map_instead_of_failing) {
    char *dir = th_tmpdir();
    /* 1 MiB map; write 8 MiB in one turn, then 8 MiB more over several turns. */
    struct ado_store *st = open_at(dir, 1 << 20);
    ado_db d;
    cr_assert_eq(ado_store_open_db(st, &owner_a, "big", &d), 0);
    static char val[8192];
    memset(val, 'x', sizeof val);
    for (int i = 0; i < 2048; i++) {
        char k[16];
        snprintf(k, sizeof k, "b%06d", i);
        cr_assert_eq(ado_store_put(st, &owner_a, d, k, strlen(k), val, sizeof val), 0, "put %d", i);
        if (i == 1023 || i == 1500)
            cr_assert_eq(ado_store_flush(st), 0);
    }
    cr_assert_eq(ado_store_flush(st), 0);
    struct ado_store_stats s;
    ado_store_stats(st, &s);
    cr_assert_gt(s.map_grows, 0, "the map grew");
    cr_assert_geq(s.map_size, (uint64_t)16 << 20);
    ado_store_close(st);
    /* Everything is there after reopening with the small initial size. */
    st = open_at(dir, 1 << 20);
    cr_assert_eq(ado_store_open_db(st, &owner_a, "big", &d), 0);
    const void *v;
    size_t n;
    cr_assert_eq(ado_store_get(st, &owner_a, d, "b000000", 7, &v, &n), 0);
    cr_assert_eq(ado_store_get(st, &owner_a, d, "b002047", 7, &v, &n), 0);
    cr_assert_eq(n, sizeof val);
    ado_store_close(st);
    th_rmrf(dir);
    free(dir);
}

Test(store, open_fails_clearly_on_an_unusable_folder) {
    struct ado_store_opts o = {"/proc/version/nope", 0, 1, 0};
    struct ado_store *st = NULL;
    char err[256] = "";
    cr_assert_lt(ado_store_open(&o, &st, err, sizeof err), 0);
    cr_assert_null(st);
    cr_assert(strstr(err, "/proc/version/nope"), "message names the folder: %s", err);
}
