/* evm_l2: private declarations shared by the plugin's files.
 *
 * evm_l2.c  plugin descriptor, config, transport ops, RPC methods (l2_call, l2_status)
 * peer.c    one L2 endpoint: chain id check, nonces, fees, signing, broadcast, receipts,
 *           confirmations, replacement, reverts, reorgs
 * txstore.c in-flight txs: the list and their records in the store; confirmed seqs
 * settings.c a peer's settings and its signing key
 * events.c  L2 logs: polling, ABI decoding, dedupe, publishing bridge.in.l2.<Event>;
 *           payload parsing (message -> to + calldata)
 * jrpc.c    JSON-RPC over HTTP/1.1 on the loop
 *
 * Everything runs on the node's loop thread. */
#ifndef EVM_L2_H
#define EVM_L2_H

#include <ado/ado.h>
#include <ado_eth/tx.h>
#include <ado_eth/u256.h>
#include <jansson.h>
#include <stdint.h>

#include "jrpc.h"

#define EVM_MAX_HASHES    8 /* hashes kept per nonce (original + replacements) */
#define EVM_HASH_HEX      67
#define EVM_RCPT_PER_TICK 1000 /* oldest in-flight txs whose receipts one tick reads */
#define EVM_BCAST_BATCH   500  /* eth_sendRawTransaction calls per HTTP request */

struct evm;

/* One message in flight: a signed transaction holding a nonce until it is confirmed. */
struct evm_tx {
    struct evm_tx *next; /* list in nonce order */
    uint64_t seq, nonce;
    uint8_t to[20];
    int has_to;
    struct ado_u256 value, max_fee, prio;
    uint64_t gas_limit;
    uint8_t *data; /* calldata (owned) */
    size_t data_len;
    char *raw_hex;                             /* current signed tx, "0x..." (owned) */
    char hashes[EVM_MAX_HASHES][EVM_HASH_HEX]; /* [nhash-1] is the current one */
    int nhash;
    uint64_t sent_ms; /* last (re)broadcast, loop clock */
    int broadcast;    /* 1 once handed to the L2 node at least once since load/sign */
    int durable;      /* 1 once its record is on disk (broadcast only after that) */
    int have_rcpt;    /* a receipt was seen */
    uint64_t rcpt_block;
    char rcpt_block_hash[EVM_HASH_HEX];
    int rcpt_status;
    int finishing; /* revert reason lookup in flight */
    int gone;      /* ticks in a row without receipt while the account nonce is past it */
    uint64_t wgen; /* write generation of its record */
};

struct evm_event {
    char *name;      /* "Claimed" */
    char *canonical; /* "Claimed(uint64,address,uint256,address)" */
    uint8_t topic0[32];
    int has_addr;
    uint8_t addr[20];
    size_t nparams;
    char **ptypes;  /* canonical type of each parameter */
    char **pnames;  /* its name or NULL */
    int *indexed;   /* 1 if indexed; -1 when unknown (taken from the log's topic count) */
    int any_marked; /* the signature marks indexed parameters explicitly */
};

struct evm_peer {
    struct evm *e;
    struct evm_peer *next;
    char *name, *url;
    json_t *cfg; /* plugin config overlaid with the peer's options (owned) */
    struct jrpc *rpc;
    struct ado_eth_signer *signer;
    uint8_t addr[20];
    char addr_hex[43];
    /* settings */
    uint64_t chain_id, confirmations, poll_ms, stuck_ms, default_gas, max_inflight;
    struct ado_u256 fee_cap, prio_cap, prio_min;
    int prio_percentile;
    /* state */
    int chain_ok, nonce_ok, up, closed, ticking, ev_busy, fail_streak;
    char reason[256];
    uint64_t remote_chain_id;
    uint64_t next_nonce, head, latest_count;
    uint64_t n_reorgs, n_replaced;     /* also in metrics; for l2_status and tests */
    uint64_t sub_gen, n_notifications; /* ws:// subscriptions: connection subscribed, wake-ups */
    int fees_ok;
    struct ado_u256 base_fee, prio_fee;
    struct evm_tx *txs;
    size_t ntx;
    uint64_t timer;
    struct evm_event *events;
    size_t nevents;
    uint64_t ev_next; /* next block to scan for logs */
    int ev_started;
    int flush_pending; /* a zero-delay timer will broadcast new txs */
    uint64_t flush_timer;
    uint64_t wgen;    /* last record write generation */
    uint64_t *reacks; /* seqs already confirmed, sent again: acked from flush_timer */
    size_t nreacks, reacks_cap;
};

