/* End to end on a real L2 stand-in: anvil, the contracts deployed by
 * contracts/scripts/deploy.mjs (challenge window of a few seconds), and a real `adonode` process
 * running evm_l2 (bridge peer `l2`) and trn_oracle. Everything goes through the node's JSON-RPC
 * (HTTP) and anvil's JSON-RPC: deposits on L2 arrive through evm_l2 and fund L3 balances;
 * operations; trn_closeEpoch; the root and every chunk mined on L2 (evm_l2); finality after the
 * window (evm_increaseTime); a proof from the node; the claim on L2 mints the TRN; a double claim
 * and a forged proof revert. Then a node killed -9 in the middle of a close (twice, at two
 * points) and restarted against the same anvil: nothing lost on L3, exactly one RootSubmitted
 * and one ChunkPublished per chunk on L2 for each epoch.
 *
 * L2 transactions of the test itself (mints, deposits, claims) are sent with eth_sendTransaction
 * from anvil's unlocked dev accounts; the calldata is encoded with adoeth's ABI encoder. The node
 * signs its own transactions (evm_l2, key file). The oracle key is anvil's account 9, so the
 * test's accounts never share a nonce sequence with the node. */
#include "ado_test_net.h"
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ado_eth/abi.h>
#include <ado_eth/address.h>
#include <ado_eth/common.h>
#include <ado_eth/u256.h>

#include "anvil.h"
#include "trn_test.h"

#define ADONODE   ADO_BUILD_DIR "/core/adonode"
#define EVM_L2_SO ADO_BUILD_DIR "/plugins/evm_l2.so"
#define CONTRACTS ADO_SOURCE_DIR "/contracts"
#define TOKEN     "trn-e2e-admin-token-0123456789"
#define WINDOW_S  4 /* TRNSettlement challenge window */

/* anvil's dev accounts 9 (the oracle: evm_l2's key), 5 (a relayer sending claims) */
#define ORACLE_KEY  "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"
#define ORACLE_ADDR "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
#define RELAYER     "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
/* TREASURY (account 1), ALICE (2), BOB (3), CAROL (4) come from trn_test.h; the deployer and
 * governance is ANVIL_ADDR0. */

#define ROOT_SUBMITTED                                                                             \
    "RootSubmitted(uint64 indexed epoch, uint32 attempt, bytes32 root, uint256 total, "            \
    "bytes32 dataHash, uint32 chunkCount)"
#define CHUNK_PUBLISHED                                                                            \
    "ChunkPublished(uint64 indexed epoch, uint32 indexed attempt, uint32 index, bytes32 "          \
    "chunkHash, uint256 size)"
#define DATA_COMPLETE                                                                              \
    "DataComplete(uint64 indexed epoch, uint32 attempt, bytes32 dataHash, uint64 finalAt)"
#define ROOT_VETOED "RootVetoed(uint64 indexed epoch, uint32 attempt, address indexed by)"
#define DEPOSITED   "Deposited(address indexed account, uint256 amount)"
#define CLAIM_SIG   "claim(uint64,address,uint256,bytes32[])"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the node process and its JSON-RPC (HTTP) -------------------------------------------- */

struct node {
    pid_t pid;
    int port;
    char dir[256];
};

/* Send one JSON-RPC request over HTTP to path ("/rpc": the node, with the admin token; "/":
 * anvil); returns the socket to read the answer from, or -1. */
static int http_send(int port, const char *path, const char *method, const char *params) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    size_t cap = strlen(params) + strlen(method) + 400;
    char *req = malloc(cap);
    int bl = snprintf(NULL, 0, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
                      method, params);
    int n = snprintf(req, cap,
                     "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                     "\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n"
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
                     path, bl, method, params);
    ssize_t w = send(fd, req, (size_t)n, MSG_NOSIGNAL);
    free(req);
    if (w != n) {
        close(fd);
        return -1;
    }
    return fd;
}

static int rpc_send(int port, const char *method, const char *params) {
    return http_send(port, "/rpc", method, params);
}

/* The answer on fd (NUL escapes allowed: anvil puts them in revert messages), or NULL. */
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
    json_t *v = sep ? json_loads(sep + 4, JSON_ALLOW_NUL, NULL) : NULL;
    free(buf);
    return v;
}

