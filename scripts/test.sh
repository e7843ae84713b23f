#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test
# (unit tests and the integration tests against real tmux), after
# type-checking the page's TypeScript (esbuild only strips the types).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
scripts/test-deps.sh
# Builds the page too (build.rs: npm ci, esbuild), so web/node_modules exists.
cargo build --all-targets
web/node_modules/.bin/tsc -p web
exec cargo test --all-targets "$@"
