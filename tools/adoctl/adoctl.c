/* adoctl: the command-line client of an adonode node (JSON-RPC over HTTP, subscriptions over
 * WebSocket). Plain sockets, no TLS: point it at a plain listener (or use curl for https).
 *
 * Exit codes: 0 ok, 1 the node answered with a JSON-RPC error, 2 bad usage or bad input,
 * 3 node unreachable or the transport failed, 4 authentication/authorization refused,
 * 5 (status only) the node is alive but not ready. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#ifdef ADOCTL_HAVE_MERKLE
#include "merkle_cmd.h"
#endif

enum { EX_OK = 0, EX_RPC = 1, EX_USAGE = 2, EX_UNREACHABLE = 3, EX_AUTH = 4, EX_NOTREADY = 5 };

struct opts {
    char host[256];
    char port[16];
    const char *token;
    int json;
    int timeout_ms;
};

static void usage(FILE *f) {
    fputs("usage: adoctl [--url URL] [--token T] [--json] [--timeout MS] COMMAND\n"
          "commands:\n"
          "  call METHOD [PARAMS_JSON]   call a method, print its result\n"
          "  status                      node_info and /readyz\n"
          "  plugins                     each plugin's state, breaker and error counts\n"
          "  methods                     every method with its role\n"
          "  subscribe TOPIC             stream bus events until interrupted (WebSocket)\n"
#ifdef ADOCTL_HAVE_MERKLE
          "  merkle of ...               OpenZeppelin StandardMerkleTree tools\n"
#endif
          "URL defaults to $ADOCTL_URL or http://127.0.0.1:8645; the token to $ADOCTL_TOKEN.\n"
          "exit codes: 0 ok, 1 RPC error, 2 usage, 3 unreachable, 4 auth refused, 5 not ready\n",
          f);
}

static int parse_url(const char *url, struct opts *o) {
    const char *p = url;
    if (!strncmp(p, "http://", 7))
        p += 7;
    else if (!strncmp(p, "ws://", 5))
        p += 5;
    else if (!strncmp(p, "https://", 8) || !strncmp(p, "wss://", 6)) {
        fprintf(stderr, "adoctl: TLS URLs are not supported; use a plain listener or curl\n");
        return -1;
    } else if (strstr(p, "://")) {
        fprintf(stderr, "adoctl: unsupported URL scheme: %s\n", url);
        return -1;
    }
    const char *end = p + strcspn(p, "/");
    const char *colon = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return -1;
        snprintf(o->host, sizeof o->host, "%.*s", (int)(rb - p - 1), p + 1);
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        size_t hl = (size_t)((colon ? colon : end) - p);
        if (!hl || hl >= sizeof o->host)
            return -1;
        snprintf(o->host, sizeof o->host, "%.*s", (int)hl, p);
    }
    if (colon)
        snprintf(o->port, sizeof o->port, "%.*s", (int)(end - colon - 1), colon + 1);
    else
        snprintf(o->port, sizeof o->port, "80");
    return 0;
}

static int dial(const struct opts *o) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(o->host, o->port, &hints, &res))
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One HTTP/1.1 exchange with Connection: close. *body is malloc'd. Returns the status or -1
 * when the node cannot be reached. */
static int http_do(const struct opts *o, const char *method, const char *path, const char *body,
                   char **out) {
    *out = NULL;
    int fd = dial(o);
    if (fd < 0)
        return -1;
    char hdr[1024];
    char auth[600] = "";
    if (o->token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", o->token);
    int hl = snprintf(hdr, sizeof hdr,
                      "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: adoctl\r\n%s"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      method, path, o->host, o->port, auth, body ? strlen(body) : 0);
    if (hl < 0 || (size_t)hl >= sizeof hdr || send_all(fd, hdr, (size_t)hl) ||
        (body && send_all(fd, body, strlen(body)))) {
        close(fd);
        return -1;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf)
        return -1;
    buf[len] = 0;
    int status = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !sep) {
        free(buf);
        return -1;
    }
    *out = strdup(sep + 4);
    free(buf);
    return *out ? status : -1;
}

static int exit_for_error(const json_t *err) {
    json_int_t code = json_integer_value(json_object_get(err, "code"));
    return code == -32001 || code == -32002 ? EX_AUTH : EX_RPC;
}