struct evm {
    ado_ctx *ctx;
    const struct ado_api *api;
    ado_db db;
    json_t *cfg; /* the plugin's config block */
    struct evm_peer *peers;
    int stopping;
    char key_error[256];
};

/* ---- peer.c ------------------------------------------------------------------------------ */
/* Open a peer: read its settings, its key, its in-flight txs, start polling. On a config
 * problem returns ADO_ECONFIG with the reason in *why (a static-size buffer of 256). */
int evm_peer_open(struct evm *e, const char *name, const char *url, const char *options,
                  struct evm_peer **out, char why[256]);
void evm_peer_close(struct evm_peer *p);
int evm_peer_send(struct evm_peer *p, const struct ado_bridge_msg *msg);
struct evm_peer *evm_peer_find(struct evm *e, const char *name);
/* Status of the peer as JSON (owned by the caller). */
json_t *evm_peer_status(struct evm_peer *p);
/* Read a key: from cfg "key" (hex) or "key_file" (must be mode 0600 or stricter).
 * Returns 0 and the 32 bytes, or ADO_ECONFIG with the reason in why. Never logs the key. */
int evm_load_key(json_t *cfg, uint8_t key[32], char why[256]);
void evm_metric(struct evm_peer *p, const char *name, double delta);
void evm_gauge(struct evm_peer *p, const char *name, double value);
/* Parse "0x..." quantities. Returns 0 or ADO_EINVAL. */
int evm_hex_u64(json_t *v, uint64_t *out);
int evm_hex_u256(json_t *v, struct ado_u256 *out);

/* ---- settings.c ------------------------------------------------------------------------- */
/* Read p->cfg into p's settings. Returns 0 or ADO_ECONFIG with why. */
int evm_settings_read(struct evm_peer *p, char why[256]);
/* A duration: a JSON number of ms, or "250ms", "2s", "5m", "1h". 0 or ADO_ECONFIG. */
int evm_cfg_ms(json_t *cfg, const char *key, uint64_t def, uint64_t *out);

/* ---- txstore.c -------------------------------------------------------------------------- */
void evm_u256_hex(const struct ado_u256 *v, char out[70]); /* "0x" minimal hex */
int evm_tx_key(const struct evm_peer *p, uint64_t nonce, char *out, size_t cap);
int evm_nonce_save(struct evm_peer *p);
/* Write t's record (and give it the next write generation). 0 or an ADO_E* code. */
int evm_tx_save(struct evm_peer *p, struct evm_tx *t);
void evm_tx_free(struct evm_tx *t);
void evm_tx_insert(struct evm_peer *p, struct evm_tx *t); /* in nonce order */
void evm_tx_remove(struct evm_peer *p, struct evm_tx *t); /* unlink, delete record, free */
struct evm_tx *evm_tx_by_nonce(struct evm_peer *p, uint64_t nonce);
struct evm_tx *evm_tx_by_seq(struct evm_peer *p, uint64_t seq);
/* Load the next nonce and the in-flight records of p. */
int evm_state_load(struct evm_peer *p);
void evm_acked_mark(struct evm_peer *p, struct evm_tx *t);
int evm_acked_was(struct evm_peer *p, uint64_t seq);

/* ---- events.c ---------------------------------------------------------------------------- */
/* Parse the peer's `events` list. Returns 0 or ADO_ECONFIG with why. */
int evm_events_parse(struct evm_peer *p, char why[256]);
void evm_events_free(struct evm_peer *p);
/* Poll logs up to the confirmed head (called from the tick). */
void evm_events_poll(struct evm_peer *p);
/* Turn a message payload into (to, calldata, value, gas limit). why gets the reason of a
 * failure (ADO_EINVAL). *data is malloc'd. */
int evm_payload_parse(struct evm_peer *p, const void *payload, size_t len, uint8_t to[20],
                      uint8_t **data, size_t *data_len, struct ado_u256 *value, uint64_t *gas,
                      char why[256]);
/* Resolve an address or an alias of the `contracts` map. */
int evm_resolve_address(struct evm_peer *p, const char *text, uint8_t out[20]);
/* A readable reason for revert data (Error(string), Panic(uint256), custom error). */
void evm_revert_reason(const char *data_hex, char *out, size_t cap);

#endif
