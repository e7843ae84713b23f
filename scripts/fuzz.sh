#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted input (libFuzzer via
# cargo-fuzz, on stable Rust with `-s none`: no sanitizer, which needs a
# nightly toolchain). The targets are in src/fuzz.rs; fuzz/ wraps them.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# runs each TARGET (default: all) for SECONDS (default 3600), one after
# another, keeping the corpus in fuzz/corpus/TARGET between runs. CI runs
# `scripts/fuzz.sh 10`. Exits non-zero on the first crash or failed
# property; the input is saved in fuzz/artifacts/TARGET/.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/../fuzz"
seconds=${1:-3600}
shift || true
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked --version 0.13.2
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  echo "scripts/fuzz.sh: $t for ${seconds}s" >&2
  if ! cargo fuzz run "$t" -s none -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "scripts/fuzz.sh: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E '^Done|^stat::(number_of_executed_units|peak_rss_mb)' "$log" >&2 || true
done
