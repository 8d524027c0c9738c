/* bench_bus: the kernel's figures from issue 2.
 *   bench_bus c   [N]  events/s from ado_bus_publish to one C subscriber
 *   bench_bus lua [N]  events/s to one Lua subscriber (a real Lua plugin in a real node)
 *   bench_bus startup [RUNS]  adonode start-up time with 10 plugins (exec to "running")
 *   bench_bus rss       resident memory of an idle node (the embedded default chain)
 * Every figure is printed on one line as `name value unit`. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "node.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_cb(void *arg, const char *topic, const void *data, size_t len) {
    (void)topic, (void)data, (void)len;
    ++*(uint64_t *)arg;
    return 0;
}

static int bench_c(long n) {
    struct ado_bus *bus = ado_bus_new();
    uint64_t got = 0;
    ado_bus_subscribe(bus, "trn.view", NULL, count_cb, &got, NULL);
    /* A few other subscriptions that do not match, as in a real node. */
    for (int i = 0; i < 8; i++) {
        char pat[32];
        snprintf(pat, sizeof pat, "other%d.>", i);
        ado_bus_subscribe(bus, pat, NULL, count_cb, &got, NULL);
    }
    const char payload[] = "{\"content\":\"c1\",\"viewer\":\"0xabc\"}";
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        ado_bus_publish(bus, "trn.view", payload, sizeof payload - 1);
    double dt = now_s() - t0;
    if (got != (uint64_t)n) {
        fprintf(stderr, "delivered %llu of %ld\n", (unsigned long long)got, n);
        return 1;
    }
    printf("bus_c_events_per_s %.0f events/s (%ld events in %.3f s)\n", n / dt, n, dt);
    ado_bus_free(bus);
    return 0;
}

static int bench_lua(long n) {
    char dir[] = "/tmp/ado-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[512], yaml[2048];
    snprintf(path, sizeof path, "%s/chain.yaml", dir);
    snprintf(yaml, sizeof yaml,
             "node:\n  name: bench\n  data_dir: %s/data\n  log: {level: warn}\n"
             "  rpc: {listen: \"off\"}\nplugins:\n"
             "  - {name: bench_sub, path: %s/bench/lua/bench_sub.lua,"
             " limits: {instructions: 1000000}}\n",
             dir, ADO_SOURCE_DIR);
    FILE *f = fopen(path, "w");
    fputs(yaml, f);
    fclose(f);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ado_diag diag;
    ado_diag_init(&diag);
    struct ado_config *cfg;
    struct ado_node *node = ado_node_new(&loop);
    if (ado_config_load(path, &cfg, &diag) < 0 || ado_node_load(node, cfg, &diag) < 0 ||
        ado_node_start(node, &diag) < 0) {
        ado_diag_print(&diag, stderr);
        return 1;
    }
    struct ado_plugin *p = node->plugins[0];
    const char payload[] = "{\"content\":\"c1\",\"viewer\":\"0xabc\"}";
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        ado_bus_publish(node->bus, "bench.lua", payload, sizeof payload - 1);
    double dt = now_s() - t0;
    if (p->failures_total) {
        fprintf(stderr, "Lua subscriber failed %llu times\n",
                (unsigned long long)p->failures_total);
        return 1;
    }
    printf("bus_lua_events_per_s %.0f events/s (%ld events in %.3f s, %llu calls)\n", n / dt, n, dt,
           (unsigned long long)p->calls_total);
    ado_node_stop(node);
    ado_node_free(node);
    ado_config_free(cfg);
    ado_diag_fini(&diag);
    uv_loop_close(&loop);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}

/* Start adonode on `config` in `dir`; wait for "running" on its stderr. Returns the pid and
 * the seconds it took, or -1. */
static pid_t start_node(const char *dir, const char *config, double *secs) {
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(127);
        dup2(fds[1], 2);
        close(fds[0]);
        if (config)
            execl(ADO_BUILD_DIR "/core/adonode", "adonode", "--config", config, (char *)NULL);
        else
            execl(ADO_BUILD_DIR "/core/adonode", "adonode", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[65536];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        ssize_t r = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
        if (strstr(buf, "running")) {
            *secs = now_s() - t0;
            close(fds[0]);
            return pid;
        }
    }
    close(fds[0]);
    fprintf(stderr, "node did not start:\n%s\n", buf);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench_startup(int runs) {
    char dir[] = "/tmp/ado-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[512];
    snprintf(path, sizeof path, "%s/chain.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "node:\n  name: startup\n  data_dir: ./data\n  log: {level: info}\n"
               "  rpc: {listen: \"127.0.0.1:0\"}\nplugins:\n");
    for (int i = 0; i < 5; i++)
        fprintf(f, "  - {name: hello_c%d, path: hello_c}\n", i);
    /* Five Lua plugins, each with a subscription, a timer and its own kv database. */
    for (int i = 0; i < 5; i++) {
        fprintf(f, "  - {name: lua%d, path: ./lua%d.lua}\n", i, i);
        char lp[600];
        snprintf(lp, sizeof lp, "%s/lua%d.lua", dir, i);
        FILE *l = fopen(lp, "w");
        fprintf(l,
                "return { name = 'lua%d', version = '1.0.0',\n"
                "  start = function()\n"
                "    ado.kv.put('started', tostring(ado.wall_ms()))\n"
                "    ado.subscribe('hello.tick', function(t, d) end)\n"
                "    ado.every(10000, function() end)\n"
                "  end }\n",
                i);
        fclose(l);
    }
    fclose(f);
    double *t = calloc((size_t)runs, sizeof *t);
    for (int i = 0; i < runs; i++) {
        pid_t pid = start_node(dir, "chain.yaml", &t[i]);
        if (pid < 0)
            return 1;
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    printf("startup_10_plugins_ms median %.1f ms, min %.1f ms, max %.1f ms (%d runs, exec to "
           "\"running\")\n",
           t[runs / 2] * 1e3, t[0] * 1e3, t[runs - 1] * 1e3, runs);
    free(t);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}

static int bench_rss(void) {
    char dir[] = "/tmp/ado-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    double secs;
    pid_t pid = start_node(dir, NULL, &secs);
    if (pid < 0)
        return 1;
    usleep(500 * 1000); /* idle */
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long rss_kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &rss_kb) == 1)
            break;
    if (f)
        fclose(f);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    printf("idle_rss %.1f MiB (embedded default chain: hello_c, hello_lua, RPC on)\n",
           rss_kb / 1024.0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 && rss_kb > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    long n = argc > 2 ? atol(argv[2]) : 0;
    int rc = 0;
    if (!strcmp(what, "c") || !strcmp(what, "all"))
        rc |= bench_c(n ? n : 20000000);
    if (!strcmp(what, "lua") || !strcmp(what, "all"))
        rc |= bench_lua(n ? n : 2000000);
    if (!strcmp(what, "startup") || !strcmp(what, "all"))
        rc |= bench_startup(n ? (int)n : 21);
    if (!strcmp(what, "rss") || !strcmp(what, "all"))
        rc |= bench_rss();
    return rc;
}
