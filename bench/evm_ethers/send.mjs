#!/usr/bin/env node
// ethers.js baseline for bench/bench_evm.c: sign N EIP-1559 transactions with consecutive
// nonces (fixed gas limit and fees, as evm_l2 does: no per-transaction estimation), send them
// all at once (ethers' JsonRpcProvider batches the requests), then wait until the last one is
// mined with 1 confirmation (nonces are consecutive, so every earlier one is mined too).
//
//   node send.mjs URL HEXKEY N TO_ADDRESS DATA GAS_LIMIT
//
// Prints one JSON line: {"n", "sign_ms", "send_ms", "mined_ms", "total_ms"}.
import { ethers } from 'ethers';

const [url, key, nText, to, data, gasText] = process.argv.slice(2);
const n = Number(nText);
const provider = new ethers.JsonRpcProvider(url, undefined, { staticNetwork: true });
provider.pollingInterval = 50;
const wallet = new ethers.Wallet(key.startsWith('0x') ? key : '0x' + key, provider);

const t0 = performance.now();
const [chain, nonce, fees] = await Promise.all([
  provider.send('eth_chainId', []),
  provider.getTransactionCount(wallet.address, 'pending'),
  provider.getFeeData(),
]);
const prio = fees.maxPriorityFeePerGas ?? 1_000_000n;
const maxFee = (fees.maxFeePerGas ?? 2_000_000_000n) + prio;
const raws = [];
for (let i = 0; i < n; i++) {
  raws.push(await wallet.signTransaction({
    type: 2, chainId: BigInt(chain), nonce: nonce + i, to, data, value: 0n,
    gasLimit: BigInt(gasText), maxFeePerGas: maxFee, maxPriorityFeePerGas: prio,
  }));
}
const t1 = performance.now();
const hashes = await Promise.all(raws.map((r) => provider.send('eth_sendRawTransaction', [r])));
const t2 = performance.now();
const rc = await provider.waitForTransaction(hashes[hashes.length - 1], 1, 600_000);
const t3 = performance.now();
if (!rc || rc.status !== 1) throw new Error('last transaction failed');
console.log(JSON.stringify({ n, sign_ms: t1 - t0, send_ms: t2 - t1, mined_ms: t3 - t2, total_ms: t3 - t0 }));
provider.destroy();
