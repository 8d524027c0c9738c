/* RPC gateway tests: in-process dispatch (registry, roles, error codes), then a real adonode
 * process on a random free port driven over real sockets by our own small clients, curl and
 * the npm `ws` client. */
#include <sys/prctl.h>
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "node.h"
#include "rpc.h"

#define ADMIN  "admin-token-0123456789"
#define WRITER "writer-token-0123456789"

/* ---- in-process ------------------------------------------------------------------------ */

struct local {
    char *last;
    int n;
};

static void local_cb(void *arg, const char *resp) {
    struct local *l = arg;
    free(l->last);
    l->last = resp ? strdup(resp) : NULL;
    l->n++;
}

static json_t *local_call(struct ado_rpc *rpc, const char *req, const char *role, struct local *l) {
    l->n = 0;
    cr_assert_eq(ado_rpc_call_local(rpc, req, role, local_cb, l), 0);
    cr_assert_eq(l->n, 1, "answered exactly once");
    if (!l->last)
        return NULL;
    json_error_t e;
    json_t *v = json_loads(l->last, 0, &e);
    cr_assert(v, "valid JSON: %s", l->last);
    return v;
}

static int err_code(json_t *v) {
    return (int)json_integer_value(json_object_get(json_object_get(v, "error"), "code"));
}

static void bad_json_handler(ado_ctx *ctx, ado_call *call, const char *p, size_t len, void *a) {
    (void)ctx, (void)p, (void)len, (void)a;
    ado_rpc_reply(call, "{not json", 9);
}

static ado_call *parked;
static void park_handler(ado_ctx *ctx, ado_call *call, const char *p, size_t len, void *a) {
    (void)ctx, (void)p, (void)len, (void)a;
    parked = call;
}

Test(rpc_local, dispatch_error_codes_and_roles) {
    struct ado_node node;
    memset(&node, 0, sizeof node);
    struct ado_rpc *rpc = NULL;
    cr_assert_eq(ado_rpc_new(&node, &rpc), 0);
    struct local l = {0};
    json_t *v;

    v = local_call(rpc, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"rpc_echo\",\"params\":[1]}",
                   "reader", &l);
    cr_assert_eq(json_integer_value(json_object_get(v, "id")), 7);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(v, "result"), 0)), 1);
    json_decref(v);

    v = local_call(rpc, "{oops", "reader", &l);
    cr_assert_eq(err_code(v), -32700);
    json_decref(v);
    v = local_call(rpc, "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x_y\"}", "reader", &l);
    cr_assert_eq(err_code(v), -32600);
    json_decref(v);
    v = local_call(rpc, "[]", "reader", &l);
    cr_assert_eq(err_code(v), -32600);
    json_decref(v);
    v = local_call(rpc, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"no_such\"}", "reader", &l);
    cr_assert_eq(err_code(v), -32601);
    json_decref(v);
    v = local_call(rpc, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_publish\",\"params\":[1]}",
                   "admin", &l);
    cr_assert_eq(err_code(v), -32602);
    json_decref(v);
    v = local_call(rpc, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_publish\"}", "writer", &l);
    cr_assert_eq(err_code(v), -32002, "writer < admin");
    json_decref(v);
    v = local_call(rpc,
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_subscribe\","
                   "\"params\":[\"a.>\"]}",
                   "admin", &l);
    cr_assert_eq(err_code(v), -32006, "subscriptions need a WebSocket");
    json_decref(v);
    /* A notification gets no answer, even when it fails. */
    cr_assert_null(local_call(rpc, "{\"jsonrpc\":\"2.0\",\"method\":\"no_such\"}", "reader", &l));

    /* Registry rules. */
    cr_assert_eq(ado_rpc_register(rpc, NULL, "BadName", NULL, "", bad_json_handler, NULL),
                 ADO_EINVAL);
    cr_assert_eq(ado_rpc_register(rpc, NULL, "t_x", "root", "", bad_json_handler, NULL),
                 ADO_EINVAL);
    cr_assert_eq(ado_rpc_register(rpc, NULL, "t_bad", "reader", "", bad_json_handler, NULL), 0);
    cr_assert_eq(ado_rpc_register(rpc, NULL, "t_bad", "reader", "", bad_json_handler, NULL),
                 ADO_EEXIST);
    v = local_call(rpc, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"t_bad\"}", "reader", &l);
    cr_assert_eq(err_code(v), -32603, "invalid JSON from a handler becomes an internal error");
    cr_assert_str_eq(json_string_value(json_object_get(v, "id")), "s");
    json_decref(v);

    /* A handler that answers later: the batch waits for it, the other slot is kept. */
    cr_assert_eq(ado_rpc_register(rpc, NULL, "t_park", "reader", "", park_handler, NULL), 0);
    l.n = 0;
    ado_rpc_call_local(rpc,
                       "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t_park\"},"
                       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"rpc_echo\",\"params\":{}}]",
                       "reader", local_cb, &l);
    cr_assert_eq(l.n, 0, "not answered before the parked call");
    cr_assert(parked);
    ado_rpc_reply(parked, "42", 2);
    cr_assert_eq(l.n, 1);
    v = json_loads(l.last, 0, NULL);
    cr_assert_eq(json_array_size(v), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(v, 0), "result")), 42);
    json_decref(v);

    /* A call still pending when the registry goes is answered, not leaked. */
    parked = NULL;
    ado_rpc_call_local(rpc, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"t_park\"}", "reader",
                       local_cb, &l);
    cr_assert(parked);
    l.n = 0;
    ado_rpc_free(rpc);
    cr_assert_eq(l.n, 1);
    cr_assert(strstr(l.last, "-32000"));
    free(l.last);
}

