// Chunked publication of an epoch's activity data on a real anvil: 300 KiB split into
// chunks that each fit a 128 KiB transaction, every chunk transaction sent, and the
// dataHash recomputed from the ChunkPublished logs and the transactions' calldata.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { ethers } from 'ethers';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { startAnvil, increaseTime } from '../lib/anvil.mjs';
import { ensureBuilt, errorInterface, expectRevert, mined, eventsOf } from '../lib/testkit.mjs';
import { deployAll } from '../scripts/deploy.mjs';

const WINDOW = 600;
const TX_SIZE_LIMIT = 128 * 1024; // common L2 mempool limit on a signed transaction
const TRN = (n) => ethers.parseUnits(String(n), 18);
const State = { None: 0n, AwaitingData: 1n, Challengeable: 2n, Final: 3n, Vetoed: 4n };

/** Split `data` into chunks of at most `size` bytes. */
function split(data, size) {
  const out = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}
/** dataHash = keccak256(keccak256(chunk_0) ‖ … ‖ keccak256(chunk_{n-1})). */
function dataHashOf(chunks) {
  return ethers.keccak256(ethers.concat(chunks.map((c) => ethers.keccak256(c))));
}

let anvil, A, errs;
let deployer, oracle, gov, guardian, alice, bob, mallory;
let settlement, token, MAX;
let data, chunks, tree;

before(async () => {
  A = ensureBuilt();
  errs = errorInterface(A);
  anvil = await startAnvil();
  [deployer, oracle, gov, guardian, alice, bob, mallory] = anvil.wallets;
  const d = await deployAll(deployer, {
    oracle: oracle.address, governance: gov.address, guardian: guardian.address,
    challengeWindow: WINDOW, epochLength: 86400, epochCap: TRN(1000000),
  });
  settlement = new ethers.Contract(d.settlement, A.TRNSettlement.abi, anvil.provider);
  token = new ethers.Contract(d.token, A.TRNToken.abi, anvil.provider);
  MAX = Number(await settlement.MAX_CHUNK_SIZE());
  data = crypto.randomBytes(300 * 1024); // incompressible, like Brotli output
  chunks = split(data, MAX);
  tree = StandardMerkleTree.of([[alice.address, TRN(3).toString()], [bob.address, TRN(4).toString()]],
    ['address', 'uint256']);
});

after(async () => {
  await anvil?.stop();
});

test('300 KiB needs 3 chunks below the transaction size limit', () => {
  assert.ok(MAX < TX_SIZE_LIMIT);
  assert.equal(chunks.length, 3);
  assert.ok(chunks.every((c) => c.length <= MAX));
  assert.equal(Buffer.concat(chunks).length, 300 * 1024);
});

test('submit an epoch announcing 3 chunks: not final while data is missing', async () => {
  const r = await mined(settlement.connect(oracle).submitRoot(0, tree.root, TRN(7), dataHashOf(chunks), chunks.length));
  const [ev] = eventsOf(settlement, r, 'RootSubmitted');
  assert.equal(ev.args.dataHash, dataHashOf(chunks));
  assert.equal(ev.args.chunkCount, 3n);
  assert.equal(await settlement.epochState(0), State.AwaitingData);
  assert.equal(await settlement.finalAt(0), 0n);
});

test('chunk publication refusals: wrong key, out of order, too large, empty', async () => {
  await expectRevert(errs, settlement.connect(mallory).publishChunk(0, 0, chunks[0]), 'NotOracle');
  await expectRevert(errs, settlement.connect(oracle).publishChunk(0, 1, chunks[1]), 'ChunkOutOfOrder', [0n, 0n, 1n]);
  await expectRevert(errs, settlement.connect(oracle).publishChunk(0, 0, new Uint8Array(MAX + 1)), 'ChunkTooLarge',
    [BigInt(MAX + 1), BigInt(MAX)]);
  await expectRevert(errs, settlement.connect(oracle).publishChunk(0, 0, '0x'), 'EmptyChunk');
  await expectRevert(errs, settlement.connect(oracle).publishChunk(5, 0, chunks[0]), 'EpochNotPending', [5n]);
});

test('each chunk is sent in its own transaction under 128 KiB', async () => {
  for (let i = 0; i < chunks.length; i++) {
    // Sign the transaction ourselves to measure its exact size on the wire.
    const req = await settlement.connect(oracle).publishChunk.populateTransaction(0, i, chunks[i]);
    const populated = await oracle.populateTransaction(req);
    const raw = await oracle.signTransaction(populated);
    const size = ethers.getBytes(raw).length;
    assert.ok(size < TX_SIZE_LIMIT, `chunk ${i}: signed tx is ${size} bytes`);
    const hash = await anvil.provider.send('eth_sendRawTransaction', [raw]);
    const rcpt = await anvil.provider.waitForTransaction(hash);
    assert.equal(rcpt.status, 1);
    const [ev] = eventsOf(settlement, rcpt, 'ChunkPublished');
    assert.equal(ev.args.index, BigInt(i));
    assert.equal(ev.args.chunkHash, ethers.keccak256(chunks[i]));
    assert.equal(ev.args.size, BigInt(chunks[i].length));
    assert.equal(await settlement.chunkHash(0, i), ethers.keccak256(chunks[i]));
    const last = i === chunks.length - 1;
    assert.equal(eventsOf(settlement, rcpt, 'DataComplete').length, last ? 1 : 0);
    assert.equal(await settlement.epochState(0), last ? State.Challengeable : State.AwaitingData);
  }
  // The data is complete: no more chunks accepted.
  await expectRevert(errs, settlement.connect(oracle).publishChunk(0, 3, chunks[0]), 'ChunkOutOfOrder');
  const e = await settlement.getEpoch(0);
  assert.equal(await settlement.finalAt(0), e.readyAt + BigInt(WINDOW));
});