/* Call `method`; on success *result is the result (new reference). Prints errors. */
static int rpc_call(const struct opts *o, const char *method, json_t *params, json_t **result,
                    json_t **whole) {
    *result = NULL;
    if (whole)
        *whole = NULL;
    json_t *req = json_pack("{s:s,s:i,s:s}", "jsonrpc", "2.0", "id", 1, "method", method);
    if (params)
        json_object_set(req, "params", params);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char *body = NULL;
    int st = text ? http_do(o, "POST", "/rpc", text, &body) : -1;
    free(text);
    if (st < 0) {
        fprintf(stderr, "adoctl: cannot reach the node at %s:%s\n", o->host, o->port);
        return EX_UNREACHABLE;
    }
    json_error_t e;
    json_t *resp = json_loads(body, 0, &e);
    if (!resp) {
        fprintf(stderr, "adoctl: HTTP %d with a body that is not JSON: %.200s\n", st, body);
        free(body);
        return st == 401 || st == 403 ? EX_AUTH : EX_UNREACHABLE;
    }
    free(body);
    json_t *err = json_object_get(resp, "error");
    if (err) {
        if (whole)
            *whole = resp;
        fprintf(stderr, "adoctl: error %lld: %s\n",
                (long long)json_integer_value(json_object_get(err, "code")),
                json_string_value(json_object_get(err, "message")));
        int rc = exit_for_error(err);
        if (!whole)
            json_decref(resp);
        return rc;
    }
    *result = json_incref(json_object_get(resp, "result"));
    if (whole)
        *whole = resp;
    else
        json_decref(resp);
    return EX_OK;
}

static void print_json(const json_t *v) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_INDENT(2));
    if (s)
        puts(s);
    free(s);
}

static int cmd_call(const struct opts *o, int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        usage(stderr);
        return EX_USAGE;
    }
    json_t *params = NULL;
    if (argc == 3) {
        json_error_t e;
        params = json_loads(argv[2], JSON_DECODE_ANY, &e);
        if (!params || !(json_is_array(params) || json_is_object(params))) {
            fprintf(stderr, "adoctl: PARAMS_JSON must be a JSON array or object (%s)\n",
                    params ? "got a scalar" : e.text);
            json_decref(params);
            return EX_USAGE;
        }
    }
    json_t *res = NULL, *whole = NULL;
    int rc = rpc_call(o, argv[1], params, &res, &whole);
    json_decref(params);
    if (o->json && whole) {
        char *s = json_dumps(whole, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
    } else if (rc == EX_OK) {
        print_json(res);
    }
    json_decref(res);
    json_decref(whole);
    return rc;
}

static int cmd_status(const struct opts *o) {
    json_t *info = NULL;
    int rc = rpc_call(o, "node_info", NULL, &info, NULL);
    if (rc)
        return rc;
    char *ready = NULL;
    int st = http_do(o, "GET", "/readyz", NULL, &ready);
    int ok = st == 200;
    if (ready) {
        size_t n = strlen(ready);
        while (n && (ready[n - 1] == '\n' || ready[n - 1] == '\r'))
            ready[--n] = 0;
    }
    if (o->json) {
        json_object_set_new(info, "ready", json_boolean(ok));
        json_object_set_new(info, "ready_reason", json_string(ready ? ready : "unreachable"));
        char *s = json_dumps(info, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
    } else {
        printf("node     %s (%s)\nversion  %s (ABI %s)\nuptime   %.1f s\nplugins  %lld\n"
               "ready    %s%s%s%s\n",
               json_string_value(json_object_get(info, "name")),
               json_string_value(json_object_get(info, "layer")),
               json_string_value(json_object_get(info, "version")),
               json_string_value(json_object_get(info, "abi")),
               json_number_value(json_object_get(info, "uptime_s")),
               (long long)json_integer_value(json_object_get(info, "plugins")), ok ? "yes" : "no",
               ready && !ok ? " (" : "", ready && !ok ? ready : "", ready && !ok ? ")" : "");
    }
    free(ready);
    json_decref(info);
    return ok ? EX_OK : EX_NOTREADY;
}

static const char *s_or(const json_t *o, const char *k, const char *d) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : d;
}

