#include "ado_eth/common.h"

#include "ado/errors.h"

void ado_eth_hex_encode(const uint8_t *in, size_t len, char *out) {
    static const char dig[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = dig[in[i] >> 4];
        out[2 * i + 1] = dig[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hv(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ado_eth_hex_decode(const char *text, size_t text_len, uint8_t *out, size_t cap,
                       size_t *out_len) {
    if (text_len >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
        text += 2, text_len -= 2;
    if (text_len % 2)
        return ADO_EINVAL;
    size_t n = text_len / 2;
    for (size_t i = 0; i < text_len; i++)
        if (hv(text[i]) < 0)
            return ADO_EINVAL;
    if (n > cap)
        return ADO_ELIMIT;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(hv(text[2 * i]) << 4 | hv(text[2 * i + 1]));
    *out_len = n;
    return 0;
}