/* The whole response object, or NULL when the node did not answer. */
static json_t *rpcv(int port, const char *method, const char *fmt, ...) {
    char params[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(params, sizeof params, fmt, ap);
    va_end(ap);
    int fd = rpc_send(port, method, params);
    return fd < 0 ? NULL : rpc_read(fd);
}

/* The result of a call that must succeed (new reference). */
#define NODE_OK(n, method, ...)                                                                    \
    node_ok_at(__LINE__, n, method, rpcv((n)->port, method, __VA_ARGS__))
static json_t *node_ok_at(int line, struct node *n, const char *method, json_t *v) {
    (void)n;
    json_t *r = json_incref(json_object_get(v, "result"));
    char *s = v ? json_dumps(v, 0) : strdup("(no answer)");
    cr_assert(r, "line %d: %s: %s", line, method, s);
    free(s);
    json_decref(v);
    return r;
}

/* The error code of a call that must fail. */
static int node_err(struct node *n, const char *method, const char *params) {
    json_t *v = rpcv(n->port, method, "%s", params);
    json_t *e = json_object_get(v, "error");
    char *s = v ? json_dumps(v, 0) : strdup("(no answer)");
    cr_assert(e, "%s %s should fail: %s", method, params, s);
    free(s);
    int code = (int)json_integer_value(json_object_get(e, "code"));
    json_decref(v);
    return code;
}

/* A JSON-RPC batch (body: a JSON array of requests) whose every answer must be a result. */
static void node_batch_ok(struct node *n, const char *body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)n->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t bl = strlen(body);
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr,
                      "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                      "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      bl);
    cr_assert_eq(send(fd, hdr, (size_t)hl, MSG_NOSIGNAL), hl);
    cr_assert_eq(send(fd, body, bl, MSG_NOSIGNAL), (ssize_t)bl);
    json_t *v = rpc_read(fd);
    cr_assert(json_is_array(v), "batch: no array answer");
    size_t i;
    json_t *r;
    json_array_foreach(v, i, r) {
        char *rs = json_dumps(r, 0);
        cr_assert(json_object_get(r, "result"), "batch item %zu: %s", i, rs);
        free(rs);
    }
    json_decref(v);
}

static void node_start(struct node *n) {
    char logp[300], cfg[300];
    snprintf(cfg, sizeof cfg, "%s/chain.yaml", n->dir);
    snprintf(logp, sizeof logp, "%s/node.log", n->dir);
    n->pid = fork();
    cr_assert(n->pid >= 0);
    if (n->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(ADONODE, ADONODE, "--config", cfg, (char *)NULL);
        _exit(127);
    }
    for (int64_t end = now_ms() + 30000; now_ms() < end;) {
        json_t *v = rpcv(n->port, "trn_epoch", "{}");
        int up = json_object_get(v, "result") != NULL;
        json_decref(v);
        if (up)
            return;
        int st;
        cr_assert_neq(waitpid(n->pid, &st, WNOHANG), n->pid, "adonode exited (see %s)", logp);
        usleep(20000);
    }
    cr_assert_fail("adonode did not answer (see %s)", logp);
}

/* Stop the node with sig (SIGKILL: at once; otherwise up to 10 s for a clean stop, then
 * SIGKILL). Returns the wait status. */
static int node_kill(struct node *n, int sig) {
    int st = 0;
    if (n->pid <= 0)
        return 0;
    kill(n->pid, sig);
    for (int i = 0; sig != SIGKILL && i < 1000; i++) {
        if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
            n->pid = 0;
            return st;
        }
        usleep(10000);
    }
    kill(n->pid, SIGKILL);
    waitpid(n->pid, &st, 0);
    n->pid = 0;
    return st;
}

/* After a clean stop: exit status 0 and no sanitizer report in the node's log (the ASan build
 * runs the node under ASan+UBSan too). */
static void node_stop_clean(struct node *n) {
    int st = node_kill(n, SIGTERM);
    char logp[300];
    snprintf(logp, sizeof logp, "%s/node.log", n->dir);
    FILE *f = fopen(logp, "r");
    char line[1024];
    int bad = 0;
    while (f && fgets(line, sizeof line, f))
        bad |= strstr(line, "Sanitizer") || strstr(line, "runtime error");
    if (f)
        fclose(f);
    if (bad) { /* keep the report: the test's folder is removed */
        char cmd[700];
        snprintf(cmd, sizeof cmd, "cp '%s' /tmp/trn-e2e-node-%d.log", logp, (int)getpid());
        int rc = system(cmd);
        (void)rc;
    }
    cr_expect(!bad, "sanitizer report in the node's log, kept in /tmp/trn-e2e-node-%d.log",
              (int)getpid());
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "adonode stopped with status 0x%x", st);
}

/* ---- L2: calls and transactions from the test's accounts ---------------------------------- */

/* "0x" + hex calldata of signature(args) (malloc'd). */
static char *calldata(const char *signature, const char *args_json) {
    uint8_t *cd;
    size_t cl;
    struct ado_eth_error err;
    int rc = ado_abi_encode_call(signature, args_json, &cd, &cl, &err);
    cr_assert_eq(rc, 0, "encode %s %s: %s", signature, args_json, err.msg);
    char *hex = malloc(2 * cl + 3);
    memcpy(hex, "0x", 2);
    ado_eth_hex_encode(cd, cl, hex + 2);
    free(cd);
    return hex;
}

/* eth_call; returns the result hex (malloc'd) or NULL with *revert_data (malloc'd) set.
 * Not anvil_rpc: its parser refuses the NUL escapes of anvil's revert messages. */
