/* Helpers for ws_peer's process tests and bench_bridge: real adonode processes on loopback
 * (own temp data_dir, identity seed written before first start, random free ports), a tiny
 * HTTP JSON-RPC client and a raw WebSocket client. Header-only, for test programs. */
#ifndef WSP_TEST_NODES_H
#define WSP_TEST_NODES_H

#include "ado_test_net.h"
#include <sys/prctl.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TN_ADONODE  ADO_BUILD_DIR "/core/adonode"
#define TN_FIXTURES ADO_SOURCE_DIR "/plugins/ws_peer/tests/fixtures"

struct tn_node {
    char name[32], layer[4];
    char dir[128];
    int rpc_port, ws_port;
    uint8_t seed[32], pk[32];
    char pk_hex[65];
    pid_t pid;
    char peers_yaml[4096]; /* the bridge.peers items */
    char extra_ws[256];    /* extra keys for ws_peer's config block */
    int no_sink;           /* 1: leave the sink.lua fixture out (benchmarks: its log grows) */
    const char *sink_file; /* with no_sink 0: the fixture to load (NULL: sink.lua) */
};

static inline uint64_t tn_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void tn_init(struct tn_node *n, const char *name, const char *layer) {
    memset(n, 0, sizeof *n);
    if (sodium_init() < 0)
        abort();
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->layer, sizeof n->layer, "%s", layer);
    snprintf(n->dir, sizeof n->dir, "/tmp/ado-wsp-XXXXXX");
    if (!mkdtemp(n->dir))
        abort();
    n->rpc_port = ado_test_free_port();
    n->ws_port = ado_test_free_port();
    randombytes_buf(n->seed, 32);
    uint8_t sk[64];
    crypto_sign_seed_keypair(n->pk, sk, n->seed);
    sodium_bin2hex(n->pk_hex, sizeof n->pk_hex, n->pk, 32);
    char path[256], hex[65];
    snprintf(path, sizeof path, "%s/data", n->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/data/identity.key", n->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    sodium_bin2hex(hex, sizeof hex, n->seed, 32);
    if (fd < 0 || write(fd, hex, 64) != 64)
        abort();
    if (write(fd, "\n", 1) != 1)
        abort();
    close(fd);
}

/* Add `peer` to n's bridge.peers. dial: n connects to it; else accept only. `policy` is
 * extra YAML flow keys for the item (retry, breaker) or "". */
static inline void tn_add_peer(struct tn_node *n, const struct tn_node *peer, int dial,
                               const char *policy) {
    size_t l = strlen(n->peers_yaml);
    char addr[64];
    if (dial)
        snprintf(addr, sizeof addr, "ws://127.0.0.1:%d", peer->ws_port);
    else
        snprintf(addr, sizeof addr, "accept");
    snprintf(
        n->peers_yaml + l, sizeof n->peers_yaml - l,
        "    - {name: %s, layer: %s, transport: ws_peer, address: \"%s\", public_key: %s%s%s}\n",
        peer->name, peer->layer, addr, peer->pk_hex, *policy ? ", " : "", policy);
}

