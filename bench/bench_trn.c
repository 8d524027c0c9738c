/* Benchmarks of the trn_oracle plugin (docs/benchmarks-trn.md).
 *
 *   bench_trn views [CONNS] [SECONDS]   (a) durable trn_view/s and latency over HTTP keep-alive
 *                                           against an adonode process (store sync on)
 *   bench_trn wsviews [CONNS] [DEPTH] [SECONDS]  (a) the same over WebSocket, DEPTH calls in
 *                                           flight per connection (default 4 x 64, 10 s)
 *   bench_trn epoch [ACCOUNTS]          (b) an epoch of ACCOUNTS earning accounts (default
 *                                           1000000), closed by trn_closeEpoch in-process: time
 *                                           to the root with every proof retrievable; then
 *                                           @openzeppelin/merkle-tree on 100000 in Node
 *   bench_trn day [VIEWS]               (c) a realistic day (default 1000000 views, Zipf
 *                                           popularity): activity data before/after Brotli vs
 *                                           the same events as JSON, and the build timings
 * The plugin is loaded from the build (plugins/trn_oracle.so). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "node.h"
#include "rpc.h"
#include "bus.h"

#define TRN_SO   ADO_BUILD_DIR "/plugins/trn_oracle.so"
#define TREASURY "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void addr_text(uint32_t i, char out[43]) {
    snprintf(out, 43, "0x%08x%032x", 0xabc00000u, i);
}

/* ---- in-process node ----------------------------------------------------------------------- */

struct inproc {
    uv_loop_t loop;
    struct ado_node *node;
    struct ado_config *cfg;
    struct ado_diag diag;
    char dir[64];
};

static int inproc_start(struct inproc *n, const char *extra) {
    snprintf(n->dir, sizeof n->dir, "/tmp/bench-trn-XXXXXX");
    if (!mkdtemp(n->dir))
        return -1;
    char path[128], yaml[2048];
    snprintf(path, sizeof path, "%s/chain.yaml", n->dir);
    snprintf(yaml, sizeof yaml,
             "node:\n  name: bench\n  data_dir: %s/data\n  log: {level: warn}\n"
             "  store: {sync: false, map_size: 1GiB}\n  rpc: {listen: 127.0.0.1:0}\n"
             "plugins:\n  - name: trn\n    path: %s\n    config:\n"
             "      treasury: \"" TREASURY "\"\n"
             "      rates: {view_reward: \"1000000000000000\"}\n"
             "      l2: {submit: false}\n%s",
             n->dir, TRN_SO, extra);
    FILE *f = fopen(path, "w");
    fputs(yaml, f);
    fclose(f);
    ado_diag_init(&n->diag);
    uv_loop_init(&n->loop);
    if (ado_config_load(path, &n->cfg, &n->diag) < 0)
        return -1;
    n->node = ado_node_new(&n->loop);
    n->node->log.level = n->cfg->log_level;
    if (ado_node_load(n->node, n->cfg, &n->diag) < 0 || ado_node_start(n->node, &n->diag) < 0) {
        for (size_t i = 0; i < n->diag.n; i++)
            fprintf(stderr, "%s\n", n->diag.msgs[i]);
        return -1;
    }
    return 0;
}

static void inproc_stop(struct inproc *n) {
    ado_node_stop(n->node);
    ado_node_free(n->node);
    ado_config_free(n->cfg);
    ado_diag_fini(&n->diag);
    uv_run(&n->loop, UV_RUN_NOWAIT);
    uv_loop_close(&n->loop);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", n->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", n->dir);
}

struct pending {
    long outstanding;
    long errors;
    char *last;
    int keep;
};

static void on_resp(void *arg, const char *resp) {
    struct pending *p = arg;
    p->outstanding--;
    if (!resp || strstr(resp, "\"error\""))
        p->errors++;
    if (p->keep) {
        free(p->last);
        p->last = resp ? strdup(resp) : NULL;
    }
}

