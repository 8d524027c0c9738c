/* bench_bridge: the layer bridge between two real adonode processes on this machine, over
 * ws_peer on loopback (issue 4 item 6).
 *
 *   latency    L4 -> L3: bridge_send over HTTP on the L4 node until the bridge.in event
 *              reaches a WebSocket bus subscriber on the L3 node (p50, p99; sequential)
 *   throughput durable messages/s: JSON-RPC batches of bridge_send, until the sender's
 *              ws_peer reports every message acked (= durably applied by the receiver)
 *   drain      kill -9 the receiver, queue messages, restart it: time from the restart to
 *              the queue drained (every message acked), and the drain rate from the first
 *              ack on (the bridge alone: no HTTP, no start-up)
 *
 * Usage: bench_bridge [latency_n] [throughput_n] [drain_n]   (defaults 2000 20000 5000)
 * Needs the kernel's bridge core; prints figures as lines "name value unit". */
#include "../plugins/ws_peer/tests/nodes.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t us_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The sender's acked count for `peer` from ws_peer_status. */
static long acked(struct tn_http *h, const char *peer) {
    const char *r = tn_http_rpc(
        h, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ws_peer_status\",\"params\":{}}");
    char pat[96];
    snprintf(pat, sizeof pat, "\"name\":\"%s\"", peer);
    const char *p = r ? strstr(r, pat) : NULL;
    const char *a = p ? strstr(p, "\"acked\":") : NULL;
    return a ? strtol(a + 8, NULL, 10) : -1;
}

static int wait_acked(struct tn_http *h, const char *peer, long want, int timeout_ms) {
    uint64_t end = tn_ms() + (uint64_t)timeout_ms;
    while (tn_ms() < end) {
        if (acked(h, peer) >= want)
            return 1;
        usleep(2000);
    }
    return 0;
}

/* Send n messages in JSON-RPC batches of `batch`. */
static int send_batches(struct tn_http *h, const char *peer, int from, int n, int batch) {
    char *body = malloc((size_t)batch * 200 + 16);
    for (int i = 0; i < n; i += batch) {
        size_t l = 0;
        body[l++] = '[';
        for (int k = 0; k < batch && i + k < n; k++)
            l += (size_t)sprintf(body + l,
                                 "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"bridge_send\","
                                 "\"params\":{\"peer\":\"%s\",\"topic\":\"bench\","
                                 "\"payload\":{\"n\":%d}}}",
                                 k ? "," : "", from + i + k, peer, from + i + k);
        body[l++] = ']';
        body[l] = 0;
        const char *r = tn_http_rpc(h, body);
        if (!r || strstr(r, "\"error\"")) {
            fprintf(stderr, "bridge_send batch failed: %.300s\n", r ? r : "no answer");
            free(body);
            return -1;
        }
    }
    free(body);
    return 0;
}

