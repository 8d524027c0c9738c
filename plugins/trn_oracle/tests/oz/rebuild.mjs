// Rebuild a trn_oracle epoch from its published activity data with the reference library.
//
//   node rebuild.mjs < epochdata.json        (the result of trn_epochData {epoch})
//   node rebuild.mjs --data 0x... [--accounts 0xA,0xB]
//
// Input JSON: {"data": "0x…" (hex of the Brotli-compressed trn-activity-v1 bytes, or base64
// with "encoding":"base64"), "accounts": ["0x…", …] (optional)}. Prints JSON:
// {epoch, ops, leaves, total, dataHash, root, proofs: {account: {amount, proof}}, tree}
// where root/proofs come from @openzeppelin/merkle-tree's StandardMerkleTree.of(leaves,
// ["address","uint256"]) and tree is its dump().tree. Node's zlib has Brotli built in.
import zlib from 'node:zlib';
import { readFileSync } from 'node:fs';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { keccak256 } from 'ethereum-cryptography/keccak.js';

const CHUNK = 122880;

function readInput() {
  const i = process.argv.indexOf('--data');
  if (i > 0) {
    const a = process.argv.indexOf('--accounts');
    return { data: process.argv[i + 1], accounts: a > 0 ? process.argv[a + 1].split(',') : [] };
  }
  return JSON.parse(readFileSync(0, 'utf8'));
}

/** Decode trn-activity-v1 (layout in plugins/trn_oracle/README.md). */
export function decode(raw) {
  let pos = 0;
  const take = (n) => {
    if (pos + n > raw.length) throw new Error('truncated');
    const s = raw.subarray(pos, pos + n);
    pos += n;
    return s;
  };
  const varint = () => {
    let v = 0n, shift = 0n;
    for (;;) {
      const c = take(1)[0];
      v |= BigInt(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
      shift += 7n;
    }
  };
  const amount = () => {
    const n = take(1)[0];
    if (n > 32) throw new Error('bad amount');
    const b = take(n);
    return n ? BigInt('0x' + Buffer.from(b).toString('hex')) : 0n;
  };
  if (Buffer.from(take(4)).toString() !== 'TRNA') throw new Error('not trn-activity');
  const version = take(1)[0];
  if (version !== 1) throw new Error('unknown version ' + version);
  const epoch = varint();
  const rates = { viewReward: amount(), viewCost: amount(), boostFee: amount() };
  const nacc = Number(varint());
  const accounts = [];
  for (let i = 0; i < nacc; i++) accounts.push('0x' + Buffer.from(take(20)).toString('hex'));
  const ncont = Number(varint());
  const contents = [];
  for (let i = 0; i < ncont; i++) {
    const num = varint();
    const creator = accounts[Number(varint())];
    const id = Buffer.from(take(Number(varint()))).toString();
    contents.push({ num, creator, id });
  }
  const nops = Number(varint());
  const types = take(nops);
  const hasContent = (t) => t === 1 || t === 2 || t === 3 || t === 5;
  const hasAmount = (t) => t === 3 || t === 4 || t === 5;
  const ops = Array.from(types, (t) => ({ type: ['', 'register', 'view', 'boost', 'burn', 'burn'][t] }));
  types.forEach((t, i) => { if (hasContent(t)) ops[i].content = contents[Number(varint())].id; });
  types.forEach((t, i) => { ops[i].account = accounts[Number(varint())]; });
  types.forEach((t, i) => { if (hasAmount(t)) ops[i].amount = amount(); });
  const nleaves = Number(varint());
  const leaves = [];
  let ai = 0;
  for (let i = 0; i < nleaves; i++) {
    const d = Number(varint());
    ai = i === 0 ? d : ai + d;
    leaves.push([accounts[ai], amount().toString()]);
  }
  if (pos !== raw.length) throw new Error('trailing bytes');
  return { epoch, rates, contents, ops, leaves };
}

/** dataHash as TRNSettlement checks it. */
export function dataHash(data) {
  const hs = [];
  for (let i = 0; i < data.length; i += CHUNK) hs.push(keccak256(data.subarray(i, i + CHUNK)));
  return '0x' + Buffer.from(keccak256(Buffer.concat(hs))).toString('hex');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const input = readInput();
  const text = input.data.startsWith('0x') ? input.data.slice(2) : input.data;
  const data = Buffer.from(text, input.encoding === 'base64' ? 'base64' : 'hex');
  const raw = zlib.brotliDecompressSync(data);
  const d = decode(raw);
  const tree = StandardMerkleTree.of(d.leaves, ['address', 'uint256']);
  const proofs = {};
  for (const want of input.accounts ?? []) {
    for (const [i, v] of tree.entries()) {
      if (v[0].toLowerCase() === want.toLowerCase()) proofs[want] = { amount: v[1], proof: tree.getProof(i) };
    }
  }
  const total = d.leaves.reduce((s, l) => s + BigInt(l[1]), 0n);
  console.log(JSON.stringify({
    epoch: d.epoch.toString(), ops: d.ops.length, leaves: d.leaves.length, total: total.toString(),
    rawSize: raw.length, dataHash: dataHash(data), root: tree.root, proofs, tree: tree.dump().tree,
  }));
}