static char *l2_call(const struct anvil *a, const char *to, const char *signature,
                     const char *args_json, char **revert_data) {
    char *data = calldata(signature, args_json);
    size_t cap = strlen(data) + 200;
    char *params = malloc(cap);
    snprintf(params, cap, "[{\"to\":\"%s\",\"data\":\"%s\"},\"latest\"]", to, data);
    free(data);
    int fd = http_send(a->port, "/", "eth_call", params);
    free(params);
    json_t *v = fd < 0 ? NULL : rpc_read(fd);
    cr_assert(v, "eth_call %s: no answer from anvil", signature);
    const char *r = json_string_value(json_object_get(v, "result"));
    char *out = r ? strdup(r) : NULL;
    if (revert_data) {
        const char *d = json_string_value(json_object_get(json_object_get(v, "error"), "data"));
        *revert_data = d ? strdup(d) : NULL;
    }
    json_decref(v);
    return out;
}

/* The uint256 that a view returns, as a decimal string (static buffer). */
static const char *l2_uint(const struct anvil *a, const char *to, const char *signature,
                           const char *args_json) {
    static char dec[ADO_U256_DEC_MAX];
    char *hex = l2_call(a, to, signature, args_json, NULL);
    cr_assert(hex, "eth_call %s failed", signature);
    struct ado_u256 v;
    cr_assert_eq(ado_u256_parse_str(&v, hex), 0, "%s: %s", signature, hex);
    free(hex);
    ado_u256_to_dec(&v, dec, sizeof dec);
    return dec;
}

/* Send a transaction from an unlocked dev account (gas given: a reverting call is mined with
 * status 0 instead of being refused at estimation); returns the receipt status (1 or 0). */
static int l2_send(const struct anvil *a, const char *from, const char *to, const char *signature,
                   const char *args_json) {
    char *data = calldata(signature, args_json);
    json_t *err = NULL;
    json_t *h = anvil_rpc(
        a, "eth_sendTransaction",
        json_pack("[{s:s,s:s,s:s,s:s}]", "from", from, "to", to, "data", data, "gas", "0x7a120"),
        &err);
    free(data);
    char *es = err ? json_dumps(err, 0) : NULL;
    cr_assert(json_is_string(h), "%s from %s not sent: %s", signature, from, es ? es : "");
    free(es);
    json_decref(err);
    int status = -1;
    for (int64_t end = now_ms() + 10000; status < 0 && now_ms() < end;) {
        json_t *r = anvil_rpc(a, "eth_getTransactionReceipt", json_pack("[O]", h), NULL);
        const char *st = json_string_value(json_object_get(r, "status"));
        if (st)
            status = (int)strtol(st, NULL, 16);
        json_decref(r);
        if (status < 0)
            usleep(20000);
    }
    json_decref(h);
    cr_assert_geq(status, 0, "no receipt for %s", signature);
    return status;
}

/* Does revert data carry the custom error `error_sig`? */
static int reverted_with(const char *revert_data, const char *error_sig) {
    uint8_t sel[4];
    struct ado_eth_error err;
    char hex[9];
    cr_assert_eq(ado_abi_selector(error_sig, sel, &err), 0);
    ado_eth_hex_encode(sel, 4, hex);
    return revert_data && strlen(revert_data) >= 10 && strncasecmp(revert_data + 2, hex, 8) == 0;
}

/* The logs of `event_sig` from `address` whose first indexed topic is `epoch`. */
static json_t *l2_logs(const struct anvil *a, const char *address, const char *event_sig,
                       uint64_t epoch) {
    uint8_t t0[32], t1[32] = {0};
    struct ado_eth_error err;
    cr_assert_eq(ado_abi_event_topic(event_sig, t0, &err), 0);
    for (int i = 0; i < 8; i++)
        t1[31 - i] = (uint8_t)(epoch >> (8 * i));
    char h0[67] = "0x", h1[67] = "0x";
    ado_eth_hex_encode(t0, 32, h0 + 2);
    ado_eth_hex_encode(t1, 32, h1 + 2);
    json_t *logs = anvil_rpc(a, "eth_getLogs",
                             json_pack("[{s:s,s:s,s:s,s:[s,s]}]", "address", address, "fromBlock",
                                       "0x0", "toBlock", "latest", "topics", h0, h1),
                             NULL);
    cr_assert(json_is_array(logs), "eth_getLogs failed");
    return logs;
}

/* ---- the fixture --------------------------------------------------------------------------- */

struct e2e {
    struct anvil a;
    struct node n;
    char token[64], controller[64], settlement[64], deposits[64];
};

static void deploy(struct e2e *f) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '" CONTRACTS "' && node scripts/deploy.mjs --rpc %s --key 0x%s --oracle %s "
             "--challenge-window %d",
             f->a.url, ANVIL_KEY0, ORACLE_ADDR, WINDOW_S);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    int rc = pclose(p);
    json_t *o = json_loads(buf, 0, NULL);
    cr_assert(rc == 0 && o, "deploy.mjs failed: %s", buf);
    static const char *keys[] = {"token", "controller", "settlement", "deposits"};
    char *dst[] = {f->token, f->controller, f->settlement, f->deposits};
    for (int i = 0; i < 4; i++) {
        const char *v = json_string_value(json_object_get(o, keys[i]));
        cr_assert(v, "deploy.mjs printed no %s: %s", keys[i], buf);
        snprintf(dst[i], 64, "%s", v);
    }
    json_decref(o);
}

