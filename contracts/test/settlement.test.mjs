// Settlement lifecycle on a real anvil: deploy (through scripts/deploy.mjs), submit,
// veto + resubmit, finality after the challenge window, claims with
// @openzeppelin/merkle-tree proofs, refusals, pause, governance changes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ethers } from 'ethers';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { startAnvil, increaseTime } from '../lib/anvil.mjs';
import { ensureBuilt, errorInterface, expectRevert, mined, eventsOf, EMPTY_DATA_HASH } from '../lib/testkit.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WINDOW = 3600; // challenge window in seconds
const TRN = (n) => ethers.parseUnits(String(n), 18);
const State = { None: 0n, AwaitingData: 1n, Challengeable: 2n, Final: 3n, Vetoed: 4n };

let anvil, A, errs, dep;
let deployer, oracle, gov, guardian, alice, bob, carol, mallory;
let settlement, controller, token;
let tree; // the tree finally settled for epoch 0
let values;

before(async () => {
  A = ensureBuilt();
  errs = errorInterface(A);
  anvil = await startAnvil();
  [deployer, oracle, gov, guardian, alice, bob, carol, mallory] = anvil.wallets;
});

after(async () => {
  await anvil?.stop();
});

test('deploy script deploys and wires the contract set', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [
    path.join(root, 'scripts', 'deploy.mjs'),
    '--rpc', anvil.url, '--key', deployer.privateKey,
    '--oracle', oracle.address, '--governance', gov.address, '--guardian', guardian.address,
    '--challenge-window', String(WINDOW), '--epoch-length', '86400', '--epoch-cap', '1000000',
  ], { timeout: 60000 });
  dep = JSON.parse(stdout);
  for (const k of ['token', 'controller', 'settlement']) {
    assert.ok(ethers.isAddress(dep[k]), `${k} address`);
    assert.notEqual(await anvil.provider.getCode(dep[k]), '0x', `${k} has code`);
  }
  settlement = new ethers.Contract(dep.settlement, A.TRNSettlement.abi, anvil.provider);
  controller = new ethers.Contract(dep.controller, A.MintThrottleController.abi, anvil.provider);
  token = new ethers.Contract(dep.token, A.TRNToken.abi, anvil.provider);

  assert.equal(await token.symbol(), 'TRN');
  assert.equal(await token.controller(), dep.controller);
  assert.equal(await controller.token(), dep.token);
  assert.equal(await settlement.oracle(), oracle.address);
  assert.equal(await settlement.governance(), gov.address);
  assert.equal(await settlement.guardian(), guardian.address);
  assert.equal(await settlement.challengeWindow(), BigInt(WINDOW));
  assert.equal(await settlement.nextEpoch(), 0n);
  assert.equal(await controller.epochCap(), TRN(1000000));
  assert.ok(await controller.hasRole(await controller.MINTER_ROLE(), dep.settlement));
  const ADMIN = await controller.DEFAULT_ADMIN_ROLE();
  assert.ok(await controller.hasRole(ADMIN, gov.address), 'governance is admin');
  assert.ok(!(await controller.hasRole(ADMIN, deployer.address)), 'deployer renounced admin');
  assert.ok(await controller.hasRole(await controller.GUARDIAN_ROLE(), guardian.address));
});

function makeTree(entries) {
  const v = entries.map(([w, amt]) => [w.address, amt.toString()]);
  const t = StandardMerkleTree.of(v, ['address', 'uint256']);
  const total = entries.reduce((s, [, amt]) => s + amt, 0n);
  return { t, v, total };
}
const proofFor = (t, addr) => {
  for (const [i, v] of t.entries()) if (v[0] === addr) return { proof: t.getProof(i), amount: BigInt(v[1]) };
  throw new Error('not in tree');
};

test('leaf format matches StandardMerkleTree', async () => {
  const { t } = makeTree([[alice, TRN(5)], [bob, TRN(7)]]);
  assert.equal(await settlement.leafHash(alice.address, TRN(5)), t.leafHash([alice.address, TRN(5).toString()]));
});

test('submitRoot is refused from a key other than the oracle', async () => {
  const { t, total } = makeTree([[alice, TRN(1)]]);
  await expectRevert(errs, settlement.connect(mallory).submitRoot(0, t.root, total, EMPTY_DATA_HASH, 0),
    'NotOracle', [mallory.address]);
  await expectRevert(errs, settlement.connect(gov).submitRoot(0, t.root, total, EMPTY_DATA_HASH, 0), 'NotOracle');
});

