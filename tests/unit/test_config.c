/* Tests of core/config*.c: the YAML tree, the kernel's schema, plugin schemas, lookups,
 * JSON rendering and the value parsers. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ado/errors.h"
#include "ado/plugin.h"
#include "config.h"

/* ---- helpers ------------------------------------------------------------------------ */

static struct ado_diag diag;
static struct ado_config *cfg;

static void setup(void) {
    ado_diag_init(&diag);
    cfg = NULL;
}

static void teardown(void) {
    ado_config_free(cfg);
    ado_diag_fini(&diag);
}

TestSuite(config, .init = setup, .fini = teardown);

static int load(const char *text) {
    return ado_config_load_string("t.yaml", text, strlen(text), &cfg, &diag);
}

/* Every message joined by newlines (static buffer: one call per assertion). */
static const char *messages(void) {
    static char buf[8192];
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < diag.n && used < sizeof(buf); i++)
        used +=
            (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? "\n" : "", diag.msgs[i]);
    return buf;
}

/* Load `text` expecting failure with exactly `expected` as the messages. */
static void expect_errors(const char *text, const char *expected) {
    int rc = load(text);
    cr_assert_eq(rc, ADO_ECONFIG, "rc %d, messages:\n%s", rc, messages());
    cr_assert_null(cfg);
    cr_assert_str_eq(messages(), expected);
}

#define NODE "node:\n  name: n1\n"

static int64_t ival_at(const char *path) {
    struct ado_cnode *n = ado_cnode_get(cfg->root, path);
    cr_assert_not_null(n, "%s absent", path);
    return n->ival;
}

static const char *text_at(const char *path) {
    struct ado_cnode *n = ado_cnode_get(cfg->root, path);
    cr_assert_not_null(n, "%s absent", path);
    return n->text;
}

/* ---- valid files -------------------------------------------------------------------- */

Test(config, config_loads_minimal_file_and_fills_defaults) {
    cr_assert_eq(load(NODE), 0, "%s", messages());
    cr_assert_eq(diag.n, 0);
    cr_assert_str_eq(cfg->node_name, "n1");
    cr_assert_str_eq(cfg->layer, "L3");
    cr_assert_str_eq(cfg->data_dir, "./data");
    cr_assert_eq(cfg->log_level, ADO_LOG_INFO);
    cr_assert_eq(cfg->log_json, 0);
    cr_assert_str_eq(cfg->rpc_listen, "127.0.0.1:8645");
    cr_assert_eq(cfg->store_map_size, 64LL << 20);
    cr_assert_eq(cfg->store_sync, 1);
    cr_assert_eq(cfg->nplugins, 0);
    cr_assert_eq(ival_at("node.rpc.max_request_size"), 1 << 20);
    cr_assert_eq(ival_at("node.rpc.max_connections"), 1024);
    cr_assert_eq(ival_at("node.rpc.subscriber_queue"), 1024);
    cr_assert_str_eq(text_at("node.rpc.anonymous"), "reader");
    cr_assert_eq(ival_at("node.rpc.anonymous"), 1);
    cr_assert_eq(ival_at("node.checkpoints.every"), 0);
    cr_assert_eq(ival_at("node.checkpoints.keep"), 5);
    cr_assert_str_eq(text_at("node.checkpoints.dir"), "");
    cr_assert_eq(ival_at("bridge.outbox_limit"), 100000);
    struct ado_cnode *d = ado_cnode_get(cfg->root, "node.store.map_size");
    cr_assert_eq(d->from_default, 1);
    cr_assert_eq(d->type, ADO_T_SIZE);
    cr_assert_eq(ado_cnode_get(cfg->root, "node.name")->from_default, 0);
    cr_assert_null(ado_cnode_get(cfg->root, "node.rpc.tokens"));
    cr_assert_null(ado_cnode_get(cfg->root, "plugins"));
}

static const char *full_yaml = "node:\n"
                               "  name: org-chain-1\n"
                               "  layer: L4\n"
                               "  data_dir: /var/lib/ado\n"
                               "  log: {level: trace, format: json}\n"
                               "  store: {map_size: 1GiB, sync: off}\n"
                               "  rpc:\n"
                               "    listen: \"[::1]:0\"\n"
                               "    max_request_size: 64KiB\n"
                               "    max_connections: 100000\n"
                               "    subscriber_queue: 7\n"
                               "    anonymous: none\n"
                               "    tokens:\n"
                               "      - name: ops\n"
                               "        token: s3cret\n"
                               "        roles: [admin]\n"
                               "      - name: app\n"
                               "        token_file: /run/secrets/app\n"
                               "        roles: [reader, writer]\n"
                               "    tls: {cert: c.pem, key: k.pem}\n"
                               "    cors_origins: [\"https://a.example\", \"*\"]\n"
                               "  checkpoints: {every: 1h30m, keep: 1000, dir: ckpt}\n"
                               "plugins:\n"
                               "  - name: hello\n"
                               "    path: hello_c\n"
                               "  - name: script\n"
                               "    path: lua/s.lua\n"
                               "    optional: yes\n"
                               "    limits: {memory: 64KiB, instructions: 0x3e8}\n"
                               "    breaker: {failures: 1, cooldown: 250ms}\n"
                               "    config: {rate: 5}\n"
                               "  - name: skipped\n"
                               "    path: /opt/x.so\n"
                               "    enabled: false\n"
                               "bridge:\n"
                               "  outbox_limit: 12\n"
                               "  peers:\n"
                               "    - name: l2\n"
                               "      layer: L2\n"
                               "      transport: evm_l2\n"
                               "      address: ws://127.0.0.1:8545\n"
                               "      public_key: \"0xA1b2\"\n"
                               "      retry: {attempts: 5, backoff: 1s, max_backoff: 1m}\n"
                               "      breaker: {failures: 9, cooldown: 2m}\n"
                               "      options: {chain_id: 31337}\n";

