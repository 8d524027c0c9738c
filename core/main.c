/* adonode: the daemon. Loads the YAML (or the embedded default chain), validates it whole,
 * loads and starts the plugins, and runs the loop until SIGTERM/SIGINT. SIGHUP reloads the
 * Lua plugins whose scripts changed. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "checkpoint.h"
#include "node.h"

#include "embedded_chain.h" /* generated: ado_embedded_chain[], ado_embedded_chain_name */

static void usage(FILE *f) {
    fprintf(f, "usage: adonode [--config FILE]      run a node (default: the embedded example "
               "chain)\n"
               "       adonode --check-config FILE  validate FILE and its plugins, print the "
               "start order\n"
               "       adonode --restore CHECKPOINT --config FILE\n"
               "                                    restore data_dir from CHECKPOINT (a folder, or "
               "an id\n"
               "                                    in the checkpoints folder), then run\n"
               "       adonode --version | --help\n"
               "\n"
               "Environment: ADO_PLUGIN_PATH (colon-separated folders searched for plugins named\n"
               "without a '/'), and any ${NAME} that the config file uses.\n"
               "Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads changed Lua plugins.\n");
}

static void on_stop_signal(uv_signal_t *h, int signum) {
    struct ado_node *node = h->data;
    ado_log_write(&node->log, ADO_LOG_INFO, NULL, "signal %s: stopping",
                  signum == SIGTERM ? "SIGTERM" : "SIGINT");
    node->stopping = 1;
    uv_stop(node->loop);
}

static void on_hup(uv_signal_t *h, int signum) {
    (void)signum;
    struct ado_node *node = h->data;
    int n = ado_node_reload(node);
    ado_log_write(&node->log, ADO_LOG_INFO, NULL, "SIGHUP: %d Lua plugin(s) reloaded", n);
}

static void close_cb(uv_handle_t *h) {
    (void)h;
}

int main(int argc, char **argv) {
    const char *config = NULL, *restore = NULL;
    int check = 0;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"check-config", required_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},       {"help", no_argument, NULL, 'h'},
        {"restore", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            config = optarg;
            check = 1;
            break;
        case 'r':
            restore = optarg;
            break;
        case 'V':
            printf("adonode %s (plugin ABI %d.%d)\n", ADO_VERSION, ADO_ABI_MAJOR, ADO_ABI_MINOR);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "adonode: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct ado_diag diag;
    ado_diag_init(&diag);
    struct ado_config *cfg = NULL;
    int rc = config ? ado_config_load(config, &cfg, &diag)
                    : ado_config_load_string(ado_embedded_chain_name, ado_embedded_chain,
                                             strlen(ado_embedded_chain), &cfg, &diag);
    if (rc < 0) {
        ado_diag_print(&diag, stderr);
        ado_diag_fini(&diag);
        return 1;
    }

    if (restore) {
        char dir[4096], err[1024] = "needs --config FILE and an existing checkpoint";
        if (!config || check || ado_checkpoint_resolve(cfg, restore, dir, sizeof dir) < 0 ||
            ado_checkpoint_restore(dir, cfg->data_dir, err, sizeof err) < 0) {
            fprintf(stderr, "adonode: --restore %s: %s\n", restore, err);
            ado_diag_fini(&diag);
            ado_config_free(cfg);
            return 1;
        }
        fprintf(stderr, "adonode: restored %s into %s\n", dir, cfg->data_dir);
    }

    uv_loop_t *loop = uv_default_loop();
    struct ado_node *node = ado_node_new(loop);
    if (!node) {
        fprintf(stderr, "adonode: out of memory\n");
        ado_config_free(cfg);
        return 1;
    }
    node->log.level = cfg->log_level;
    node->log.json = cfg->log_json;
    rc = ado_node_load(node, cfg, &diag);
    if (rc < 0) {
        ado_diag_print(&diag, stderr);
        ado_diag_fini(&diag);
        ado_node_free(node);
        ado_config_free(cfg);
        return 1;
    }
    if (check) {
        printf("%s: ok\nstart order:", cfg->file);
        for (size_t i = 0; i < node->nplugins; i++)
            printf("%s %s", i ? "," : "", node->plugins[i]->name);
        printf("%s\n", node->nplugins ? "" : " (no plugins)");
        ado_diag_fini(&diag);
        ado_node_free(node);
        ado_config_free(cfg);
        return 0;
    }

    uint64_t t0 = uv_hrtime();
    rc = ado_node_start(node, &diag);
    if (rc < 0) {
        ado_diag_print(&diag, stderr);
        ado_log_write(&node->log, ADO_LOG_ERROR, NULL, "start failed; stopping");
        ado_node_stop(node);
        ado_diag_fini(&diag);
        ado_node_free(node);
        ado_config_free(cfg);
        uv_loop_close(loop);
        return 1;
    }
    uv_signal_init(loop, &node->sig_term);
    uv_signal_init(loop, &node->sig_int);
    uv_signal_init(loop, &node->sig_hup);
    node->sig_term.data = node->sig_int.data = node->sig_hup.data = node;
    uv_signal_start(&node->sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&node->sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&node->sig_hup, on_hup, SIGHUP);
    ado_log_write(&node->log, ADO_LOG_INFO, NULL,
                  "node %s (%s) running: %zu plugin(s), data_dir=%s, rpc=%s, started in %.1f ms",
                  cfg->node_name, cfg->layer, node->nplugins, cfg->data_dir,
                  cfg->rpc_listen && *cfg->rpc_listen ? cfg->rpc_listen : "off",
                  (double)(uv_hrtime() - t0) / 1e6);

    uv_run(loop, UV_RUN_DEFAULT);

    ado_node_stop(node);
    uv_close((uv_handle_t *)&node->sig_term, close_cb);
    uv_close((uv_handle_t *)&node->sig_int, close_cb);
    uv_close((uv_handle_t *)&node->sig_hup, close_cb);
    /* Let every closing handle finish (libwebsockets frees its contexts from their close
     * callbacks), but never wait forever on a handle something forgot to close. */
    for (int i = 0; i < 1000 && uv_run(loop, UV_RUN_NOWAIT); i++)
        ;
    int code = node->exit_code;
    ado_log_write(&node->log, ADO_LOG_INFO, NULL, "node stopped");
    ado_diag_fini(&diag);
    ado_node_free(node);
    ado_config_free(cfg);
    uv_loop_close(loop);
    return code;
}
