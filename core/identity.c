/* The node's Ed25519 identity: a seed in DATA_DIR/identity.key, 0600, hex. */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ado/errors.h"

int ado_identity_load(struct ado_identity *id, const char *dir, char *err, size_t errlen) {
    memset(id, 0, sizeof *id);
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return ADO_EIO;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/identity.key", dir);
    uint8_t seed[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat sb;
        char hex[80] = {0};
        ssize_t n = -1;
        if (fstat(fd, &sb) == 0 && (sb.st_mode & 077)) {
            close(fd);
            snprintf(err, errlen, "%s is readable by others (mode %03o): chmod 600 it", path,
                     (unsigned)(sb.st_mode & 0777));
            return ADO_EPERM;
        }
        n = read(fd, hex, sizeof hex - 1);
        close(fd);
        size_t got = 0;
        if (n < 64 ||
            sodium_hex2bin(seed, sizeof seed, hex, (size_t)n, " \n\r\t", &got, NULL) != 0 ||
            got != sizeof seed) {
            snprintf(err, errlen, "%s: not a 32-byte hex seed", path);
            return ADO_EINVAL;
        }
    } else if (errno == ENOENT) {
        randombytes_buf(seed, sizeof seed);
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, seed, sizeof seed);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return ADO_EIO;
        }
        hex[64] = '\n';
        int ok = write(fd, hex, 65) == 65 && fsync(fd) == 0;
        close(fd);
        sodium_memzero(hex, sizeof hex);
        if (!ok) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            unlink(path);
            return ADO_EIO;
        }
    } else {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return ADO_EIO;
    }
    crypto_sign_seed_keypair(id->pk, id->sk, seed);
    sodium_memzero(seed, sizeof seed);
    id->loaded = 1;
    return 0;
}

int ado_identity_sign(const struct ado_identity *id, const void *msg, size_t len, uint8_t sig[64]) {
    if (!id->loaded)
        return ADO_ESTATE;
    crypto_sign_detached(sig, NULL, msg, len, id->sk);
    return 0;
}

void ado_identity_wipe(struct ado_identity *id) {
    sodium_memzero(id, sizeof *id);
}
