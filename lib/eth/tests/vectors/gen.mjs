// Generates the reference vectors of lib/eth's tests with the npm reference libraries.
// Rerun with: cd lib/eth/tests/vectors && npm ci && node gen.mjs
// Output is deterministic (seeded PRNG), so a rerun rewrites identical files.
import { writeFileSync } from 'node:fs';
import { AbiCoder, Wallet, getAddress, computeAddress, hashMessage, id, keccak256, hexlify,
         SigningKey, Transaction } from 'ethers';
import { keccak_256 } from '@noble/hashes/sha3';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

let seed = 0x5eed1234;
function rnd32() { // mulberry32
  let z = (seed = (seed + 0x6d2b79f5) >>> 0);
  z = Math.imul(z ^ (z >>> 15), z | 1);
  z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
  return (z ^ (z >>> 14)) >>> 0;
}
const rbytes = (n) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = rnd32() & 255; return b; };
const rhex = (n) => hexlify(rbytes(n));
const rbig = (bits) => { let v = 0n; for (let i = 0; i < bits; i += 32) v = (v << 32n) | BigInt(rnd32()); return v & ((1n << BigInt(bits)) - 1n); };
const write = (name, obj) => writeFileSync(new URL(name, import.meta.url), JSON.stringify(obj, null, 1) + '\n');

// ---- ABI: encodings of nested dynamic types, as ethers' AbiCoder writes them ----
// Normalise a decoded ethers Result to the JSON convention of ado_abi_decode_json.
function norm(v) {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return Array.from(v, norm);
  if (v && typeof v.toArray === 'function') return Array.from(v.toArray(), norm);
  return v;
}
const coder = AbiCoder.defaultAbiCoder();
const abiCases = [
  { types: ['address', 'bool', 'uint256', 'int256'], values: [getAddress(rhex(20)), true, (2n ** 256n - 1n).toString(), '-1'] },
  { types: ['uint8', 'int8', 'int8', 'uint32', 'int128'], values: ['255', '-128', '127', '4294967295', (-(2n ** 127n)).toString()] },
  { types: ['bytes32', 'bytes4', 'bytes1'], values: [rhex(32), rhex(4), rhex(1)] },
  { types: ['bytes', 'string'], values: [rhex(70), 'héllo, wörld — ✓'] },
  { types: ['bytes'], values: ['0x'] },
  { types: ['string[]', 'uint256[]'], values: [['a', '', 'ccc'.repeat(20)], ['1', '2', '3']] },
  { types: ['uint256[][]', 'bytes[]'], values: [[['1'], [], ['2', '3']], [rhex(3), rhex(40), '0x']] },
  { types: ['(address,bool)[2]', 'uint16[3]'], values: [[[getAddress(rhex(20)), false], [getAddress(rhex(20)), true]], ['1', '65535', '0']] },
  { types: ['(uint256,bytes,string[])[]'], values: [[['7', rhex(33), ['x', 'yy']], ['0', '0x', []]]] },
  { types: ['(uint256,(bytes32,string),address[])', 'bool'], values: [['42', [rhex(32), 'nested'], [getAddress(rhex(20))]], false] },
  { types: ['string[2][]', 'int64[]'], values: [[['p', 'q'], ['r', 's']], ['-9223372036854775808', '9223372036854775807']] },
  { types: ['uint256', 'bytes32', 'bytes32', 'bytes'], values: ['12', rhex(32), rhex(32), rhex(200)] },
];
const abi = abiCases.map((c) => {
  const encoded = coder.encode(c.types, c.values);
  return { types: c.types.join(','), values: c.values, encoded, decoded: norm(coder.decode(c.types, encoded)) };
});
const sigs = ['submitRoot(uint256,bytes32,bytes32,bytes)', 'transfer(address,uint256)',
  'claim(uint256,address,uint256,bytes32[])', 'f((uint256,bytes)[],string)', 'balanceOf(address)'];
const selectors = sigs.map((s) => ({ signature: s, selector: id(s).slice(0, 10) }));
const events = ['Transfer(address,address,uint256)', 'RootSubmitted(uint256,bytes32,bytes32)']
  .map((s) => ({ signature: s, topic: id(s) }));
const calls = [{ signature: 'transfer(address,uint256)', args: [getAddress(rhex(20)), '1000'] },
  { signature: 'submitRoot(uint256,bytes32,bytes32,bytes)', args: ['3', rhex(32), rhex(32), rhex(90)] }]
  .map((c) => {
    const types = c.signature.slice(c.signature.indexOf('(') + 1, -1);
    return { ...c, data: id(c.signature).slice(0, 10) + coder.encode(types.split(','), c.args).slice(2) };
  });
write('abi.json', { library: 'ethers@6 AbiCoder', cases: abi, selectors, events, calls });

// ---- addresses: EIP-55, public key -> address, EIP-191 ----
const addresses = [];
for (let i = 0; i < 20; i++) {
  const key = rhex(32);
  const sk = new SigningKey(key);
  addresses.push({ lower: computeAddress(sk.publicKey).toLowerCase(), checksum: computeAddress(sk.publicKey),
    publicKey: sk.publicKey });
}
const personal = ['', 'hello', 'x'.repeat(300)].map((m) => ({ message: m, hash: hashMessage(m) }));
write('address.json', { library: 'ethers@6', addresses, personal });