static void write_config(struct e2e *f, const char *close_delay, const char *chunk_size) {
    char *keyp = th_write(f->n.dir, "l2.key", ORACLE_KEY "\n");
    cr_assert_eq(chmod(keyp, 0600), 0);
    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "node:\n  name: trn-e2e\n  layer: L3\n  data_dir: %s/data\n  log: {level: info}\n"
             "  rpc:\n    listen: 127.0.0.1:%d\n    anonymous: reader\n"
             "    tokens: [{name: ops, token: " TOKEN ", roles: [admin, writer, reader]}]\n"
             "plugins:\n"
             "  - name: evm_l2\n    path: " EVM_L2_SO "\n    config:\n"
             "      chain_id: 31337\n      key_file: %s\n      confirmations: 1\n"
             "      poll_interval: 100ms\n      events_from_block: 0\n"
             "      contracts: {settlement: \"%s\", deposits: \"%s\"}\n"
             "      events:\n"
             "        - {contract: deposits, signature: \"" DEPOSITED "\"}\n"
             "        - {contract: settlement, signature: \"" ROOT_SUBMITTED "\"}\n"
             "        - {contract: settlement, signature: \"" DATA_COMPLETE "\"}\n"
             "        - {contract: settlement, signature: \"" ROOT_VETOED "\"}\n"
             "  - name: trn_oracle\n    path: " TRN_SO "\n    config:\n"
             "      treasury: \"" TREASURY "\"\n"
             "      epoch: {period: 24h, first: 0}\n"
             "      rates: {view_reward: \"1000\", view_cost: \"0\", boost_fee: \"7\"}\n"
             "      gas: {per_operation: \"1\", l2_fee_per_tx: \"50\"}\n"
             "      l2: {peer: l2, submit: true, contract: settlement, deposits_contract: \"%s\",\n"
             "           chunk_size: %s}\n"
             "      tuning: {compression_quality: 1, close_delay: %s}\n"
             "bridge:\n  peers:\n"
             "    - {name: l2, layer: L2, transport: evm_l2, address: \"%s\",\n"
             "       retry: {attempts: 10, backoff: 200ms, max_backoff: 1s}}\n",
             f->n.dir, f->n.port, keyp, f->settlement, f->deposits, f->deposits, chunk_size,
             close_delay, f->a.url);
    free(keyp);
    free(th_write(f->n.dir, "chain.yaml", yaml));
}

static void fx_start(struct e2e *f) {
    memset(f, 0, sizeof *f);
    if (access(EVM_L2_SO, R_OK) != 0)
        cr_skip_test("needs plugins/evm_l2 built (%s)", EVM_L2_SO);
    if (!anvil_bin())
        cr_skip_test("needs anvil (npm ci in contracts/)");
    cr_assert_eq(anvil_start(&f->a, NULL, 0), 0, "anvil did not start");
    deploy(f);
    /* The deployer is governance (controller admin) here: it grants itself the minter role to
     * hand out the TRN that accounts deposit. */
    char *role = l2_call(&f->a, f->controller, "MINTER_ROLE()", "[]", NULL);
    char args[512];
    snprintf(args, sizeof args, "[\"%s\",\"%s\"]", role, ANVIL_ADDR0);
    free(role);
    cr_assert_eq(l2_send(&f->a, ANVIL_ADDR0, f->controller, "grantRole(bytes32,address)", args), 1);
    snprintf(f->n.dir, sizeof f->n.dir, "/tmp/trn-e2e-XXXXXX");
    cr_assert(mkdtemp(f->n.dir));
    f->n.port = ado_test_free_port();
}

static void fx_done(struct e2e *f) {
    node_stop_clean(&f->n);
    anvil_stop(&f->a);
    th_rmrf(f->n.dir);
}

static void mint(struct e2e *f, const char *to, const char *amount) {
    char args[256];
    snprintf(args, sizeof args, "[\"%s\",\"%s\"]", to, amount);
    cr_assert_eq(l2_send(&f->a, ANVIL_ADDR0, f->controller, "mint(address,uint256)", args), 1);
}

/* approve + deposit on L2 from `account` (an unlocked dev account). */
static void deposit(struct e2e *f, const char *account, const char *amount) {
    char args[256];
    snprintf(args, sizeof args, "[\"%s\",\"%s\"]", f->deposits, amount);
    cr_assert_eq(l2_send(&f->a, account, f->token, "approve(address,uint256)", args), 1);
    snprintf(args, sizeof args, "[\"%s\"]", amount);
    cr_assert_eq(l2_send(&f->a, account, f->deposits, "deposit(uint256)", args), 1);
}