/* Answers with the params text it was given, which must be NUL-terminated. */
static void params_handler(ado_ctx *ctx, ado_call *call, const char *p, size_t len, void *a) {
    (void)ctx, (void)a;
    cr_assert_eq(p[len], 0);
    ado_rpc_reply(call, p, len);
}

/* Answers with params[0], a string holding the answer's JSON text (valid or not). */
static void reply_handler(ado_ctx *ctx, ado_call *call, const char *p, size_t len, void *a) {
    (void)ctx, (void)a;
    json_t *v = json_loadb(p, len, 0, NULL);
    const char *t = json_string_value(json_array_get(v, 0));
    ado_rpc_reply(call, t, strlen(t));
    json_decref(v);
}

/* The request scanner (fast path) and jansson (batches, escapes, reals...) must answer alike:
 * exact answer texts, including jansson's normalisation of what the scanner hands over. */
Test(rpc_local, fast_path_answers_as_jansson) {
    struct ado_node node;
    memset(&node, 0, sizeof node);
    struct ado_rpc *rpc = NULL;
    cr_assert_eq(ado_rpc_new(&node, &rpc), 0);
    cr_assert_eq(ado_rpc_register(rpc, NULL, "t_params", NULL, "", params_handler, NULL), 0);
    cr_assert_eq(ado_rpc_register(rpc, NULL, "t_reply", NULL, "", reply_handler, NULL), 0);
    static const char *const cases[][2] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"rpc_echo\",\"params\":[1,\"a\",true,null,{"
         "\"k\":[]}]}",
         "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[1,\"a\",true,null,{\"k\":[]}]}"},
        {" { \"jsonrpc\" : \"2.0\" , \"id\" : \"x\" , \"method\" : \"rpc_echo\" , \"params\" : [ 1 "
         ", 2 ] } ",
         "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":[1,2]}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.50,\"method\":\"rpc_echo\","
         "\"params\":[2.50,-0,\"a\\/b\",{\"a\":1,\"a\":2},1e2]}",
         "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":[2.5,0,\"a/b\",{\"a\":2},100.0]}"},
        {"{\"jsonr\\u0070c\":\"2.0\",\"id\":\"\\u0041\",\"method\":\"rpc_echo\",\"params\":["
         "\"\xc3\xa9\"]}",
         "{\"jsonrpc\":\"2.0\",\"id\":\"A\",\"result\":[\"\xc3\xa9\"]}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x_y\",\"method\":\"rpc_echo\",\"params\":[3]}",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[3]}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"rpc_echo\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"
         "\"message\":\"invalid request: id must be a string or number\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"rpc_echo\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":null}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":12345678901234567890,\"method\":\"rpc_echo\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse "
         "error\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc_echo\",\"params\":[1e400]}",
         "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse "
         "error\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc_echo\",\"params\":[1,]}",
         "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse "
         "error\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc_echo\"} x",
         "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse "
         "error\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc_echo\",\"params\":\"x\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,"
         "\"message\":\"invalid request: params must be an array or object\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t_params\",\"params\":{\"b\":1,\"a\":[1, 2]}}",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"b\":1,\"a\":[1,2]}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"t_params\",\"params\":{\"b\":-1,\"a\":\"z\"}}",
         "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"b\":-1,\"a\":\"z\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"t_params\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":null}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"t_reply\",\"params\":[\"1e400\"]}",
         "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32603,"
         "\"message\":\"internal error: the handler returned invalid JSON\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"t_reply\",\"params\":[\"[1,2\"]}",
         "{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":-32603,"
         "\"message\":\"internal error: the handler returned invalid JSON\"}}"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"t_reply\",\"params\":[\" "
         "{\\\"a\\\":[true,0.5]} \"]}",
         "{\"jsonrpc\":\"2.0\",\"id\":6,\"result\": {\"a\":[true,0.5]} }"},
    };
    struct local l = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        l.n = 0;
        cr_assert_eq(ado_rpc_call_local(rpc, cases[i][0], "reader", local_cb, &l), 0);
        cr_assert_eq(l.n, 1);
        cr_expect_str_eq(l.last, cases[i][1], "request %s", cases[i][0]);
    }
    free(l.last);
    ado_rpc_free(rpc);
}