static int cmd_plugins(const struct opts *o) {
    json_t *list = NULL;
    int rc = rpc_call(o, "node_plugins", NULL, &list, NULL);
    if (rc)
        return rc;
    if (o->json) {
        char *s = json_dumps(list, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
    } else {
        printf("%-20s %-10s %-4s %-9s %-10s %10s %9s  %s\n", "NAME", "VERSION", "KIND", "STATE",
               "BREAKER", "CALLS", "FAILURES", "LAST ERROR / DEGRADED");
        size_t i;
        json_t *p;
        json_array_foreach(list, i, p) {
            const char *deg = s_or(p, "degraded", NULL);
            printf("%-20s %-10s %-4s %-9s %-10s %10lld %9lld  %s%s\n", s_or(p, "name", "?"),
                   s_or(p, "version", "?"), s_or(p, "kind", "?"), s_or(p, "state", "?"),
                   s_or(p, "breaker", "?"),
                   (long long)json_integer_value(json_object_get(p, "calls_total")),
                   (long long)json_integer_value(json_object_get(p, "failures_total")),
                   s_or(p, "last_error", deg ? "" : "-"), deg ? deg : "");
        }
        if (!json_array_size(list))
            printf("(no plugins)\n");
    }
    json_decref(list);
    return EX_OK;
}

static int cmd_methods(const struct opts *o) {
    json_t *list = NULL;
    int rc = rpc_call(o, "rpc_methods", NULL, &list, NULL);
    if (rc)
        return rc;
    if (o->json) {
        char *s = json_dumps(list, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
    } else {
        size_t i;
        json_t *m;
        json_array_foreach(list, i, m) {
            printf("%-28s %-7s %s\n", s_or(m, "name", "?"), s_or(m, "role", "?"),
                   s_or(m, "description", ""));
        }
    }
    json_decref(list);
    return EX_OK;
}

/* ---- a small WebSocket client (RFC 6455), enough for one subscription --------------- */

static int recv_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n <= 0)
            return n < 0 && errno == EINTR ? -2 : -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int ws_send(int fd, int opcode, const char *data, size_t len) {
    unsigned char h[14];
    size_t hl = 0;
    h[hl++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[hl++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    unsigned char mask[4];
    for (int i = 0; i < 4; i++)
        mask[i] = (unsigned char)(rand() & 0xff);
    memcpy(h + hl, mask, 4);
    hl += 4;
    char *m = malloc(len ? len : 1);
    if (!m)
        return -1;
    for (size_t i = 0; i < len; i++)
        m[i] = (char)(data[i] ^ mask[i & 3]);
    int rc = send_all(fd, h, hl) || send_all(fd, m, len) ? -1 : 0;
    free(m);
    return rc;
}

/* Read one whole message (text or binary); answers pings. *out malloc'd. -1 closed, -2 EINTR */
static int ws_recv(int fd, char **out, size_t *outlen) {
    char *msg = NULL;
    size_t mlen = 0;
    for (;;) {
        unsigned char h[2];
        int rc = recv_all(fd, h, 2);
        if (rc) {
            free(msg);
            return rc;
        }
        int fin = h[0] & 0x80, op = h[0] & 0x0f;
        uint64_t len = h[1] & 0x7f;
        if (len == 126) {
            unsigned char e[2];
            if ((rc = recv_all(fd, e, 2)))
                return free(msg), rc;
            len = ((uint64_t)e[0] << 8) | e[1];
        } else if (len == 127) {
            unsigned char e[8];
            if ((rc = recv_all(fd, e, 8)))
                return free(msg), rc;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | e[i];
        }
        if (len > (64u << 20)) {
            free(msg);
            return -1;
        }
        char *nm = realloc(msg, mlen + len + 1);
        if (!nm) {
            free(msg);
            return -1;
        }
        msg = nm;
        if ((rc = recv_all(fd, msg + mlen, len)))
            return free(msg), rc;
        if (op == 8) {
            free(msg);
            return -1;
        }
        if (op == 9) {
            ws_send(fd, 10, msg + mlen, len);
            continue;
        }
        if (op == 10)
            continue;
        mlen += len;
        if (fin) {
            msg[mlen] = 0;
            *out = msg;
            *outlen = mlen;
            return 0;
        }
    }
}

static void on_sigint(int sig) {
    (void)sig; /* only interrupts the blocking recv */
}

static int cmd_subscribe(struct opts *o, int argc, char **argv) {
    if (argc != 2) {
        usage(stderr);
        return EX_USAGE;
    }
    o->timeout_ms = 0; /* streams: no receive timeout after the handshake */
    int fd = dial(o);
    if (fd < 0) {
        fprintf(stderr, "adoctl: cannot reach the node at %s:%s\n", o->host, o->port);
        return EX_UNREACHABLE;
    }
    char auth[600] = "";
    if (o->token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", o->token);
    char req[1200];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: YWRvY3RsLXN1YnNjcmliZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     o->host, o->port, auth);
    char resp[4096];
    size_t rl = 0;
    if (send_all(fd, req, (size_t)n)) {
        close(fd);
        return EX_UNREACHABLE;
    }
    while (rl < sizeof resp - 1) { /* byte by byte: frames may follow the headers */
        ssize_t k = recv(fd, resp + rl, 1, 0);
        if (k <= 0)
            break;
        rl++;
        resp[rl] = 0;
        if (rl >= 4 && !memcmp(resp + rl - 4, "\r\n\r\n", 4))
            break;
    }
    resp[rl] = 0;
    int st = 0;
    if (sscanf(resp, "HTTP/1.1 %d", &st) != 1 || st != 101) {
        fprintf(stderr, "adoctl: WebSocket upgrade refused (HTTP %d)\n", st);
        close(fd);
        return st == 401 || st == 403 ? EX_AUTH : EX_UNREACHABLE;
    }
    json_t *sub = json_pack("{s:s,s:i,s:s,s:[s]}", "jsonrpc", "2.0", "id", 1, "method",
                            "bus_subscribe", "params", argv[1]);
    char *t = json_dumps(sub, JSON_COMPACT);
    json_decref(sub);
    if (!t || ws_send(fd, 1, t, strlen(t))) {
        free(t);
        close(fd);
        return EX_UNREACHABLE;
    }
    free(t);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: recv returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = EX_OK;
    for (;;) {
        char *m = NULL;
        size_t ml = 0;
        int r = ws_recv(fd, &m, &ml);
        if (r == -2)
            break; /* interrupted: a normal end */
        if (r) {
            fprintf(stderr, "adoctl: connection closed by the node\n");
            rc = EX_UNREACHABLE;
            break;
        }
        json_error_t e;
        json_t *v = json_loadb(m, ml, 0, &e);
        json_t *err = v ? json_object_get(v, "error") : NULL;
        if (err) {
            fprintf(stderr, "adoctl: error %lld: %s\n",
                    (long long)json_integer_value(json_object_get(err, "code")),
                    json_string_value(json_object_get(err, "message")));
            rc = exit_for_error(err);
            json_decref(v);
            free(m);
            break;
        }
        if (o->json) {
            fwrite(m, 1, ml, stdout);
            fputc('\n', stdout);
        } else if (v && json_object_get(v, "id")) {
            fprintf(stderr, "subscribed to %s (%s); Ctrl-C to stop\n", argv[1],
                    s_or(v, "result", "?"));
        } else if (v) {
            json_t *res = json_object_get(json_object_get(v, "params"), "result");
            json_t *drop = json_object_get(res, "dropped");
            if (drop) {
                printf("!! %lld events dropped (this client read too slowly)\n",
                       (long long)json_integer_value(drop));
            } else {
                char *d = json_dumps(json_object_get(res, "data"), JSON_ENCODE_ANY | JSON_COMPACT);
                printf("%s %s\n", s_or(res, "topic", "?"), d ? d : "null");
                free(d);
            }
        }
        fflush(stdout);
        json_decref(v);
        free(m);
    }
    ws_send(fd, 8, "\x03\xe8", 2);
    close(fd);
    return rc;
}

int main(int argc, char **argv) {
    struct opts o;
    memset(&o, 0, sizeof o);
    o.timeout_ms = 10000;
    const char *url = getenv("ADOCTL_URL");
    o.token = getenv("ADOCTL_TOKEN");
    if (o.token && !*o.token)
        o.token = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--token") && i + 1 < argc)
            o.token = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            o.timeout_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            o.json = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return EX_OK;
        } else {
            fprintf(stderr, "adoctl: unknown option %s\n", argv[i]);
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[i];
#ifdef ADOCTL_HAVE_MERKLE
    if (!strcmp(cmd, "merkle"))
        return adoctl_merkle_main(argc - i, argv + i);
#endif
    if (parse_url(url ? url : "http://127.0.0.1:8645", &o)) {
        fprintf(stderr, "adoctl: bad URL\n");
        return EX_USAGE;
    }
    if (o.timeout_ms <= 0)
        o.timeout_ms = 10000;
    if (!strcmp(cmd, "call"))
        return cmd_call(&o, argc - i, argv + i);
    if (!strcmp(cmd, "status") && argc - i == 1)
        return cmd_status(&o);
    if (!strcmp(cmd, "plugins") && argc - i == 1)
        return cmd_plugins(&o);
    if (!strcmp(cmd, "methods") && argc - i == 1)
        return cmd_methods(&o);
    if (!strcmp(cmd, "subscribe"))
        return cmd_subscribe(&o, argc - i, argv + i);
    fprintf(stderr, "adoctl: unknown command %s\n", cmd);
    usage(stderr);
    return EX_USAGE;
}
