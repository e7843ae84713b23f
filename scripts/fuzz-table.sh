#!/usr/bin/env bash
# The README's fuzzing table: every fuzz target (fuzz/fuzz_targets/) from an
# empty corpus for CPU_SECONDS of CPU each (default 3600: one CPU-hour;
# `ulimit -t`, so a busy machine does not shorten a run), at nice 19, as
# many at once as there are cores. Prints a markdown table: inputs run and
# coverage from libFuzzer's last status line, and failures (a crash or a
# failed property leaves an artifact, and this script exits 1).
#
#   scripts/fuzz-table.sh [CPU_SECONDS]
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/../fuzz"
cpu=${1:-3600}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build -s none >&2
bin=target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d /tmp/tmuxd-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mapfile -t targets < <(cargo fuzz list)
run() {
  local t=$1
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  # Ended by the CPU limit (SIGXCPU) or, failing that, by a wall-clock
  # bound far beyond it.
  (ulimit -t "$cpu"; exec nice -n 19 "$bin/$t" "$work/$t/corpus" \
    -artifact_prefix="$work/$t/artifacts/" -max_total_time=$((cpu * 20))) \
    >"$work/$t/log" 2>&1 || true
}
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= $(nproc))); do wait -n; done
  echo "scripts/fuzz-table.sh: $t for ${cpu} CPU seconds" >&2
  run "$t" &
done
wait
failed=0
echo "| target | CPU s | inputs run | coverage (edges) | corpus | failures |"
echo "|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
  last=$(grep -E '^#[0-9]+' "$work/$t/log" | tail -n 1)
  inputs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
  edges=$(grep -oE 'cov: [0-9]+' <<<"$last" | cut -d' ' -f2)
  corpus=$(grep -oE 'corp: [0-9]+' <<<"$last" | cut -d' ' -f2)
  artifacts=$(find "$work/$t/artifacts" -type f | wc -l)
  if ((artifacts > 0)); then
    failed=1
    cp -r "$work/$t/artifacts" "artifacts-$t-$(date +%s)"
    result="**$artifacts** (saved in fuzz/)"
  else
    result=none
  fi
  printf '| `%s` | %s | %s | %s | %s | %s |\n' "$t" "$cpu" "$(printf "%'d" "$inputs")" "$edges" "$corpus" "$result"
done
exit "$failed"