/* ---- a real node --------------------------------------------------------------------- */

struct node_proc {
    pid_t pid;
    int port;
    char dir[256];
};

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const void *b, size_t n) {
    const char *p = b;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One HTTP request on a fresh connection; returns status, *body malloc'd. */
static int http(int port, const char *method, const char *path, const char *token, const char *body,
                size_t blen, char **out) {
    *out = NULL;
    int fd = dial(port);
    if (fd < 0)
        return -1;
    char h[512], auth[128] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    int hl = snprintf(h, sizeof h,
                      "%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      method, path, auth, blen);
    send_all(fd, h, (size_t)hl);
    if (blen)
        send_all(fd, body, blen);
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
    int st = -1;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.1 %d", &st) != 1 || !sep) {
        free(buf);
        return -1;
    }
    *out = strdup(sep + 4);
    free(buf);
    return st;
}

static json_t *rpc_http(int port, const char *token, const char *req, int *status) {
    char *b = NULL;
    int st = http(port, "POST", "/rpc", token, req, strlen(req), &b);
    if (status)
        *status = st;
    json_t *v = b ? json_loads(b, JSON_DECODE_ANY, NULL) : NULL;
    cr_assert(st == 204 || v, "HTTP %d body %s", st, b ? b : "(none)");
    free(b);
    return v;
}

static void node_start(struct node_proc *n, const char *rpc_extra) {
    snprintf(n->dir, sizeof n->dir, "/tmp/ado_rpc_test.XXXXXX");
    cr_assert(mkdtemp(n->dir));
    n->port = free_port();
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/node.yaml", n->dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "node:\n  name: rpctest\n  data_dir: %s/data\n  log: {level: warn}\n"
            "  rpc:\n    listen: 127.0.0.1:%d\n    anonymous: reader\n"
            "    tokens:\n      - {name: ops, token: %s, roles: [admin]}\n"
            "      - {name: app, token: %s, roles: [writer, reader]}\n%s",
            n->dir, n->port, ADMIN, WRITER, rpc_extra ? rpc_extra : "");
    fclose(f);
    char bin[512], logp[512];
    snprintf(bin, sizeof bin, "%s/core/adonode", ADO_BUILD_DIR);
    snprintf(logp, sizeof logp, "%s/node.log", n->dir);
    n->pid = fork();
    cr_assert(n->pid >= 0);
    if (n->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test never leaves a node behind */
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "--config", cfg, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* poll /healthz, up to ~10 s */
        char *b = NULL;
        if (http(n->port, "GET", "/healthz", NULL, NULL, 0, &b) == 200) {
            free(b);
            return;
        }
        free(b);
        int st;
        if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
            n->pid = 0;
            cr_assert_fail("adonode exited during start (see %s)", logp);
        }
        usleep(20000);
    }
    cr_assert_fail("adonode did not answer /healthz");
}

static void node_stop(struct node_proc *n) {
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        int st = 0;
        for (int i = 0; i < 250 && waitpid(n->pid, &st, WNOHANG) == 0; i++)
            usleep(20000);
        if (waitpid(n->pid, &st, WNOHANG) == 0) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, &st, 0);
        }
        n->pid = 0;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", n->dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", n->dir);
}

/* ---- minimal WebSocket client ------------------------------------------------------- */