static const char *balance(struct node *n, const char *account) {
    static char buf[ADO_U256_DEC_MAX];
    json_t *r = NODE_OK(n, "trn_balance", "{\"account\":\"%s\"}", account);
    snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(r, "balance")));
    json_decref(r);
    return buf;
}

static void wait_balance(struct node *n, const char *account, const char *want) {
    for (int64_t end = now_ms() + 20000; now_ms() < end; usleep(50000))
        if (strcmp(balance(n, account), want) == 0)
            return;
    cr_assert_fail("L3 balance of %s is %s, expected %s", account, balance(n, account), want);
}

/* The epoch record once its root and every chunk are mined on L2 and the node saw
 * RootSubmitted and DataComplete (l2_tx and final_tx set). */
static json_t *wait_settled(struct node *n, uint64_t epoch, int timeout_ms) {
    for (int64_t end = now_ms() + timeout_ms; now_ms() < end; usleep(50000)) {
        json_t *v = rpcv(n->port, "trn_epoch", "{\"epoch\":%llu}", (unsigned long long)epoch);
        json_t *r = json_object_get(v, "result");
        if (json_is_string(json_object_get(r, "l2_tx")) &&
            json_is_string(json_object_get(r, "final_tx"))) {
            json_incref(r);
            json_decref(v);
            return r;
        }
        json_decref(v);
    }
    json_t *r = NODE_OK(n, "trn_epoch", "{\"epoch\":%llu}", (unsigned long long)epoch);
    char *s = json_dumps(r, 0);
    json_t *st = NODE_OK(n, "l2_status", "{}");
    char *ss = json_dumps(st, 0);
    cr_assert_fail("epoch %llu not settled on L2: %s\nl2_status: %.3000s",
                   (unsigned long long)epoch, s, ss);
    return NULL;
}

static long long jint(json_t *o, const char *k) {
    return (long long)json_integer_value(json_object_get(o, k));
}

/* Wait until no close is running (a close interrupted by a kill resumes after the restart;
 * trn_closeEpoch answers 1008 meanwhile): every epoch before the open one is past "closed". */
static void wait_closes_done(struct node *n) {
    for (int64_t end = now_ms() + 20000; now_ms() < end; usleep(20000)) {
        json_t *open = NODE_OK(n, "trn_epoch", "{}");
        long long cur = jint(open, "epoch"), busy = 0;
        json_decref(open);
        for (long long ep = 0; ep < cur && !busy; ep++) {
            json_t *e = NODE_OK(n, "trn_epoch", "{\"epoch\":%lld}", ep);
            busy = strcmp(json_string_value(json_object_get(e, "status")), "closed") == 0;
            json_decref(e);
        }
        if (!busy)
            return;
    }
    cr_assert_fail("a close is still running after 20 s");
}

/* A pseudo-random creator address (incompressible, so the data spans several chunks). */
static void creator_addr(uint32_t i, char out[ADO_ETH_ADDRESS_TEXTLEN]) {
    uint8_t a[20];
    uint64_t x = 0x9E3779B97F4A7C15ull * (i + 1);
    for (int k = 0; k < 20; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        a[k] = (uint8_t)x;
    }
    ado_eth_address_checksum(a, out);
}

/* Register `n` contents by pseudo-random creators and view each once by ALICE; returns the
 * number of acknowledged operations. */
static long long activity(struct node *n, const char *tag, int count) {
    for (int i = 0; i < count; i++) {
        char c[ADO_ETH_ADDRESS_TEXTLEN];
        creator_addr((uint32_t)(tag[0] * 1000 + i), c);
        json_decref(NODE_OK(n, "trn_registerContent", "{\"content\":\"%s-%d\",\"creator\":\"%s\"}",
                            tag, i, c));
        json_decref(
            NODE_OK(n, "trn_view", "{\"content\":\"%s-%d\",\"viewer\":\"" ALICE "\"}", tag, i));
    }
    return 2LL * count;
}

/* On L2: exactly one RootSubmitted for the epoch and its chunks once each (0..chunks-1). */
static void assert_settled_once(struct e2e *f, uint64_t epoch, long long chunks) {
    json_t *roots = l2_logs(&f->a, f->settlement, ROOT_SUBMITTED, epoch);
    cr_assert_eq(json_array_size(roots), 1, "epoch %llu: %zu RootSubmitted on L2",
                 (unsigned long long)epoch, json_array_size(roots));
    json_decref(roots);
    json_t *cl = l2_logs(&f->a, f->settlement, CHUNK_PUBLISHED, epoch);
    cr_assert_eq((long long)json_array_size(cl), chunks,
                 "epoch %llu: %zu ChunkPublished, %lld chunks", (unsigned long long)epoch,
                 json_array_size(cl), chunks);
    json_decref(cl);
    char args[32];
    snprintf(args, sizeof args, "[%llu]", (unsigned long long)epoch);
    /* epochState: 2 Challengeable or 3 Final (data complete, not vetoed) */
    const char *st = l2_uint(&f->a, f->settlement, "epochState(uint64)", args);
    cr_assert(strcmp(st, "2") == 0 || strcmp(st, "3") == 0, "epoch %llu state %s on L2",
              (unsigned long long)epoch, st);
}

