// MintThrottleController + TRNToken on a real anvil: per-epoch cap, minter role,
// guardian pause, governance unpause and cap changes, and claims bounded by the cap.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ethers } from 'ethers';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { startAnvil, increaseTime } from '../lib/anvil.mjs';
import { ensureBuilt, errorInterface, expectRevert, mined, eventsOf, EMPTY_DATA_HASH } from '../lib/testkit.mjs';
import { deployAll } from '../scripts/deploy.mjs';

const EPOCH = 3600; // throttle epoch length, seconds
const TRN = (n) => ethers.parseUnits(String(n), 18);

let anvil, A, errs;
let deployer, oracle, gov, guardian, minter, alice, bob;
let controller, token, settlement;

before(async () => {
  A = ensureBuilt();
  errs = errorInterface(A);
  anvil = await startAnvil();
  [deployer, oracle, gov, guardian, minter, alice, bob] = anvil.wallets;
  const d = await deployAll(deployer, {
    oracle: oracle.address, governance: gov.address, guardian: guardian.address,
    challengeWindow: 0, epochLength: EPOCH, epochCap: TRN(1000),
  });
  controller = new ethers.Contract(d.controller, A.MintThrottleController.abi, anvil.provider);
  token = new ethers.Contract(d.token, A.TRNToken.abi, anvil.provider);
  settlement = new ethers.Contract(d.settlement, A.TRNSettlement.abi, anvil.provider);
  // A direct minter for exercising the throttle without the settlement.
  await mined(controller.connect(gov).grantRole(await controller.MINTER_ROLE(), minter.address));
});

after(async () => {
  await anvil?.stop();
});

test('only the controller can mint on the token', async () => {
  await expectRevert(errs, token.connect(deployer).mint(alice.address, 1n), 'NotController', [deployer.address]);
  await expectRevert(errs, token.connect(minter).mint(alice.address, 1n), 'NotController');
});

test('only MINTER_ROLE can mint through the controller', async () => {
  await expectRevert(errs, controller.connect(alice).mint(alice.address, 1n), 'AccessControlUnauthorizedAccount');
  await expectRevert(errs, controller.connect(deployer).mint(alice.address, 1n), 'AccessControlUnauthorizedAccount');
});

test('the epoch cap is enforced', async () => {
  // Align to the start of a throttle epoch so the next mints all land in one epoch.
  const genesis = await controller.genesis();
  const now = BigInt((await anvil.provider.getBlock('latest')).timestamp);
  const into = (now - genesis) % BigInt(EPOCH);
  await increaseTime(anvil.rpc, Number(BigInt(EPOCH) - into));
  const epoch = await controller.currentEpoch();
  assert.equal(await controller.remainingInCurrentEpoch(), TRN(1000));

  const r = await mined(controller.connect(minter).mint(alice.address, TRN(600)));
  const [m] = eventsOf(controller, r, 'Minted');
  assert.equal(m.args.epoch, epoch);
  assert.equal(m.args.amount, TRN(600));
  await mined(controller.connect(minter).mint(bob.address, TRN(400))); // exactly at the cap
  assert.equal(await controller.mintedInEpoch(epoch), TRN(1000));
  assert.equal(await controller.remainingInCurrentEpoch(), 0n);
  await expectRevert(errs, controller.connect(minter).mint(alice.address, 1n), 'MintCapExceeded', [epoch, 1n, 0n]);
  assert.equal(await token.totalSupply(), TRN(1000));
  assert.equal(await token.balanceOf(alice.address), TRN(600));

  // Next throttle epoch: the budget is fresh.
  await increaseTime(anvil.rpc, EPOCH);
  assert.equal(await controller.currentEpoch(), epoch + 1n);
  await expectRevert(errs, controller.connect(minter).mint(alice.address, TRN(1001)), 'MintCapExceeded',
    [epoch + 1n, TRN(1001), TRN(1000)]);
  await mined(controller.connect(minter).mint(alice.address, TRN(1000)));
  assert.equal(await token.balanceOf(alice.address), TRN(1600));
});

test('only governance changes the cap', async () => {
  await expectRevert(errs, controller.connect(guardian).setEpochCap(TRN(5000)), 'AccessControlUnauthorizedAccount');
  await expectRevert(errs, controller.connect(deployer).setEpochCap(TRN(5000)), 'AccessControlUnauthorizedAccount');
  const r = await mined(controller.connect(gov).setEpochCap(TRN(1500)));
  const [c] = eventsOf(controller, r, 'EpochCapChanged');
  assert.equal(c.args.newCap, TRN(1500));
  // The raised cap applies to the current epoch at once (1000 already minted in it).
  await mined(controller.connect(minter).mint(bob.address, TRN(500)));
  await expectRevert(errs, controller.connect(minter).mint(bob.address, 1n), 'MintCapExceeded');
});

test('guardian pause blocks minting; only governance unpauses', async () => {
  await increaseTime(anvil.rpc, EPOCH); // fresh budget
  await expectRevert(errs, controller.connect(alice).pause(), 'AccessControlUnauthorizedAccount');
  await mined(controller.connect(guardian).pause());
  await expectRevert(errs, controller.connect(minter).mint(alice.address, 1n), 'EnforcedPause');
  await expectRevert(errs, controller.connect(guardian).unpause(), 'AccessControlUnauthorizedAccount');
  await mined(controller.connect(gov).unpause());
  await mined(controller.connect(minter).mint(alice.address, 1n));
});

test('claims are bounded by the throttle: an over-cap claim reverts and can succeed later', async () => {
  await increaseTime(anvil.rpc, EPOCH); // fresh budget of 1500
  const values = [[alice.address, TRN(1200).toString()], [bob.address, TRN(900).toString()]];
  const tree = StandardMerkleTree.of(values, ['address', 'uint256']);
  await mined(settlement.connect(oracle).submitRoot(0, tree.root, TRN(2100), EMPTY_DATA_HASH, 0));
  assert.equal(await settlement.isFinal(0), true, 'challenge window 0: final at once');
  const before = await token.balanceOf(bob.address);
  await mined(settlement.connect(alice).claim(0, alice.address, TRN(1200), tree.getProof(0)));
  // 300 left in this throttle epoch; bob's 900 does not fit.
  await expectRevert(errs, settlement.connect(bob).claim(0, bob.address, TRN(900), tree.getProof(1)),
    'MintCapExceeded');
  assert.equal(await settlement.claimed(0, bob.address), false);
  await increaseTime(anvil.rpc, EPOCH);
  await mined(settlement.connect(bob).claim(0, bob.address, TRN(900), tree.getProof(1)));
  assert.equal(await token.balanceOf(bob.address) - before, TRN(900));
});

test('claims can never exceed the submitted total', async () => {
  // A root whose leaves sum to more than its declared total: the excess claim is refused.
  const values = [[alice.address, TRN(10).toString()], [bob.address, TRN(10).toString()]];
  const tree = StandardMerkleTree.of(values, ['address', 'uint256']);
  await mined(settlement.connect(oracle).submitRoot(1, tree.root, TRN(15), EMPTY_DATA_HASH, 0));
  await mined(settlement.connect(alice).claim(1, alice.address, TRN(10), tree.getProof(0)));
  await expectRevert(errs, settlement.connect(bob).claim(1, bob.address, TRN(10), tree.getProof(1)),
    'ClaimExceedsTotal', [1n, TRN(15), TRN(20)]);
});