/* Issue a local call; keep at most `window` in flight by running the loop. */
static void call(struct inproc *n, struct pending *p, const char *method, const char *params,
                 long window) {
    char req[512];
    snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
             method, params);
    p->outstanding++;
    ado_rpc_call_local(n->node->rpc, req, "admin", on_resp, p);
    while (p->outstanding >= window)
        uv_run(&n->loop, UV_RUN_NOWAIT);
}

static void drain(struct inproc *n, struct pending *p) {
    while (p->outstanding > 0)
        uv_run(&n->loop, UV_RUN_NOWAIT);
}

static void fund_treasury(struct inproc *n) {
    const char *ev = "{\"tx\":\"0x01\",\"log_index\":0,\"args\":{\"account\":\"" TREASURY
                     "\",\"amount\":\"0xffffffffffffffffffffffffffffffffffffffff\"}}";
    ado_bus_publish(n->node->bus, "bridge.in.l2.Deposited", ev, strlen(ev));
    uv_run(&n->loop, UV_RUN_NOWAIT);
}

static json_t *close_epoch(struct inproc *n, double *secs) {
    struct pending p = {.keep = 1};
    double t0 = now_s();
    call(n, &p, "trn_closeEpoch", "{}", 1);
    drain(n, &p);
    *secs = now_s() - t0;
    json_t *v = p.last ? json_loads(p.last, 0, NULL) : NULL;
    free(p.last);
    json_t *r = json_incref(json_object_get(v, "result"));
    if (!r)
        fprintf(stderr, "close failed: %s\n", p.last ? "error" : "no answer");
    json_decref(v);
    return r;
}

/* ---- (b) an epoch of N accounts ------------------------------------------------------------ */