/* ---- the tests ----------------------------------------------------------------------------- */

Test(trn_e2e, an_account_earns_on_l3_and_claims_on_l2_with_a_proof_from_the_node, .timeout = 150) {
    struct e2e f;
    fx_start(&f);
    write_config(&f, "0", "1KiB");
    node_start(&f.n);

    /* Deposits on L2 fund L3: the treasury (it pays gas and view rewards) and ALICE. */
    mint(&f, TREASURY, "10000000");
    mint(&f, ALICE, "5000");
    deposit(&f, TREASURY, "10000000");
    deposit(&f, ALICE, "3000");
    wait_balance(&f.n, TREASURY, "10000000");
    wait_balance(&f.n, ALICE, "3000");
    cr_assert_str_eq(l2_uint(&f.a, f.token, "balanceOf(address)", "[\"" ALICE "\"]"), "2000");

    /* Operations: BOB's and CAROL's content, views, a boost paid from ALICE's deposit, a burn. */
    json_decref(
        NODE_OK(&f.n, "trn_registerContent", "{\"content\":\"bob-1\",\"creator\":\"" BOB "\"}"));
    json_decref(NODE_OK(&f.n, "trn_registerContent",
                        "{\"content\":\"carol-1\",\"creator\":\"" CAROL "\"}"));
    for (int i = 0; i < 3; i++)
        json_decref(NODE_OK(&f.n, "trn_view", "{\"content\":\"bob-1\",\"viewer\":\"" ALICE "\"}"));
    json_decref(NODE_OK(&f.n, "trn_view", "{\"content\":\"carol-1\",\"viewer\":\"" ALICE "\"}"));
    json_decref(NODE_OK(&f.n, "trn_boost",
                        "{\"content\":\"carol-1\",\"account\":\"" ALICE "\",\"amount\":\"2500\"}"));
    /* 3000 - 2500 - 7 = 493 left: more is refused and changes nothing */
    cr_assert_eq(node_err(&f.n, "trn_boost",
                          "{\"content\":\"carol-1\",\"account\":\"" ALICE "\",\"amount\":\"487\"}"),
                 1001);
    json_decref(NODE_OK(&f.n, "trn_burn", "{\"account\":\"" ALICE "\",\"amount\":\"93\"}"));
    cr_assert_str_eq(balance(&f.n, ALICE), "400");
    long long ops = 8 + activity(&f.n, "x", 40); /* enough data for two chunks */

    /* Close: the root and every chunk go to L2 through the bridge and evm_l2. */
    json_t *closed = NODE_OK(&f.n, "trn_closeEpoch", "{}");
    cr_assert_eq(jint(closed, "epoch"), 0);
    cr_assert_eq(jint(closed, "ops"), ops);
    json_decref(closed);
    int64_t t0 = now_ms();
    json_t *e = wait_settled(&f.n, 0, 30000);
    long long chunks = jint(e, "chunks");
    cr_assert_geq(chunks, 2, "the test data should span several chunks");
    cr_assert_str_eq(json_string_value(json_object_get(e, "status")), "submitted");
    cr_assert_eq(jint(e, "messages_sent"), 1 + chunks);
    fprintf(stderr, "e2e: epoch 0 (%lld ops, %lld chunks) settled on L2 in %lld ms\n", ops, chunks,
            (long long)(now_ms() - t0));
    assert_settled_once(&f, 0, chunks);
    char root_args[200];
    snprintf(root_args, sizeof root_args, "[0]");
    char *ep = l2_call(&f.a, f.settlement, "getEpoch(uint64)", root_args, NULL);
    cr_assert(ep && strncasecmp(ep + 2, json_string_value(json_object_get(e, "root")) + 2, 64) == 0,
              "the L2 root is the node's");
    free(ep);
    json_decref(e);

    /* BOB earned 3 views x 1000; the proof comes from the node. */
    json_t *p = NODE_OK(&f.n, "trn_proof", "{\"epoch\":0,\"account\":\"" BOB "\"}");
    cr_assert_str_eq(json_string_value(json_object_get(p, "amount")), "3000");
    char *proof = json_dumps(json_object_get(p, "proof"), JSON_COMPACT);
    json_decref(p);
    char claim[4096];
    snprintf(claim, sizeof claim, "[0,\"" BOB "\",\"3000\",%s]", proof);

    /* Inside the challenge window the claim reverts EpochNotFinal. */
    char *rd = NULL;
    free(l2_call(&f.a, f.settlement, CLAIM_SIG, claim, &rd));
    cr_assert(reverted_with(rd, "EpochNotFinal(uint64)"), "claim before the window: %s",
              rd ? rd : "succeeded");
    free(rd);

    /* Past the window on L2: the root is final and the claim mints BOB's TRN. */
    json_decref(anvil_rpc(&f.a, "evm_increaseTime", json_pack("[i]", WINDOW_S + 1), NULL));
    anvil_mine(&f.a, 1);
    cr_assert_str_eq(l2_uint(&f.a, f.settlement, "isFinal(uint64)", "[0]"), "1");
    cr_assert_str_eq(l2_uint(&f.a, f.token, "balanceOf(address)", "[\"" BOB "\"]"), "0");
    cr_assert_eq(l2_send(&f.a, RELAYER, f.settlement, CLAIM_SIG, claim), 1, "claim reverted");
    cr_assert_str_eq(l2_uint(&f.a, f.token, "balanceOf(address)", "[\"" BOB "\"]"), "3000");

    /* A double claim reverts (AlreadyClaimed) and pays nothing. */
    free(l2_call(&f.a, f.settlement, CLAIM_SIG, claim, &rd));
    cr_assert(reverted_with(rd, "AlreadyClaimed(uint64,address)"), "double claim: %s",
              rd ? rd : "succeeded");
    free(rd);
    cr_assert_eq(l2_send(&f.a, BOB, f.settlement, CLAIM_SIG, claim), 0, "double claim mined OK");
    cr_assert_str_eq(l2_uint(&f.a, f.token, "balanceOf(address)", "[\"" BOB "\"]"), "3000");

    /* A forged proof: CAROL claims more than she earned (1000 + 2500) with her real proof, and
     * then her amount with BOB's proof. Both revert InvalidProof. */
    p = NODE_OK(&f.n, "trn_proof", "{\"epoch\":0,\"account\":\"" CAROL "\"}");
    cr_assert_str_eq(json_string_value(json_object_get(p, "amount")), "3500");
    char *cproof = json_dumps(json_object_get(p, "proof"), JSON_COMPACT);
    json_decref(p);
    const char *forged[] = {cproof, proof};
    const char *amounts[] = {"3501", "3500"};
    for (int i = 0; i < 2; i++) {
        snprintf(claim, sizeof claim, "[0,\"" CAROL "\",\"%s\",%s]", amounts[i], forged[i]);
        free(l2_call(&f.a, f.settlement, CLAIM_SIG, claim, &rd));
        cr_assert(reverted_with(rd, "InvalidProof()"), "forged claim %d: %s", i,
                  rd ? rd : "succeeded");
        free(rd);
        cr_assert_eq(l2_send(&f.a, CAROL, f.settlement, CLAIM_SIG, claim), 0);
    }
    cr_assert_str_eq(l2_uint(&f.a, f.token, "balanceOf(address)", "[\"" CAROL "\"]"), "0");
    snprintf(claim, sizeof claim, "[0,\"" CAROL "\",\"3500\",%s]", cproof);
    cr_assert_eq(l2_send(&f.a, CAROL, f.settlement, CLAIM_SIG, claim), 1);
    cr_assert_str_eq(l2_uint(&f.a, f.token, "balanceOf(address)", "[\"" CAROL "\"]"), "3500");
    free(cproof);
    free(proof);

    /* The node reports the epoch final once its finalAt (L2 time) is reached by the wall clock
     * (at most the window). */
    for (int64_t end = now_ms() + (WINDOW_S + 5) * 1000; now_ms() < end; usleep(100000)) {
        e = NODE_OK(&f.n, "trn_epoch", "{\"epoch\":0}");
        int fin = strcmp(json_string_value(json_object_get(e, "status")), "final") == 0;
        json_decref(e);
        if (fin)
            break;
    }
    e = NODE_OK(&f.n, "trn_epoch", "{\"epoch\":0}");
    cr_assert_str_eq(json_string_value(json_object_get(e, "status")), "final");
    json_decref(e);
    fx_done(&f);
}