static inline void tn_write_config(struct tn_node *n) {
    char path[256];
    snprintf(path, sizeof path, "%s/chain.yaml", n->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fprintf(f,
            "node:\n  name: %s\n  layer: %s\n  data_dir: ./data\n  log: {level: info}\n"
            "  store: {sync: true}\n"
            "  rpc: {listen: \"127.0.0.1:%d\", anonymous: admin}\n"
            "plugins:\n"
            "  - name: ws_peer\n    path: ws_peer\n    config:\n"
            "      listen: \"127.0.0.1:%d\"\n      heartbeat: 300ms\n      heartbeat_misses: 3\n"
            "      reconnect_initial: 50ms\n      reconnect_max: 400ms\n"
            "      handshake_timeout: 2s\n      ack_timeout: 3s\n      max_frame: 64KiB\n%s",
            n->name, n->layer, n->rpc_port, n->ws_port, n->extra_ws);
    if (!n->no_sink)
        fprintf(f, "  - {name: sink, path: %s/%s}\n", TN_FIXTURES,
                n->sink_file ? n->sink_file : "sink.lua");
    if (n->peers_yaml[0])
        fprintf(f, "bridge:\n  peers:\n%s", n->peers_yaml);
    fclose(f);
}

static inline char *tn_slurp(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    size_t got = fread(buf, 1, (size_t)sz, f);
    buf[got] = 0;
    fclose(f);
    return buf;
}

/* Start (or restart) the node; logs append to dir/stderr.txt. */
static inline void tn_spawn(struct tn_node *n) {
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test never leaves a node behind */
        if (chdir(n->dir) != 0)
            _exit(127);
        int out = open("stdout.txt", O_WRONLY | O_CREAT | O_APPEND, 0600);
        int err = open("stderr.txt", O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(out, 1);
        dup2(err, 2);
        setenv("ADO_PLUGIN_PATH", ADO_BUILD_DIR "/plugins", 1);
        setenv("LSAN_OPTIONS", "suppressions=" TN_FIXTURES "/lsan.supp:print_suppressions=0", 0);
        execl(TN_ADONODE, "adonode", "--config", "chain.yaml", (char *)NULL);
        _exit(127);
    }
    n->pid = pid;
}

/* Count of `needle` in the node's log. */
static inline int tn_log_count(const struct tn_node *n, const char *needle) {
    char *s = tn_slurp(n->dir, "stderr.txt");
    int c = 0;
    for (char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        c++;
    free(s);
    return c;
}

/* Wait for the node's `want`-th "running" line (1 after the first start...). 0 if it exited
 * or timed out (its log then tells why). */
static inline int tn_wait_running(struct tn_node *n, int want, int timeout_ms) {
    uint64_t end = tn_ms() + (uint64_t)timeout_ms;
    while (tn_ms() < end) {
        if (tn_log_count(n, "running") >= want)
            return 1;
        int st;
        if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
            n->pid = 0;
            return 0;
        }
        usleep(5000);
    }
    return 0;
}

static inline void tn_kill9(struct tn_node *n) {
    if (n->pid > 0) {
        kill(n->pid, SIGKILL);
        waitpid(n->pid, NULL, 0);
    }
    n->pid = 0;
}

static inline int tn_stop(struct tn_node *n) {
    if (n->pid <= 0)
        return -1;
    kill(n->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        int st;
        if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
            n->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(10000);
    }
    tn_kill9(n);
    return -1;
}

static inline void tn_cleanup(struct tn_node *n) {
    tn_kill9(n);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", n->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", n->dir);
}

static inline int tn_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline int tn_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* A persistent HTTP/1.1 connection to a node's /rpc. */
struct tn_http {
    int fd, port;
    char *buf;
    size_t cap;
};

/* POST `body` to /rpc; returns the response body (owned by h, valid until the next call),
 * or NULL on failure. Reconnects once if the kept-alive connection was closed. */
static inline const char *tn_http_rpc(struct tn_http *h, const char *body) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (h->fd <= 0)
            h->fd = tn_connect(h->port);
        if (h->fd < 0)
            return NULL;
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          "application/json\r\nContent-Length: %zu\r\n\r\n",
                          strlen(body));
        if (tn_write_all(h->fd, head, (size_t)hl) || tn_write_all(h->fd, body, strlen(body))) {
            close(h->fd), h->fd = -1;
            continue;
        }
        size_t got = 0, need = 0, hdr = 0;
        for (;;) {
            if (got + 4096 + 1 > h->cap) {
                h->cap = h->cap ? h->cap * 2 : 65536;
                h->buf = realloc(h->buf, h->cap);
            }
            struct pollfd pfd = {h->fd, POLLIN, 0};
            if (poll(&pfd, 1, 10000) <= 0)
                break;
            ssize_t r = read(h->fd, h->buf + got, h->cap - got - 1);
            if (r <= 0)
                break;
            got += (size_t)r;
            h->buf[got] = 0;
            if (!hdr) {
                char *e = strstr(h->buf, "\r\n\r\n");
                if (!e)
                    continue;
                hdr = (size_t)(e + 4 - h->buf);
                char *cl = strcasestr(h->buf, "content-length:");
                need = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
            }
            if (got >= hdr + need)
                return h->buf + hdr;
        }
        close(h->fd), h->fd = -1;
        if (got)
            return NULL;
    }
    return NULL;
}

