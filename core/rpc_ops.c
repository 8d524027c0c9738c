/* Operations: /readyz's verdict and the /metrics exposition (Prometheus text format 0.0.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ado/errors.h"
#include "metrics.h"
#include "node.h"
#include "rpc_priv.h"

int ado_rpc_ready(struct ado_rpc *rpc, char *why, size_t whylen) {
    struct ado_node *n = rpc->node;
    if (n->stopping) {
        snprintf(why, whylen, "node stopping");
        return 0;
    }
    for (size_t i = 0; i < n->nplugins; i++) {
        struct ado_plugin *p = n->plugins[i];
        if (p->entry && p->entry->optional)
            continue;
        if (p->state != ADO_PS_RUNNING) {
            snprintf(why, whylen, "plugin %s is %s", p->name ? p->name : "?",
                     ado_plugin_state_name(p->state));
            return 0;
        }
    }
    if (!n->store) {
        snprintf(why, whylen, "store not open");
        return 0;
    }
    struct ado_store_stats st;
    ado_store_stats(n->store, &st);
    /* Not writable when the latest commits failed, or the data folder went read-only. */
    int failing = st.commit_errors > rpc->last_commit_errors;
    rpc->last_commit_errors = st.commit_errors;
    if (failing) {
        snprintf(why, whylen, "store commits failing");
        return 0;
    }
    if (n->cfg && n->cfg->data_dir && access(n->cfg->data_dir, W_OK) != 0) {
        snprintf(why, whylen, "data_dir not writable");
        return 0;
    }
    snprintf(why, whylen, "ready");
    return 1;
}

/* Prometheus label value: escape \ " and newline. */
static void put_label(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n') {
            fputs("\\n", f);
            continue;
        }
        fputc(*s, f);
    }
}

static void topic_cb(void *arg, const char *topic, uint64_t count) {
    FILE *f = arg;
    fputs("ado_bus_events_total{topic=\"", f);
    put_label(f, topic);
    fprintf(f, "\"} %llu\n", (unsigned long long)count);
}

static void render_rpc(struct ado_rpc *rpc, FILE *f) {
    size_t pending = 0;
    for (ado_call *c = rpc->calls; c; c = c->next)
        pending++;
    fputs("# HELP ado_rpc_calls_total RPC calls answered, by method and outcome.\n"
          "# TYPE ado_rpc_calls_total counter\n",
          f);
    for (size_t i = 0; i < rpc->nmethods; i++) {
        struct rpc_method *m = rpc->methods[i];
        fprintf(f, "ado_rpc_calls_total{method=\"%s\",outcome=\"ok\"} %llu\n", m->name,
                (unsigned long long)m->ok);
        fprintf(f, "ado_rpc_calls_total{method=\"%s\",outcome=\"error\"} %llu\n", m->name,
                (unsigned long long)m->err);
    }
    fputs("# HELP ado_rpc_call_duration_seconds Time from dispatch to answer, by method.\n"
          "# TYPE ado_rpc_call_duration_seconds histogram\n",
          f);
    for (size_t i = 0; i < rpc->nmethods; i++) {
        struct rpc_method *m = rpc->methods[i];
        uint64_t cum = 0;
        for (size_t b = 0; b <= RPC_NBUCKETS; b++) {
            cum += m->hist[b];
            if (b < RPC_NBUCKETS)
                fprintf(f, "ado_rpc_call_duration_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n",
                        m->name, ado_rpc_buckets[b], (unsigned long long)cum);
            else
                fprintf(f, "ado_rpc_call_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n",
                        m->name, (unsigned long long)cum);
        }
        fprintf(f, "ado_rpc_call_duration_seconds_sum{method=\"%s\"} %.9f\n", m->name, m->sum_s);
        fprintf(f, "ado_rpc_call_duration_seconds_count{method=\"%s\"} %llu\n", m->name,
                (unsigned long long)cum);
    }
    const struct rpc_rejects *r = &rpc->rej;
    fputs("# HELP ado_rpc_rejected_total Calls refused before reaching a handler, by reason.\n"
          "# TYPE ado_rpc_rejected_total counter\n",
          f);
    struct {
        const char *k;
        uint64_t v;
    } rs[] = {{"parse_error", r->parse_error},
              {"invalid_request", r->invalid_request},
              {"method_not_found", r->not_found},
              {"invalid_params", r->invalid_params},
              {"unauthorized", r->unauthorized},
              {"forbidden", r->forbidden},
              {"too_large", r->too_large},
              {"isolated", r->isolated},
              {"limit", r->limit}};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        fprintf(f, "ado_rpc_rejected_total{reason=\"%s\"} %llu\n", rs[i].k,
                (unsigned long long)rs[i].v);
    fprintf(f,
            "# TYPE ado_rpc_open_connections gauge\nado_rpc_open_connections %zu\n"
            "# TYPE ado_rpc_connections_total counter\nado_rpc_connections_total %llu\n"
            "# TYPE ado_rpc_connections_rejected_total counter\n"
            "ado_rpc_connections_rejected_total %llu\n"
            "# TYPE ado_rpc_pending_calls gauge\nado_rpc_pending_calls %zu\n"
            "# TYPE ado_rpc_notifications_total counter\nado_rpc_notifications_total %llu\n"
            "# HELP ado_rpc_subscriber_dropped_total Events dropped for slow subscribers.\n"
            "# TYPE ado_rpc_subscriber_dropped_total counter\n"
            "ado_rpc_subscriber_dropped_total %llu\n",
            rpc->nconns, (unsigned long long)rpc->conns_total,
            (unsigned long long)rpc->conns_rejected, pending,
            (unsigned long long)rpc->notifications, (unsigned long long)rpc->sub_dropped);
}