static int ws_open(int port, const char *token) {
    int fd = dial(port);
    if (fd < 0)
        return -1;
    char req[512], auth[128] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
                     "\r\n%s\r\n",
                     auth);
    if (send_all(fd, req, (size_t)n)) {
        close(fd);
        return -1;
    }
    char r[1024];
    size_t rl = 0;
    while (rl < sizeof r - 1) {
        if (recv(fd, r + rl, 1, 0) != 1)
            break;
        rl++;
        if (rl >= 4 && !memcmp(r + rl - 4, "\r\n\r\n", 4))
            break;
    }
    r[rl] = 0;
    if (strncmp(r, "HTTP/1.1 101", 12)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int ws_send(int fd, const char *data, size_t len) {
    unsigned char h[14];
    size_t hl = 0;
    h[hl++] = 0x81;
    if (len < 126)
        h[hl++] = (unsigned char)(0x80 | len);
    else if (len < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memset(h + hl, 0, 4); /* a zero mask keeps the payload as is */
    hl += 4;
    return send_all(fd, h, hl) || send_all(fd, data, len) ? -1 : 0;
}

static int recv_all(int fd, void *b, size_t n) {
    char *p = b;
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static json_t *ws_recv(int fd) {
    unsigned char h[2];
    if (recv_all(fd, h, 2))
        return NULL;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        unsigned char e[2];
        recv_all(fd, e, 2);
        len = ((uint64_t)e[0] << 8) | e[1];
    } else if (len == 127) {
        unsigned char e[8];
        recv_all(fd, e, 8);
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | e[i];
    }
    char *b = malloc(len + 1);
    if (recv_all(fd, b, len)) {
        free(b);
        return NULL;
    }
    b[len] = 0;
    json_t *v = json_loads(b, JSON_DECODE_ANY, NULL);
    cr_assert(v, "server sent invalid JSON: %.200s", b);
    free(b);
    return v;
}

static json_t *ws_call(int fd, const char *req) {
    cr_assert_eq(ws_send(fd, req, strlen(req)), 0);
    json_t *v = ws_recv(fd);
    cr_assert(v, "answer expected for %s", req);
    return v;
}

static double metric(int port, const char *series) {
    char *b = NULL;
    cr_assert_eq(http(port, "GET", "/metrics", NULL, NULL, 0, &b), 200);
    char key[256];
    snprintf(key, sizeof key, "\n%s", series); /* a sample line, not a # TYPE line */
    const char *p = strstr(b, key);
    double v = p ? atof(p + strlen(key)) : -1;
    free(b);
    return v;
}

/* ---- tests against the process -------------------------------------------------------- */

Test(rpc_node, every_error_code_over_http_and_ws) {
    struct node_proc n;
    node_start(&n, "    max_request_size: 4KiB\n");
    int st;
    json_t *v;
    v = rpc_http(n.port, NULL, "{\"jsonrpc\":", &st);
    cr_expect_eq(err_code(v), -32700);
    json_decref(v);
    v = rpc_http(n.port, NULL, "{\"foo\":1}", &st);
    cr_expect_eq(err_code(v), -32600);
    json_decref(v);
    v = rpc_http(n.port, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope_x\"}", &st);
    cr_expect_eq(err_code(v), -32601);
    json_decref(v);
    v = rpc_http(n.port, ADMIN,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_publish\","
                 "\"params\":{\"topic\":\"a.*\"}}",
                 &st);
    cr_expect_eq(err_code(v), -32602);
    json_decref(v);
    v = rpc_http(n.port, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_publish\"}", &st);
    cr_expect_eq(err_code(v), -32001, "anonymous needs a token for admin methods");
    json_decref(v);
    v = rpc_http(n.port, WRITER, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_publish\"}", &st);
    cr_expect_eq(err_code(v), -32002, "writer is not admin");
    json_decref(v);
    v = rpc_http(n.port, NULL,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_subscribe\","
                 "\"params\":[\"a\"]}",
                 &st);
    cr_expect_eq(err_code(v), -32006);
    json_decref(v);
    /* oversized: HTTP answers 413 with a JSON-RPC error, the same connection could go on */
    size_t big = 8000;
    char *body = malloc(big);
    memset(body, ' ', big);
    char *b = NULL;
    st = http(n.port, "POST", "/rpc", NULL, body, big, &b);
    cr_expect_eq(st, 413);
    v = json_loads(b, 0, NULL);
    cr_expect_eq(err_code(v), -32003);
    json_decref(v);
    free(b);
    /* oversized over WebSocket: an error, and the connection stays usable */
    int fd = ws_open(n.port, NULL);
    cr_assert(fd >= 0);
    cr_assert_eq(ws_send(fd, body, big), 0);
    v = ws_recv(fd);
    cr_expect_eq(err_code(v), -32003);
    json_decref(v);
    v = ws_call(fd, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"node_info\"}");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(v, "result"), "name")),
                     "rpctest");
    json_decref(v);
    close(fd);
    free(body);
    /* notification only: 204, no body */
    v = rpc_http(n.port, NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"node_info\"}", &st);
    cr_expect_eq(st, 204);
    cr_expect_null(v);
    node_stop(&n);
}

