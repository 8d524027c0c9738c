/* ws_peer's wire format and handshake transcript, without a node: every frame type round
 * trips, and garbage (short, long, bad version, unknown type, bad strings) is refused. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ado/errors.h"
#include "frame.h"

static struct wsp_frame roundtrip(const struct wsp_frame *in) {
    uint8_t buf[4096];
    size_t n = wsp_encode(in, buf);
    cr_assert_gt(n, 0);
    cr_assert_eq(n, wsp_encoded_len(in));
    struct wsp_frame out;
    cr_assert_eq(wsp_decode(buf, n, &out), 0);
    cr_assert_eq(out.type, in->type);
    /* Every proper prefix and one extra byte are refused. */
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(wsp_decode(buf, k, &(struct wsp_frame){0}), ADO_EINVAL, "prefix %zu", k);
    buf[n] = 0;
    cr_assert_eq(wsp_decode(buf, n + 1, &(struct wsp_frame){0}), ADO_EINVAL);
    return out;
}

Test(ws_peer_frame, msg_round_trips_with_seq_origin_topic_payload_and_time) {
    struct wsp_frame f = {.type = WSP_MSG, .u = 0x0102030405060708ull, .created_ms = 1234567};
    strcpy(f.s1, "org-a");
    strcpy(f.s2, "gov.decision");
    f.blob = (const uint8_t *)"{\"x\":1}";
    f.blob_len = 7;
    uint8_t buf[256];
    size_t n = wsp_encode(&f, buf);
    struct wsp_frame g = roundtrip(&f);
    cr_assert_eq(g.u, f.u);
    cr_assert_eq(g.created_ms, 1234567);
    cr_assert_str_eq(g.s1, "org-a");
    cr_assert_str_eq(g.s2, "gov.decision");
    cr_assert_eq(g.blob_len, 7);
    (void)n;
}

Test(ws_peer_frame, every_other_type_round_trips) {
    struct wsp_frame h = {.type = WSP_HELLO};
    memset(h.nonce, 7, sizeof h.nonce);
    memset(h.pk, 9, sizeof h.pk);
    strcpy(h.s1, "node");
    strcpy(h.s2, "L4");
    struct wsp_frame g = roundtrip(&h);
    cr_assert_eq(memcmp(g.nonce, h.nonce, 32), 0);
    cr_assert_eq(memcmp(g.pk, h.pk, 32), 0);
    cr_assert_str_eq(g.s2, "L4");
    struct wsp_frame a = {.type = WSP_AUTH};
    memset(a.sig, 3, sizeof a.sig);
    g = roundtrip(&a);
    cr_assert_eq(memcmp(g.sig, a.sig, 64), 0);
    int simple[] = {WSP_ACK, WSP_PING, WSP_PONG};
    for (int i = 0; i < 3; i++) {
        struct wsp_frame s = {.type = simple[i], .u = 42 + (uint64_t)i};
        cr_assert_eq(roundtrip(&s).u, 42 + (uint64_t)i);
    }
    struct wsp_frame nk = {.type = WSP_NACK, .u = 5};
    strcpy(nk.s1, "storage I/O failed");
    cr_assert_str_eq(roundtrip(&nk).s1, "storage I/O failed");
    struct wsp_frame q = {.type = WSP_QUERY, .u = 77, .blob = (const uint8_t *)"{}", .blob_len = 2};
    cr_assert_eq(roundtrip(&q).blob_len, 2);
    struct wsp_frame r = {.type = WSP_RESULT, .u = 77, .status = -9};
    g = roundtrip(&r);
    cr_assert_eq(g.status, -9);
    cr_assert_eq(g.blob_len, 0);
}