static int bench_epoch(long n) {
    struct inproc node;
    if (inproc_start(&node, "      tuning: {compression_quality: 5}\n") < 0)
        return 1;
    fund_treasury(&node);
    struct pending p = {0};
    char params[200], a[43];
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        addr_text((uint32_t)i, a);
        snprintf(params, sizeof params, "{\"content\":\"c%ld\",\"creator\":\"%s\"}", i, a);
        call(&node, &p, "trn_registerContent", params, 256);
        snprintf(params, sizeof params, "{\"content\":\"c%ld\",\"viewer\":\"%s\"}", i, TREASURY);
        call(&node, &p, "trn_view", params, 256);
    }
    drain(&node, &p);
    double tpop = now_s() - t0;
    /* trn_closeEpoch, and meanwhile trn_proof of one account every millisecond: the first that
     * succeeds marks the root durable with every proof retrievable (the tree serves them all);
     * the close's own answer comes once the data and the outbox messages are committed too. */
    struct pending cl = {.keep = 1}, pr = {.keep = 1};
    addr_text(0, a);
    char proof_params[120];
    snprintf(proof_params, sizeof proof_params, "{\"epoch\":0,\"account\":\"%s\"}", a);
    t0 = now_s();
    call(&node, &cl, "trn_closeEpoch", "{}", 2);
    double troot = 0, tclose = 0;
    while (cl.outstanding > 0 || troot == 0) {
        if (troot == 0 && pr.outstanding == 0) {
            long errs = pr.errors;
            if (pr.last && errs == 0) {
                troot = now_s() - t0;
                continue;
            }
            pr.errors = 0;
            call(&node, &pr, "trn_proof", proof_params, 2);
        }
        uv_run(&node.loop, UV_RUN_NOWAIT);
        if (cl.outstanding == 0 && tclose == 0)
            tclose = now_s() - t0;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    drain(&node, &pr);
    free(pr.last);
    json_t *v = cl.last ? json_loads(cl.last, 0, NULL) : NULL;
    free(cl.last);
    json_t *r = json_incref(json_object_get(v, "result"));
    json_decref(v);
    if (!r) {
        fprintf(stderr, "close failed\n");
        return 1;
    }
    printf("epoch of %ld accounts (populated in-process with %ld calls in %.1f s, %ld errors)\n", n,
           2 * n, tpop, p.errors);
    json_t *bm = json_object_get(r, "build_ms");
    printf("  root durable, every proof retrievable (trn_proof answers): %.3f s after "
           "trn_closeEpoch; the close's answer (data and outbox committed too): %.3f s\n"
           "  (freeze: collect from LMDB + reconcile on the loop; then on the worker: "
           "tree %lld ms, then encode %lld ms + brotli and chunk hashes %lld ms)\n",
           troot, tclose, (long long)json_integer_value(json_object_get(bm, "tree")),
           (long long)json_integer_value(json_object_get(bm, "encode")),
           (long long)json_integer_value(json_object_get(bm, "compress")));
    printf("  leaves %lld, data %lld -> %lld bytes, %lld chunks\n",
           (long long)json_integer_value(json_object_get(r, "leaves")),
           (long long)json_integer_value(json_object_get(r, "raw_size")),
           (long long)json_integer_value(json_object_get(r, "data_size")),
           (long long)json_integer_value(json_object_get(r, "chunks")));
    json_decref(r);
    /* Every proof retrievable: fetch a sample of 10000 through trn_proof. */
    long sample = n < 10000 ? n : 10000;
    struct pending q = {0};
    t0 = now_s();
    for (long i = 0; i < sample; i++) {
        addr_text((uint32_t)(i * (n / sample)), a);
        snprintf(params, sizeof params, "{\"epoch\":0,\"account\":\"%s\"}", a);
        call(&node, &q, "trn_proof", params, 64);
    }
    drain(&node, &q);
    double tp = now_s() - t0;
    printf("  trn_proof: %ld proofs in %.3f s (%.0f/s in-process), %ld errors\n", sample, tp,
           (double)sample / tp, q.errors);
    inproc_stop(&node);
    /* The reference: @openzeppelin/merkle-tree on 100000 leaves (bench/merkle_oz). */
    const char *oz = ADO_SOURCE_DIR "/bench/merkle_oz";
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "cd %s && (test -d node_modules/@openzeppelin || npm ci --no-audit --no-fund "
             "--loglevel=error >/dev/null) && node merkle_oz.mjs 100000 of-only",
             oz);
    printf("  reference (bench/merkle_oz): ");
    fflush(stdout);
    if (system(cmd) != 0)
        printf("node/npm not available\n");
    return 0;
}

/* ---- (c) a realistic day ------------------------------------------------------------------- */

/* Zipf(s = 1.0) sampler over 1..n by inverse CDF on a precomputed table. */
struct zipf {
    double *cdf;
    long n;
};

static void zipf_init(struct zipf *z, long n) {
    z->n = n;
    z->cdf = malloc((size_t)n * sizeof *z->cdf);
    double sum = 0;
    for (long i = 0; i < n; i++)
        z->cdf[i] = (sum += 1.0 / (double)(i + 1));
    for (long i = 0; i < n; i++)
        z->cdf[i] /= sum;
}

