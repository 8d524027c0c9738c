// Test helper: start a real anvil (from npm @foundry-rs/anvil-linux-amd64) on a free
// 127.0.0.1 port, wait until it answers JSON-RPC, and stop it afterwards.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ethers } from 'ethers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ANVIL_BIN = process.env.ANVIL_BIN
  || path.join(root, 'node_modules', '@foundry-rs', 'anvil-linux-amd64', 'bin', 'anvil');
export const MNEMONIC = 'test test test test test test test test test test test junk';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function rpcAnswers(url) {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(1000),
    });
    const j = await res.json();
    return typeof j.result === 'string';
  } catch {
    return false;
  }
}

/** Start anvil; resolves to { url, provider, wallets, rpc(method, params), stop() }. */
export async function startAnvil({ timeoutMs = 30000, extraArgs = [] } = {}) {
  if (!fs.existsSync(ANVIL_BIN)) throw new Error(`anvil not found at ${ANVIL_BIN} (run npm ci)`);
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(ANVIL_BIN, ['--host', '127.0.0.1', '--port', String(port), '--accounts', '10',
      '--mnemonic', MNEMONIC, ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    let exited = null;
    child.on('exit', (code, sig) => { exited = { code, sig }; });
    const deadline = Date.now() + timeoutMs;
    while (!exited && Date.now() < deadline && !(await rpcAnswers(url))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (exited) {
      if (tries < 3 && /address already in use/i.test(stderr)) continue; // port race: retry
      throw new Error(`anvil exited (${JSON.stringify(exited)}): ${stderr}`);
    }
    if (Date.now() >= deadline) {
      child.kill('SIGKILL');
      throw new Error(`anvil did not answer on ${url} within ${timeoutMs} ms: ${stderr}`);
    }
    const provider = new ethers.JsonRpcProvider(url, undefined, { staticNetwork: true, cacheTimeout: -1 });
    provider.pollingInterval = 50;
    const wallets = [];
    for (let i = 0; i < 10; i++) {
      const w = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`);
      // Plain wallets: anvil automines, and tests wait for each receipt in turn.
      wallets.push(w.connect(provider));
    }
    const rpc = (method, params = []) => provider.send(method, params);
    const stop = async () => {
      provider.destroy();
      if (exited) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await done;
      clearTimeout(t);
    };
    return { url, port, provider, wallets, rpc, stop, child };
  }
}

/** Advance anvil's clock by `seconds` and mine a block. */
export async function increaseTime(rpc, seconds) {
  await rpc('evm_increaseTime', [Number(seconds)]);
  await rpc('evm_mine', []);
}