Test(trn_e2e, a_node_killed_9_during_a_close_and_restarted_loses_nothing_and_settles_once,
     .timeout = 150) {
    struct e2e f;
    fx_start(&f);
    /* The worker waits 300 ms, so a kill lands in the middle of the close. */
    write_config(&f, "300ms", "1KiB");
    node_start(&f.n);
    mint(&f, TREASURY, "10000000");
    deposit(&f, TREASURY, "10000000");
    mint(&f, ALICE, "100");
    deposit(&f, ALICE, "100");
    wait_balance(&f.n, TREASURY, "10000000");
    wait_balance(&f.n, ALICE, "100");

    /* Kill points: while the tree builds on the worker (150 ms), and right after the commit
     * answered (the root and chunks in the outbox / in flight to L2). */
    const char *tags[] = {"a", "b"};
    long long acked = 0;
    for (int round = 0; round < 2; round++) {
        acked += activity(&f.n, tags[round], 30);
        json_decref(NODE_OK(&f.n, "trn_boost",
                            "{\"content\":\"%s-0\",\"account\":\"" ALICE "\",\"amount\":\"10\"}",
                            tags[round]));
        acked++;
        wait_closes_done(&f.n);
        int fd = rpc_send(f.n.port, "trn_closeEpoch", "{}");
        cr_assert(fd >= 0);
        if (round == 0) {
            usleep(150000);
        } else {
            json_t *v = rpc_read(fd);
            fd = -1;
            char *vs = v ? json_dumps(v, 0) : strdup("(no answer)");
            cr_assert(json_object_get(v, "result"), "close answered: %s", vs);
            free(vs);
            json_decref(v);
        }
        node_kill(&f.n, SIGKILL);
        if (fd >= 0)
            close(fd);
        node_start(&f.n);
    }

    /* After the restarts: every closed epoch reaches L2, once. */
    json_t *open = NODE_OK(&f.n, "trn_epoch", "{}");
    uint64_t cur = (uint64_t)jint(open, "epoch");
    long long ops = jint(open, "ops");
    json_decref(open);
    cr_assert_geq(cur, 1, "the first interrupted close never happened?");
    for (uint64_t ep = 0; ep < cur; ep++) {
        json_t *e = wait_settled(&f.n, ep, 30000);
        long long chunks = jint(e, "chunks");
        cr_assert_eq(jint(e, "messages_sent"), 1 + chunks);
        ops += jint(e, "ops");
        json_decref(e);
        assert_settled_once(&f, ep, chunks);
    }
    cr_assert_eq(ops, acked, "ops in epochs %lld, acknowledged %lld", ops, acked);
    /* ALICE paid 2 boosts of 10 (+ fee 7): her balance survived both kills exactly. */
    cr_assert_str_eq(balance(&f.n, ALICE), "66");

    /* A later close still settles (the nonce sequence and the L2 epoch order are intact). */
    acked = activity(&f.n, "c", 5);
    json_t *c = NODE_OK(&f.n, "trn_closeEpoch", "{}");
    uint64_t last = (uint64_t)jint(c, "epoch");
    json_decref(c);
    json_t *e = wait_settled(&f.n, last, 30000);
    assert_settled_once(&f, last, jint(e, "chunks"));
    json_decref(e);
    char args[32];
    snprintf(args, sizeof args, "[]");
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)last + 1);
    cr_assert_str_eq(l2_uint(&f.a, f.settlement, "nextEpoch()", args), want);
    /* The first kill did land in the middle of a close: the restart resumed it from the store. */
    char logp[300], line[1024];
    snprintf(logp, sizeof logp, "%s/node.log", f.n.dir);
    FILE *lf = fopen(logp, "r");
    int resumed = 0;
    while (lf && fgets(line, sizeof line, lf))
        resumed |= strstr(line, "was closing when the node stopped") != NULL;
    if (lf)
        fclose(lf);
    cr_assert(resumed, "no close was interrupted by the kill");
    fx_done(&f);
}

