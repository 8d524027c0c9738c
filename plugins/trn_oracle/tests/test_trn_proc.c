/* trn_oracle in real adonode processes: the example chain passes --check-config, and a node
 * killed -9 at several points of an epoch close loses nothing and settles nothing twice (the
 * outbox holds exactly one submitRoot and one publishChunk per chunk for every epoch). */
#include "ado_test_net.h"
#include <sys/prctl.h>
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trn_test.h"

#define ADONODE ADO_BUILD_DIR "/core/adonode"
#define TOKEN   "trn-admin-token-0123456789"

/* Send one JSON-RPC request over HTTP; returns the socket (the answer not read yet). */
static int rpc_send(int port, const char *method, const char *params) {
    int fd = ado_test_dial(port, 20);
    if (fd < 0)
        return -1;
    char body[2048], req[2600];
    int bl =
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}", method, params);
    int n = snprintf(req, sizeof req,
                     "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                     "\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                     bl, body);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The response object of a request on fd, or NULL (connection lost). */
static json_t *rpc_read(int fd) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    buf[len] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    json_t *v = sep ? json_loads(sep + 4, 0, NULL) : NULL;
    free(buf);
    return v;
}

static json_t *rpc(int port, const char *method, const char *params) {
    int fd = rpc_send(port, method, params);
    return fd < 0 ? NULL : rpc_read(fd);
}

static json_t *rpc_result(int port, const char *method, const char *params) {
    json_t *v = rpc(port, method, params);
    json_t *r = json_object_get(v, "result");
    char *s = v ? json_dumps(v, 0) : strdup("(no answer)");
    cr_assert(r, "%s %s: %s", method, params, s);
    free(s);
    json_incref(r);
    json_decref(v);
    return r;
}

struct proc {
    pid_t pid;
    int port;
    char dir[256];
};

