#!/usr/bin/env bash
# Measures what one agent session costs, for the capacity model (README:
# Scaling out): N real Claude Code sessions (the CLI scripts/test-deps.sh
# pins), each in tmux, offline against a stand-in of the Messages API on
# loopback that streams a short text answer. Idle: RSS and CPU over IDLE
# seconds at the prompt. Busy: a prompt to every session every 2 s for BUSY
# seconds (each answered and drawn): CPU, and the peak RSS. Figures are per
# session.
#
#   scripts/measure-agent.sh [SESSIONS] [IDLE_SECONDS] [BUSY_SECONDS]
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
n=${1:-3}
idle=${2:-30}
busy=${3:-30}
claude=/opt/tmuxd-test/claude-code-2.1.332/node_modules/.bin/claude
[ -x "$claude" ] || { echo "measure-agent: $claude is missing: run scripts/test-deps.sh" >&2; exit 1; }
dir=$(mktemp -d /tmp/tmuxd-agent.XXXX)
sock=$dir/tmux.sock
hz=$(getconf CLK_TCK)
api_pid=
cleanup() {
  tmux -S "$sock" kill-server 2>/dev/null || true
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# The stand-in: text answers, streamed as server-sent events.
cat > "$dir/api.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path.startswith("/v1/messages/count_tokens"):
            return self.send(b'{"input_tokens":10}', "application/json")
        if not self.path.startswith("/v1/messages"):
            return self.send(b"{}", "application/json")
        msg = {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 10, "output_tokens": 1}}
        if not body.get("stream"):
            msg["content"] = [{"type": "text", "text": "All done."}]
            msg["stop_reason"] = "end_turn"
            return self.send(json.dumps(msg).encode(), "application/json")
        events = [("message_start", {"type": "message_start", "message": msg}),
                  ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                  ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "All done. " * 20}}),
                  ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                  ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 40}}),
                  ("message_stop", {"type": "message_stop"})]
        self.send("".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode(), "text/event-stream")
    def do_GET(self):
        self.send(b"{}", "application/json")
    def send(self, data, kind):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$dir/api.py" > "$dir/port" &
api_pid=$!
for _ in $(seq 50); do [ -s "$dir/port" ] && break; sleep 0.1; done
port=$(cat "$dir/port")

mkdir -p "$dir/home" "$dir/work"
printf '{"hasCompletedOnboarding":true,"theme":"dark","numStartups":5,"projects":{"%s":{"hasTrustDialogAccepted":true,"hasCompletedProjectOnboarding":true}}}' "$dir/work" > "$dir/home/.claude.json"
for i in $(seq "$n"); do
  tmux -S "$sock" -u new-session -d -s "s$i" -x 120 -y 30 -c "$dir/work" \
    env HOME="$dir/home" ANTHROPIC_BASE_URL="http://127.0.0.1:$port" ANTHROPIC_AUTH_TOKEN=stand-in \
    DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 "$claude" --permission-mode default
done
# Each at its prompt, settled.
for i in $(seq "$n"); do
  for _ in $(seq 300); do tmux -S "$sock" capture-pane -p -t "s$i" | grep -q shortcuts && break; sleep 0.1; done
done
sleep 10
agents() { for i in $(seq "$n"); do pgrep -P "$(tmux -S "$sock" display -p -t "s$i" '#{pane_pid}')" || tmux -S "$sock" display -p -t "s$i" '#{pane_pid}'; done; }
ticks() { local t=0; for p in $(agents); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
rss() { local t=0; for p in $(agents); do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }

rss_idle=$(rss)
t0=$(ticks); sleep "$idle"; t1=$(ticks)
idle_cpu=$(((t1 - t0) * 1000 / hz))

t0=$(ticks); peak=0; end=$((SECONDS + busy)); prompts=0
while [ "$SECONDS" -lt "$end" ]; do
  for i in $(seq "$n"); do tmux -S "$sock" send-keys -t "s$i" "say something $prompts" Enter; done
  prompts=$((prompts + 1))
  sleep 2
  r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
done
t1=$(ticks)
busy_cpu=$(((t1 - t0) * 1000 / hz))
answered=$(tmux -S "$sock" capture-pane -p -S - -t s1 | grep -c "All done" || true)

echo "| Claude Code 2.1.332, per session ($n sessions) | value |"
echo "| --- | --- |"
echo "| RSS idle at its prompt | $((rss_idle / n / 1024)) MiB |"
echo "| CPU idle | $(awk "BEGIN {printf \"%.2f\", $idle_cpu / $n / ($idle * 10)}") % of a core |"
echo "| RSS peak, a prompt every 2 s | $((peak / n / 1024)) MiB |"
echo "| CPU busy, a prompt every 2 s ($prompts prompts, $answered answers drawn in s1) | $(awk "BEGIN {printf \"%.1f\", $busy_cpu / $n / ($busy * 10)}") % of a core |"
