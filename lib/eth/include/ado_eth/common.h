/* adoeth: shared definitions (error detail, hex helpers). */
#ifndef ADO_ETH_COMMON_H
#define ADO_ETH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Optional error detail filled by functions that parse text or JSON. Pass NULL to skip it.
 * msg is always NUL-terminated after a failing call that received a non-NULL pointer. */
struct ado_eth_error {
    char msg[256];
};

/* Writes len bytes as lowercase hex (no prefix) into out, which must hold 2*len+1 chars;
 * NUL-terminates. */
void ado_eth_hex_encode(const uint8_t *in, size_t len, char *out);

/* Parses hex text (optional "0x" prefix, even number of digits, either case) of length
 * text_len into out (capacity cap bytes); stores the byte count in *out_len.
 * Returns 0, ADO_EINVAL on a bad digit or odd length, ADO_ELIMIT if cap is too small. */
int ado_eth_hex_decode(const char *text, size_t text_len, uint8_t *out, size_t cap,
                       size_t *out_len);

#endif