// ---- EIP-1559 transactions signed by ethers ----
const txCases = [
  { name: 'empty-data', chainId: 1, nonce: 0, maxPriorityFeePerGas: '1', maxFeePerGas: '2', gasLimit: 21000, to: getAddress(rhex(20)), value: '0', data: '0x' },
  { name: 'small-call', chainId: 42161, nonce: 7, maxPriorityFeePerGas: '1500000000', maxFeePerGas: '30000000000', gasLimit: 100000, to: getAddress(rhex(20)), value: '1000000000000000000', data: calls[0].data },
  { name: 'large-data', chainId: 31337, nonce: 123456, maxPriorityFeePerGas: '0', maxFeePerGas: '1000000007', gasLimit: 3000000, to: getAddress(rhex(20)), value: '0', data: rhex(5000) },
  { name: 'big-values', chainId: 4294967295, nonce: 2 ** 40, maxPriorityFeePerGas: rbig(200).toString(), maxFeePerGas: (2n ** 256n - 1n).toString(), gasLimit: 2 ** 50, to: getAddress(rhex(20)), value: (2n ** 256n - 1n).toString(), data: rhex(56) },
  { name: 'data-55', chainId: 10, nonce: 1, maxPriorityFeePerGas: '100', maxFeePerGas: '200', gasLimit: 50000, to: getAddress(rhex(20)), value: '127', data: rhex(55) },
  { name: 'contract-creation', chainId: 5, nonce: 3, maxPriorityFeePerGas: '5', maxFeePerGas: '6', gasLimit: 500000, to: null, value: '128', data: rhex(300) },
];
const txs = [];
for (const c of txCases) {
  const key = rhex(32);
  const w = new Wallet(key);
  const raw = await w.signTransaction({ type: 2, chainId: c.chainId, nonce: c.nonce,
    maxPriorityFeePerGas: BigInt(c.maxPriorityFeePerGas), maxFeePerGas: BigInt(c.maxFeePerGas),
    gasLimit: c.gasLimit, to: c.to, value: BigInt(c.value), data: c.data, accessList: [] });
  const t = Transaction.from(raw);
  txs.push({ ...c, privateKey: key, from: w.address, unsignedHash: t.unsignedHash, raw, hash: keccak256(raw) });
}
write('tx.json', { library: 'ethers@6 Wallet.signTransaction', cases: txs });

// ---- StandardMerkleTree with mixed leaf types ----
const enc = ['address', 'bool', 'uint8', 'int256', 'bytes32', 'string'];
const strs = ['', 'plain', 'héllo ✓ 🌳', 'quote " back \\ slash / tab\t nl\n', 'ctl \u0001\u001f end', 'x'.repeat(100)];
function mixedValue(i) {
  const neg = rnd32() & 1;
  return [
    i % 3 === 0 ? getAddress(rhex(20)) : rhex(20),
    i % 4 === 0 ? 'true' : (rnd32() & 1) === 1,
    i % 2 ? rnd32() & 255 : String(rnd32() & 255),
    (neg ? '-' : '') + rbig(255).toString(),
    rhex(32),
    strs[i % strs.length],
  ];
}
for (const n of [1, 2, 7, 50]) {
  const values = Array.from({ length: n }, (_, i) => mixedValue(i));
  if (n === 50) values[20] = values[10]; // a duplicate leaf
  const tree = StandardMerkleTree.of(values, enc);
  const dump = tree.dump();
  write(`merkle-mixed-n${n}.json`, {
    library: '@openzeppelin/merkle-tree@1.0.8', ...dump, root: tree.root,
    proofs: values.map((v, i) => ({ index: i, leafHash: tree.leafHash(v), proof: tree.getProof(i) })),
    dump: JSON.stringify(dump),
  });
}
// Also a tree of (address, uint256) as StandardMerkleTree.of takes them from a file.
{
  const values = Array.from({ length: 300 }, (_, i) => [i % 2 ? getAddress(rhex(20)) : rhex(20),
    i % 5 === 0 ? '0x' + rbig(64).toString(16) : rbig(i % 7 === 0 ? 256 : 96).toString()]);
  const tree = StandardMerkleTree.of(values, ['address', 'uint256']);
  write('merkle-cmd-address-uint256.json', { library: '@openzeppelin/merkle-tree@1.0.8', leafEncoding: ['address', 'uint256'],
    input: values, dump: JSON.stringify(tree.dump()) });
}
// Keccak of random lengths via @noble/hashes (the shared file covers the rate edges).
const keccak = [];
for (const len of [0, 1, 31, 32, 33, 64, 135, 136, 137, 271, 272, 273, 1000, 4096]) {
  const b = rbytes(len);
  keccak.push({ length: len, input: Buffer.from(b).toString('hex'), keccak256: Buffer.from(keccak_256(b)).toString('hex') });
}
write('keccak-extra.json', { library: '@noble/hashes keccak_256', vectors: keccak });
console.log('vectors written');