static long zipf_draw(const struct zipf *z, uint64_t *rng) {
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
    double u = (double)(*rng >> 11) / 9007199254740992.0;
    long lo = 0, hi = z->n - 1;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int bench_day(long views) {
    long ncontent = 20000, nviewers = 200000, nboosts = views / 200, nburns = views / 1000;
    struct inproc node;
    if (inproc_start(&node, "      tuning: {compression_quality: 9}\n") < 0)
        return 1;
    fund_treasury(&node);
    struct zipf zc, zv;
    zipf_init(&zc, ncontent);
    zipf_init(&zv, nviewers);
    char params[256], a[43], *json = malloc(256);
    size_t json_bytes = 0;
    FILE *jf = fopen("/tmp/bench_trn_day.jsonl", "w");
    struct pending p = {0};
    /* creators: 5000 of them, each with 4 contents */
    for (long i = 0; i < ncontent; i++) {
        addr_text((uint32_t)(i % 5000), a);
        snprintf(params, sizeof params, "{\"content\":\"video-%ld\",\"creator\":\"%s\"}", i, a);
        call(&node, &p, "trn_registerContent", params, 256);
        json_bytes += (size_t)fprintf(jf,
                                      "{\"op\":\"register\",\"content\":\"video-%ld\","
                                      "\"creator\":\"%s\"}\n",
                                      i, a);
    }
    /* viewers get deposits so that they can boost and burn */
    for (long i = 0; i < 2000; i++) {
        addr_text((uint32_t)(1000000 + i), a);
        char ev[300];
        int len = snprintf(ev, sizeof ev,
                           "{\"tx\":\"0x%lx\",\"log_index\":1,\"args\":{\"account\":\"%s\","
                           "\"amount\":\"1000000000000000000000\"}}",
                           i + 2, a);
        ado_bus_publish(node.node->bus, "bridge.in.l2.Deposited", ev, (size_t)len);
    }
    uint64_t rng = 88172645463325252ull;
    long total = views + nboosts + nburns;
    for (long k = 0; k < total; k++) {
        long c = zipf_draw(&zc, &rng);
        if (k % 200 == 199) {
            addr_text((uint32_t)(1000000 + zipf_draw(&zv, &rng) % 2000), a);
            snprintf(
                params, sizeof params,
                "{\"content\":\"video-%ld\",\"account\":\"%s\",\"amount\":\"%ld000000000000000\"}",
                c, a, 1 + (long)(rng % 50));
            call(&node, &p, "trn_boost", params, 256);
            json_bytes += (size_t)fprintf(jf, "{\"op\":\"boost\",%s\n", params + 1);
        } else if (k % 1000 == 998) {
            addr_text((uint32_t)(1000000 + zipf_draw(&zv, &rng) % 2000), a);
            snprintf(params, sizeof params, "{\"account\":\"%s\",\"amount\":\"%ld00000000000000\"}",
                     a, 1 + (long)(rng % 9));
            call(&node, &p, "trn_burn", params, 256);
            json_bytes += (size_t)fprintf(jf, "{\"op\":\"burn\",%s\n", params + 1);
        } else {
            addr_text((uint32_t)(1000000 + zipf_draw(&zv, &rng)), a);
            snprintf(params, sizeof params, "{\"content\":\"video-%ld\",\"viewer\":\"%s\"}", c, a);
            call(&node, &p, "trn_view", params, 256);
            json_bytes += (size_t)fprintf(jf, "{\"op\":\"view\",%s\n", params + 1);
        }
    }
    drain(&node, &p);
    fclose(jf);
    free(json);
    double tclose;
    json_t *r = close_epoch(&node, &tclose);
    if (!r)
        return 1;
    long long raw = (long long)json_integer_value(json_object_get(r, "raw_size"));
    long long z = (long long)json_integer_value(json_object_get(r, "data_size"));
    json_t *bm = json_object_get(r, "build_ms");
    printf("a day: %ld views, %ld boosts, %ld burns, %ld registrations over %ld contents "
           "(Zipf 1.0), %ld viewers (Zipf 1.0); %ld refused (no balance)\n",
           views, nboosts, nburns, ncontent, ncontent, nviewers, p.errors);
    printf("  events as JSON lines: %zu bytes\n", json_bytes);
    printf("  trn-activity-v1: %lld bytes raw (%.1f%% of JSON), %lld bytes after Brotli q9 "
           "(%.1f%% of JSON, %.1f%% less calldata), %lld chunks of 120 KiB\n",
           raw, 100.0 * (double)raw / (double)json_bytes, z, 100.0 * (double)z / (double)json_bytes,
           100.0 - 100.0 * (double)z / (double)json_bytes,
           (long long)json_integer_value(json_object_get(r, "chunks")));
    printf("  worker: encode %lld ms, brotli %lld ms, tree %lld ms (%lld leaves); "
           "trn_closeEpoch %.3f s end to end\n",
           (long long)json_integer_value(json_object_get(bm, "encode")),
           (long long)json_integer_value(json_object_get(bm, "compress")),
           (long long)json_integer_value(json_object_get(bm, "tree")),
           (long long)json_integer_value(json_object_get(r, "leaves")), tclose);
    json_decref(r);
    /* The published data, for the Brotli settings sweep below (Node's zlib decompresses it). */
    struct pending q = {.keep = 1};
    call(&node, &q, "trn_epochData", "{\"epoch\":0,\"encoding\":\"base64\"}", 1);
    drain(&node, &q);
    json_t *dv = q.last ? json_loads(q.last, 0, NULL) : NULL;
    const char *b64 = json_string_value(json_object_get(json_object_get(dv, "result"), "data"));
    FILE *df = b64 ? fopen("/tmp/bench_trn_day.b64", "w") : NULL;
    if (df) {
        fputs(b64, df);
        fclose(df);
    }
    json_decref(dv);
    free(q.last);
    inproc_stop(&node);
    printf("  the same trn-activity-v1 bytes at other Brotli settings (Node zlib, window 24):\n");
    fflush(stdout);
    if (df && system("node -e \"const z=require('zlib'),fs=require('fs'),C=z.constants;const raw=z."
                     "brotliDecompressSync(Buffer.from(fs.readFileSync('/tmp/bench_trn_day.b64','"
                     "utf8'),'base64'));for(const q of [4,5,6,7,8,9]){const t=process.hrtime."
                     "bigint();const c=z.brotliCompressSync(raw,{params:{[C.BROTLI_PARAM_QUALITY]"
                     ":q,[C.BROTLI_PARAM_LGWIN]:24,[C.BROTLI_PARAM_SIZE_HINT]:raw.length}});"
                     "console.log('    q'+q+': '+c.length+' bytes in '+Number((process.hrtime."
                     "bigint()-t)/1000000n)+' ms')}\"") != 0)
        printf("    node not available\n");
    unlink("/tmp/bench_trn_day.b64");
    printf("  JSON lines with Brotli q9 (Node zlib), for a fair comparison: ");
    fflush(stdout);
    if (system("node -e \"const z=require('zlib'),fs=require('fs');const d=fs.readFileSync('/tmp/"
               "bench_trn_day.jsonl');const t=Date.now();const c=z.brotliCompressSync(d,{params:"
               "{[z.constants.BROTLI_PARAM_QUALITY]:9,[z.constants.BROTLI_PARAM_LGWIN]:24}});"
               "console.log(c.length+' bytes in '+(Date.now()-t)+' ms')\"") != 0)
        printf("node not available\n");
    unlink("/tmp/bench_trn_day.jsonl");
    free(zc.cdf), free(zv.cdf);
    return 0;
}

/* ---- (a) durable trn_view/s over HTTP keep-alive -------------------------------------------- */

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

/* One request on a keep-alive connection, blocking; returns 0 if the answer has a result. */
static int http_call(int fd, const char *body, char *buf, size_t cap) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench-token-0123456789"
                     "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k <= 0)
            return -1;
        len += (size_t)k;
        buf[len] = 0;
        char *h = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "content-length:");
        if (h && cl && len >= (size_t)(h + 4 - buf) + (size_t)atol(cl + 15))
            return strstr(h, "\"result\"") ? 0 : 1;
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- (a) over WebSocket: each connection a thread keeping DEPTH views in flight ------- */

