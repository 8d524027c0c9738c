/* bench_evm: the C signer, and signed transactions delivered to a real anvil by evm_l2 versus
 * an ethers.js script (bench/evm_ethers/send.mjs) in the same run, on the same anvil.
 *
 *   bench_evm [N=2000] [WINDOW=4096] [http|ws]
 *
 * 1. signatures/s: ado_eth_sign_hash, and full EIP-1559 signing (RLP + Keccak + sign) of a
 *    typical call, one thread.
 * 2. anvil with interval mining (--block-time 1); an in-process node with evm_l2 and the
 *    bridge peer `l2` (confirmations 1). N messages go into the outbox at once; measured:
 *    until every transaction is in anvil's pool (broadcast), and until the bridge has every
 *    ack (mined with 1 confirmation). The bridge window is set to WINDOW (default kernel
 *    window: 256 in flight).
 * 3. the ethers script sends N of the same transactions (same calldata, gas limit and fee
 *    policy; another account) to the same anvil; measured the same way.
 * Prints the figures and the ratio. Needs contracts/node_modules (anvil) and
 * bench/evm_ethers/node_modules (npm ci in both). */
#include <ado_eth/address.h>
#include <ado_eth/common.h>
#include <ado_eth/keccak.h>
#include <ado_eth/tx.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bridge.h"
#include "node.h"

#define ANVIL      ADO_SOURCE_DIR "/contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
#define ETHERS_DIR ADO_SOURCE_DIR "/bench/evm_ethers"
#define KEY0       "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define KEY1       "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
#define ADDR0      "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
#define ADDR1      "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
/* The call every transaction makes: ping(uint256) on an account without code (succeeds). */
#define TARGET    "0x000000000000000000000000000000000000bEEF"
#define GAS_LIMIT 30000

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- 1. the signer -------------------------------------------------------------------------- */

static void bench_signer(void) {
    uint8_t key[32], hash[32], sig[65];
    size_t kl;
    ado_eth_hex_decode(KEY0, 64, key, 32, &kl);
    struct ado_eth_signer *s;
    if (ado_eth_signer_new(key, &s) < 0)
        return;
    int n = 20000;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        ado_keccak256(&i, sizeof i, hash);
        ado_eth_sign_hash(s, hash, sig);
    }
    double t1 = now_s();
    uint8_t data[4 + 32 * 5] = {0x12, 0x34, 0x56, 0x78};
    struct ado_eth_tx1559 tx = {
        .chain_id = 31337, .gas_limit = 100000, .has_to = 1, .data = data, .data_len = sizeof data};
    ado_u256_from_u64(&tx.max_fee_per_gas, 2000000000);
    ado_u256_from_u64(&tx.max_priority_fee_per_gas, 1000000);
    for (int i = 0; i < n; i++) {
        uint8_t *raw, th[32];
        size_t rl;
        tx.nonce = (uint64_t)i;
        ado_eth_tx1559_sign(s, &tx, &raw, &rl, th);
        free(raw);
    }
    double t2 = now_s();
    printf("signer: %.0f signatures/s (sign_hash), %.0f EIP-1559 tx/s (RLP+Keccak+sign, "
           "164-byte calldata), 1 thread, %d each\n",
           n / (t1 - t0), n / (t2 - t1), n);
    ado_eth_signer_free(s);
}

/* ---- anvil ----------------------------------------------------------------------------------- */

static char *http_post(int port, const char *body) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(s);
        return NULL;
    }
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(body), body);
    if (write(s, req, (size_t)n) != n) {
        close(s);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(s, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    close(s);
    buf[len] = 0;
    char *b = strstr(buf, "\r\n\r\n");
    char *out = b ? strdup(b + 4) : NULL;
    free(buf);
    return out;
}

static uint64_t rpc_u64(int port, const char *method, const char *params) {
    char body[512];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
             method, params);
    char *r = http_post(port, body);
    uint64_t v = (uint64_t)-1;
    json_t *o = r ? json_loads(r, 0, NULL) : NULL;
    const char *h = json_string_value(json_object_get(o, "result"));
    if (h)
        v = strtoull(h, NULL, 16);
    json_decref(o);
    free(r);
    return v;
}