Test(rpc_node, batch_mixing_good_and_bad_calls) {
    struct node_proc n;
    node_start(&n, NULL);
    json_t *v = rpc_http(n.port, NULL,
                         "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc_echo\",\"params\":[1]},"
                         "{\"jsonrpc\":\"2.0\",\"method\":\"rpc_echo\"},"
                         "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope_x\"},"
                         "7,"
                         "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"bus_publish\"},"
                         "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"node_info\"}]",
                         NULL);
    cr_assert(json_is_array(v));
    cr_assert_eq(json_array_size(v), 5, "the notification gets no answer");
    cr_expect_eq(
        json_integer_value(json_array_get(json_object_get(json_array_get(v, 0), "result"), 0)), 1);
    cr_expect_eq(err_code(json_array_get(v, 1)), -32601);
    cr_expect_eq(err_code(json_array_get(v, 2)), -32600);
    cr_expect(json_is_null(json_object_get(json_array_get(v, 2), "id")));
    cr_expect_eq(err_code(json_array_get(v, 3)), -32001);
    cr_expect(json_object_get(json_array_get(v, 4), "result"));
    json_decref(v);
    node_stop(&n);
}

Test(rpc_node, wrong_token_is_an_error_not_a_crash) {
    struct node_proc n;
    node_start(&n, NULL);
    int st;
    json_t *v = rpc_http(n.port, "not-the-token",
                         "{\"jsonrpc\":\"2.0\",\"id\":1,"
                         "\"method\":\"node_info\"}",
                         &st);
    cr_expect_eq(st, 401);
    cr_expect_eq(err_code(v), -32001);
    json_decref(v);
    int fd = ws_open(n.port, "not-the-token");
    cr_assert(fd >= 0);
    v = ws_call(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"node_info\"}");
    cr_expect_eq(err_code(v), -32001);
    json_decref(v);
    close(fd);
    char *b = NULL;
    cr_expect_eq(http(n.port, "GET", "/healthz", NULL, NULL, 0, &b), 200);
    free(b);
    node_stop(&n);
}

Test(rpc_node, client_disconnecting_with_calls_in_flight) {
    struct node_proc n;
    node_start(&n, NULL);
    int fd = ws_open(n.port, NULL);
    cr_assert(fd >= 0);
    for (int i = 0; i < 50; i++) {
        char req[160];
        snprintf(req, sizeof req,
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"rpc_echo\","
                 "\"params\":{\"delay_ms\":%d}}",
                 i, 50 + i * 2);
        cr_assert_eq(ws_send(fd, req, strlen(req)), 0);
    }
    /* Wait until the node holds them, then vanish. */
    for (int i = 0; i < 200 && metric(n.port, "ado_rpc_pending_calls ") < 50; i++)
        usleep(5000);
    close(fd);
    for (int i = 0; i < 300 && metric(n.port, "ado_rpc_pending_calls ") != 0; i++)
        usleep(10000);
    cr_expect_eq(metric(n.port, "ado_rpc_pending_calls "), 0);
    cr_expect_eq(metric(n.port, "ado_rpc_calls_total{method=\"rpc_echo\",outcome=\"ok\"} "), 50,
                 "answered into the void");
    cr_expect_eq(metric(n.port, "ado_rpc_open_connections "), 1, "only /metrics's own");
    node_stop(&n);
}

/* Many calls written at once, answers of every frame size batched into few writes: each
 * answer arrives whole, once, in order (the node answers these in order of arrival). */
Test(rpc_node, pipelined_answers_arrive_whole_and_in_order) {
    struct node_proc n;
    node_start(&n, NULL);
    int fd = ws_open(n.port, NULL);
    cr_assert(fd >= 0);
    size_t big = 70000, cap = big + 256;
    char *pad = malloc(big + 1);
    memset(pad, 'x', big);
    pad[big] = 0;
    for (int i = 0; i < 400; i++) {
        char req[160];
        size_t len;
        if (i % 100 == 50) { /* 64-bit and 16-bit frame lengths among the small ones */
            char *r = malloc(cap);
            len = (size_t)snprintf(r, cap,
                                   "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"rpc_echo\","
                                   "\"params\":[\"%.*s\"]}",
                                   i, i == 50 ? (int)big : 300, pad);
            cr_assert_eq(ws_send(fd, r, len), 0);
            free(r);
            continue;
        }
        if (i % 7 == 3) /* a notification: no answer */
            len = (size_t)snprintf(req, sizeof req,
                                   "{\"jsonrpc\":\"2.0\",\"method\":\"rpc_echo\",\"params\":[]}");
        else
            len = (size_t)snprintf(req, sizeof req,
                                   "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"rpc_echo\","
                                   "\"params\":[%d]}",
                                   i, i);
        cr_assert_eq(ws_send(fd, req, len), 0);
    }
    for (int i = 0; i < 400; i++) {
        if (i % 7 == 3 && i % 100 != 50)
            continue;
        json_t *v = ws_recv(fd);
        cr_assert(v, "answer %d", i);
        cr_assert_eq(json_integer_value(json_object_get(v, "id")), i, "in order");
        json_t *r = json_array_get(json_object_get(v, "result"), 0);
        if (i % 100 == 50)
            cr_assert_eq(json_string_length(r), i == 50 ? big : 300);
        else
            cr_assert_eq(json_integer_value(r), i);
        json_decref(v);
    }
    free(pad);
    close(fd);
    node_stop(&n);
}

