/* adoctl merkle of: build a StandardMerkleTree from a JSON file and print its dump. */
#include "merkle_cmd.h"

#include "ado/errors.h"
#include "ado_eth/merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TYPES 64

static void usage(FILE *f) {
    fputs("usage: adoctl merkle of --encoding TYPE,TYPE,... FILE\n"
          "  FILE (or - for stdin): JSON array of values, e.g. [[\"0xabc...\",\"123\"], ...]\n"
          "  prints the OpenZeppelin StandardMerkleTree dump (format standard-v1) as JSON\n",
          f);
}

/* Reads a whole file (or stdin for "-") into a NUL-terminated malloc'd buffer. */
static char *read_all(const char *path) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - 1 - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    if (buf)
        buf[len] = '\0';
    if (f != stdin)
        fclose(f);
    return buf;
}

/* Splits "a,(b,c)[],d" at top-level commas, in place. Returns the count, or -1 if bad. */
static int split_types(char *s, char **out, int max) {
    int n = 0, depth = 0;
    char *start = s;
    for (char *p = s;; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')')
            depth--;
        if ((*p == ',' && depth == 0) || *p == '\0') {
            int end = *p == '\0';
            *p = '\0';
            while (*start == ' ')
                start++;
            if (*start == '\0' || n == max || depth < 0)
                return -1;
            out[n++] = start;
            start = p + 1;
            if (end)
                break;
        }
    }
    return depth == 0 ? n : -1;
}

static int merkle_of(int argc, char **argv) {
    const char *encoding = NULL, *file = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--encoding") == 0 && i + 1 < argc)
            encoding = argv[++i];
        else if (strncmp(argv[i], "--encoding=", 11) == 0)
            encoding = argv[i] + 11;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "adoctl merkle of: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!file)
            file = argv[i];
        else {
            fprintf(stderr, "adoctl merkle of: more than one FILE\n");
            return 2;
        }
    }
    if (!encoding || !file) {
        fprintf(stderr, "adoctl merkle of: %s is required\n", !encoding ? "--encoding" : "FILE");
        usage(stderr);
        return 2;
    }
    char *enc = strdup(encoding);
    char *types[MAX_TYPES];
    if (!enc)
        return 1;
    int nenc = split_types(enc, types, MAX_TYPES);
    if (nenc <= 0) {
        fprintf(stderr, "adoctl merkle of: bad --encoding '%s'\n", encoding);
        free(enc);
        return 2;
    }
    char *text = read_all(file);
    if (!text) {
        fprintf(stderr, "adoctl merkle of: cannot read '%s'\n", file);
        free(enc);
        return 2;
    }
    struct ado_merkle *m = NULL;
    struct ado_eth_error err = {{0}};
    int rc = ado_merkle_of_json((const char *const *)types, (size_t)nenc, text, 2, &m, &err);
    free(text);
    free(enc);
    if (rc) {
        fprintf(stderr, "adoctl merkle of: %s: %s\n", file,
                rc == ADO_ENOMEM ? "out of memory" : err.msg);
        return rc == ADO_EINVAL ? 2 : 1;
    }
    rc = ado_merkle_dump_file(m, stdout);
    ado_merkle_free(m);
    if (rc || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "adoctl merkle of: write failed\n");
        return 1;
    }
    return 0;
}

int adoctl_merkle_main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "of") == 0)
        return merkle_of(argc, argv);
    fprintf(stderr, "adoctl merkle: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
