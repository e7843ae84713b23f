#!/usr/bin/env python3
"""Per-thread wakeups of an idle daemon, from /proc.

    scripts/idle-wakeups.py BINARY USERS WINDOW_S [SETTLE_S]

Starts BINARY serve (as root: agents as root, on purpose) with USERS users
whose agents print 5 MB of base64 and then wait, so the transcript store
has written and its threads exist; waits for READY=1 (sd_notify) and
SETTLE_S seconds (default 40) for ingest and idle transitions to finish;
then counts each thread's context switches (voluntary + involuntary) over
WINDOW_S seconds, and the daemon's CPU ticks. Cleans up what it started.
"""
import collections, os, shutil, socket, subprocess, sys, tempfile, time

if sys.argv[1:2] in (["-h"], ["--help"]):
    print(__doc__.strip())
    sys.exit(0)

binary, users, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settle = int(sys.argv[4]) if len(sys.argv) > 4 else 40
d = tempfile.mkdtemp(prefix="tmuxd-idle", dir="/tmp")
cfg = (f'[daemon]\nallow_root_agents = true\nstate_dir = "{d}/state"\nruntime_dir = "{d}/run"\n'
       '[web]\nlisten = "127.0.0.1:0"\n'
       '[agent]\ncommand = ["sh", "-c", "head -c 5000000 /dev/urandom | base64; exec cat"]\n')
cfg += "".join(f'[[users]]\nname = "u{i:02}"\n' for i in range(users))
open(f"{d}/c.toml", "w").write(cfg)
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(f"{d}/notify.sock")
ns.settimeout(60)
p = subprocess.Popen([binary, "serve", "--config", f"{d}/c.toml"],
                     env=dict(os.environ, NOTIFY_SOCKET=f"{d}/notify.sock", RUST_LOG="warn"),
                     stderr=subprocess.DEVNULL)
try:
    while not ns.recv(4096).startswith(b"READY=1"):
        pass
    time.sleep(settle)

    def threads():
        out = {}
        for t in os.listdir(f"/proc/{p.pid}/task"):
            status = open(f"/proc/{p.pid}/task/{t}/status").read().splitlines()
            name = status[0].split(":", 1)[1].strip()
            out[t] = (name, sum(int(l.split()[1]) for l in status if "ctxt_switches" in l))
        return out

    def cpu():
        return sum(int(x) for x in open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])

    a, c0 = threads(), cpu()
    time.sleep(window)
    b, c1 = threads(), cpu()
    per = collections.Counter()
    for t, (name, n) in b.items():
        per[name] += n - a.get(t, (name, 0))[1]
    print(f"{binary}: {users} users, {len(b)} threads; over {window} s idle: "
          f"{sum(per.values())} context switches {dict(sorted(per.items()))}, {c1 - c0} CPU ticks")
finally:
    p.terminate()
    p.wait()
    for u in range(users):
        sock = f"{d}/run/u{u:02}/tmux"
        if os.path.exists(sock):
            subprocess.run(["tmux", "-S", sock, "kill-server"], stderr=subprocess.DEVNULL)
    shutil.rmtree(d, ignore_errors=True)