static void proc_start(struct proc *p) {
    char logp[300], cfg[300];
    snprintf(cfg, sizeof cfg, "%s/chain.yaml", p->dir);
    snprintf(logp, sizeof logp, "%s/node.log", p->dir);
    p->pid = fork();
    cr_assert(p->pid >= 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test never leaves a node behind */
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(ADONODE, ADONODE, "--config", cfg, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        json_t *v = rpc(p->port, "trn_epoch", "{}");
        if (json_object_get(v, "result")) {
            json_decref(v);
            return;
        }
        json_decref(v);
        int st;
        cr_assert_neq(waitpid(p->pid, &st, WNOHANG), p->pid, "adonode exited (see %s)", logp);
        usleep(10000);
    }
    cr_assert_fail("adonode did not answer");
}

static void proc_kill9(struct proc *p) {
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

static long long jint(json_t *o, const char *k) {
    return (long long)json_integer_value(json_object_get(o, k));
}

Test(trn_proc, a_kill_9_in_the_middle_of_a_close_loses_nothing_and_settles_nothing_twice,
     .timeout = 120) {
    struct proc p = {0};
    snprintf(p.dir, sizeof p.dir, "/tmp/trn-proc-XXXXXX");
    cr_assert(mkdtemp(p.dir));
    p.port = ado_test_free_port();
    char yaml[4096];
    /* The L2 peer uses the kernel's fake loop transport pointed at a node that does not
     * exist: messages stay in the outbox, where we count them. */
    snprintf(yaml, sizeof yaml,
             "node:\n  name: trn-crash\n  data_dir: %s/data\n  log: {level: info}\n"
             "  rpc:\n    listen: 127.0.0.1:%d\n    anonymous: reader\n"
             "    tokens: [{name: ops, token: " TOKEN ", roles: [admin, writer, reader]}]\n"
             "plugins:\n"
             "  - {name: fx_loop_transport, path: %s/tests/fixtures/bridge/fx_loop_transport.so}\n"
             "  - name: trn\n    path: %s\n    config:\n"
             "      treasury: \"" TREASURY "\"\n"
             "      epoch: {period: 24h, first: 1}\n"
             "      rates: {view_reward: \"10\"}\n"
             "      gas: {per_operation: \"1\", l2_fee_per_tx: \"3\"}\n"
             "      l2: {peer: l2, submit: true, chunk_size: 1KiB}\n"
             "      tuning: {close_delay: 300ms, compression_quality: 1}\n"
             "bridge:\n  peers:\n    - {name: l2, layer: L2, transport: fxloop, "
             "address: \"fx://nowhere\", retry: {attempts: 100, backoff: 10s}}\n",
             p.dir, p.port, ADO_BUILD_DIR, TRN_SO);
    free(th_write(p.dir, "chain.yaml", yaml));
    proc_start(&p);
    json_decref(rpc_result(p.port, "bus_publish",
                           "{\"topic\":\"bridge.in.l2.Deposited\",\"data\":{\"tx\":\"0x01\","
                           "\"log_index\":0,\"args\":{\"account\":\"" TREASURY
                           "\",\"amount\":\"100000000\"}}}"));
    /* Kill points: just after the request (before or at the freeze), while the tree builds on
     * the worker (close_delay 300 ms), and around the commit. */
    static const int kill_after_ms[] = {0, 150, 290, 330, 600};
    long long acked = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 40; i++) {
            char q[200];
            snprintf(q, sizeof q, "{\"content\":\"r%dc%d\",\"creator\":\"0x%040x\"}", round, i,
                     round * 1000 + i + 1);
            json_decref(rpc_result(p.port, "trn_registerContent", q));
            snprintf(q, sizeof q, "{\"content\":\"r%dc%d\",\"viewer\":\"" ALICE "\"}", round, i);
            json_decref(rpc_result(p.port, "trn_view", q));
            acked += 2;
        }
        int fd = rpc_send(p.port, "trn_closeEpoch", "{}");
        cr_assert(fd >= 0);
        usleep((useconds_t)kill_after_ms[round] * 1000);
        proc_kill9(&p);
        close(fd);
        proc_start(&p);
    }
    /* Let every interrupted close finish after the last restart. */
    json_t *open = NULL;
    for (int i = 0; i < 500; i++) {
        json_decref(open);
        open = rpc_result(p.port, "trn_epoch", "{}");
        uint64_t cur = (uint64_t)jint(open, "epoch");
        json_t *prev = cur > 1 ? rpc(p.port, "trn_epoch", "{\"epoch\":0}") : NULL;
        json_decref(prev);
        char q[64];
        snprintf(q, sizeof q, "{\"epoch\":%llu}", (unsigned long long)(cur - 1));
        json_t *last = cur > 1 ? rpc(p.port, "trn_epoch", q) : NULL;
        const char *st =
            json_string_value(json_object_get(json_object_get(last, "result"), "status"));
        int done = cur == 1 || (st && strcmp(st, "submitted") == 0);
        json_decref(last);
        if (done)
            break;
        usleep(20000);
    }
    uint64_t cur = (uint64_t)jint(open, "epoch");
    /* Nothing lost: every acknowledged op is in exactly one epoch (closed or open). */
    long long ops = jint(open, "ops"), messages = 0;
    for (uint64_t e = 1; e < cur; e++) {
        char q[64];
        snprintf(q, sizeof q, "{\"epoch\":%llu}", (unsigned long long)e);
        json_t *r = rpc_result(p.port, "trn_epoch", q);
        cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "submitted");
        cr_assert_eq(jint(r, "messages_sent"), 1 + jint(r, "chunks"));
        cr_assert_geq(jint(r, "chunks"), 1);
        ops += jint(r, "ops");
        messages += jint(r, "messages_sent");
        json_decref(r);
    }
    cr_assert_eq(ops, acked, "ops in epochs %lld, acknowledged %lld", ops, acked);
    cr_assert_geq(cur, 3, "at least some closes survived their kill (epoch %llu open)",
                  (unsigned long long)cur);
    /* Nothing settled twice: the outbox got exactly those messages, once each. */
    json_t *peers = rpc_result(p.port, "bridge_peers", "{}");
    json_t *l2 = json_array_get(peers, 0);
    cr_assert_eq(jint(l2, "next_seq") - 1, messages, "outbox seq %lld vs %lld messages",
                 jint(l2, "next_seq") - 1, messages);
    json_decref(peers);
    /* The ledger still reconciles (and treasury paid the L2 fees): one more close works. */
    json_t *c = rpc_result(p.port, "trn_closeEpoch", "{}");
    cr_assert_str_eq(json_string_value(json_object_get(c, "status")), "submitted");
    json_decref(c);
    json_decref(open);
    proc_kill9(&p);
    /* At least one close was interrupted on the worker and resumed from the store. */
    char logp[300], *log;
    snprintf(logp, sizeof logp, "%s/node.log", p.dir);
    FILE *f = fopen(logp, "r");
    cr_assert(f);
    log = calloc(1, 1 << 22);
    size_t n = fread(log, 1, (1 << 22) - 1, f);
    fclose(f);
    log[n] = 0;
    cr_assert(strstr(log, "was closing when the node stopped"), "no close was resumed");
    free(log);
    th_rmrf(p.dir);
}

Test(trn_proc, the_example_trn_chain_passes_check_config) {
    char so[512];
    snprintf(so, sizeof so, "%s/plugins/evm_l2.so", ADO_BUILD_DIR);
    if (access(so, R_OK) != 0)
        cr_skip_test("plugins/evm_l2 is not built (%s missing): the example names it", so);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "TRN_ORACLE_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d "
             "TRN_ADMIN_TOKEN=a TRN_APP_TOKEN=b ADO_PLUGIN_PATH=%s/plugins %s --check-config "
             "%s/examples/chains/trn.yaml > /dev/null 2>&1",
             ADO_BUILD_DIR, ADONODE, ADO_SOURCE_DIR);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}
