/* adoctl merkle: OpenZeppelin StandardMerkleTree tools (lib/eth). */
#ifndef ADOCTL_MERKLE_CMD_H
#define ADOCTL_MERKLE_CMD_H

/* Runs `adoctl merkle ...`; argv[0] is "merkle". Subcommands:
 *   of --encoding TYPE,TYPE,... FILE   FILE (or "-" for stdin) holds a JSON array of leaf
 *                                      values as StandardMerkleTree.of takes them; prints the
 *                                      tree's standard-v1 dump (JSON.stringify form) to stdout.
 * Returns the process exit code: 0 on success, 2 on bad usage or bad input (message on
 * stderr), 1 on an I/O or memory failure. */
int adoctl_merkle_main(int argc, char **argv);

#endif
