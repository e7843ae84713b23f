#!/usr/bin/env bash
# Measures the core daemon with N users (default 50): time for `serve` to
# bring up N sessions, time to adopt N live sessions after SIGKILL, daemon
# RSS, and daemon CPU time and wakeups (context switches) over an idle
# period (default 60 s). Start-up figures are also given as a ratio against
# a reference run in the same script: a shell loop creating the same N tmux
# sessions directly, with no daemon.
#
#   scripts/measure-core.sh [USERS] [IDLE_SECONDS]
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
users=${1:-50}
idle=${2:-60}

cargo build --release -q
bin=$PWD/target/release/tmuxd
dir=$(mktemp -d /tmp/tmuxd-m.XXXX)
hz=$(getconf CLK_TCK)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for s in "$dir"/run/*/tmux "$dir"/ref/*.sock; do
    [ -S "$s" ] && tmux -S "$s" kill-server 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

{
  echo "[daemon]"
  echo "state_dir = \"$dir/state\""
  echo "runtime_dir = \"$dir/run\""
  echo "[web]"
  echo 'listen = "127.0.0.1:0"'
  echo "[agent]"
  echo 'command = ["sh", "-c", "exec cat"]'
  for i in $(seq 1 "$users"); do
    printf '[[users]]\nname = "u%03d"\nworkdir = "%s"\n' "$i" "$dir"
  done
} > "$dir/config.toml"

now_ms() { date +%s%3N; }

# Starts serve, waits for "ready", prints wall-clock ms and the pid.
start_serve() {
  local log=$1 t0 t1
  t0=$(now_ms)
  HOME=$dir "$bin" --config "$dir/config.toml" serve 2>"$log" &
  local pid=$!
  pids+=("$pid")
  while ! grep -q ' ready ' "$log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(now_ms)
  echo "$((t1 - t0)) $pid"
}

# Reference: the same N sessions created directly with tmux.
mkdir -p "$dir/ref"
t0=$(now_ms)
for i in $(seq 1 "$users"); do
  tmux -S "$dir/ref/u$i.sock" new-session -d -s main -c "$dir" -- sh -c 'exec cat'
done
ref_ms=$(( $(now_ms) - t0 ))
for s in "$dir"/ref/*.sock; do tmux -S "$s" kill-server; done

read -r up_ms pid < <(start_serve "$dir/serve1.log")
sleep 1
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
count=$(HOME=$dir "$bin" --config "$dir/config.toml" sessions --json | grep -c '"state": "running"')

kill -9 "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
read -r adopt_ms pid < <(start_serve "$dir/serve2.log")
adopt_line=$(grep ' ready ' "$dir/serve2.log")
sleep 2

# Two idle windows: the first includes each agent's one-time
# running -> idle transition (10 s after start); the second is steady state.
ctx() { cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
cpu() { awk '{print $14 + $15}' /proc/"$pid"/stat; }
c0=$(cpu); w0=$(ctx)
sleep "$idle"
c1=$(cpu); w1=$(ctx)
sleep "$idle"
c2=$(cpu); w2=$(ctx)

echo "tmuxd core measurements: $users users, tmux $(tmux -V | cut -d' ' -f2), $(nproc) cores"
echo "sessions running after start:            $count / $users"
printf 'reference (shell loop, %d tmux new-session): %d ms\n' "$users" "$ref_ms"
printf 'serve: bring up %d sessions:             %d ms  (%.2fx the reference)\n' "$users" "$up_ms" "$(awk "BEGIN {print $up_ms / $ref_ms}")"
printf 'serve: adopt %d live sessions (SIGKILL): %d ms  (%.2fx the reference)\n' "$users" "$adopt_ms" "$(awk "BEGIN {print $adopt_ms / $ref_ms}")"
echo "  adoption log: ${adopt_line#*ready }"
echo "daemon RSS with $users sessions:            $((rss_kb / 1024)) MiB ($rss_kb kB)"
echo "daemon CPU over the first ${idle} s idle:     $(( (c1 - c0) * 1000 / hz )) ms, then $(( (c2 - c1) * 1000 / hz )) ms over the next ${idle} s"
echo "daemon wakeups (context switches), first ${idle} s idle (incl. each agent's running->idle transition): $((w1 - w0))"
echo "daemon wakeups (context switches), next ${idle} s idle (steady state): $((w2 - w1))"