Test(trn_e2e, a_day_larger_than_a_chunk_settles_in_full_120_KiB_chunks, .timeout = 150) {
    struct e2e f;
    fx_start(&f);
    write_config(&f, "0", "120KiB");
    node_start(&f.n);
    mint(&f, TREASURY, "100000000000");
    deposit(&f, TREASURY, "100000000000");
    wait_balance(&f.n, TREASURY, "100000000000");
    /* 7000 creators with pseudo-random addresses: about 150 KB of compressed data. */
    enum { N = 7000, BATCH = 250 };
    size_t cap = BATCH * 300 + 16;
    char *body = malloc(cap);
    for (int b = 0; b < N / BATCH; b++) {
        for (int kind = 0; kind < 2; kind++) {
            size_t len = 0;
            body[len++] = '[';
            for (int i = b * BATCH; i < (b + 1) * BATCH; i++) {
                char c[ADO_ETH_ADDRESS_TEXTLEN];
                creator_addr((uint32_t)(i + 100000), c);
                len += (size_t)snprintf(
                    body + len, cap - len,
                    kind == 0
                        ? "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"trn_registerContent\","
                          "\"params\":{\"content\":\"d-%d\",\"creator\":\"%s\"}}"
                        : "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"trn_view\","
                          "\"params\":{\"content\":\"d-%d\",\"viewer\":\"" ALICE "\"}}",
                    i > b * BATCH ? "," : "", i, i, c);
            }
            body[len++] = ']';
            body[len] = 0;
            node_batch_ok(&f.n, body);
        }
    }
    free(body);
    json_t *closed = NODE_OK(&f.n, "trn_closeEpoch", "{}");
    long long chunks = jint(closed, "chunks");
    fprintf(stderr, "e2e: %d leaves, %lld bytes compressed, %lld chunks\n", N,
            jint(closed, "data_size"), chunks);
    cr_assert_geq(chunks, 2, "the data should exceed one 120 KiB chunk");
    json_decref(closed);
    json_t *e = wait_settled(&f.n, 0, 60000);
    assert_settled_once(&f, 0, chunks);
    json_decref(e);
    fx_done(&f);
}
