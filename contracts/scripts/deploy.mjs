#!/usr/bin/env node
// Deploy MintThrottleController (which creates TRNToken), TRNSettlement and TRNDeposits to
// any EVM chain, grant the settlement the controller's MINTER_ROLE, hand the controller's
// admin role to governance, and print the addresses as JSON on stdout.
//
//   node scripts/deploy.mjs --rpc URL --key HEXKEY [options]
//
// Options (env var in brackets):
//   --rpc URL                 JSON-RPC endpoint [L2_RPC_URL]
//   --key HEX                 deployer private key [DEPLOYER_KEY]
//   --oracle ADDR             oracle key allowed to submit roots [ORACLE] (default: deployer)
//   --governance ADDR         DAO governance: veto, role admin, unpause [GOVERNANCE] (default: deployer)
//   --guardian ADDR           may pause claims and minting [GUARDIAN] (default: deployer)
//   --challenge-window SEC    seconds between data completion and finality [CHALLENGE_WINDOW] (default 604800 = 7 days)
//   --epoch-length SEC        mint throttle epoch length [EPOCH_LENGTH] (default 86400)
//   --epoch-cap TRN           mint cap per throttle epoch, in whole TRN (decimals allowed) [EPOCH_CAP] (default 1000000)
//   --first-epoch N           first settlement epoch number [FIRST_EPOCH] (default 0)
//   --keep-admin              keep the deployer as controller admin too (default: only governance)
//   --confirmations N         wait for N confirmations per transaction (default 1)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ethers } from 'ethers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function loadArtifact(name) {
  const p = path.join(root, 'build', `${name}.json`);
  if (!fs.existsSync(p)) throw new Error(`${p} missing: run "node scripts/compile.mjs" first`);
  return JSON.parse(fs.readFileSync(p, 'utf8'));
}

/**
 * Deploy the contract set with `signer`. Returns addresses and parameters.
 * opts: { oracle, governance, guardian, challengeWindow, epochLength, epochCap (bigint, base units),
 *         firstEpoch, keepAdmin, confirmations }
 */
export async function deployAll(signer, opts = {}) {
  const deployer = await signer.getAddress();
  const o = {
    oracle: opts.oracle ?? deployer,
    governance: opts.governance ?? deployer,
    guardian: opts.guardian ?? deployer,
    challengeWindow: BigInt(opts.challengeWindow ?? 7 * 24 * 3600),
    epochLength: BigInt(opts.epochLength ?? 86400),
    epochCap: BigInt(opts.epochCap ?? ethers.parseUnits('1000000', 18)),
    firstEpoch: BigInt(opts.firstEpoch ?? 0),
    keepAdmin: !!opts.keepAdmin,
    confirmations: Number(opts.confirmations ?? 1),
  };
  for (const k of ['oracle', 'governance', 'guardian']) o[k] = ethers.getAddress(o[k]);
  const wait = async (tx) => {
    const r = await tx.wait(o.confirmations);
    if (!r || r.status !== 1) throw new Error(`transaction ${tx.hash} failed`);
    return r;
  };

  const C = loadArtifact('MintThrottleController');
  const S = loadArtifact('TRNSettlement');
  const T = loadArtifact('TRNToken');
  // A build/ made before TRNDeposits existed lacks its artifact: compile once then.
  if (!fs.existsSync(path.join(root, 'build', 'TRNDeposits.json'))) {
    (await import('./compile.mjs')).compile({ quiet: true });
  }
  const D = loadArtifact('TRNDeposits');

  // The deployer is the controller's admin until the roles are set up.
  const controller = await new ethers.ContractFactory(C.abi, C.bytecode, signer).deploy(
    deployer, o.guardian, o.epochLength, o.epochCap);
  await wait(controller.deploymentTransaction());
  const controllerAddr = await controller.getAddress();
  const tokenAddr = await controller.token();

  const settlement = await new ethers.ContractFactory(S.abi, S.bytecode, signer).deploy(
    controllerAddr, o.oracle, o.governance, o.guardian, o.challengeWindow, o.firstEpoch);
  await wait(settlement.deploymentTransaction());
  const settlementAddr = await settlement.getAddress();

  // Where accounts deposit TRN to fund their L3 balance (no roles: anyone deposits).
  const deposits = await new ethers.ContractFactory(D.abi, D.bytecode, signer).deploy(tokenAddr);
  await wait(deposits.deploymentTransaction());
  const depositsAddr = await deposits.getAddress();

  const MINTER_ROLE = await controller.MINTER_ROLE();
  const ADMIN_ROLE = await controller.DEFAULT_ADMIN_ROLE();
  await wait(await controller.grantRole(MINTER_ROLE, settlementAddr));
  if (o.governance !== deployer) {
    await wait(await controller.grantRole(ADMIN_ROLE, o.governance));
    if (!o.keepAdmin) await wait(await controller.renounceRole(ADMIN_ROLE, deployer));
  }

  const net = await signer.provider.getNetwork();
  const token = new ethers.Contract(tokenAddr, T.abi, signer.provider);
  return {
    chainId: net.chainId.toString(),
    deployer,
    token: tokenAddr,
    tokenSymbol: await token.symbol(),
    controller: controllerAddr,
    settlement: settlementAddr,
    deposits: depositsAddr,
    oracle: o.oracle,
    governance: o.governance,
    guardian: o.guardian,
    challengeWindow: o.challengeWindow.toString(),
    epochLength: o.epochLength.toString(),
    epochCap: o.epochCap.toString(),
    firstEpoch: o.firstEpoch.toString(),
    deployerKeepsAdmin: o.governance === deployer || o.keepAdmin,
  };
}

async function main() {
  const { values: a } = parseArgs({
    options: {
      rpc: { type: 'string' },
      key: { type: 'string' },
      oracle: { type: 'string' },
      governance: { type: 'string' },
      guardian: { type: 'string' },
      'challenge-window': { type: 'string' },
      'epoch-length': { type: 'string' },
      'epoch-cap': { type: 'string' },
      'first-epoch': { type: 'string' },
      'keep-admin': { type: 'boolean', default: false },
      confirmations: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (a.help) {
    const src = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    console.log(src.slice(1, src.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    return;
  }
  const env = process.env;
  const rpc = a.rpc ?? env.L2_RPC_URL;
  const key = a.key ?? env.DEPLOYER_KEY;
  if (!rpc || !key) throw new Error('need --rpc URL and --key HEXKEY (or L2_RPC_URL / DEPLOYER_KEY)');
  const provider = new ethers.JsonRpcProvider(rpc, undefined, { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 250;
  const signer = new ethers.Wallet(key.startsWith('0x') ? key : '0x' + key, provider);
  const cap = a['epoch-cap'] ?? env.EPOCH_CAP;
  const out = await deployAll(signer, {
    oracle: a.oracle ?? env.ORACLE,
    governance: a.governance ?? env.GOVERNANCE,
    guardian: a.guardian ?? env.GUARDIAN,
    challengeWindow: a['challenge-window'] ?? env.CHALLENGE_WINDOW,
    epochLength: a['epoch-length'] ?? env.EPOCH_LENGTH,
    epochCap: cap === undefined ? undefined : ethers.parseUnits(cap, 18),
    firstEpoch: a['first-epoch'] ?? env.FIRST_EPOCH,
    keepAdmin: a['keep-admin'],
    confirmations: a.confirmations,
  });
  console.log(JSON.stringify(out, null, 2));
  provider.destroy();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`deploy failed: ${e.shortMessage ?? e.message}`);
    process.exit(1);
  });
}
