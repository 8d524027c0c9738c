// TRNDeposits on a real anvil: deployed by scripts/deploy.mjs next to the settlement; a
// deposit moves the caller's TRN into the contract and emits Deposited(account, amount),
// the event the L3 node's evm_l2 watches to credit trn_oracle balances; refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ethers } from 'ethers';
import { startAnvil } from '../lib/anvil.mjs';
import { ensureBuilt, errorInterface, expectRevert, mined, eventsOf } from '../lib/testkit.mjs';
import { compile } from '../scripts/compile.mjs';
import { loadArtifact } from '../scripts/deploy.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TRN = (n) => ethers.parseUnits(String(n), 18);

let anvil, A, errs, dep, deployer, alice, bob, treasury;
let token, controller, deposits;

before(async () => {
  A = ensureBuilt();
  if (!fs.existsSync(path.join(root, 'build', 'TRNDeposits.json'))) compile({ quiet: true });
  A.TRNDeposits = loadArtifact('TRNDeposits');
  errs = errorInterface(A);
  anvil = await startAnvil();
  [deployer, alice, bob, treasury] = anvil.wallets;
  const { stdout } = await promisify(execFile)(process.execPath, [
    path.join(root, 'scripts', 'deploy.mjs'), '--rpc', anvil.url, '--key', deployer.privateKey,
  ], { timeout: 60000 });
  dep = JSON.parse(stdout);
  token = new ethers.Contract(dep.token, A.TRNToken.abi, deployer);
  controller = new ethers.Contract(dep.controller, A.MintThrottleController.abi, deployer);
  deposits = new ethers.Contract(dep.deposits, A.TRNDeposits.abi, deployer);
  // The deployer is governance here (the default): let it mint some TRN for the tests.
  await mined(controller.grantRole(await controller.MINTER_ROLE(), deployer.address));
  for (const w of [alice, bob]) await mined(controller.mint(w.address, TRN(100)));
});

after(async () => {
  await anvil?.stop();
});

test('deploy script deploys TRNDeposits bound to the TRN token', async () => {
  assert.ok(ethers.isAddress(dep.deposits), 'deposits address printed');
  assert.notEqual(await anvil.provider.getCode(dep.deposits), '0x', 'deposits has code');
  assert.equal(await deposits.token(), dep.token);
  assert.equal(await deposits.totalDeposited(), 0n);
});

test('a deposit moves the TRN into the contract and emits Deposited for the caller', async () => {
  const d = deposits.connect(alice);
  await mined(token.connect(alice).approve(dep.deposits, TRN(10)));
  const r = await mined(d.deposit(TRN(7)));
  const ev = eventsOf(deposits, r, 'Deposited');
  assert.equal(ev.length, 1);
  assert.equal(ev[0].args.account, alice.address);
  assert.equal(ev[0].args.amount, TRN(7));
  // account is indexed (topic 1), amount is the data: what evm_l2's decoder expects.
  const log = r.logs.find((l) => l.address === dep.deposits);
  assert.equal(log.topics.length, 2);
  assert.equal(log.topics[0], ethers.id('Deposited(address,uint256)'));
  assert.equal(await token.balanceOf(alice.address), TRN(93));
  assert.equal(await token.balanceOf(dep.deposits), TRN(7));
  assert.equal(await deposits.totalDeposited(), TRN(7));
});

test('depositFor credits another account (e.g. funding the DAO treasury)', async () => {
  await mined(token.connect(bob).approve(dep.deposits, TRN(5)));
  const r = await mined(deposits.connect(bob).depositFor(treasury.address, TRN(5)));
  const ev = eventsOf(deposits, r, 'Deposited');
  assert.equal(ev.length, 1);
  assert.equal(ev[0].args.account, treasury.address);
  assert.equal(ev[0].args.amount, TRN(5));
  assert.equal(await token.balanceOf(bob.address), TRN(95));
  assert.equal(await deposits.totalDeposited(), TRN(12));
});

test('zero amounts, the zero account and missing allowances are refused', async () => {
  const d = deposits.connect(alice);
  await expectRevert(errs, d.deposit(0n), 'ZeroAmount');
  await expectRevert(errs, d.depositFor(ethers.ZeroAddress, 1n), 'ZeroAddress');
  // alice approved 10 and spent 7: 4 is over the allowance.
  await expectRevert(errs, d.deposit(TRN(4)), 'ERC20InsufficientAllowance');
  // carol has no TRN at all.
  const carol = anvil.wallets[4];
  await mined(token.connect(carol).approve(dep.deposits, TRN(1)));
  await expectRevert(errs, deposits.connect(carol).deposit(TRN(1)), 'ERC20InsufficientBalance');
  assert.equal(await deposits.totalDeposited(), TRN(12), 'nothing changed');
});