struct ws_worker {
    pthread_t th;
    int port, depth, index;
    double end;
    long errors;
    double *lat;
    size_t nlat, cap;
};

static int ws_send_text(int fd, const char *s, size_t n) {
    uint8_t frame[512];
    size_t h = 0;
    frame[h++] = 0x81;
    if (n < 126) {
        frame[h++] = (uint8_t)(0x80 | n);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (uint8_t)(n >> 8);
        frame[h++] = (uint8_t)n;
    }
    static const uint8_t mask[4] = {1, 2, 3, 4};
    memcpy(frame + h, mask, 4);
    h += 4;
    if (h + n > sizeof frame)
        return -1;
    for (size_t i = 0; i < n; i++)
        frame[h + i] = (uint8_t)s[i] ^ mask[i & 3];
    return send(fd, frame, h + n, MSG_NOSIGNAL) == (ssize_t)(h + n) ? 0 : -1;
}

static int read_n(int fd, void *out, size_t n) {
    uint8_t *p = out;
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One server frame (never masked) into buf; its length or -1. */
static long ws_recv_text(int fd, char *buf, size_t cap) {
    uint8_t h[2], ext[8];
    if (read_n(fd, h, 2))
        return -1;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        if (read_n(fd, ext, 2))
            return -1;
        len = (uint64_t)ext[0] << 8 | ext[1];
    } else if (len == 127) {
        if (read_n(fd, ext, 8))
            return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | ext[i];
    }
    if (len >= cap || (len && read_n(fd, buf, (size_t)len)))
        return -1;
    buf[len] = 0;
    return (long)len;
}