/* ---- answers written at the end of the loop turn (not from a writeable callback) ------- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A connection whose receive buffer is small, so the node's sends come back partial. */
static int dial_small(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rb = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read one answer on a kept-alive connection: its status, its body in *out (malloc'd). */
static int ka_read(int fd, char **out) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    char *sep = NULL;
    while (!(sep = len ? strstr(buf, "\r\n\r\n") : NULL)) {
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k <= 0) {
            free(buf);
            return -1;
        }
        len += (size_t)k;
        buf[len] = 0;
    }
    int st = -1;
    sscanf(buf, "HTTP/1.1 %d", &st);
    const char *cl = strcasestr(buf, "content-length:");
    size_t want = cl && cl < sep ? (size_t)atoll(cl + 15) : 0;
    size_t head = (size_t)(sep + 4 - buf);
    if (head + want + 1 > cap)
        buf = realloc(buf, cap = head + want + 1);
    if (len < head + want && recv_all(fd, buf + len, head + want - len)) {
        free(buf);
        return -1;
    }
    buf[head + want] = 0;
    *out = strdup(buf + head);
    free(buf);
    return st;
}

/* One request on a kept-alive connection and its answer. */
static int ka_call(int fd, const char *method, const char *path, const char *body, char **out) {
    char h[256];
    size_t blen = body ? strlen(body) : 0;
    int hl = snprintf(h, sizeof h, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                      method, path, blen);
    if (send_all(fd, h, (size_t)hl) || (blen && send_all(fd, body, blen)))
        return -1;
    return ka_read(fd, out);
}

