#!/usr/bin/env bash
# CI entry point for the L2 contracts: install pinned npm deps (if missing), compile with
# npm solc, and run the node:test suites against real anvil nodes on 127.0.0.1.
# Needs only node >= 20 and npm. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ] || [ ! -d node_modules/solc ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

node scripts/compile.mjs
node --test test/