static pid_t anvil_start(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    bind(s, (struct sockaddr *)&sa, sizeof sa);
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s);
    *port = ntohs(sa.sin_port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", *port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(ANVIL, ANVIL, "--host", "127.0.0.1", "--port", ps, "--block-time", "1", "--silent",
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {
        if (rpc_u64(*port, "eth_chainId", "[]") == 31337)
            return pid;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* ---- 2. evm_l2 through the bridge ----------------------------------------------------------- */

struct run {
    struct ado_bridge *br;
    uint64_t n;
};

static int all_acked(void *arg) {
    struct run *r = arg;
    struct ado_bridge_peer_info pi;
    return ado_bridge_peer_info(r->br, "l2", &pi) == 0 && pi.acked >= r->n;
}

static int peer_up(void *arg) {
    struct run *r = arg;
    struct ado_bridge_peer_info pi;
    return ado_bridge_peer_info(r->br, "l2", &pi) == 0 && pi.up == 1;
}

static void run_loop(uv_loop_t *loop, int (*cond)(void *), void *arg, double timeout_s) {
    double end = now_s() + timeout_s;
    while (!cond(arg) && now_s() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(200);
    }
}

static int bench_evm_l2(int port, uint64_t n, uint32_t window, const char *scheme, double *t_pool,
                        double *t_acked) {
    char dir[] = "/tmp/bench-evm-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char yaml[2048], path[256];
    snprintf(yaml, sizeof yaml,
             "node:\n  name: bench\n  data_dir: %s/data\n  rpc: {listen: \"off\"}\n"
             "  log: {level: warn}\n"
             "plugins:\n  - name: evm_l2\n    path: %s/plugins/evm_l2.so\n"
             "    config: {chain_id: 31337, key: \"0x%s\", confirmations: 1, "
             "poll_interval: 200ms, stuck_timeout: 60s, max_inflight: 100000}\n"
             "bridge:\n  outbox_limit: 1000000\n  peers:\n    - {name: l2, layer: L2, "
             "transport: evm_l2, address: \"%s://127.0.0.1:%d\"}\n",
             dir, ADO_BUILD_DIR, KEY0, scheme, port);
    snprintf(path, sizeof path, "%s/chain.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(yaml, f);
    fclose(f);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ado_diag diag;
    ado_diag_init(&diag);
    struct ado_config *cfg = NULL;
    struct ado_node *node = NULL;
    int rc = ado_config_load(path, &cfg, &diag);
    if (rc == 0) {
        node = ado_node_new(&loop);
        node->log.level = cfg->log_level;
        rc = ado_node_load(node, cfg, &diag);
        if (rc == 0)
            rc = ado_node_start(node, &diag);
    }
    if (rc < 0) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.msgs[i]);
    } else {
        ado_bridge_tune(node->bridge, window, 600000);
        struct run r = {node->bridge, n};
        run_loop(&loop, peer_up, &r, 30);
        uint64_t base = rpc_u64(port, "eth_getTransactionCount", "[\"" ADDR0 "\",\"latest\"]");
        double t0 = now_s();
        /* In one turn: all N messages into the outbox, one commit. */
        for (uint64_t i = 0; i < n; i++) {
            char payload[256];
            int len = snprintf(payload, sizeof payload,
                               "{\"to\":\"" TARGET "\",\"signature\":\"ping(uint256)\","
                               "\"args\":[%llu],\"gas_limit\":%d}",
                               (unsigned long long)i, GAS_LIMIT);
            if (ado_bridge_send(node->bridge, node->plugins[0], "l2", "bench", payload, (size_t)len,
                                NULL, 0) < 0) {
                fprintf(stderr, "bridge_send failed at %llu\n", (unsigned long long)i);
                break;
            }
        }
        *t_pool = -1;
        double end = t0 + 600;
        while (!all_acked(&r) && now_s() < end) {
            uv_run(&loop, UV_RUN_NOWAIT);
            if (*t_pool < 0) {
                static int k;
                if (++k % 50 == 0 && rpc_u64(port, "eth_getTransactionCount",
                                             "[\"" ADDR0 "\",\"pending\"]") >= base + n)
                    *t_pool = now_s() - t0;
            }
            usleep(200);
        }
        *t_acked = now_s() - t0;
        if (!all_acked(&r))
            rc = -1;
        uint64_t mined = rpc_u64(port, "eth_getTransactionCount", "[\"" ADDR0 "\",\"latest\"]");
        if (mined != base + n) {
            fprintf(stderr, "evm_l2: %llu transactions mined, expected %llu\n",
                    (unsigned long long)(mined - base), (unsigned long long)n);
            rc = -1;
        }
    }
    if (node) {
        ado_node_stop(node);
        ado_node_free(node);
    }
    if (cfg)
        ado_config_free(cfg);
    ado_diag_fini(&diag);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}

/* ---- 3. ethers.js ---------------------------------------------------------------------------- */

static int bench_ethers(int port, uint64_t n, json_t **out) {
    if (access(ETHERS_DIR "/node_modules/ethers", R_OK) != 0 &&
        system("cd '" ETHERS_DIR "' && npm ci --no-audit --no-fund --loglevel=error") != 0)
        return -1;
    /* ping(uint256) with the same argument width: calldata of the same size and cost. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '" ETHERS_DIR "' && node send.mjs http://127.0.0.1:%d %s %llu " TARGET
             " 0x773acdef%064x %d",
             port, KEY1, (unsigned long long)n, 1, GAS_LIMIT);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char buf[4096];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = 0;
    int st = pclose(f);
    *out = json_loads(buf, 0, NULL);
    if (st != 0 || !*out) {
        fprintf(stderr, "ethers script failed: %s\n", buf);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000;
    uint32_t window = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 4096;
    const char *scheme = argc > 3 && !strcmp(argv[3], "ws") ? "ws" : "http";
    bench_signer();
    if (access(ANVIL, X_OK) != 0) {
        fprintf(stderr, "anvil not found at %s: npm ci in contracts/\n", ANVIL);
        return 1;
    }
    int port;
    pid_t pid = anvil_start(&port);
    if (pid < 0) {
        fprintf(stderr, "anvil did not start\n");
        return 1;
    }
    double tp = 0, ta = 0;
    int rc = bench_evm_l2(port, n, window, scheme, &tp, &ta);
    if (rc == 0)
        printf("evm_l2 over %s (bridge window %u, confirmations 1): %llu txs in pool after %.2f s "
               "(%.0f tx/s), all acked after %.2f s (%.0f tx/s)\n",
               scheme, window, (unsigned long long)n, tp, n / tp, ta, n / ta);
    json_t *e = NULL;
    int rc2 = bench_ethers(port, n, &e);
    if (rc2 == 0) {
        double sign = json_number_value(json_object_get(e, "sign_ms")) / 1000;
        double send = json_number_value(json_object_get(e, "send_ms")) / 1000;
        double total = json_number_value(json_object_get(e, "total_ms")) / 1000;
        printf("ethers 6.15 script: %llu txs signed in %.2f s, in pool after %.2f s (%.0f tx/s), "
               "all mined after %.2f s (%.0f tx/s)\n",
               (unsigned long long)n, sign, sign + send, n / (sign + send), total, n / total);
        if (rc == 0)
            printf("ratio evm_l2 / ethers: %.2fx to the pool, %.2fx to confirmed\n",
                   (sign + send) / tp, total / ta);
    }
    json_decref(e);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return rc || rc2;
}
