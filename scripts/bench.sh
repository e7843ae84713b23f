#!/usr/bin/env bash
# The browser-terminal benchmark (examples/bench/): tmuxd's WebSocket
# terminal against a direct `tmux attach` in a local PTY, same run.
#
#   scripts/bench.sh [echo|transcript|scale|browser|workspace]
#   scripts/bench.sh flood [N]      one N-viewer flood (default 10) of this
#                                   build: its time and the daemon's CPU,
#                                   with the daemon's pid on stderr for
#                                   perf or strace
#   scripts/bench.sh fanout [REV]   this build's fan-out CPU against REV's
#                                   (default 24b9233, the last commit
#                                   before the performance issue's changes),
#                                   REV built here from git
#                                   (BENCH_ROUNDS=N rounds, default 5)
#
# BENCH_NO_TRANSCRIPTS=1: the daemon of the default run, echo and flood
# records nothing (what recording adds, measured apart).
# BENCH_TMUXD=PATH: measure that tmuxd binary instead of this build's (to
# compare two builds in alternating runs).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
cargo build --release --bins --examples -q
if [[ "${1:-}" == fanout ]]; then
  rev=$(git rev-parse --short "${2:-24b9233}")
  # Its own target directory, kept: a second run rebuilds nothing.
  bin="target/baseline/$rev/tmuxd"
  if [[ ! -x "$bin" ]]; then
    tree=$(mktemp -d /tmp/tmuxd-baseline.XXXXXX)
    git worktree add --detach -q "$tree" "$rev"
    trap 'git worktree remove --force "$tree"' EXIT
    echo "scripts/bench.sh: building tmuxd at $rev" >&2
    CARGO_TARGET_DIR="$PWD/target/baseline/build" cargo build --release --bin tmuxd -q --manifest-path "$tree/Cargo.toml"
    mkdir -p "target/baseline/$rev"
    cp target/baseline/build/release/tmuxd "$bin"
  fi
  BENCH_BASELINE_REV="$rev" target/release/examples/bench fanout "$bin"
  exit
fi
exec target/release/examples/bench "$@"
