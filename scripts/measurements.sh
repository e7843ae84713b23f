#!/usr/bin/env bash
# Regenerates the README's benchmark tables: builds the release binaries,
# runs each benchmark of examples/bench/ (the browser terminal with a Rust
# client and in real Chromium, the transcript path, scale), and replaces each block between
# `<!-- measured:NAME -->` and `<!-- /measured:NAME -->` in README.md with
# the benchmark's output under a line naming the machine, date and commit.
#
#   scripts/measurements.sh [NAME...]    (default: terminal browser transcript scale)
#
# Run it on a quiet machine: the figures are ratios against references
# measured in the same run, but CPU figures feel anything else running.
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
if ((${#names[@]} == 0)); then
  names=(terminal browser transcript scale)
fi
cargo build --release --bins --examples -q
commit=$(git rev-parse --short HEAD)
# README.md is what this script writes: its own changes do not count.
if ! git diff --quiet HEAD -- . ':!README.md'; then
  commit="$commit with uncommitted changes"
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
machine="$(nproc) cores ($cpu), $mem, Linux $(uname -r), tmux $(tmux -V | cut -d' ' -f2)"
for name in "${names[@]}"; do
  case "$name" in
    terminal) args=() ;;
    browser | transcript | scale) args=("$name") ;;
    *)
      echo "scripts/measurements.sh: unknown benchmark $name (terminal, browser, transcript, scale)" >&2
      exit 2
      ;;
  esac
  echo "scripts/measurements.sh: running $name" >&2
  out=$(target/release/examples/bench "${args[@]}")
  stamp="_\`scripts/measurements.sh $name\` on $(date -u +%Y-%m-%d), commit $commit; $machine._"
  python3 - "$name" "$stamp" "$out" <<'PY'
import sys
name, stamp, out = sys.argv[1:]
start, end = f"<!-- measured:{name} -->", f"<!-- /measured:{name} -->"
text = open("README.md").read()
if start not in text or end not in text:
    sys.exit(f"scripts/measurements.sh: README.md has no {start} ... {end} block")
head, rest = text.split(start, 1)
_, tail = rest.split(end, 1)
open("README.md", "w").write(f"{head}{start}\n{stamp}\n\n{out.strip()}\n{end}{tail}")
PY
done
