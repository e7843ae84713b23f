#!/usr/bin/env bash
# Regenerates the README's measurement tables: builds the release binaries,
# runs each measurement, and replaces each block between
# `<!-- measured:NAME -->` and `<!-- /measured:NAME -->` in README.md with
# its output under a line naming the machine, date and commit.
#
#   scripts/measurements.sh [NAME...]
#
# NAME (default: all but fuzz):
#   terminal    scripts/bench.sh: the browser terminal, Rust client
#   fanout      scripts/bench.sh fanout: fan-out CPU against the commit
#               before the performance work, built from git
#   browser     scripts/bench.sh browser: real headless Chromium viewers
#   transcript  scripts/bench.sh transcript
#   scale       scripts/bench.sh scale: 200 sessions over 50 users
#   workspace   scripts/bench.sh workspace: 2 GB downloads, daemon memory
#   mail        scripts/bench-mail.py 10 100: real Postfix + Dovecot
#   exposure    systemd-analyze security of systemd/tmuxd.service
#   fuzz        scripts/fuzz-table.sh: one CPU-hour per fuzz target
#               (8 CPU-hours; FUZZ_CPU_SECONDS=N for less)
#
# Run it on a quiet machine: the figures are ratios against references
# measured in the same run, but CPU figures feel anything else running.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
names=("$@")
if ((${#names[@]} == 0)); then
  names=(terminal fanout browser transcript scale workspace mail exposure)
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
  echo "scripts/measurements.sh: running $name" >&2
  case "$name" in
    terminal) out=$(target/release/examples/bench) ;;
    browser | transcript | scale | workspace) out=$(target/release/examples/bench "$name") ;;
    fanout) out=$(scripts/bench.sh fanout) ;;
    mail) out=$(scripts/bench-mail.py 10 100) ;;
    exposure)
      level=$(systemd-analyze security --offline=true systemd/tmuxd.service 2>/dev/null | grep -oE 'Overall exposure level.*' | grep -oE '[0-9]+\.[0-9]+ [A-Z]+')
      out="| unit | exposure (systemd-analyze security --offline=true) |
|---|---|
| systemd/tmuxd.service | $level |"
      ;;
    fuzz) out=$(scripts/fuzz-table.sh "${FUZZ_CPU_SECONDS:-3600}") ;;
    *)
      echo "scripts/measurements.sh: unknown measurement $name (terminal, fanout, browser, transcript, scale, mail, exposure, fuzz)" >&2
      exit 2
      ;;
  esac
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