Test(ws_peer_frame, garbage_is_refused_never_read_out_of_bounds) {
    struct wsp_frame f;
    cr_assert_eq(wsp_decode(NULL, 0, &f), ADO_EINVAL);
    cr_assert_eq(wsp_decode((const uint8_t *)"\x01", 1, &f), ADO_EINVAL);
    cr_assert_eq(wsp_decode((const uint8_t *)"\x02\x04\0\0\0\0\0\0\0\1", 10, &f), ADO_EINVAL);
    cr_assert_eq(wsp_decode((const uint8_t *)"\x01\x63\0\0\0\0\0\0\0\1", 10, &f), ADO_EINVAL);
    cr_assert_eq(wsp_decode((const uint8_t *)"\x01\x04\0\0\0\0\0\0\0\1", 10, &f), 0);
    cr_assert_eq(f.u, 1);
    /* A blob length far past the end. */
    uint8_t q[] = {1, WSP_QUERY, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, '{'};
    cr_assert_eq(wsp_decode(q, sizeof q, &f), ADO_EINVAL);
    /* An empty string and a string holding NUL. */
    uint8_t nk[] = {1, WSP_NACK, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    cr_assert_eq(wsp_decode(nk, sizeof nk, &f), ADO_EINVAL);
    uint8_t nk2[] = {1, WSP_NACK, 0, 0, 0, 0, 0, 0, 0, 1, 2, 'a', 0};
    cr_assert_eq(wsp_decode(nk2, sizeof nk2, &f), ADO_EINVAL);
    /* Random bytes: never crash (ASan checks the reads). */
    uint8_t rnd[512];
    for (int i = 0; i < 20000; i++) {
        size_t n = randombytes_uniform(sizeof rnd);
        randombytes_buf(rnd, n);
        if (n > 1)
            rnd[0] = 1, rnd[1] = (uint8_t)(1 + randombytes_uniform(10));
        wsp_decode(rnd, n, &f);
    }
}

Test(ws_peer_frame, encoder_refuses_empty_or_long_strings) {
    struct wsp_frame f = {.type = WSP_MSG};
    strcpy(f.s1, "a");
    cr_assert_eq(wsp_encoded_len(&f), 0, "empty topic");
    memset(f.s2, 'x', WSP_STR_MAX);
    f.s2[WSP_STR_MAX] = 0;
    cr_assert_gt(wsp_encoded_len(&f), 0);
    struct wsp_frame bad = {.type = 99};
    cr_assert_eq(wsp_encoded_len(&bad), 0);
}

Test(ws_peer_auth, signature_binds_role_nonces_and_both_keys) {
    cr_assert_geq(sodium_init(), 0);
    uint8_t cpk[32], csk[64], spk[32], ssk[64], cn[32], sn[32];
    crypto_sign_keypair(cpk, csk);
    crypto_sign_keypair(spk, ssk);
    randombytes_buf(cn, 32);
    randombytes_buf(sn, 32);
    uint8_t t[WSP_TRANSCRIPT_LEN], sig[64];
    wsp_auth_transcript(t, 'C', cn, sn, cpk, spk);
    crypto_sign_detached(sig, NULL, t, sizeof t, csk);
    cr_assert_eq(crypto_sign_verify_detached(sig, t, sizeof t, cpk), 0);
    /* Reflected as the server's, replayed with a fresh server nonce, or with the keys
     * swapped: each fails. */
    uint8_t t2[WSP_TRANSCRIPT_LEN];
    wsp_auth_transcript(t2, 'S', cn, sn, cpk, spk);
    cr_assert_neq(crypto_sign_verify_detached(sig, t2, sizeof t2, cpk), 0);
    uint8_t sn2[32];
    randombytes_buf(sn2, 32);
    wsp_auth_transcript(t2, 'C', cn, sn2, cpk, spk);
    cr_assert_neq(crypto_sign_verify_detached(sig, t2, sizeof t2, cpk), 0);
    wsp_auth_transcript(t2, 'C', cn, sn, spk, cpk);
    cr_assert_neq(crypto_sign_verify_detached(sig, t2, sizeof t2, cpk), 0);
}

Test(ws_peer_parse, urls_hostports_and_keys) {
    char host[64], path[64];
    int port;
    cr_assert_eq(wsp_parse_url("ws://127.0.0.1:9646", host, sizeof host, &port, path, sizeof path),
                 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 9646);
    cr_assert_str_eq(path, "/");
    cr_assert_eq(wsp_parse_url("ws://[::1]:80/peer", host, sizeof host, &port, path, sizeof path),
                 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_str_eq(path, "/peer");
    cr_assert_eq(wsp_parse_url("http://a:1", host, sizeof host, &port, path, sizeof path),
                 ADO_EINVAL);
    cr_assert_eq(wsp_parse_url("ws://a", host, sizeof host, &port, path, sizeof path), ADO_EINVAL);
    cr_assert_eq(wsp_parse_url("ws://a:0", host, sizeof host, &port, path, sizeof path),
                 ADO_EINVAL);
    cr_assert_eq(wsp_parse_url("ws://a:99999", host, sizeof host, &port, path, sizeof path),
                 ADO_EINVAL);
    cr_assert_eq(wsp_parse_hostport("0.0.0.0:0", host, sizeof host, &port), 0);
    uint8_t k[32];
    cr_assert_eq(wsp_hex32("00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF", k),
                 0);
    cr_assert_eq(k[1], 0x11);
    cr_assert_eq(k[31], 0xff);
    cr_assert_eq(wsp_hex32("0011", k), ADO_EINVAL);
    cr_assert_eq(wsp_hex32("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", k),
                 ADO_EINVAL);
}

Test(ws_peer_frame, ackr_round_trips_and_refuses_empty_reversed_or_huge_ranges) {
    struct wsp_frame f = {.type = WSP_ACKR, .u = 10, .last = 12};
    struct wsp_frame g = roundtrip(&f);
    cr_assert_eq(g.u, 10);
    cr_assert_eq(g.last, 12);
    /* first == last is an ACK, last < first is nonsense, a span past WSP_ACKR_MAX is refused:
     * the encoder makes none of them, the decoder accepts none of them. */
    uint64_t bad[][2] = {{7, 7}, {9, 8}, {1, 1 + WSP_ACKR_MAX}, {0, UINT64_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wsp_frame b = {.type = WSP_ACKR, .u = bad[i][0], .last = bad[i][1]};
        cr_assert_eq(wsp_encoded_len(&b), 0, "range %zu", i);
        uint8_t buf[18] = {1, WSP_ACKR};
        for (int k = 0; k < 8; k++) {
            buf[2 + k] = (uint8_t)(bad[i][0] >> (56 - 8 * k));
            buf[10 + k] = (uint8_t)(bad[i][1] >> (56 - 8 * k));
        }
        cr_assert_eq(wsp_decode(buf, sizeof buf, &g), ADO_EINVAL, "range %zu", i);
    }
    struct wsp_frame ok = {.type = WSP_ACKR, .u = 1, .last = WSP_ACKR_MAX};
    cr_assert_eq(roundtrip(&ok).last, WSP_ACKR_MAX);
}

/* The acks of a turn become ranges that cover exactly the seqs given (the durably applied
 * ones): a seq missing from the list (not applied yet, or refused) is never inside a range. */
Test(ws_peer_frame, ack_runs_cover_exactly_the_applied_seqs) {
    uint64_t s[] = {5, 6, 7, 9, 10, 3, 4, 4, UINT64_MAX - 1, UINT64_MAX, 1};
    size_t n = sizeof s / sizeof s[0];
    uint64_t want[][2] = {{5, 7}, {9, 10}, {3, 4}, {4, 4}, {UINT64_MAX - 1, UINT64_MAX}, {1, 1}};
    size_t i = 0, r = 0;
    while (i < n) {
        uint64_t first, last;
        size_t k = wsp_ack_run(s + i, n - i, &first, &last);
        cr_assert_gt(k, 0);
        cr_assert_lt(r, sizeof want / sizeof want[0]);
        cr_assert_eq(first, want[r][0], "run %zu", r);
        cr_assert_eq(last, want[r][1], "run %zu", r);
        cr_assert_eq(last - first + 1, k, "run %zu covers only listed seqs", r);
        i += k, r++;
    }
    cr_assert_eq(r, sizeof want / sizeof want[0]);
    cr_assert_eq(wsp_ack_run(s, 0, &(uint64_t){0}, &(uint64_t){0}), 0);
    /* A long run is cut at WSP_ACKR_MAX. */
    size_t big = WSP_ACKR_MAX + 10;
    uint64_t *b = malloc(big * sizeof *b);
    cr_assert_not_null(b);
    for (size_t j = 0; j < big; j++)
        b[j] = 100 + j;
    uint64_t first, last;
    cr_assert_eq(wsp_ack_run(b, big, &first, &last), WSP_ACKR_MAX);
    cr_assert_eq(last - first + 1, WSP_ACKR_MAX);
    cr_assert_eq(wsp_ack_run(b + WSP_ACKR_MAX, 10, &first, &last), 10);
    free(b);
}

/* The frames link.c writes itself (several per socket write) are the RFC 6455 ones. */
Test(ws_peer_frame, websocket_framing_matches_rfc6455) {
    uint8_t out[70000];
    /* RFC 6455 5.7: "Hello", masked with 37 fa 21 3d (there as text, 0x81; ours are binary). */
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    const uint8_t hello_masked[] = {0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    cr_assert_eq(wsp_ws_wrap(out, (const uint8_t *)"Hello", 5, mask), sizeof hello_masked);
    cr_assert_eq(memcmp(out, hello_masked, sizeof hello_masked), 0);
    const uint8_t hello[] = {0x82, 0x05, 'H', 'e', 'l', 'l', 'o'};
    cr_assert_eq(wsp_ws_wrap(out, (const uint8_t *)"Hello", 5, NULL), sizeof hello);
    cr_assert_eq(memcmp(out, hello, sizeof hello), 0);
    /* 256 bytes: 16-bit length; 65536 bytes: 64-bit length (RFC 6455 5.7). */
    static uint8_t big[65536];
    memset(big, 0xab, sizeof big);
    cr_assert_eq(wsp_ws_wrap(out, big, 256, NULL), 4 + 256);
    cr_assert_eq(memcmp(out, (const uint8_t[]){0x82, 0x7e, 0x01, 0x00}, 4), 0);
    cr_assert_eq(wsp_ws_wrap(out, big, 65536, NULL), 10 + 65536);
    cr_assert_eq(memcmp(out, (const uint8_t[]){0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, 10), 0);
    cr_assert_eq(wsp_ws_wrap(out, big, 125, mask), 2 + 4 + 125);
    cr_assert_eq(out[1], 0x80 | 125);
    cr_assert_eq(out[6], 0xab ^ 0x37);
    cr_assert_eq(out[7], 0xab ^ 0xfa);
}
