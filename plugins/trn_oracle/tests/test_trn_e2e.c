/* End to end: a node (trn_oracle + evm_l2 + the bridge) against anvil and the contracts.
 *
 * Planned steps (issue 6 item 5): deploy with contracts/scripts/deploy.mjs (challenge window
 * 5 s, the node's evm_l2 key as oracle); register content, record views, boosts and burns over
 * RPC; trn_closeEpoch; wait for evm_l2 to deliver submitRoot + every publishChunk and for
 * trn_epoch to report the L2 tx; evm_increaseTime past the window; isFinal(epoch) on L2; fetch
 * trn_proof for a creator; claim() on L2 and see the TRN balance arrive; a second claim reverts
 * AlreadyClaimed, a forged amount reverts InvalidProof.
 *
 * NOT RUN YET: written against evm_l2 and the bridge core, which landed during this work
 * (evm_l2's own commit says "untested yet"); the steps above are not implemented here yet, so
 * the test skips and says so instead of passing. */
#include <criterion/criterion.h>

#include <unistd.h>

Test(trn_e2e, an_account_earns_on_l3_and_claims_on_l2_with_a_proof_from_the_node) {
    const char *so = ADO_BUILD_DIR "/plugins/evm_l2.so";
    const char *anvil =
        ADO_SOURCE_DIR "/contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";
    if (access(so, R_OK) != 0)
        cr_skip_test("needs plugins/evm_l2 built (%s)", so);
    if (access(anvil, X_OK) != 0)
        cr_skip_test("needs anvil (run contracts/test.sh once)");
    cr_skip_test("end-to-end on anvil not implemented yet: trn_oracle -> bridge -> evm_l2 -> "
                 "TRNSettlement was not exercised (see the comment at the top of this file)");
}