int main(int argc, char **argv) {
    int lat_n = argc > 1 ? atoi(argv[1]) : 2000;
    int thr_n = argc > 2 ? atoi(argv[2]) : 20000;
    int drain_n = argc > 3 ? atoi(argv[3]) : 5000;
    struct tn_node a, b;
    tn_init(&a, "personal", "L4");
    tn_init(&b, "org", "L3");
    /* The receiver's apply. Default: the bridge's own (dedupe record, bus event, no
     * subscriber). ADO_BENCH_SINK=kv: bench_sink.lua writes one record per message in the
     * same transaction (an apply of constant cost). ADO_BENCH_SINK=1: the sink.lua test
     * fixture, which rewrites its whole log on every message (O(n) per message: it measures
     * the fixture, not the bridge; the figures before 2026-11-25 15:10 were taken with it). */
    const char *sink = getenv("ADO_BENCH_SINK");
    a.no_sink = b.no_sink = !(sink && (*sink == '1' || !strcmp(sink, "kv")));
    if (sink && !strcmp(sink, "kv"))
        a.sink_file = b.sink_file = "bench_sink.lua";
    const char *pol = "retry: {attempts: 100, backoff: 20ms, max_backoff: 100ms}, "
                      "breaker: {failures: 1000000, cooldown: 100ms}";
    tn_add_peer(&a, &b, 1, pol);
    tn_add_peer(&b, &a, 0, pol);
    snprintf(a.extra_ws, sizeof a.extra_ws, "      max_inflight: 1000000\n");
    tn_write_config(&a), tn_write_config(&b);
    tn_spawn(&b), tn_spawn(&a);
    if (!tn_wait_running(&b, 1, 20000) || !tn_wait_running(&a, 1, 20000)) {
        char *l = tn_slurp(a.pid ? b.dir : a.dir, "stderr.txt");
        fprintf(stderr, "a node did not start:\n%s\n", l);
        free(l);
        tn_cleanup(&a), tn_cleanup(&b);
        return 1;
    }
    struct tn_http ha = {.fd = -1, .port = a.rpc_port};
    int rc = 1;
    /* Link up: one message through. */
    if (send_batches(&ha, "org", 0, 1, 1) || !wait_acked(&ha, "org", 1, 20000)) {
        fprintf(stderr, "no link between the nodes\n");
        goto out;
    }

    /* ---- latency: subscriber on the L3 node over WebSocket ---- */
    int ws = tn_ws_open_path(b.rpc_port, "/ws", "adonode-jsonrpc");
    const char *sub = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus_subscribe\","
                      "\"params\":[\"bridge.in.>\"]}";
    tn_ws_send(ws, 1, sub, strlen(sub));
    uint8_t buf[65536];
    int op;
    long n = tn_ws_recv(ws, &op, buf, sizeof buf - 1, 5000);
    if (ws < 0 || n < 0) {
        fprintf(stderr, "cannot subscribe on the L3 node\n");
        goto out;
    }
    uint64_t *lat = calloc((size_t)lat_n, sizeof *lat);
    char body[512];
    for (int i = 0; i < lat_n; i++) {
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"bridge_send\",\"params\":{\"peer\":"
                 "\"org\",\"topic\":\"lat\",\"payload\":{\"n\":%d}}}",
                 i, i);
        uint64_t t0 = us_now();
        tn_http_rpc(&ha, body);
        for (;;) {
            n = tn_ws_recv(ws, &op, buf, sizeof buf - 1, 10000);
            if (n < 0)
                break;
            buf[n] = 0;
            if (strstr((char *)buf, "bridge.in.lat"))
                break;
        }
        lat[i] = us_now() - t0;
    }
    close(ws);
    qsort(lat, (size_t)lat_n, sizeof *lat, cmp_u64);
    printf("latency_l4_to_l3_p50 %.3f ms\n", lat[lat_n / 2] / 1000.0);
    printf("latency_l4_to_l3_p99 %.3f ms\n", lat[(size_t)lat_n * 99 / 100] / 1000.0);
    printf("latency_l4_to_l3_max %.3f ms\n", lat[lat_n - 1] / 1000.0);
    free(lat);

    /* ---- throughput ---- */
    long base = acked(&ha, "org");
    uint64_t t0 = us_now();
    if (send_batches(&ha, "org", 100000, thr_n, 500)) {
        fprintf(stderr, "throughput run did not complete\n");
        goto out;
    }
    double sent_s = (us_now() - t0) / 1e6;
    if (!wait_acked(&ha, "org", base + thr_n, 120000)) {
        fprintf(stderr, "throughput run did not complete\n");
        goto out;
    }
    double secs = (us_now() - t0) / 1e6;
    printf("durable_msgs_per_s %.0f msg/s (%d messages in %.3f s; the HTTP batches took %.3f s)\n",
           thr_n / secs, thr_n, secs, sent_s);

    /* ---- drain after a killed receiver restarts ---- */
    base = acked(&ha, "org");
    tn_kill9(&b);
    if (send_batches(&ha, "org", 1000000, drain_n, 500))
        goto out;
    uint64_t t1 = us_now(), t_first = 0;
    long at_first = 0;
    tn_spawn(&b);
    /* Also the drain rate once the first ack is back (no HTTP, no start-up: the bridge alone
     * moving a full outbox), from ws_peer_status polled every 2 ms. */
    for (uint64_t end = tn_ms() + 120000;;) {
        long a = acked(&ha, "org");
        if (!t_first && a > base)
            t_first = us_now(), at_first = a;
        if (a >= base + drain_n)
            break;
        if (tn_ms() > end) {
            fprintf(stderr, "queue did not drain\n");
            goto out;
        }
        usleep(2000);
    }
    uint64_t t2 = us_now();
    printf("restart_to_drained %.3f s (%d queued messages; includes the node's start-up)\n",
           (t2 - t1) / 1e6, drain_n);
    if (t2 > t_first && base + drain_n > at_first)
        printf("drain_msgs_per_s %.0f msg/s (%ld messages after the first ack, %.3f s)\n",
               (double)(base + drain_n - at_first) / ((t2 - t_first) / 1e6),
               base + drain_n - at_first, (t2 - t_first) / 1e6);
    rc = 0;
out:
    tn_http_close(&ha);
    tn_stop(&a), tn_stop(&b);
    tn_cleanup(&a), tn_cleanup(&b);
    return rc;
}
