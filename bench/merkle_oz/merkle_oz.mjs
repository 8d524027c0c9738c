// Times @openzeppelin/merkle-tree 1.0.8 building a StandardMerkleTree of N (address, uint256)
// values (default 100000) and fetching every proof. Usage: npm ci && node merkle_oz.mjs [N [of-only]]
// (of-only: time of() alone, which is when every proof is retrievable with getProof).
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

const n = Number(process.argv[2] ?? 100000);
let s = 0x12345678;
const hex = (bytes) => {
  let out = '';
  for (let i = 0; i < bytes; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out += ((s >>> 16) & 255).toString(16).padStart(2, '0');
  }
  return out;
};
const values = Array.from({ length: n }, () => ['0x' + hex(20), BigInt('0x' + hex(12)).toString()]);
const t0 = performance.now();
const tree = StandardMerkleTree.of(values, ['address', 'uint256']);
const t1 = performance.now();
if (process.argv[3] === 'of-only') {
  console.log(`n=${n} @openzeppelin/merkle-tree 1.0.8 node ${process.version}: of() ${(t1 - t0).toFixed(1)} ms ` +
    `(root ${tree.root})`);
  process.exit(0);
}
let total = 0;
for (let i = 0; i < n; i++) total += tree.getProof(i).length;
const t2 = performance.now();
console.log(`n=${n} @openzeppelin/merkle-tree 1.0.8 node ${process.version}: of() ${(t1 - t0).toFixed(1)} ms; ` +
  `all proofs ${(t2 - t1).toFixed(1)} ms (avg ${(total / n).toFixed(1)} hashes, getProof re-verifies each)`);
