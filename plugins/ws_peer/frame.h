/* ws_peer wire format, version 1: one WebSocket binary message = one frame.
 *
 *   u8 version (1) | u8 type | body
 *
 * Integers are big-endian; str8 is a u8 length then that many bytes (no NUL, no zero
 * length); blob is a u32 length then the bytes. Bodies by type:
 *
 *   HELLO   1  nonce[32] public_key[32] str8 node_name str8 layer
 *   AUTH    2  signature[64]            (see wsp_auth_transcript)
 *   MSG     3  u64 seq u64 created_ms str8 origin str8 topic blob payload
 *   ACK     4  u64 seq
 *   NACK    5  u64 seq str8 reason
 *   PING    6  u64 sender_ms
 *   PONG    7  u64 echoed_ms
 *   QUERY   8  u64 id blob request        (JSON-RPC request text)
 *   RESULT  9  u64 id i32 status blob response
 *   ACKR   10  u64 first u64 last      (ACK of every seq first..last; first < last and
 *                                       last - first < WSP_ACKR_MAX)
 *
 * A frame must be exactly as long as its body: trailing bytes are an error. Decoding never
 * allocates; strings are copied into the frame struct, blobs point into the input. */
#ifndef WSP_FRAME_H
#define WSP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WSP_VERSION    1
#define WSP_STR_MAX    255
#define WSP_NONCE      32
#define WSP_PK         32
#define WSP_SIG        64
#define WSP_ACKR_MAX   65536 /* seqs one ACKR may cover */
#define WSP_AUTH_LABEL "adonode ws_peer v1 auth"
/* Bytes of the auth transcript: label, role byte, two nonces, two public keys. */
#define WSP_TRANSCRIPT_LEN (sizeof WSP_AUTH_LABEL - 1 + 1 + 2 * WSP_NONCE + 2 * WSP_PK)

enum wsp_type {
    WSP_HELLO = 1,
    WSP_AUTH = 2,
    WSP_MSG = 3,
    WSP_ACK = 4,
    WSP_NACK = 5,
    WSP_PING = 6,
    WSP_PONG = 7,
    WSP_QUERY = 8,
    WSP_RESULT = 9,
    WSP_ACKR = 10,
};

struct wsp_frame {
    int type;
    uint64_t u; /* seq (MSG, ACK, NACK), ms (PING, PONG), id (QUERY, RESULT) */
    uint64_t created_ms;
    uint64_t last; /* ACKR: the last seq acked (u is the first) */
    int32_t status;
    uint8_t nonce[WSP_NONCE];
    uint8_t pk[WSP_PK];
    uint8_t sig[WSP_SIG];
    char s1[WSP_STR_MAX + 1]; /* HELLO name, MSG origin, NACK reason */
    char s2[WSP_STR_MAX + 1]; /* HELLO layer, MSG topic */
    const uint8_t *blob;      /* MSG payload, QUERY request, RESULT response: into the input */
    size_t blob_len;
};

/* Decode `len` bytes. 0, or ADO_EINVAL for a bad version, unknown type, short or long
 * frame, an empty string or a string holding NUL. */
int wsp_decode(const uint8_t *buf, size_t len, struct wsp_frame *f);

/* Size of the encoded frame `f` (strings s1/s2 and blob as given), or 0 if a string is
 * empty or too long. */
size_t wsp_encoded_len(const struct wsp_frame *f);
/* Encode into `out` (wsp_encoded_len bytes). Returns the length, or 0 as above. */
size_t wsp_encode(const struct wsp_frame *f, uint8_t *out);

/* The receiver's acks of one turn, in the order the applies became durable: the length of
 * the run of consecutive seqs at the front of s[0..n) (at most WSP_ACKR_MAX), with its first
 * and last seq. 0 if n is 0. Only seqs present in s are covered: a gap ends the run. */
size_t wsp_ack_run(const uint64_t *s, size_t n, uint64_t *first, uint64_t *last);

/* One complete WebSocket binary message (RFC 6455 5.2: FIN, opcode 2, length in 7, 16 or
 * 64 bits, masked with the 4 bytes `mask` unless it is NULL) carrying payload[0..len), written
 * to out (len + 14 bytes are enough). Returns the bytes written. For writing several frames
 * in one socket write (link.c). */
size_t wsp_ws_wrap(uint8_t *out, const uint8_t *payload, size_t len, const uint8_t *mask);

/* The bytes each side signs: label | role ('C' client or 'S' server, the signer's) |
 * client_nonce | server_nonce | client_pk | server_pk. */
void wsp_auth_transcript(uint8_t out[WSP_TRANSCRIPT_LEN], char role, const uint8_t *client_nonce,
                         const uint8_t *server_nonce, const uint8_t *client_pk,
                         const uint8_t *server_pk);

/* Parse "ws://host:port/path" (path optional, default "/"; IPv6 as [::1]). 0 or ADO_EINVAL. */
int wsp_parse_url(const char *url, char *host, size_t hcap, int *port, char *path, size_t pcap);
/* Parse "host:port" (IPv6 as [::1]:port). 0 or ADO_EINVAL. */
int wsp_parse_hostport(const char *s, char *host, size_t hcap, int *port);
/* 64 hex characters (optional 0x) to 32 bytes. 0 or ADO_EINVAL. */
int wsp_hex32(const char *hex, uint8_t out[32]);

#endif
