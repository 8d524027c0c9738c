/* adoctl merkle of, run in-process: output compared with @openzeppelin/merkle-tree's dump. */
#include "vec.h"

#include "merkle_cmd.h"

#include <unistd.h>

/* Runs adoctl_merkle_main with stdout redirected to a temporary file; returns the exit code
 * and the captured output in *out (malloc'd). */
static int run_cmd(int argc, char **argv, char **out) {
    char path[] = "/tmp/ado_merkle_cmd_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = adoctl_merkle_main(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    *out = calloc(1, (size_t)size + 1);
    cr_assert(read(fd, *out, (size_t)size) == size);
    close(fd);
    unlink(path);
    return rc;
}

static char *write_temp(const char *text) {
    char *path = strdup("/tmp/ado_merkle_in_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void check_file_vector(const char *name, json_t *input) {
    json_t *j = vec_load(0, name);
    json_t *enc = json_object_get(j, "leafEncoding");
    char encs[256] = "";
    for (size_t i = 0; i < json_array_size(enc); i++) {
        if (i)
            strcat(encs, ",");
        strcat(encs, json_string_value(json_array_get(enc, i)));
    }
    if (!input)
        input = json_object_get(j, "input");
    char *text = json_dumps(input, JSON_INDENT(2));
    char *path = write_temp(text);
    char *argv[] = {"merkle", "of", "--encoding", encs, path, NULL};
    char *out = NULL;
    cr_assert_eq(run_cmd(5, argv, &out), 0);
    size_t dl = strlen(json_string_value(json_object_get(j, "dump")));
    cr_assert_eq(strlen(out), dl + 1);
    cr_assert_eq(out[dl], '\n');
    out[dl] = '\0';
    cr_assert_str_eq(out, json_string_value(json_object_get(j, "dump")), "%s", name);
    free(out);
    unlink(path);
    free(path);
    free(text);
    json_decref(j);
}

Test(merkle_cmd, of_prints_the_openzeppelin_dump_for_address_uint256) {
    check_file_vector("merkle-cmd-address-uint256.json", NULL);
}

Test(merkle_cmd, of_prints_the_openzeppelin_dump_for_mixed_types) {
    json_t *j = vec_load(0, "merkle-mixed-n50.json");
    json_t *in = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "values"), i, v)
        json_array_append(in, json_object_get(v, "value"));
    check_file_vector("merkle-mixed-n50.json", in);
    json_decref(in);
    json_decref(j);
}

Test(merkle_cmd, bad_input_exits_with_2) {
    char *out = NULL;
    char *p1 = write_temp("[[\"0x00000000000000000000000000000000000000zz\",\"1\"]]");
    char *p2 = write_temp("not json");
    char *a1[] = {"merkle", "of", "--encoding", "address,uint256", p1, NULL};
    char *a2[] = {"merkle", "of", "--encoding", "address,uint256", p2, NULL};
    char *a3[] = {"merkle", "of", "--encoding", "address,uint999", p2, NULL};
    char *a4[] = {"merkle", "of", p2, NULL};
    char *a5[] = {"merkle", "of", "--encoding", "address,uint256", "/nonexistent/x.json", NULL};
    char *a6[] = {"merkle", "frobnicate", NULL};
    char **cases[] = {a1, a2, a3, a4, a5, a6};
    int argcs[] = {5, 5, 5, 3, 5, 2};
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(run_cmd(argcs[i], cases[i], &out), 2, "case %d", i);
        cr_assert_str_eq(out, "", "nothing on stdout for case %d", i);
        free(out);
    }
    unlink(p1);
    unlink(p2);
    free(p1);
    free(p2);
}
