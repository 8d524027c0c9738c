#!/usr/bin/env node
// Compile contracts/src/*.sol with the npm `solc` package (bundled wasm compiler, no
// download) using standard JSON input with the optimizer on. Writes one artifact per
// contract to contracts/build/<Name>.json: { contractName, sourceName, abi, bytecode,
// deployedBytecode, compiler }.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const solc = require('solc');

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'src');
const buildDir = path.join(root, 'build');
const nodeModules = path.join(root, 'node_modules');

export const EVM_VERSION = process.env.SOLC_EVM_VERSION || 'cancun';

function findImports(importPath) {
  for (const base of [root, nodeModules]) {
    const p = path.join(base, importPath);
    if (p.startsWith(base) && fs.existsSync(p)) return { contents: fs.readFileSync(p, 'utf8') };
  }
  return { error: `import not found: ${importPath}` };
}

export function compile({ quiet = false } = {}) {
  const sources = {};
  for (const f of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
    sources[`src/${f}`] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: EVM_VERSION,
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) {
    if (e.severity !== 'error' && !quiet) console.error(e.formattedMessage);
  }
  if (errors.length) {
    for (const e of errors) console.error(e.formattedMessage);
    throw new Error(`solc: ${errors.length} error(s)`);
  }
  fs.mkdirSync(buildDir, { recursive: true });
  const written = [];
  for (const [sourceName, contracts] of Object.entries(output.contracts)) {
    if (!sourceName.startsWith('src/')) continue; // only our own contracts
    for (const [name, c] of Object.entries(contracts)) {
      const artifact = {
        contractName: name,
        sourceName,
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
        compiler: { version: solc.version(), evmVersion: EVM_VERSION, optimizer: input.settings.optimizer },
      };
      // Written to a temporary name and renamed: tests that read build/ while another test
      // compiles never see a half-written artifact.
      const dest = path.join(buildDir, `${name}.json`);
      const tmp = `${dest}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(artifact, null, 2) + '\n');
      fs.renameSync(tmp, dest);
      written.push(`${name} (${(c.evm.deployedBytecode.object.length / 2) | 0} bytes)`);
    }
  }
  if (!quiet) console.log(`compiled with solc ${solc.version()} (evm ${EVM_VERSION}): ${written.join(', ')}`);
  return written;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    compile();
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
