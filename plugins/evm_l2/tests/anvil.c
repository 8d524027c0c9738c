/* Test helper: anvil processes and a blocking JSON-RPC client (see anvil.h). */
#include "ado_test_net.h"
#include "anvil.h"

#include <arpa/inet.h>
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
#include <fcntl.h>

#define CONTRACTS ADO_SOURCE_DIR "/contracts"
#define ANVIL     CONTRACTS "/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

const char *anvil_bin(void) {
    if (access(ANVIL, X_OK) != 0) {
        fprintf(stderr, "anvil missing: running npm ci in %s\n", CONTRACTS);
        int rc = system("cd '" CONTRACTS "' && npm ci --no-audit --no-fund --loglevel=error");
        (void)rc;
    }
    if (access(ANVIL, X_OK) != 0) {
        fprintf(stderr, "anvil not found at %s (npm ci in contracts/ failed?)\n", ANVIL);
        return NULL;
    }
    return ANVIL;
}

static char *http_post(int port, const char *body) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(s);
        return NULL;
    }
    size_t bl = strlen(body);
    char *req = malloc(bl + 256);
    int n = snprintf(req, bl + 256,
                     "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     bl, body);
    ssize_t w = write(s, req, (size_t)n);
    free(req);
    if (w != n) {
        close(s);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(s, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
        char *hdr_end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "content-length:");
        if (hdr_end && cl && len >= (size_t)(hdr_end + 4 - buf) + (size_t)atol(cl + 15))
            break;
    }
    close(s);
    buf[len] = 0;
    char *b = strstr(buf, "\r\n\r\n");
    char *out = b ? strdup(b + 4) : NULL;
    free(buf);
    return out;
}

json_t *anvil_rpc(const struct anvil *a, const char *method, json_t *params, json_t **err) {
    json_t *req = json_pack("{s:s,s:i,s:s,s:o}", "jsonrpc", "2.0", "id", 1, "method", method,
                            "params", params ? params : json_array());
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char *resp = http_post(a->port, body);
    free(body);
    if (err)
        *err = NULL;
    if (!resp)
        return NULL;
    json_t *o = json_loads(resp, JSON_ALLOW_NUL, NULL);
    free(resp);
    json_t *r = json_incref(json_object_get(o, "result"));
    if (!r && err)
        *err = json_incref(json_object_get(o, "error"));
    json_decref(o);
    return r;
}

uint64_t anvil_u64(const struct anvil *a, const char *method, json_t *params) {
    json_t *r = anvil_rpc(a, method, params, NULL);
    uint64_t v = json_is_string(r) ? strtoull(json_string_value(r), NULL, 16)
                                   : (uint64_t)json_integer_value(r);
    json_decref(r);
    return v;
}

void anvil_mine(const struct anvil *a, int blocks) {
    for (int i = 0; i < blocks; i++)
        json_decref(anvil_rpc(a, "evm_mine", NULL, NULL));
}

int anvil_start(struct anvil *a, const char *extra, int keep_port) {
    const char *bin = anvil_bin();
    if (!bin)
        return -1;
    if (extra)
        snprintf(a->args, sizeof a->args, "%s", extra);
    for (int attempt = 0; attempt < 3; attempt++) {
        if (!keep_port || !a->port)
            a->port = ado_test_free_port();
        snprintf(a->url, sizeof a->url, "http://127.0.0.1:%d", a->port);
        char port[16];
        snprintf(port, sizeof port, "%d", a->port);
        char *argv[40] = {(char *)bin, "--host", "127.0.0.1", "--port", port, "--silent"};
        int argc = 6;
        char args[512];
        snprintf(args, sizeof args, "%s", a->args);
        for (char *tok = strtok(args, " "); tok && argc < 38; tok = strtok(NULL, " "))
            argv[argc++] = strdup(tok);
        argv[argc] = NULL;
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
            int dn = open("/dev/null", 1);
            dup2(dn, 1);
            execv(bin, argv);
            _exit(127);
        }
        for (int i = 6; i < argc; i++)
            free(argv[i]);
        a->pid = pid;
        for (int i = 0; i < 600; i++) { /* 30 s */
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                a->pid = 0;
                break;
            }
            json_t *r = anvil_rpc(a, "eth_chainId", NULL, NULL);
            if (r) {
                json_decref(r);
                return 0;
            }
            usleep(50000);
        }
        if (a->pid)
            anvil_stop(a);
    }
    return -1;
}

void anvil_stop(struct anvil *a) {
    if (a->pid <= 0)
        return;
    kill(a->pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(a->pid, NULL, WNOHANG) == a->pid) {
            a->pid = 0;
            return;
        }
        usleep(10000);
    }
    kill(a->pid, SIGKILL);
    waitpid(a->pid, NULL, 0);
    a->pid = 0;
}

json_t *anvil_deploy(const struct anvil *a, const char *key) {
    char cmd[1024];
    if (access(CONTRACTS "/build/TRNSettlement.json", R_OK) != 0) {
        int rc = system("cd '" CONTRACTS "' && node scripts/compile.mjs >/dev/null");
        (void)rc;
    }
    snprintf(cmd, sizeof cmd,
             "cd '" CONTRACTS "' && node scripts/deploy.mjs --rpc %s --key 0x%s "
             "--challenge-window 1",
             a->url, key);
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    pclose(f);
    json_t *o = json_loads(buf, JSON_ALLOW_NUL, NULL);
    if (!o)
        fprintf(stderr, "deploy.mjs said: %s\n", buf);
    return o;
}