static int ws_open(int port) {
    int fd = dial(port);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const char req[] =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Authorization: Bearer bench-token-0123456789\r\n\r\n";
    char resp[1024];
    size_t got = 0;
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
        goto fail;
    while (got < sizeof resp - 1 && recv(fd, resp + got, 1, 0) == 1) {
        resp[++got] = 0;
        if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4))
            return strstr(resp, " 101 ") ? fd : (close(fd), -1);
    }
fail:
    close(fd);
    return -1;
}

static int ws_send_view(int fd, int worker, uint32_t id) {
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"trn_view\",\"params\":{"
                     "\"content\":\"v\",\"viewer\":\"0x%08x%032x\"}}",
                     id, (unsigned)worker + 1, id % 100000 + 1);
    return ws_send_text(fd, body, (size_t)n);
}

#define WS_RING 65536 /* send times by id; far more than any depth in flight */

static void *ws_worker_run(void *arg) {
    struct ws_worker *w = arg;
    double *sent = calloc(WS_RING, sizeof *sent);
    char buf[4096];
    int fd = ws_open(w->port);
    if (fd < 0 || !sent) {
        w->errors++;
        free(sent);
        return NULL;
    }
    uint32_t next = 1;
    int outstanding = 0;
    for (; outstanding < w->depth; outstanding++, next++) {
        sent[next % WS_RING] = now_s();
        if (ws_send_view(fd, w->index, next))
            w->errors++;
    }
    while (outstanding > 0) {
        if (ws_recv_text(fd, buf, sizeof buf) < 0) {
            w->errors++;
            break;
        }
        outstanding--;
        double t = now_s();
        const char *idp = strstr(buf, "\"id\":");
        if (!idp || !strstr(buf, "\"result\"")) {
            w->errors++;
        } else if (w->nlat < w->cap) {
            w->lat[w->nlat++] = t - sent[strtoul(idp + 5, NULL, 10) % WS_RING];
        }
        if (t < w->end) {
            sent[next % WS_RING] = t;
            if (ws_send_view(fd, w->index, next++))
                w->errors++;
            else
                outstanding++;
        }
    }
    close(fd);
    free(sent);
    return NULL;
}

