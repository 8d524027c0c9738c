#include "ado_eth/address.h"

#include "ado/errors.h"
#include "ado_eth/common.h"
#include "ado_eth/keccak.h"

#include <string.h>

void ado_eth_address_lower(const uint8_t addr[20], char out[ADO_ETH_ADDRESS_TEXTLEN]) {
    out[0] = '0';
    out[1] = 'x';
    ado_eth_hex_encode(addr, 20, out + 2);
}

void ado_eth_address_checksum(const uint8_t addr[20], char out[ADO_ETH_ADDRESS_TEXTLEN]) {
    uint8_t h[32];
    ado_eth_address_lower(addr, out);
    ado_keccak256(out + 2, 40, h);
    for (int i = 0; i < 40; i++) {
        char c = out[2 + i];
        int nib = (i % 2) ? (h[i / 2] & 15) : (h[i / 2] >> 4);
        if (c >= 'a' && c <= 'f' && nib >= 8)
            out[2 + i] = (char)(c - 'a' + 'A');
    }
}

int ado_eth_address_parse(const char *text, size_t len, uint8_t out[20]) {
    size_t n = 0;
    uint8_t tmp[20];
    if (!text)
        return ADO_EINVAL;
    if (len >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
        text += 2, len -= 2;
    if (len != 40 || ado_eth_hex_decode(text, 40, tmp, 20, &n) != 0 || n != 20)
        return ADO_EINVAL;
    int lower = 0, upper = 0;
    for (int i = 0; i < 40; i++) {
        lower |= (text[i] >= 'a' && text[i] <= 'f');
        upper |= (text[i] >= 'A' && text[i] <= 'F');
    }
    if (lower && upper) {
        char cs[ADO_ETH_ADDRESS_TEXTLEN];
        ado_eth_address_checksum(tmp, cs);
        if (memcmp(cs + 2, text, 40) != 0)
            return ADO_EINVAL;
    }
    memcpy(out, tmp, 20);
    return 0;
}

int ado_eth_address_is_checksummed(const char *text) {
    uint8_t a[20];
    size_t n = 0;
    char cs[ADO_ETH_ADDRESS_TEXTLEN];
    if (!text || strlen(text) != 42 || text[0] != '0' || text[1] != 'x')
        return 0;
    if (ado_eth_hex_decode(text + 2, 40, a, 20, &n) != 0)
        return 0;
    ado_eth_address_checksum(a, cs);
    return strcmp(cs, text) == 0;
}

int ado_eth_address_from_pubkey(const uint8_t *pub, size_t len, uint8_t out[20]) {
    uint8_t h[32];
    if (!pub)
        return ADO_EINVAL;
    if (len == 65) {
        if (pub[0] != 0x04)
            return ADO_EINVAL;
        pub++, len--;
    }
    if (len != 64)
        return ADO_EINVAL;
    ado_keccak256(pub, 64, h);
    memcpy(out, h + 12, 20);
    return 0;
}
