// Shared helpers for the contract tests (kept outside test/ so that `node --test test/`
// does not run it as a test file).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ethers } from 'ethers';
import { compile } from '../scripts/compile.mjs';
import { loadArtifact } from '../scripts/deploy.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const NAMES = ['TRNToken', 'MintThrottleController', 'TRNSettlement'];

/** Compile unless build/ already holds every artifact (test.sh compiles first). */
export function ensureBuilt() {
  if (!NAMES.every((n) => fs.existsSync(path.join(root, 'build', `${n}.json`)))) compile({ quiet: true });
  return Object.fromEntries(NAMES.map((n) => [n, loadArtifact(n)]));
}

/** An interface knowing every custom error of every contract, to decode bubbled reverts. */
export function errorInterface(artifacts) {
  const seen = new Set();
  const frags = [];
  for (const a of Object.values(artifacts)) {
    for (const f of a.abi) {
      if (f.type !== 'error') continue;
      const sig = `${f.name}(${f.inputs.map((i) => i.type).join(',')})`;
      if (!seen.has(sig)) { seen.add(sig); frags.push(f); }
    }
  }
  return new ethers.Interface(frags);
}

function revertData(e) {
  for (let x = e; x; x = x.error ?? x.info?.error ?? null) {
    if (typeof x.data === 'string' && x.data.startsWith('0x')) return x.data;
    if (typeof x.data?.data === 'string') return x.data.data;
    if (x === x.error) break;
  }
  return null;
}

/**
 * Await `promise` (a contract call or transaction) and assert it reverted with custom
 * error `name`; returns the decoded args. If `args` is given, compares them too.
 */
export async function expectRevert(iface, promise, name, args) {
  let err;
  try {
    const r = await promise;
    if (r && typeof r.wait === 'function') await r.wait();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected revert ${name}, but it succeeded`);
  const data = revertData(err);
  assert.ok(data, `expected revert ${name}, got an error without revert data: ${err.shortMessage ?? err.message}`);
  const parsed = iface.parseError(data);
  assert.ok(parsed, `expected revert ${name}, got unknown revert data ${data}`);
  assert.equal(parsed.name, name, `expected revert ${name}, got ${parsed.name}(${parsed.args.join(', ')})`);
  if (args) assert.deepEqual([...parsed.args], args);
  return parsed.args;
}

/** Send a transaction and assert it was mined successfully; returns the receipt. */
export async function mined(txPromise) {
  const tx = await txPromise;
  const r = await tx.wait();
  assert.equal(r.status, 1, `transaction ${tx.hash} failed`);
  return r;
}

/** Parse the logs of `receipt` emitted by `contract` and return those named `name`. */
export function eventsOf(contract, receipt, name) {
  const addr = contract.target.toLowerCase();
  return receipt.logs
    .filter((l) => l.address.toLowerCase() === addr)
    .map((l) => contract.interface.parseLog(l))
    .filter((p) => p && p.name === name);
}

export const EMPTY_DATA_HASH = ethers.keccak256('0x');
