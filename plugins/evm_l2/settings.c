/* evm_l2: settings of a peer (plugin config overlaid with the peer's options) and the
 * signing key. */
#include "evm_l2.h"

#include <ado_eth/common.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int evm_hex_u64(json_t *v, uint64_t *out) {
    const char *s = json_string_value(v);
    if (!s || strncmp(s, "0x", 2) != 0 || !s[2] || strlen(s) > 18)
        return ADO_EINVAL;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s + 2, &end, 16);
    if (*end || errno)
        return ADO_EINVAL;
    *out = x;
    return 0;
}

int evm_hex_u256(json_t *v, struct ado_u256 *out) {
    const char *s = json_string_value(v);
    return s ? ado_u256_parse_str(out, s) : ADO_EINVAL;
}

/* A duration: a JSON number of ms, or text "250ms", "2s", "5m", "1h". */
int evm_cfg_ms(json_t *cfg, const char *key, uint64_t def, uint64_t *out) {
    json_t *v = json_object_get(cfg, key);
    *out = def;
    if (!v)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s)
        return ADO_ECONFIG;
    char *end;
    double x = strtod(s, &end);
    if (end == s || x < 0)
        return ADO_ECONFIG;
    double mul = !*end || !strcmp(end, "ms") ? 1
                 : !strcmp(end, "s")         ? 1000
                 : !strcmp(end, "m")         ? 60000
                 : !strcmp(end, "h")         ? 3600000
                                             : -1;
    if (mul < 0)
        return ADO_ECONFIG;
    *out = (uint64_t)(x * mul);
    return 0;
}

static int cfg_u64(json_t *cfg, const char *key, uint64_t def, uint64_t *out) {
    json_t *v = json_object_get(cfg, key);
    *out = def;
    if (!v)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    char *end;
    if (!s || !*s)
        return ADO_ECONFIG;
    errno = 0;
    *out = strtoull(s, &end, 0);
    return *end || errno ? ADO_ECONFIG : 0;
}

/* Wei: a number, decimal or 0x text, or "<n>gwei" (decimals allowed: "1.5gwei"). */
static int cfg_wei(json_t *cfg, const char *key, const char *def, struct ado_u256 *out) {
    json_t *v = json_object_get(cfg, key);
    char buf[96];
    const char *s = def;
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = buf;
    } else if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (v) {
        return ADO_ECONFIG;
    }
    size_t n = strlen(s);
    if (n > 4 && !strcmp(s + n - 4, "gwei")) {
        double g = strtod(s, NULL);
        if (g < 0 || g > 1e12)
            return ADO_ECONFIG;
        ado_u256_from_u64(out, (uint64_t)(g * 1e9 + 0.5));
        return 0;
    }
    return ado_u256_parse_str(out, s) == 0 ? 0 : ADO_ECONFIG;
}

int evm_load_key(json_t *cfg, uint8_t key[32], char why[256]) {
    const char *hex = json_string_value(json_object_get(cfg, "key"));
    const char *file = json_string_value(json_object_get(cfg, "key_file"));
    char buf[256];
    if (hex && *hex && file && *file) {
        snprintf(why, 256, "give either key or key_file, not both");
        return ADO_ECONFIG;
    }
    if (file && *file) {
        struct stat st;
        if (stat(file, &st) != 0) {
            snprintf(why, 256, "key_file %s: %s", file, strerror(errno));
            return ADO_ECONFIG;
        }
        if (st.st_mode & 077) {
            snprintf(why, 256,
                     "key_file %s has mode %04o: it must not be readable by group or "
                     "others (chmod 600)",
                     file, (unsigned)(st.st_mode & 07777));
            return ADO_ECONFIG;
        }
        FILE *f = fopen(file, "r");
        if (!f) {
            snprintf(why, 256, "key_file %s: %s", file, strerror(errno));
            return ADO_ECONFIG;
        }
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        hex = buf;
    }
    if (!hex || !*hex) {
        snprintf(why, 256, "no signing key: set key_file (mode 0600) or key: ${ENV_VAR}");
        return ADO_ECONFIG;
    }
    while (*hex == ' ' || *hex == '\n')
        hex++;
    size_t len = strlen(hex);
    while (len && (hex[len - 1] == '\n' || hex[len - 1] == '\r' || hex[len - 1] == ' '))
        len--;
    size_t got = 0;
    int rc = ado_eth_hex_decode(hex, len, key, 32, &got);
    memset(buf, 0, sizeof buf);
    if (rc < 0 || got != 32) {
        snprintf(why, 256, "the signing key is not 32 bytes of hex");
        return ADO_ECONFIG;
    }
    return 0;
}

int evm_settings_read(struct evm_peer *p, char why[256]) {
    json_t *c = p->cfg;
    uint64_t pct;
    if (cfg_u64(c, "chain_id", 0, &p->chain_id) < 0 || p->chain_id == 0) {
        snprintf(why, 256, "chain_id is required (the L2's EIP-155 chain id)");
        return ADO_ECONFIG;
    }
    if (cfg_u64(c, "confirmations", 2, &p->confirmations) < 0 || p->confirmations == 0 ||
        evm_cfg_ms(c, "poll_interval", 1000, &p->poll_ms) < 0 || p->poll_ms < 10 ||
        evm_cfg_ms(c, "stuck_timeout", 60000, &p->stuck_ms) < 0 ||
        cfg_u64(c, "gas_limit", 500000, &p->default_gas) < 0 ||
        cfg_u64(c, "max_inflight", 4096, &p->max_inflight) < 0 ||
        cfg_u64(c, "priority_percentile", 50, &pct) < 0 || pct > 100) {
        snprintf(why, 256,
                 "a number or duration is invalid (confirmations >= 1, "
                 "poll_interval >= 10ms, priority_percentile 0..100)");
        return ADO_ECONFIG;
    }
    p->prio_percentile = (int)pct;
    if (cfg_wei(c, "max_fee_per_gas", "500gwei", &p->fee_cap) < 0 ||
        cfg_wei(c, "max_priority_fee_per_gas", "10gwei", &p->prio_cap) < 0 ||
        cfg_wei(c, "min_priority_fee_per_gas", "1000000", &p->prio_min) < 0) {
        snprintf(why, 256, "a fee setting is not wei (\"123\", \"0x7b\") or \"<n>gwei\"");
        return ADO_ECONFIG;
    }
    return 0;
}
