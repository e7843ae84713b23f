#!/usr/bin/env bash
# The browser-terminal benchmark (examples/bench/): tmuxd's WebSocket
# terminal against a direct `tmux attach` in a local PTY, same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples -q
exec target/release/examples/bench "$@"
