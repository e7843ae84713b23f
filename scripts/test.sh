#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test
# (unit tests and the integration tests against real tmux).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec cargo test --all-targets "$@"