/* Run conns WebSocket workers against port for `seconds`; prints the figure line. */
static void ws_views(int port, int conns, int depth, int seconds) {
    struct ws_worker *w = calloc((size_t)conns, sizeof *w);
    double t0 = now_s();
    for (int i = 0; i < conns; i++) {
        w[i] = (struct ws_worker){.port = port, .depth = depth, .index = i, .end = t0 + seconds};
        w[i].cap = (size_t)200000 * (size_t)seconds;
        w[i].lat = malloc(w[i].cap * sizeof *w[i].lat);
        pthread_create(&w[i].th, NULL, ws_worker_run, &w[i]);
    }
    size_t n = 0;
    long errors = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(w[i].th, NULL);
        n += w[i].nlat;
        errors += w[i].errors;
    }
    double dt = now_s() - t0;
    double *lat = malloc((n ? n : 1) * sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(lat + k, w[i].lat, w[i].nlat * sizeof *lat);
        k += w[i].nlat;
        free(w[i].lat);
    }
    qsort(lat, n, sizeof *lat, cmp_d);
    printf("trn_view over WebSocket, %d connections x %d in flight, store sync on, %.1f s: "
           "%zu durable views, %.0f/s, latency p50 %.2f ms p99 %.2f ms max %.2f ms, %ld errors\n",
           conns, depth, dt, n, (double)n / dt, n ? 1e3 * lat[n / 2] : 0,
           n ? 1e3 * lat[(size_t)((double)n * 0.99)] : 0, n ? 1e3 * lat[n - 1] : 0, errors);
    free(lat);
    free(w);
}