test('epochs must be submitted in order, once each', async () => {
  const { t, total } = makeTree([[alice, TRN(1)]]);
  await expectRevert(errs, settlement.connect(oracle).submitRoot(1, t.root, total, EMPTY_DATA_HASH, 0),
    'EpochOutOfOrder', [0n, 1n]);
  await expectRevert(errs, settlement.connect(oracle).submitRoot(0, ethers.ZeroHash, total, EMPTY_DATA_HASH, 0),
    'ZeroRoot');
});

test('submit, veto within the window, resubmit', async () => {
  // First submission: a wrong tree (bob is owed far too much).
  const bad = makeTree([[alice, TRN(100)], [bob, TRN(900000)]]);
  const r1 = await mined(settlement.connect(oracle).submitRoot(0, bad.t.root, bad.total, EMPTY_DATA_HASH, 0));
  const [ev] = eventsOf(settlement, r1, 'RootSubmitted');
  assert.equal(ev.args.epoch, 0n);
  assert.equal(ev.args.attempt, 1n);
  assert.equal(ev.args.root, bad.t.root);
  assert.equal(ev.args.total, bad.total);
  assert.equal(await settlement.nextEpoch(), 1n);
  assert.equal(await settlement.epochState(0), State.Challengeable);
  assert.equal(await settlement.isFinal(0), false);

  // Once each: a second submission of a pending epoch is refused.
  await expectRevert(errs, settlement.connect(oracle).submitRoot(0, bad.t.root, bad.total, EMPTY_DATA_HASH, 0),
    'EpochOutOfOrder', [1n, 0n]);

  // Claims before finality are refused even with a valid proof.
  const { proof, amount } = proofFor(bad.t, bob.address);
  await expectRevert(errs, settlement.connect(bob).claim(0, bob.address, amount, proof), 'EpochNotFinal', [0n]);

  // Only governance may veto.
  await expectRevert(errs, settlement.connect(oracle).veto(0), 'NotGovernance', [oracle.address]);
  await expectRevert(errs, settlement.connect(mallory).veto(0), 'NotGovernance');

  await increaseTime(anvil.rpc, WINDOW / 2); // still inside the window
  const r2 = await mined(settlement.connect(gov).veto(0));
  const [v] = eventsOf(settlement, r2, 'RootVetoed');
  assert.equal(v.args.epoch, 0n);
  assert.equal(v.args.by, gov.address);
  assert.equal(await settlement.epochState(0), State.Vetoed);
  await expectRevert(errs, settlement.connect(gov).veto(0), 'EpochNotPending', [0n]);

  // A vetoed root never pays, even after the window.
  await increaseTime(anvil.rpc, WINDOW * 2);
  await expectRevert(errs, settlement.connect(bob).claim(0, bob.address, amount, proof), 'EpochNotFinal');

  // The oracle resubmits the corrected tree for the same epoch.
  const good = makeTree([[alice, TRN(100)], [bob, TRN(250)], [carol, TRN(42)]]);
  const r3 = await mined(settlement.connect(oracle).submitRoot(0, good.t.root, good.total, EMPTY_DATA_HASH, 0));
  const [ev3] = eventsOf(settlement, r3, 'RootSubmitted');
  assert.equal(ev3.args.attempt, 2n);
  assert.equal(await settlement.epochState(0), State.Challengeable);
  assert.equal(await settlement.nextEpoch(), 1n, 'resubmission does not advance the epoch counter');
  tree = good.t;
  values = good.v;
});

test('the root becomes final only after the challenge window', async () => {
  const e = await settlement.getEpoch(0);
  const finalAt = await settlement.finalAt(0);
  assert.equal(finalAt, e.readyAt + BigInt(WINDOW));
  const { proof, amount } = proofFor(tree, alice.address);
  // Just before the end of the window.
  const now = BigInt((await anvil.provider.getBlock('latest')).timestamp);
  await increaseTime(anvil.rpc, Number(finalAt - now) - 5);
  assert.equal(await settlement.isFinal(0), false);
  await expectRevert(errs, settlement.connect(alice).claim(0, alice.address, amount, proof), 'EpochNotFinal');
  await increaseTime(anvil.rpc, 10);
  assert.equal(await settlement.isFinal(0), true);
  assert.equal(await settlement.epochState(0), State.Final);
  // Too late to veto.
  await expectRevert(errs, settlement.connect(gov).veto(0), 'EpochAlreadyFinal', [0n]);
});