Test(config, config_loads_full_file_with_every_block) {
    int rc = ado_config_load_string("conf/full.yaml", full_yaml, strlen(full_yaml), &cfg, &diag);
    cr_assert_eq(rc, 0, "%s", messages());
    cr_assert_str_eq(cfg->dir, "conf");
    cr_assert_str_eq(cfg->node_name, "org-chain-1");
    cr_assert_str_eq(cfg->layer, "L4");
    cr_assert_str_eq(cfg->data_dir, "/var/lib/ado");
    cr_assert_eq(cfg->log_level, ADO_LOG_TRACE);
    cr_assert_eq(cfg->log_json, 1);
    cr_assert_eq(cfg->store_map_size, 1LL << 30);
    cr_assert_eq(cfg->store_sync, 0);
    cr_assert_str_eq(cfg->rpc_listen, "[::1]:0");
    cr_assert_eq(ival_at("node.rpc.max_request_size"), 64 << 10);
    cr_assert_eq(ival_at("node.rpc.subscriber_queue"), 7);
    cr_assert_eq(ival_at("node.rpc.anonymous"), 0);
    cr_assert_str_eq(text_at("node.rpc.tokens.0.token"), "s3cret");
    cr_assert_eq(ado_cnode_get(cfg->root, "node.rpc.tokens.0.token")->secret, 1);
    cr_assert_str_eq(text_at("node.rpc.tokens.1.roles.1"), "writer");
    cr_assert_str_eq(text_at("node.rpc.tls.key"), "k.pem");
    cr_assert_str_eq(text_at("node.rpc.cors_origins.1"), "*");
    cr_assert_eq(ival_at("node.checkpoints.every"), 5400000);

    cr_assert_eq(cfg->nplugins, 2, "the disabled plugin is left out");
    struct ado_plugin_entry *p = &cfg->plugins[0];
    cr_assert_str_eq(p->name, "hello");
    cr_assert_str_eq(p->path, "hello_c", "a bare name is kept for the loader to search");
    cr_assert_eq(p->is_lua, 0);
    cr_assert_eq(p->optional, 0);
    cr_assert_eq(p->lua_memory_bytes, 64LL << 20);
    cr_assert_eq(p->lua_instructions, 10000000);
    cr_assert_eq(p->breaker_failures, 5);
    cr_assert_eq(p->breaker_cooldown_ms, 30000);
    cr_assert_not_null(p->config);
    cr_assert_eq(p->config->kind, ADO_CN_MAP);
    cr_assert_eq(p->config->n, 0);
    cr_assert_eq(p->config->from_default, 1);
    p = &cfg->plugins[1];
    cr_assert_str_eq(p->path, "conf/lua/s.lua", "relative to the config file's folder");
    cr_assert_eq(p->is_lua, 1);
    cr_assert_eq(p->optional, 1);
    cr_assert_eq(p->index, 1);
    cr_assert_eq(p->lua_memory_bytes, 64 << 10);
    cr_assert_eq(p->lua_instructions, 1000);
    cr_assert_eq(p->breaker_failures, 1);
    cr_assert_eq(p->breaker_cooldown_ms, 250);
    cr_assert_eq(p->config, ado_cnode_get(cfg->root, "plugins.1.config"));

    cr_assert_eq(ival_at("bridge.outbox_limit"), 12);
    cr_assert_eq(ival_at("bridge.peers.0.layer"), 0);
    cr_assert_eq(ival_at("bridge.peers.0.retry.max_backoff"), 60000);
    cr_assert_eq(ival_at("bridge.peers.0.breaker.cooldown"), 120000);
    cr_assert_str_eq(text_at("bridge.peers.0.options.chain_id"), "31337");
}