Test(rpc_node, http_answers_outside_the_writeable_callback, .timeout = 60) {
    struct node_proc n;
    node_start(&n, NULL);
    /* Connection: close: the node closes right after the answer (the client reads to EOF). */
    for (int i = 0; i < 20; i++) {
        double t0 = now_ms();
        json_t *v =
            rpc_http(n.port, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc_echo\"}", NULL);
        cr_assert(json_object_get(v, "result"));
        json_decref(v);
        cr_assert_lt(now_ms() - t0, 300.0, "a Connection: close answer ends promptly");
    }
    /* Keep-alive: many transactions on one connection, a 404, and an answer too big for the
     * socket (lws finishes it, then the next one works). */
    int fd = dial_small(n.port);
    cr_assert(fd >= 0);
    char *b = NULL;
    for (int i = 0; i < 200; i++) {
        char req[128];
        snprintf(req, sizeof req,
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"rpc_echo\",\"params\":[%d]}", i, i);
        cr_assert_eq(ka_call(fd, "POST", "/rpc", req, &b), 200);
        json_t *v = json_loads(b, 0, NULL);
        cr_assert_eq(json_integer_value(json_array_get(json_object_get(v, "result"), 0)), i);
        json_decref(v);
        free(b);
    }
    cr_assert_eq(ka_call(fd, "GET", "/nope", NULL, &b), 404);
    free(b);
    size_t big = 900000;
    char *req = malloc(big + 128);
    int l = snprintf(req, big + 128,
                     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"rpc_echo\",\"params\":[\"");
    memset(req + l, 'y', big);
    strcpy(req + l + big, "\"]}");
    char h[160];
    int hl = snprintf(h, sizeof h, "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                      strlen(req));
    cr_assert_eq(send_all(fd, h, (size_t)hl), 0);
    cr_assert_eq(send_all(fd, req, strlen(req)), 0);
    usleep(200000); /* the node's send stays partial meanwhile */
    cr_assert_eq(ka_read(fd, &b), 200);
    json_t *v = json_loads(b, 0, NULL);
    cr_assert(v, "the big answer arrives whole: %.200s", b);
    cr_assert_eq(json_integer_value(json_object_get(v, "id")), 7, "%.300s", b);
    cr_assert_eq(json_string_length(json_array_get(json_object_get(v, "result"), 0)), big);
    json_decref(v);
    free(b);
    cr_assert_eq(ka_call(fd, "GET", "/healthz", NULL, &b), 200, "keep-alive goes on after it");
    cr_assert_str_eq(b, "ok\n");
    free(b);
    free(req);
    close(fd);
    node_stop(&n);
}

Test(rpc_node, ws_answers_to_a_slow_reader_arrive_whole_and_in_order, .timeout = 60) {
    struct node_proc n;
    node_start(&n, NULL);
    int fd = ws_open(n.port, NULL);
    cr_assert(fd >= 0);
    int rb = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
    size_t pad = 20000;
    char *r = malloc(pad + 160);
    for (int i = 0; i < 200; i++) {
        int l =
            snprintf(r, pad + 160,
                     "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"rpc_echo\",\"params\":[\"", i);
        memset(r + l, 'a' + i % 26, pad);
        strcpy(r + l + pad, "\"]}");
        cr_assert_eq(ws_send(fd, r, strlen(r)), 0);
    }
    free(r);
    usleep(300000); /* let the node hit a full socket */
    for (int i = 0; i < 60; i++) {
        json_t *v = ws_recv(fd);
        cr_assert(v, "answer %d", i);
        cr_assert_eq(json_integer_value(json_object_get(v, "id")), i, "in order");
        const char *t = json_string_value(json_array_get(json_object_get(v, "result"), 0));
        cr_assert(t && strlen(t) == pad && t[0] == 'a' + i % 26 && t[pad - 1] == t[0]);
        json_decref(v);
    }
    close(fd);
    node_stop(&n);
}

Test(rpc_node, slow_subscriber_is_bounded_and_told) {
    struct node_proc n;
    node_start(&n, "    subscriber_queue: 8\n");
    int sub = ws_open(n.port, NULL);
    cr_assert(sub >= 0);
    json_t *v = ws_call(sub, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_subscribe\","
                             "\"params\":[\"slow.>\"]}");
    const char *sid = json_string_value(json_object_get(v, "result"));
    cr_assert(sid);
    char subid[32];
    snprintf(subid, sizeof subid, "%s", sid);
    json_decref(v);
    /* 100 events in one loop turn: far more than the queue bound of 8. */
    size_t cap = 100 * 96 + 8, len = 0;
    char *batch = malloc(cap);
    batch[len++] = '[';
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(batch + len, cap - len,
                                "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"bus_publish\","
                                "\"params\":[\"slow.t\",%d]}",
                                i ? "," : "", i, i);
    batch[len++] = ']';
    batch[len] = 0;
    v = rpc_http(n.port, ADMIN, batch, NULL);
    cr_assert_eq(json_array_size(v), 100);
    json_decref(v);
    free(batch);
    long events = 0, dropped = 0, last = -1;
    while (events + dropped < 100) {
        v = ws_recv(sub);
        cr_assert(v, "notification expected (events %ld dropped %ld)", events, dropped);
        json_t *p = json_object_get(v, "params");
        cr_assert_str_eq(json_string_value(json_object_get(v, "method")), "bus_subscription");
        cr_assert_str_eq(json_string_value(json_object_get(p, "subscription")), subid);
        json_t *r = json_object_get(p, "result");
        if (json_object_get(r, "dropped")) {
            dropped += (long)json_integer_value(json_object_get(r, "dropped"));
        } else {
            long d = (long)json_integer_value(json_object_get(r, "data"));
            cr_assert_gt(d, last, "in publish order");
            last = d;
            events++;
        }
        json_decref(v);
    }
    cr_expect_leq(events, 8, "never more than the bound queued");
    cr_expect_eq(events + dropped, 100);
    cr_expect_eq(metric(n.port, "ado_rpc_subscriber_dropped_total "), (double)dropped);
    close(sub);
    node_stop(&n);
}

Test(rpc_node, thousand_concurrent_connections, .timeout = 60) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    cr_assert_geq(rl.rlim_cur, 2100, "RLIMIT_NOFILE hard limit too low for 1000 connections");
    struct node_proc n;
    node_start(&n, "    max_connections: 1100\n");
    enum { N = 1000 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = ws_open(n.port, NULL);
        cr_assert(fds[i] >= 0, "connection %d refused", i);
    }
    cr_expect_eq(metric(n.port, "ado_rpc_open_connections "), N + 1,
                 "the /metrics request counts too");
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"node_info\"}";
    for (int i = 0; i < N; i++)
        cr_assert_eq(ws_send(fds[i], req, strlen(req)), 0);
    for (int i = 0; i < N; i++) {
        json_t *v = ws_recv(fds[i]);
        cr_assert(v && json_object_get(v, "result"), "answer on connection %d", i);
        json_decref(v);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    for (int i = 0; i < 300 && metric(n.port, "ado_rpc_open_connections ") != 1; i++)
        usleep(10000);
    cr_expect_eq(metric(n.port, "ado_rpc_open_connections "), 1);
    node_stop(&n);
}

static int run(const char *cmd, char *out, size_t outlen) {
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = 0;
    char sink[4096]; /* drain the rest: closing early makes the command fail writing (EPIPE) */
    while (fread(sink, 1, sizeof sink, p) > 0)
        ;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(rpc_node, curl_parses_our_http) {
    struct node_proc n;
    node_start(&n, "    cors_origins: [\"https://app.example\"]\n");
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd,
             "curl -sS --fail-with-body -H 'Content-Type: application/json' "
             "-H 'Authorization: Bearer %s' "
             "-d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"node_info\"}' "
             "http://127.0.0.1:%d/rpc "
             "--next -sS -d '[{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"rpc_methods\"}]' "
             "http://127.0.0.1:%d/rpc",
             ADMIN, n.port, n.port);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "curl: %s", out);
    /* curl reused the connection (keep-alive): two JSON documents back to back */
    json_error_t e;
    json_t *v = json_loads(out, JSON_DISABLE_EOF_CHECK, &e);
    cr_assert(v, "curl output: %s", out);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(v, "result"), "name")),
                     "rpctest");
    json_decref(v);
    snprintf(cmd, sizeof cmd,
             "curl -sS -i -X OPTIONS -H 'Origin: https://app.example' http://127.0.0.1:%d/rpc",
             n.port);
    cr_assert_eq(run(cmd, out, sizeof out), 0);
    cr_expect(strstr(out, "access-control-allow-origin: https://app.example"), "%s", out);
    snprintf(cmd, sizeof cmd, "curl -sS --fail http://127.0.0.1:%d/metrics", n.port);
    cr_assert_eq(run(cmd, out, sizeof out), 0);
    cr_expect(strstr(out, "# TYPE ado_rpc_calls_total counter"));
    snprintf(cmd, sizeof cmd, "curl -sS -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/readyz",
             n.port);
    cr_assert_eq(run(cmd, out, sizeof out), 0);
    cr_expect_str_eq(out, "200");
    node_stop(&n);
}