test('a verifier rebuilds the data from the logs and checks dataHash', async () => {
  const submitted = (await settlement.queryFilter(settlement.filters.RootSubmitted(0), 0, 'latest')).at(-1);
  const attempt = submitted.args.attempt;
  const logs = await settlement.queryFilter(settlement.filters.ChunkPublished(0, attempt), 0, 'latest');
  assert.equal(logs.length, Number(submitted.args.chunkCount));
  const got = [];
  for (const log of logs.sort((a, b) => Number(a.args.index - b.args.index))) {
    const tx = await anvil.provider.getTransaction(log.transactionHash);
    assert.equal(tx.to, settlement.target);
    const call = settlement.interface.parseTransaction({ data: tx.data, value: tx.value });
    assert.equal(call.name, 'publishChunk');
    assert.equal(call.args.epoch, 0n);
    assert.equal(call.args.index, log.args.index);
    const bytes = ethers.getBytes(call.args.data);
    assert.equal(ethers.keccak256(bytes), log.args.chunkHash, 'calldata matches the logged chunk hash');
    got.push(bytes);
  }
  assert.equal(dataHashOf(got), submitted.args.dataHash, 'recomputed dataHash matches the submitted one');
  assert.ok(Buffer.from(ethers.concat(got).slice(2), 'hex').equals(data), 'the published data is the original');
});

test('after the window the epoch is final and claims pay', async () => {
  const p = tree.getProof([alice.address, TRN(3).toString()]);
  await expectRevert(errs, settlement.connect(alice).claim(0, alice.address, TRN(3), p), 'EpochNotFinal');
  await increaseTime(anvil.rpc, WINDOW);
  assert.equal(await settlement.epochState(0), State.Final);
  await mined(settlement.connect(alice).claim(0, alice.address, TRN(3), p));
  assert.equal(await token.balanceOf(alice.address), TRN(3));
});

test('data that does not match dataHash is refused; veto and resubmission recover', async () => {
  const good = split(crypto.randomBytes(150 * 1024), MAX); // 2 chunks
  const t1 = StandardMerkleTree.of([[bob.address, TRN(1).toString()]], ['address', 'uint256']);
  await mined(settlement.connect(oracle).submitRoot(1, t1.root, TRN(1), dataHashOf(good), good.length));
  await mined(settlement.connect(oracle).publishChunk(1, 0, good[0]));
  const wrong = Uint8Array.from(good[1]);
  wrong[0] ^= 0xff;
  const expected = dataHashOf(good);
  const computed = dataHashOf([good[0], wrong]);
  await expectRevert(errs, settlement.connect(oracle).publishChunk(1, 1, wrong), 'DataHashMismatch',
    [1n, expected, computed]);
  // Incomplete data never becomes final, however long we wait.
  await increaseTime(anvil.rpc, WINDOW * 10);
  assert.equal(await settlement.epochState(1), State.AwaitingData);
  assert.equal(await settlement.isFinal(1), false);
  // Governance vetoes (still possible: not final), the oracle resubmits and republishes.
  await mined(settlement.connect(gov).veto(1));
  const r = await mined(settlement.connect(oracle).submitRoot(1, t1.root, TRN(1), expected, good.length));
  assert.equal(eventsOf(settlement, r, 'RootSubmitted')[0].args.attempt, 2n);
  assert.equal((await settlement.getEpoch(1)).chunksPublished, 0n, 'resubmission restarts publication');
  await mined(settlement.connect(oracle).publishChunk(1, 0, good[0]));
  await mined(settlement.connect(oracle).publishChunk(1, 1, good[1]));
  assert.equal(await settlement.epochState(1), State.Challengeable);
  // Verifiers select the chunks of the latest attempt.
  const logs2 = await settlement.queryFilter(settlement.filters.ChunkPublished(1, 2), 0, 'latest');
  assert.equal(logs2.length, 2);
  assert.equal(ethers.keccak256(ethers.concat(logs2.map((l) => l.args.chunkHash))), expected);
});

test('an epoch without data must announce keccak256 of nothing', async () => {
  const t2 = StandardMerkleTree.of([[bob.address, TRN(1).toString()]], ['address', 'uint256']);
  await expectRevert(errs, settlement.connect(oracle).submitRoot(2, t2.root, TRN(1), ethers.ZeroHash, 0),
    'DataHashMismatch');
  await mined(settlement.connect(oracle).submitRoot(2, t2.root, TRN(1), ethers.keccak256('0x'), 0));
  assert.equal(await settlement.epochState(2), State.Challengeable);
});