Test(config, config_reads_a_file_and_resolves_plugin_paths_against_its_folder) {
    char dir[] = "/tmp/ado_cfg_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char file[256], expect[300];
    snprintf(file, sizeof(file), "%s/chain.yaml", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs(NODE "plugins:\n  - {name: a, path: ./plugins/a.so}\n  - {name: b, path: /x/b.lua}\n", f);
    fclose(f);
    int rc = ado_config_load(file, &cfg, &diag);
    cr_assert_eq(rc, 0, "%s", messages());
    snprintf(expect, sizeof(expect), "%s/plugins/a.so", dir);
    cr_assert_str_eq(cfg->plugins[0].path, expect);
    cr_assert_str_eq(cfg->plugins[1].path, "/x/b.lua", "absolute paths are kept");
    cr_assert_str_eq(cfg->file, file);
    cr_assert_str_eq(cfg->dir, dir);
    unlink(file);
    rmdir(dir);
}

Test(config, config_reports_unreadable_file_as_eio) {
    int rc = ado_config_load("/nonexistent/dir/chain.yaml", &cfg, &diag);
    cr_assert_eq(rc, ADO_EIO);
    cr_assert_null(cfg);
    cr_assert_str_eq(messages(), "/nonexistent/dir/chain.yaml: cannot open: No such file or "
                                 "directory");
}

/* ---- invalid files: one kind of error each ------------------------------------------- */

Test(config, config_rejects_unknown_key_with_position) {
    expect_errors("node:\n  name: n1\n  nmae: x\n",
                  "t.yaml:3:3: node.nmae: unknown key \"nmae\" (did you mean \"name\"?)");
}

Test(config, config_rejects_unknown_key_without_close_match_listing_known_keys) {
    expect_errors(NODE "  store: {zzzzzz: 1}\n",
                  "t.yaml:3:11: node.store.zzzzzz: unknown key \"zzzzzz\" (known keys: "
                  "map_size, sync)");
}

Test(config, config_reports_missing_required_key_at_parent_map) {
    expect_errors("node:\n  layer: L2\n", "t.yaml:2:3: node: missing required key \"name\"");
}

Test(config, config_reports_missing_required_keys_in_list_items) {
    expect_errors(NODE "plugins:\n  - name: a\n  - path: b\n",
                  "t.yaml:4:5: plugins.0: missing required key \"path\"\n"
                  "t.yaml:5:5: plugins.1: missing required key \"name\"");
}

Test(config, config_rejects_wrong_type_for_each_type) {
    expect_errors("node:\n"
                  "  name: [a]\n"
                  "  layer: L5\n"
                  "  store: {map_size: 12QB, sync: maybe}\n"
                  "  rpc: {max_connections: ten, tokens: {a: 1}, cors_origins: x}\n"
                  "  checkpoints: {every: 10x}\n"
                  "  log: fast\n",
                  "t.yaml:2:9: node.name: expected a string, got a list\n"
                  "t.yaml:3:10: node.layer: expected one of L2, L3, L4, got \"L5\"\n"
                  "t.yaml:4:21: node.store.map_size: expected a size like 512, 64KiB, 64MiB, "
                  "1GiB or 10MB, got \"12QB\"\n"
                  "t.yaml:4:33: node.store.sync: expected a boolean (true/false, yes/no, on/off), "
                  "got \"maybe\"\n"
                  "t.yaml:5:26: node.rpc.max_connections: expected an integer, got \"ten\"\n"
                  "t.yaml:5:39: node.rpc.tokens: expected a list, got a map\n"
                  "t.yaml:5:61: node.rpc.cors_origins: expected a list, got \"x\"\n"
                  "t.yaml:6:24: node.checkpoints.every: expected a duration like 250ms, 10s, 5m, "
                  "24h, 7d or 1h30m, got \"10x\"\n"
                  "t.yaml:7:8: node.log: expected a map, got \"fast\"");
}

Test(config, config_rejects_null_for_required_string) {
    expect_errors("node:\n  name:\n", "t.yaml:2:8: node.name: expected a string, got nothing");
}

Test(config, config_rejects_out_of_range_values_stating_the_range) {
    expect_errors("node:\n"
                  "  name: n1\n"
                  "  store: {map_size: 512KiB}\n"
                  "  rpc:\n"
                  "    max_connections: 0\n"
                  "    max_request_size: 65MiB\n"
                  "    tokens:\n"
                  "      - {name: a, token: t, roles: []}\n"
                  "  checkpoints: {keep: 1001}\n"
                  "plugins:\n"
                  "  - name: p\n"
                  "    path: p\n"
                  "    limits: {memory: 4097MiB, instructions: 999}\n",
                  "t.yaml:3:21: node.store.map_size: 512KiB is out of range: must be between "
                  "1MiB and 1TiB\n"
                  "t.yaml:5:22: node.rpc.max_connections: 0 is out of range: must be between 1 "
                  "and 100000\n"
                  "t.yaml:6:23: node.rpc.max_request_size: 65MiB is out of range: must be "
                  "between 1KiB and 64MiB\n"
                  "t.yaml:8:36: node.rpc.tokens.0.roles: has 0 items: must have between 1 and 3 "
                  "items\n"
                  "t.yaml:9:23: node.checkpoints.keep: 1001 is out of range: must be between 1 "
                  "and 1000\n"
                  "t.yaml:13:22: plugins.0.limits.memory: 4097MiB is out of range: must be "
                  "between 64KiB and 4GiB\n"
                  "t.yaml:13:45: plugins.0.limits.instructions: 999 is out of range: must be "
                  "between 1000 and 1000000000000");
}

Test(config, config_rejects_too_long_string) {
    char text[256];
    snprintf(text, sizeof(text), "node:\n  name: %064d\n", 0);
    expect_errors(text, "t.yaml:2:9: node.name: is 64 characters long: must be between 1 and 63 "
                        "characters");
}

Test(config, config_rejects_integer_overflow) {
    expect_errors(NODE "bridge: {outbox_limit: 9223372036854775808}\n",
                  "t.yaml:3:24: bridge.outbox_limit: integer \"9223372036854775808\" does not fit "
                  "in 64 bits (from -9223372036854775808 to 9223372036854775807)");
}

Test(config, config_rejects_bad_enum_listing_choices) {
    expect_errors(NODE "  log: {level: verbose}\n",
                  "t.yaml:3:16: node.log.level: expected one of error, warn, info, debug, trace, "
                  "got \"verbose\"");
}

Test(config, config_rejects_duplicate_key) {
    expect_errors("node:\n  name: a\n  name: b\n",
                  "t.yaml:3:3: node.name: duplicate key \"name\" (first at line 2, column 3)");
}

Test(config, config_keeps_first_of_duplicate_keys_and_reports_other_errors) {
    expect_errors("node:\n  name: a\n  name: b\n  layer: L9\n",
                  "t.yaml:3:3: node.name: duplicate key \"name\" (first at line 2, column 3)\n"
                  "t.yaml:4:10: node.layer: expected one of L2, L3, L4, got \"L9\"");
}

Test(config, config_rejects_duplicate_plugin_name_at_the_second) {
    expect_errors(NODE "plugins:\n  - {name: a, path: x}\n  - {name: b, path: y}\n"
                       "  - {name: a, path: z}\n",
                  "t.yaml:6:12: plugins.2.name: duplicate plugin name \"a\" (first at line 4)");
}

Test(config, config_rejects_duplicate_peer_name) {
    expect_errors(NODE "bridge:\n  peers:\n"
                       "    - {name: p, layer: L2, transport: t, address: a}\n"
                       "    - {name: p, layer: L4, transport: t, address: b}\n",
                  "t.yaml:6:14: bridge.peers.1.name: duplicate peer name \"p\" (first at line 5)");
}

Test(config, config_rejects_unset_env_var_naming_it) {
    unsetenv("ADO_TEST_UNSET_VAR");
    expect_errors("node:\n  name: ${ADO_TEST_UNSET_VAR}\n",
                  "t.yaml:2:9: node.name: environment variable ADO_TEST_UNSET_VAR is not set");
}

Test(config, config_expands_env_vars_and_double_dollar) {
    setenv("ADO_TEST_TOKEN", "tok-123", 1);
    setenv("ADO_TEST_NAME", "n", 1);
    int rc = load("node:\n  name: ${ADO_TEST_NAME}1\n  data_dir: \"/d/$$x/${ADO_TEST_NAME}\"\n"
                  "  rpc:\n    tokens:\n      - {name: a, token: \"${ADO_TEST_TOKEN}\", roles: "
                  "[admin]}\n");
    cr_assert_eq(rc, 0, "%s", messages());
    cr_assert_str_eq(cfg->node_name, "n1");
    cr_assert_str_eq(cfg->data_dir, "/d/$x/n");
    cr_assert_str_eq(text_at("node.rpc.tokens.0.token"), "tok-123");
}

Test(config, config_rejects_malformed_env_reference) {
    expect_errors("node:\n  name: ${OOPS\n",
                  "t.yaml:2:9: node.name: unterminated ${ in value (write $$ for a literal $)");
}

Test(config, config_reports_yaml_syntax_error_with_position) {
    expect_errors("node:\n  name: a\n  rpc: {listen: x\n",
                  "t.yaml:4:1: did not find expected ',' or '}' (while parsing a flow mapping at "
                  "line 3, column 8)");
}

Test(config, config_reports_bad_indentation_as_syntax_error) {
    expect_errors("node:\n  name: a\n layer: L2\n",
                  "t.yaml:3:2: did not find expected key (while parsing a block mapping at line 1, "
                  "column 1)");
}

Test(config, config_reports_several_errors_in_file_order) {
    expect_errors("node:\n"
                  "  nmae: x\n"
                  "  layer: L7\n"
                  "  rpc:\n"
                  "    listen: localhost\n"
                  "    tls: {cert: a.pem}\n"
                  "    tokens:\n"
                  "      - {name: a, roles: [root]}\n"
                  "plugins:\n"
                  "  - {name: Bad, path: x/y.txt, enabeld: true}\n",
                  "t.yaml:2:3: node.nmae: unknown key \"nmae\" (did you mean \"name\"?)\n"
                  "t.yaml:2:3: node: missing required key \"name\"\n"
                  "t.yaml:3:10: node.layer: expected one of L2, L3, L4, got \"L7\"\n"
                  "t.yaml:5:13: node.rpc.listen: invalid listen address \"localhost\": expected "
                  "HOST:PORT, [IPv6]:PORT (port 0 to 65535) or \"off\"\n"
                  "t.yaml:6:10: node.rpc.tls: \"cert\" and \"key\" must be given together (or "
                  "neither)\n"
                  "t.yaml:8:9: node.rpc.tokens.0: give exactly one of \"token\" and "
                  "\"token_file\"\n"
                  "t.yaml:8:27: node.rpc.tokens.0.roles.0: expected one of admin, writer, reader, "
                  "got \"root\"\n"
                  "t.yaml:10:12: plugins.0.name: invalid plugin name \"Bad\": use lowercase "
                  "letters, digits and '_', starting with a letter\n"
                  "t.yaml:10:23: plugins.0.path: \"x/y.txt\" is not a .so or .lua file (a bare "
                  "name without '/' is searched for)\n"
                  "t.yaml:10:32: plugins.0.enabeld: unknown key \"enabeld\" (did you mean "
                  "\"enabled\"?)");
}

Test(config, config_rejects_empty_file) {
    expect_errors("", "t.yaml:1:1: the file is empty (expected a map with a \"node\" block)");
}

Test(config, config_rejects_comment_only_file) {
    expect_errors("# nothing\n",
                  "t.yaml:1:1: the file is empty (expected a map with a \"node\" block)");
}

Test(config, config_rejects_top_level_that_is_not_a_map) {
    expect_errors("- a\n- b\n", "t.yaml:1:1: the top level must be a map with \"node\", "
                                "\"plugins\" and \"bridge\", got a list");
}

Test(config, config_rejects_file_without_node) {
    expect_errors("plugins: []\n", "t.yaml:1:1: missing required key \"node\"");
}

Test(config, config_refuses_anchors_and_aliases) {
    expect_errors("node:\n  name: &n a\n  data_dir: *n\n",
                  "t.yaml:2:9: node.name: anchors (&n) are not supported\n"
                  "t.yaml:3:13: node.data_dir: aliases (*n) are not supported");
}

Test(config, config_rejects_bad_node_name_and_listen_forms) {
    expect_errors("node:\n  name: -Bad\n  rpc: {listen: \"[zz]:80\"}\n",
                  "t.yaml:2:9: node.name: invalid node name \"-Bad\": use lowercase letters, "
                  "digits and '-', starting with a letter or digit\n"
                  "t.yaml:3:17: node.rpc.listen: invalid listen address \"[zz]:80\": expected "
                  "HOST:PORT, [IPv6]:PORT (port 0 to 65535) or \"off\"");
}

Test(config, config_accepts_listen_off_and_host_port) {
    cr_assert_eq(load(NODE "  rpc: {listen: \"off\"}\n"), 0, "%s", messages());
    cr_assert_str_eq(cfg->rpc_listen, "off");
    ado_config_free(cfg);
    cfg = NULL;
    cr_assert_eq(load(NODE "  rpc: {listen: \"node.example:65535\"}\n"), 0, "%s", messages());
}

Test(config, config_rejects_both_token_and_token_file) {
    expect_errors(NODE "  rpc:\n    tokens:\n"
                       "      - {name: a, token: x, token_file: /y, roles: [admin]}\n",
                  "t.yaml:5:9: node.rpc.tokens.0: give exactly one of \"token\" and "
                  "\"token_file\"");
}

Test(config, config_does_not_echo_secret_values_in_errors) {
    static const struct ado_schema sec[] = {
        {.key = "pin", .type = ADO_T_INT, .flags = ADO_F_SECRET},
        ADO_SCHEMA_END,
    };
    cr_assert_eq(load(NODE "plugins:\n  - {name: p, path: p, config: {pin: hunter2}}\n"), 0);
    cr_assert_eq(ado_config_validate(cfg, cfg->plugins[0].config, sec, NULL, &diag), 1);
    cr_assert_str_eq(messages(),
                     "t.yaml:4:38: plugins.0.config.pin: expected an integer, got a secret value");
}

Test(config, config_rejects_plugin_config_that_is_not_a_map) {
    expect_errors(NODE "plugins:\n  - {name: a, path: a, config: [1]}\n",
                  "t.yaml:4:32: plugins.0.config: expected a map, got a list");
}

Test(config, config_validates_disabled_plugins_but_does_not_list_them) {
    expect_errors(NODE "plugins:\n  - {name: a, path: a, enabled: no, optional: 3}\n",
                  "t.yaml:4:47: plugins.0.optional: expected a boolean (true/false, yes/no, "
                  "on/off), got \"3\"");
}

Test(config, config_rejects_deep_nesting_without_crashing) {
    char text[2048];
    size_t used = (size_t)snprintf(text, sizeof(text), NODE "x: ");
    for (int i = 0; i < 300; i++)
        text[used++] = '[';
    text[used] = '\0';
    cr_assert_eq(load(text), ADO_ECONFIG);
    cr_assert_null(cfg);
    cr_assert_geq(diag.n, 1);
}

/* ---- plugin schemas ------------------------------------------------------------------ */

static const char *const modes[] = {"fast", "safe", NULL};
static const struct ado_schema peer_fields[] = {
    {.key = "url", .type = ADO_T_STRING, .flags = ADO_F_REQUIRED},
    {.key = "weight",
     .type = ADO_T_INT,
     .default_value = "1",
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 10},
    ADO_SCHEMA_END,
};
static const struct ado_schema peer_item[] = {
    {.key = "peer", .type = ADO_T_MAP, .fields = peer_fields},
    ADO_SCHEMA_END,
};
static const struct ado_schema limits_fields[] = {
    {.key = "burst", .type = ADO_T_SIZE, .default_value = "4KiB"},
    {.key = "window", .type = ADO_T_DURATION, .default_value = "1m"},
    ADO_SCHEMA_END,
};
static const struct ado_schema plugin_schema[] = {
    {.key = "rate", .type = ADO_T_INT, .flags = ADO_F_RANGE, .min = 1, .max = 100},
    {.key = "mode", .type = ADO_T_ENUM, .choices = modes, .default_value = "safe"},
    {.key = "api_key", .type = ADO_T_STRING, .flags = ADO_F_SECRET},
    {.key = "limits", .type = ADO_T_MAP, .fields = limits_fields},
    {.key = "peers",
     .type = ADO_T_LIST,
     .fields = peer_item,
     .flags = ADO_F_RANGE,
     .min = 1,
     .max = 3},
    {.key = "extra", .type = ADO_T_ANY},
    ADO_SCHEMA_END,
};

Test(config, config_validates_plugin_block_with_nested_map_and_list) {
    int rc = load(NODE "plugins:\n"
                       "  - name: p\n"
                       "    path: p\n"
                       "    config:\n"
                       "      rate: 500\n"
                       "      limits: {burst: lots, windw: 1s}\n"
                       "      peers:\n"
                       "        - {url: a, weight: 11}\n"
                       "        - {weight: 2}\n");
    cr_assert_eq(rc, 0, "%s", messages());
    struct ado_cnode *block = cfg->plugins[0].config;
    int n = ado_config_validate(cfg, block, plugin_schema, "plugins.0.config", &diag);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(messages(),
                     "t.yaml:7:13: plugins.0.config.rate: 500 is out of range: must be between 1 "
                     "and 100\n"
                     "t.yaml:8:23: plugins.0.config.limits.burst: expected a size like 512, "
                     "64KiB, 64MiB, 1GiB or 10MB, got \"lots\"\n"
                     "t.yaml:8:29: plugins.0.config.limits.windw: unknown key \"windw\" (did you "
                     "mean \"window\"?)\n"
                     "t.yaml:10:28: plugins.0.config.peers.0.weight: 11 is out of range: must be "
                     "between 1 and 10\n"
                     "t.yaml:11:11: plugins.0.config.peers.1: missing required key \"url\"");
}

Test(config, config_validate_fills_plugin_defaults_and_derives_path) {
    int rc = load(NODE "plugins:\n"
                       "  - {name: off, path: o, enabled: false}\n"
                       "  - name: p\n"
                       "    path: p\n"
                       "    config: {api_key: k, peers: [{url: u}], extra: {a: [1]}}\n");
    cr_assert_eq(rc, 0, "%s", messages());
    struct ado_cnode *block = cfg->plugins[0].config;
    cr_assert_eq(cfg->plugins[0].index, 1);
    cr_assert_eq(ado_config_validate(cfg, block, plugin_schema, NULL, &diag), 0, "%s", messages());
    cr_assert_str_eq(ado_cnode_get(block, "mode")->text, "safe");
    cr_assert_eq(ado_cnode_get(block, "mode")->ival, 1);
    cr_assert_eq(ado_cnode_get(block, "limits.burst")->ival, 4096);
    cr_assert_eq(ado_cnode_get(block, "limits.window")->ival, 60000);
    cr_assert_eq(ado_cnode_get(block, "peers.0.weight")->ival, 1);
    cr_assert_eq(ado_cnode_get(block, "api_key")->secret, 1);
    cr_assert_null(ado_cnode_get(block, "rate"));
    /* Validating again adds nothing. */
    size_t before = block->n;
    cr_assert_eq(ado_config_validate(cfg, block, plugin_schema, NULL, &diag), 0);
    cr_assert_eq(block->n, before);
    /* The derived path names the list position in the file. */
    struct ado_cnode *peers = ado_cnode_get(block, "peers");
    cr_assert_eq(ado_config_validate(cfg, peers->items[0], peer_fields + 1, NULL, &diag), 1);
    cr_assert_str_eq(messages(), "t.yaml:7:35: plugins.1.config.peers.0.url: unknown key \"url\" "
                                 "(known keys: weight)");
}

Test(config, config_validate_reports_missing_required_in_empty_block) {
    static const struct ado_schema req[] = {
        {.key = "endpoint", .type = ADO_T_STRING, .flags = ADO_F_REQUIRED},
        ADO_SCHEMA_END,
    };
    cr_assert_eq(load(NODE "plugins:\n  - {name: p, path: p}\n"), 0, "%s", messages());
    cr_assert_eq(ado_config_validate(cfg, cfg->plugins[0].config, req, NULL, &diag), 1);
    cr_assert_str_eq(messages(), "t.yaml:4:5: plugins.0.config: missing required key "
                                 "\"endpoint\"");
}

Test(config, config_validate_accepts_null_block) {
    static const struct ado_schema opt[] = {
        {.key = "x", .type = ADO_T_INT, .default_value = "1"},
        ADO_SCHEMA_END,
    };
    cr_assert_eq(ado_config_validate(NULL, NULL, opt, "p", &diag), 0);
    cr_assert_eq(diag.n, 0);
}

/* ---- lookups and JSON ---------------------------------------------------------------- */

Test(config, config_cnode_get_follows_maps_and_list_indexes) {
    cr_assert_eq(load(full_yaml), 0, "%s", messages());
    cr_assert_eq(ado_cnode_get(cfg->root, ""), cfg->root);
    cr_assert_str_eq(text_at("plugins.1.name"), "script");
    cr_assert_str_eq(text_at("bridge.peers.0.transport"), "evm_l2");
    struct ado_cnode *n = ado_cnode_get(cfg->root, "node.rpc.listen");
    cr_assert_eq(n->line, 8);
    cr_assert_eq(n->col, 13);
    cr_assert_eq(n->key_line, 8);
    cr_assert_eq(n->key_col, 5);
    cr_assert_null(ado_cnode_get(cfg->root, "plugins.3"));
    cr_assert_null(ado_cnode_get(cfg->root, "plugins.x"));
    cr_assert_null(ado_cnode_get(cfg->root, "node.name.deeper"));
    cr_assert_null(ado_cnode_get(cfg->root, "node.nope"));
    char path[128];
    cr_assert_eq(
        ado_cnode_path(ado_cnode_get(cfg->root, "plugins.1.limits.memory"), path, sizeof(path)), 0);
    cr_assert_str_eq(path, "plugins.1.limits.memory");
}

Test(config, config_to_json_renders_typed_values) {
    setenv("ADO_TEST_SECRET", "p\"w\n", 1);
    int rc = load(NODE "  rpc:\n    tokens:\n"
                       "      - {name: a, token: \"${ADO_TEST_SECRET}\", roles: [admin]}\n"
                       "plugins:\n"
                       "  - name: p\n"
                       "    path: p\n"
                       "    config: {n: 42, h: 0x10, f: 1.5, b: true, s: '7', z: ~, t: x\\y, "
                       "l: [yes]}\n");
    cr_assert_eq(rc, 0, "%s", messages());
    char *j = ado_cnode_to_json(ado_cnode_get(cfg->root, "plugins.0.config"));
    cr_assert_str_eq(j, "{\"n\":42,\"h\":16,\"f\":1.5,\"b\":true,\"s\":\"7\",\"z\":null,"
                        "\"t\":\"x\\\\y\",\"l\":[\"yes\"]}");
    free(j);
    j = ado_cnode_to_json(ado_cnode_get(cfg->root, "node.rpc.tokens"));
    cr_assert_str_eq(j, "[{\"name\":\"a\",\"token\":\"p\\\"w\\n\",\"roles\":[\"admin\"]}]");
    free(j);
    j = ado_cnode_to_json_ex(ado_cnode_get(cfg->root, "node.rpc.tokens"), ADO_JSON_REDACT);
    cr_assert_str_eq(j, "[{\"name\":\"a\",\"token\":\"***\",\"roles\":[\"admin\"]}]");
    free(j);
    j = ado_cnode_to_json(ado_cnode_get(cfg->root, "node.store"));
    cr_assert_str_eq(j, "{\"map_size\":67108864,\"sync\":true}");
    free(j);
    j = ado_cnode_to_json(ado_cnode_get(cfg->root, "plugins.0.breaker"));
    cr_assert_str_eq(j, "{\"failures\":5,\"cooldown\":30000}");
    free(j);
}

Test(config, config_diag_print_writes_one_line_per_message) {
    ado_diag_add(&diag, "f.yaml", 3, 4, "a.b", "bad %d", 1);
    ado_diag_add(&diag, "f.yaml", 0, 0, NULL, "no position");
    char buf[256] = {0};
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    cr_assert_not_null(f);
    ado_diag_print(&diag, f);
    fclose(f);
    cr_assert_str_eq(buf, "f.yaml:3:4: a.b: bad 1\nf.yaml: no position\n");
}

/* ---- parse helpers -------------------------------------------------------------------- */

Test(config, parse_int_accepts_decimal_hex_and_sign_and_rejects_overflow) {
    int64_t v;
    cr_assert_eq(ado_parse_int("42", &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(ado_parse_int("-7", &v), 0);
    cr_assert_eq(v, -7);
    cr_assert_eq(ado_parse_int("+0x2A", &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(ado_parse_int("-0x10", &v), 0);
    cr_assert_eq(v, -16);
    cr_assert_eq(ado_parse_int("9223372036854775807", &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(ado_parse_int("-9223372036854775808", &v), 0);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(ado_parse_int("0x7fffffffffffffff", &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(ado_parse_int("9223372036854775808", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int("-9223372036854775809", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int("0x8000000000000000", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int("99999999999999999999999", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int("", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int("-", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int("0x", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int("12a", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int(" 1", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int("1.5", &v), ADO_EINVAL);
    cr_assert_eq(ado_parse_int(NULL, &v), ADO_EINVAL);
}

Test(config, parse_bool_accepts_the_yaml_words) {
    int b;
    const char *yes[] = {"true", "yes", "on", "TRUE", "Yes"};
    const char *no[] = {"false", "no", "off", "False", "OFF"};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ado_parse_bool(yes[i], &b), 0);
        cr_assert_eq(b, 1);
        cr_assert_eq(ado_parse_bool(no[i], &b), 0);
        cr_assert_eq(b, 0);
    }
    cr_assert_eq(ado_parse_bool("1", &b), ADO_EINVAL);
    cr_assert_eq(ado_parse_bool("y", &b), ADO_EINVAL);
    cr_assert_eq(ado_parse_bool("", &b), ADO_EINVAL);
}

Test(config, parse_duration_reads_units_combinations_and_bare_ms) {
    struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"250ms", 250},
              {"10s", 10000},
              {"5m", 300000},
              {"24h", 86400000},
              {"7d", 604800000},
              {"1h30m", 5400000},
              {"1d2h3m4s5ms", 93784005},
              {"0", 0},
              {"0s", 0},
              {"1500", 1500}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -1;
        cr_assert_eq(ado_parse_duration_ms(ok[i].s, &v), 0, "%s", ok[i].s);
        cr_assert_eq(v, ok[i].ms, "%s", ok[i].s);
    }
    const char *bad[] = {"",
                         "s",
                         "10x",
                         "-5s",
                         "1.5s",
                         "10s5m",
                         "1h1h",
                         "5 s",
                         "10S",
                         "106751991168d",
                         "9223372036854775808",
                         "1h 30m"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v;
        cr_assert_eq(ado_parse_duration_ms(bad[i], &v), ADO_EINVAL, "%s", bad[i]);
    }
    int64_t v;
    cr_assert_eq(ado_parse_duration_ms("106751991167300ms", &v), 0);
}

Test(config, parse_size_reads_binary_and_decimal_units) {
    struct {
        const char *s;
        int64_t b;
    } ok[] = {{"512", 512},        {"512B", 512},          {"64KiB", 65536}, {"64MiB", 64LL << 20},
              {"1GiB", 1LL << 30}, {"2TiB", 2LL << 40},    {"10KB", 10000},  {"3MB", 3000000},
              {"1GB", 1000000000}, {"64 MiB", 64LL << 20}, {"0", 0}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -1;
        cr_assert_eq(ado_parse_size_bytes(ok[i].s, &v), 0, "%s", ok[i].s);
        cr_assert_eq(v, ok[i].b, "%s", ok[i].s);
    }
    const char *bad[] = {"",   "KiB", "12QB", "-1", "1.5MiB", "8388608TiB", "9223372036854775808",
                         "1 ", "1kib"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v;
        cr_assert_eq(ado_parse_size_bytes(bad[i], &v), ADO_EINVAL, "%s", bad[i]);
    }
}

/* ---- sample files in tests/fixtures/config ----------------------------------------------- */

#ifdef ADO_SOURCE_DIR
#define FIXTURES ADO_SOURCE_DIR "/tests/fixtures/config"

Test(config, config_fixture_files_load_or_fail_as_documented) {
    setenv("ADO_FIXTURE_TOKEN", "t0k", 1);
    cr_assert_eq(ado_config_load(FIXTURES "/minimal.yaml", &cfg, &diag), 0, "%s", messages());
    ado_config_free(cfg);
    cfg = NULL;
    cr_assert_eq(ado_config_load(FIXTURES "/full.yaml", &cfg, &diag), 0, "%s", messages());
    cr_assert_eq(cfg->nplugins, 2);
    cr_assert_str_eq(cfg->plugins[1].path, FIXTURES "/lua/compliance.lua");
    cr_assert_str_eq(text_at("node.rpc.tokens.0.token"), "t0k");
    ado_config_free(cfg);
    cfg = NULL;

    cr_assert_eq(ado_config_load(FIXTURES "/invalid.yaml", &cfg, &diag), ADO_ECONFIG);
    FILE *f = fopen(FIXTURES "/invalid.expected", "r");
    cr_assert_not_null(f);
    char line[1024];
    size_t i = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        cr_assert_lt(i, diag.n, "missing message: %s", line);
        /* Messages name the file as given: strip the folder. */
        size_t skip = strlen(FIXTURES "/");
        cr_assert_eq(strncmp(diag.msgs[i], FIXTURES "/", skip), 0, "%s", diag.msgs[i]);
        cr_assert_str_eq(diag.msgs[i] + skip, line, "message %zu", i);
        i++;
    }
    fclose(f);
    cr_assert_eq(i, diag.n, "unexpected extra messages:\n%s", messages());
}
#endif
