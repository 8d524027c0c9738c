/* Test helper: a real anvil process on a random loopback port, a blocking JSON-RPC client
 * for the test's own checks, and contract deployment with contracts/scripts/deploy.mjs. */
#ifndef EVM_L2_TEST_ANVIL_H
#define EVM_L2_TEST_ANVIL_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

struct anvil {
    pid_t pid;
    int port;
    char url[64];
    char args[512]; /* extra arguments, kept for a restart */
};

/* Anvil's well-known dev accounts (mnemonic "test test ... junk"). */
#define ANVIL_KEY0  "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define ANVIL_ADDR0 "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
#define ANVIL_KEY1  "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
#define ANVIL_ADDR1 "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

/* Path of the anvil binary, running `npm ci` in contracts/ first if it is missing. NULL
 * (after printing why) if it cannot be had. */
const char *anvil_bin(void);
/* Start anvil with `extra` arguments (space separated) on a free port (or a->port if set and
 * `keep_port`). Returns 0 once it answers, -1 on failure. */
int anvil_start(struct anvil *a, const char *extra, int keep_port);
/* SIGTERM (lets --state dump) then SIGKILL after 5 s; waits for the process. */
void anvil_stop(struct anvil *a);
/* Blocking call; returns the result (new reference) or NULL (error printed to stderr). If
 * err is not NULL it receives the error object (new reference) when there is one. */
json_t *anvil_rpc(const struct anvil *a, const char *method, json_t *params, json_t **err);
/* Helpers over anvil_rpc. */
uint64_t anvil_u64(const struct anvil *a, const char *method, json_t *params);
void anvil_mine(const struct anvil *a, int blocks);
/* Deploy the contracts with deploy.mjs (key = deployer/oracle). Returns the JSON output
 * (new reference) or NULL. */
json_t *anvil_deploy(const struct anvil *a, const char *key);

#endif