test('claim with a StandardMerkleTree proof mints TRN to the account', async () => {
  const { proof, amount } = proofFor(tree, alice.address);
  assert.equal(await token.balanceOf(alice.address), 0n);
  // Anyone may relay the claim; the TRN goes to the account.
  const r = await mined(settlement.connect(carol).claim(0, alice.address, amount, proof));
  assert.equal(await token.balanceOf(alice.address), TRN(100));
  assert.equal(await token.balanceOf(carol.address), 0n);
  const [c] = eventsOf(settlement, r, 'Claimed');
  assert.equal(c.args.account, alice.address);
  assert.equal(c.args.amount, TRN(100));
  assert.equal(c.args.caller, carol.address);
  assert.ok(await settlement.claimed(0, alice.address));
  assert.equal((await settlement.getEpoch(0)).claimed, TRN(100));
  assert.equal(await token.totalSupply(), TRN(100));
});

test('double claim is refused', async () => {
  const { proof, amount } = proofFor(tree, alice.address);
  await expectRevert(errs, settlement.connect(alice).claim(0, alice.address, amount, proof),
    'AlreadyClaimed', [0n, alice.address]);
  assert.equal(await token.balanceOf(alice.address), TRN(100));
});

test('wrong or forged proofs are refused', async () => {
  const b = proofFor(tree, bob.address);
  const c = proofFor(tree, carol.address);
  // Right proof, inflated amount.
  await expectRevert(errs, settlement.connect(bob).claim(0, bob.address, b.amount + 1n, b.proof), 'InvalidProof');
  // Someone else's proof.
  await expectRevert(errs, settlement.connect(bob).claim(0, bob.address, b.amount, c.proof), 'InvalidProof');
  // Bob's proof used to pay mallory.
  await expectRevert(errs, settlement.connect(mallory).claim(0, mallory.address, b.amount, b.proof), 'InvalidProof');
  // Proof from a forged tree that includes mallory.
  const forged = makeTree([[mallory, TRN(1000)], [bob, TRN(250)]]);
  const f = proofFor(forged.t, mallory.address);
  await expectRevert(errs, settlement.connect(mallory).claim(0, mallory.address, f.amount, f.proof), 'InvalidProof');
  // Empty proof, and a tampered sibling.
  await expectRevert(errs, settlement.connect(bob).claim(0, bob.address, b.amount, []), 'InvalidProof');
  const tampered = [...b.proof];
  tampered[0] = ethers.toBeHex(BigInt(tampered[0]) ^ 1n, 32);
  await expectRevert(errs, settlement.connect(bob).claim(0, bob.address, b.amount, tampered), 'InvalidProof');
  // Claims on an epoch that was never submitted.
  await expectRevert(errs, settlement.connect(bob).claim(7, bob.address, b.amount, b.proof), 'EpochNotFinal');
  assert.equal(await token.balanceOf(mallory.address), 0n);
  assert.equal(await token.balanceOf(bob.address), 0n);
});

test('guardian pause blocks claims; only governance unpauses', async () => {
  const b = proofFor(tree, bob.address);
  await expectRevert(errs, settlement.connect(mallory).pause(), 'NotGuardian', [mallory.address]);
  await mined(settlement.connect(guardian).pause());
  assert.equal(await settlement.paused(), true);
  await expectRevert(errs, settlement.connect(bob).claim(0, bob.address, b.amount, b.proof), 'EnforcedPause');
  await expectRevert(errs, settlement.connect(guardian).unpause(), 'NotGovernance');
  await mined(settlement.connect(gov).unpause());
  await mined(settlement.connect(bob).claim(0, bob.address, b.amount, b.proof));
  assert.equal(await token.balanceOf(bob.address), TRN(250));
});

test('pausing the mint controller also blocks claims', async () => {
  const c = proofFor(tree, carol.address);
  await mined(controller.connect(guardian).pause());
  await expectRevert(errs, settlement.connect(carol).claim(0, carol.address, c.amount, c.proof), 'EnforcedPause');
  assert.equal(await settlement.claimed(0, carol.address), false, 'failed claim leaves no mark');
  await mined(controller.connect(gov).unpause());
  await mined(settlement.connect(carol).claim(0, carol.address, c.amount, c.proof));
  assert.equal(await token.balanceOf(carol.address), TRN(42));
  assert.equal((await settlement.getEpoch(0)).claimed, TRN(392));
  assert.equal(await token.totalSupply(), TRN(392));
});

test('governance can rotate the oracle key', async () => {
  const next = makeTree([[alice, TRN(1)]]);
  await expectRevert(errs, settlement.connect(oracle).setOracle(mallory.address), 'NotGovernance');
  await mined(settlement.connect(gov).setOracle(carol.address));
  await expectRevert(errs, settlement.connect(oracle).submitRoot(1, next.t.root, next.total, EMPTY_DATA_HASH, 0),
    'NotOracle', [oracle.address]);
  await mined(settlement.connect(carol).submitRoot(1, next.t.root, next.total, EMPTY_DATA_HASH, 0));
  assert.equal(await settlement.nextEpoch(), 2n);
});