static void render_node(struct ado_node *n, FILE *f) {
    if (n->bus) {
        struct ado_bus_stats bs;
        ado_bus_stats(n->bus, &bs);
        fputs("# HELP ado_bus_events_total Events published, by topic.\n"
              "# TYPE ado_bus_events_total counter\n",
              f);
        ado_bus_topic_counts(n->bus, topic_cb, f);
        fprintf(f,
                "# TYPE ado_bus_delivered_total counter\nado_bus_delivered_total %llu\n"
                "# TYPE ado_bus_failed_total counter\nado_bus_failed_total %llu\n"
                "# TYPE ado_bus_subscriptions gauge\nado_bus_subscriptions %llu\n",
                (unsigned long long)bs.delivered, (unsigned long long)bs.failed,
                (unsigned long long)bs.subscriptions);
    }
    if (n->store) {
        struct ado_store_stats s;
        ado_store_stats(n->store, &s);
        fprintf(f,
                "# TYPE ado_store_commits_total counter\nado_store_commits_total %llu\n"
                "# TYPE ado_store_commit_errors_total counter\n"
                "ado_store_commit_errors_total %llu\n"
                "# TYPE ado_store_writes_total counter\nado_store_writes_total %llu\n"
                "# TYPE ado_store_commit_seconds_total counter\n"
                "ado_store_commit_seconds_total %.6f\n"
                "# TYPE ado_store_last_commit_seconds gauge\n"
                "ado_store_last_commit_seconds %.6f\n"
                "# TYPE ado_store_last_batch_writes gauge\nado_store_last_batch_writes %llu\n"
                "# TYPE ado_store_map_size_bytes gauge\nado_store_map_size_bytes %llu\n"
                "# TYPE ado_store_map_grows_total counter\nado_store_map_grows_total %llu\n",
                (unsigned long long)s.commits, (unsigned long long)s.commit_errors,
                (unsigned long long)s.writes, (double)s.commit_us_total / 1e6,
                (double)s.last_commit_us / 1e6, (unsigned long long)s.last_batch,
                (unsigned long long)s.map_size, (unsigned long long)s.map_grows);
    }
    fputs("# TYPE ado_plugin_calls_total counter\n# TYPE ado_plugin_failures_total counter\n"
          "# HELP ado_plugin_breaker_state 0 closed, 1 open, 2 half-open.\n"
          "# TYPE ado_plugin_breaker_state gauge\n# TYPE ado_plugin_up gauge\n"
          "# TYPE ado_plugin_degraded gauge\n# TYPE ado_plugin_memory_bytes gauge\n",
          f);
    for (size_t i = 0; i < n->nplugins; i++) {
        struct ado_plugin *p = n->plugins[i];
        char lab[256];
        FILE *lf = fmemopen(lab, sizeof lab, "w");
        if (!lf)
            continue;
        fputs("plugin=\"", lf);
        put_label(lf, p->name);
        fputc('"', lf);
        fputc(0, lf);
        fclose(lf);
        lab[sizeof lab - 1] = 0;
        fprintf(f, "ado_plugin_calls_total{%s} %llu\n", lab, (unsigned long long)p->calls_total);
        fprintf(f, "ado_plugin_failures_total{%s} %llu\n", lab,
                (unsigned long long)p->failures_total);
        fprintf(f, "ado_plugin_breaker_state{%s} %d\n", lab, p->breaker);
        fprintf(f, "ado_plugin_up{%s} %d\n", lab, p->state == ADO_PS_RUNNING);
        fprintf(f, "ado_plugin_degraded{%s} %d\n", lab, p->degraded != NULL);
        fprintf(f, "ado_plugin_memory_bytes{%s} %lld\n", lab, (long long)ado_plugin_memory(p));
    }
}

int ado_rpc_render_metrics(struct ado_rpc *rpc, char **out, size_t *len) {
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    if (!f)
        return ADO_ENOMEM;
    render_rpc(rpc, f);
    render_node(rpc->node, f);
    if (rpc->node->metrics) {
        size_t ml = 0;
        char *m = ado_metrics_render(rpc->node->metrics, &ml);
        if (m)
            fwrite(m, 1, ml, f);
        free(m);
    }
    if (fclose(f)) {
        free(buf);
        return ADO_ENOMEM;
    }
    *out = buf;
    *len = sz;
    return 0;
}