static int bench_views(int conns, int seconds, int ws_depth) {
    char dir[] = "/tmp/bench-trn-views-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    int port = free_port();
    char cfg[256], yaml[2048];
    snprintf(cfg, sizeof cfg, "%s/chain.yaml", dir);
    snprintf(
        yaml, sizeof yaml,
        "node:\n  name: bench\n  data_dir: %s/data\n  log: {level: warn}\n"
        "  store: {sync: true, map_size: 1GiB}\n"
        "  rpc:\n    listen: 127.0.0.1:%d\n    max_connections: 4096\n"
        "    tokens: [{name: b, token: bench-token-0123456789, roles: [admin, writer, reader]}]\n"
        "plugins:\n  - name: trn\n    path: %s\n    config:\n"
        "      treasury: \"" TREASURY "\"\n      l2: {submit: false}\n",
        dir, port, TRN_SO);
    FILE *f = fopen(cfg, "w");
    fputs(yaml, f);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        execl(ADO_BUILD_DIR "/core/adonode", "adonode", "--config", cfg, (char *)NULL);
        _exit(127);
    }
    char buf[8192];
    int fd0 = -1;
    for (int i = 0; i < 500 && fd0 < 0; i++) {
        usleep(10000);
        fd0 = dial(port);
    }
    if (fd0 < 0)
        return 1;
    http_call(fd0,
              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_publish\",\"params\":{\"topic\":"
              "\"bridge.in.l2.Deposited\",\"data\":{\"tx\":\"0x1\",\"log_index\":0,\"args\":{"
              "\"account\":\"" TREASURY "\",\"amount\":\"0xffffffffffffffffffffffffffff\"}}}}",
              buf, sizeof buf);
    http_call(fd0,
              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"trn_registerContent\",\"params\":{"
              "\"content\":\"v\",\"creator\":\"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC\"}}",
              buf, sizeof buf);
    if (ws_depth > 0) {
        ws_views(port, conns, ws_depth, seconds);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
        close(fd0);
        return 0;
    }
    /* conns connections, one request in flight on each, driven by poll. */
    int *fds = calloc((size_t)conns, sizeof *fds);
    double *sent = calloc((size_t)conns, sizeof *sent);
    size_t *got = calloc((size_t)conns, sizeof *got);
    char **bufs = calloc((size_t)conns, sizeof *bufs);
    size_t lat_cap = 1 << 24, nlat = 0;
    double *lat = malloc(lat_cap * sizeof *lat);
    struct pollfd *pf = calloc((size_t)conns, sizeof *pf);
    char body[300], req[800];
    long errors = 0;
    for (int i = 0; i < conns; i++) {
        fds[i] = dial(port);
        bufs[i] = malloc(8192);
    }
    double t0 = now_s(), end = t0 + seconds;
    uint32_t seq = 0;
    for (int i = 0; i <= conns; i++) {
        if (i == conns)
            break;
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"trn_view\",\"params\":{\"content\":"
                 "\"v\",\"viewer\":\"0x%040x\"}}",
                 ++seq);
        int n = snprintf(req, sizeof req,
                         "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         "bench-token-0123456789\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(body), body);
        sent[i] = now_s();
        if (send(fds[i], req, (size_t)n, MSG_NOSIGNAL) != n)
            errors++;
    }
    int live = conns;
    while (live > 0) {
        for (int i = 0; i < conns; i++)
            pf[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(pf, (nfds_t)conns, 1000) <= 0)
            break;
        for (int i = 0; i < conns; i++) {
            if (!(pf[i].revents & POLLIN) || fds[i] < 0)
                continue;
            ssize_t k = recv(fds[i], bufs[i] + got[i], 8191 - got[i], 0);
            if (k <= 0) {
                close(fds[i]);
                fds[i] = -1, live--, errors++;
                continue;
            }
            got[i] += (size_t)k;
            bufs[i][got[i]] = 0;
            char *h = strstr(bufs[i], "\r\n\r\n");
            char *cl = strcasestr(bufs[i], "content-length:");
            if (!h || !cl || got[i] < (size_t)(h + 4 - bufs[i]) + (size_t)atol(cl + 15))
                continue;
            double t = now_s();
            if (!strstr(h, "\"result\""))
                errors++;
            if (nlat < lat_cap)
                lat[nlat++] = t - sent[i];
            got[i] = 0;
            if (t >= end) {
                close(fds[i]);
                fds[i] = -1, live--;
                continue;
            }
            snprintf(body, sizeof body,
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"trn_view\",\"params\":{"
                     "\"content\":\"v\",\"viewer\":\"0x%040x\"}}",
                     ++seq % 100000 + 1);
            int n = snprintf(req, sizeof req,
                             "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                             "bench-token-0123456789\r\nContent-Length: %zu\r\n\r\n%s",
                             strlen(body), body);
            sent[i] = t;
            if (send(fds[i], req, (size_t)n, MSG_NOSIGNAL) != n)
                errors++;
        }
    }
    double dt = now_s() - t0;
    qsort(lat, nlat, sizeof *lat, cmp_d);
    printf("trn_view over HTTP/1.1 keep-alive, %d connections, store sync on, %.1f s: "
           "%zu durable views, %.0f/s, latency p50 %.2f ms p99 %.2f ms max %.2f ms, %ld errors\n",
           conns, dt, nlat, (double)nlat / dt, nlat ? 1e3 * lat[nlat / 2] : 0,
           nlat ? 1e3 * lat[(size_t)((double)nlat * 0.99)] : 0, nlat ? 1e3 * lat[nlat - 1] : 0,
           errors);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    for (int i = 0; i < conns; i++)
        free(bufs[i]);
    free(fds), free(sent), free(got), free(bufs), free(lat), free(pf);
    close(fd0);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    const char *what = argc > 1 ? argv[1] : "all";
    int rc = 0;
    if (!strcmp(what, "views") || !strcmp(what, "all"))
        rc |= bench_views(argc > 2 ? atoi(argv[2]) : 256, argc > 3 ? atoi(argv[3]) : 10, 0);
    if (!strcmp(what, "wsviews"))
        rc |= bench_views(argc > 2 ? atoi(argv[2]) : 4, argc > 4 ? atoi(argv[4]) : 10,
                          argc > 3 ? atoi(argv[3]) : 64);
    if (!strcmp(what, "epoch") || !strcmp(what, "all"))
        rc |= bench_epoch(argc > 2 && strcmp(what, "all") ? atol(argv[2]) : 1000000);
    if (!strcmp(what, "day") || !strcmp(what, "all"))
        rc |= bench_day(argc > 2 && strcmp(what, "all") ? atol(argv[2]) : 1000000);
    return rc;
}