Test(rpc_node, npm_ws_client_parses_our_websocket, .timeout = 120) {
    char dir[512], cmd[1200], out[8192];
    snprintf(dir, sizeof dir, "%s/tests/rpc", ADO_SOURCE_DIR);
    snprintf(cmd, sizeof cmd, "%s/node_modules/ws/package.json", dir);
    struct stat sb;
    if (stat(cmd, &sb) != 0) {
        snprintf(cmd, sizeof cmd, "cd '%s' && npm ci --no-audit --no-fund 2>&1", dir);
        int rc = run(cmd, out, sizeof out);
        cr_assert_eq(rc, 0, "the npm `ws` client is missing and `npm ci` failed in %s:\n%s", dir,
                     out);
    }
    struct node_proc n;
    node_start(&n, NULL);
    snprintf(cmd, sizeof cmd, "node '%s/ws_client.js' ws://127.0.0.1:%d/ws %s 2>&1", dir, n.port,
             ADMIN);
    int rc = run(cmd, out, sizeof out);
    cr_expect_eq(rc, 0, "ws client: %s", out);
    cr_expect(strstr(out, "OK"), "%s", out);
    node_stop(&n);
}

Test(rpc_node, adoctl_exit_codes) {
    struct node_proc n;
    node_start(&n, NULL);
    char cmd[1024], out[8192];
    const char *A = ADO_BUILD_DIR "/tools/adoctl/adoctl";
    snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d --json status", A, n.port);
    cr_expect_eq(run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d call nope_x 2>/dev/null", A, n.port);
    cr_expect_eq(run(cmd, out, sizeof out), 1);
    snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d --token bad call node_info 2>&1", A,
             n.port);
    cr_expect_eq(run(cmd, out, sizeof out), 4);
    snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d call 2>&1", A, n.port);
    cr_expect_eq(run(cmd, out, sizeof out), 2);
    node_stop(&n);
    snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d status 2>&1", A, n.port);
    cr_expect_eq(run(cmd, out, sizeof out), 3, "node gone: unreachable");
}