static inline void tn_http_close(struct tn_http *h) {
    if (h->fd > 0)
        close(h->fd);
    free(h->buf);
    memset(h, 0, sizeof *h);
}

/* One call to node n, new connection each time: returns a malloc'd response body. */
static inline char *tn_rpc(const struct tn_node *n, const char *method, const char *params) {
    struct tn_http h = {.fd = -1, .port = n->rpc_port};
    char body[65536];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
             method, params ? params : "{}");
    const char *r = tn_http_rpc(&h, body);
    char *out = strdup(r ? r : "");
    tn_http_close(&h);
    return out;
}

/* ---- raw WebSocket client (masked frames) ----------------------------------------------- */

static inline int tn_ws_open_path(int port, const char *path, const char *protocol) {
    int fd = tn_connect(port);
    if (fd < 0)
        return -1;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
                     path, protocol);
    if (tn_write_all(fd, req, (size_t)n)) {
        close(fd);
        return -1;
    }
    char resp[2048];
    size_t got = 0;
    while (got < sizeof resp - 1) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0 || read(fd, resp + got, 1) != 1)
            break;
        got++;
        resp[got] = 0;
        if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4))
            return strstr(resp, " 101 ") ? fd : (close(fd), -1);
    }
    close(fd);
    return -1;
}

static inline int tn_ws_open(int port, const char *protocol) {
    return tn_ws_open_path(port, "/", protocol);
}

static inline int tn_ws_send(int fd, int op, const void *data, size_t len) {
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        hdr[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8), hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(hdr + h, mask, 4);
    h += 4;
    uint8_t *buf = malloc(h + len);
    memcpy(buf, hdr, h);
    for (size_t i = 0; i < len; i++)
        buf[h + i] = ((const uint8_t *)data)[i] ^ mask[i & 3];
    int rc = tn_write_all(fd, buf, h + len);
    free(buf);
    return rc;
}

static inline int tn_read_n(int fd, void *out, size_t n, int timeout_ms) {
    uint8_t *p = out;
    while (n) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return -1;
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Read one frame (the server does not mask). Returns the payload length, -1 on EOF or
 * timeout. *op gets the opcode. */
static inline long tn_ws_recv(int fd, int *op, uint8_t *buf, size_t cap, int timeout_ms) {
    uint8_t h[2];
    if (tn_read_n(fd, h, 2, timeout_ms))
        return -1;
    *op = h[0] & 0x0f;
    uint64_t len = h[1] & 0x7f;
    uint8_t ext[8];
    if (len == 126) {
        if (tn_read_n(fd, ext, 2, timeout_ms))
            return -1;
        len = (uint64_t)ext[0] << 8 | ext[1];
    } else if (len == 127) {
        if (tn_read_n(fd, ext, 8, timeout_ms))
            return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | ext[i];
    }
    if (len > cap)
        return -1;
    if (len && tn_read_n(fd, buf, (size_t)len, timeout_ms))
        return -1;
    return (long)len;
}

/* Read frames until a close frame; returns its reason text (static) or "" on EOF. */
static inline const char *tn_ws_close_reason(int fd, int timeout_ms) {
    static __thread char reason[256];
    uint8_t buf[70000];
    int op;
    long n;
    reason[0] = 0;
    while ((n = tn_ws_recv(fd, &op, buf, sizeof buf, timeout_ms)) >= 0) {
        if (op == 8) {
            if (n > 2)
                snprintf(reason, sizeof reason, "%.*s", (int)(n - 2), (const char *)buf + 2);
            break;
        }
    }
    return reason;
}

#endif
