/* Kernel-private: the node's Ed25519 identity (libsodium), kept in DATA_DIR/identity.key
 * (0600; 32-byte seed as hex). Created on first start. */
#ifndef ADO_CORE_IDENTITY_H
#define ADO_CORE_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

struct ado_identity {
    uint8_t pk[32];
    uint8_t sk[64];
    int loaded;
};

/* Load the key from `dir`, creating it if absent. A key file that is readable by others
 * or malformed is an error (message in err). */
int ado_identity_load(struct ado_identity *id, const char *dir, char *err, size_t errlen);
int ado_identity_sign(const struct ado_identity *id, const void *msg, size_t len, uint8_t sig[64]);
/* Wipe the secret. */
void ado_identity_wipe(struct ado_identity *id);

#endif
