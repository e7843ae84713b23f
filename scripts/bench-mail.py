#!/usr/bin/env python3
"""Email bridge latency and throughput on loopback, as ratios against plain
delivery measured in the same run (real Postfix + Dovecot, IMAP IDLE).

  scripts/bench-mail.py [ROUNDS] [BURST]      (defaults 10 and 100)

Reference: SMTP submit -> IMAP IDLE reports the message (one delivery).
Measured:  command mail -> confirmation reported in the sender's mailbox
           (two deliveries plus the bridge), YES mail -> text in the pane,
           and BURST commands submitted at once -> all decided.
Uses target/release/tmuxd (built if missing).
"""
import json, os, re, smtplib, socket, statistics, subprocess, sys, tempfile, time

if sys.argv[1:2] in (["-h"], ["--help"]):
    print(__doc__.strip())
    sys.exit(0)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
BURST = int(sys.argv[2]) if len(sys.argv) > 2 else 100
BIN = os.path.join(ROOT, "target/release/tmuxd")
if not os.path.exists(BIN):
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

work = tempfile.mkdtemp(prefix="tmuxd-bm", dir="/tmp")
os.chmod(work, 0o755)  # the mail servers run as other users
bed = os.path.join(work, "bed")
out = subprocess.run([os.path.join(ROOT, "scripts/mail-testbed.sh"), "start", bed], check=True, capture_output=True, text=True).stdout
env = dict(l.split("=", 1) for l in out.split())
SMTP, IMAP, PASSWORD = int(env["SMTP_PORT"]), int(env["IMAP_PORT"]), env["MAIL_PASSWORD"]
AR = "Authentication-Results: mx.example.test; dmarc=pass header.from=example.test\r\n"
daemon = None


class Idle:
    """A raw IMAP IDLE watcher on one mailbox."""

    def __init__(self, user):
        self.s = socket.create_connection(("127.0.0.1", IMAP))
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.cmd(f'a LOGIN "{user}" "{PASSWORD}"')
        self.cmd("b SELECT INBOX")

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        tag = line.split()[0].encode()
        while True:
            l = self.f.readline()
            if l.startswith(tag):
                return

    def wait_exists(self, action):
        """Runs action(), returns seconds until the server reports new mail."""
        self.cmd("n NOOP")  # flush news that arrived outside IDLE
        self.s.sendall(b"i IDLE\r\n")
        self.f.readline()  # + idling
        t0 = time.perf_counter()
        action()
        while b"EXISTS" not in self.f.readline():
            pass
        dt = time.perf_counter() - t0
        self.s.sendall(b"DONE\r\n")
        while not self.f.readline().startswith(b"i "):
            pass
        return dt


def send(rcpt, msg, smtp=None):
    s = smtp or smtplib.SMTP("127.0.0.1", SMTP)
    s.sendmail("alice@example.test", [rcpt], msg.encode())
    if smtp is None:
        s.quit()


def command(to, subject, mid, body, extra=""):
    return f"{AR}From: alice@example.test\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n{extra}\r\n{body}\r\n"


def audit_count(decision):
    try:
        with open(os.path.join(work, "state/mail/audit.jsonl")) as f:
            return sum(1 for l in f if json.loads(l)["decision"] == decision)
    except FileNotFoundError:
        return 0


def mailbox_count(user):
    import imaplib
    M = imaplib.IMAP4("127.0.0.1", IMAP)
    M.login(user, PASSWORD)
    M.select("INBOX", readonly=True)
    n = len(M.search(None, "ALL")[1][0].split())
    M.logout()
    return n


def pane():
    return subprocess.run(["tmux", "-S", os.path.join(work, "run/alice/tmux"), "capture-pane", "-p", "-J", "-S", "-", "-t", "=main:"], capture_output=True, text=True).stdout


try:
    with open(os.path.join(work, "pw"), "w") as f:
        f.write(PASSWORD)
    root = "allow_root_agents = true\n" if os.geteuid() == 0 else ""
    config = os.path.join(work, "tmuxd.toml")
    with open(config, "w") as f:
        f.write(f"""[daemon]
state_dir = "{work}/state"
runtime_dir = "{work}/run"
{root}
[web]
listen = "127.0.0.1:0"
[agent]
command = ["sh", "-c", "while IFS= read -r l; do echo \\"got: $l\\"; done"]
idle_after_s = 1
[mail]
address = "agent@example.test"
authserv_id = "mx.example.test"
sender_per_hour = 100000
user_per_hour = 100000
[mail.smtp]
host = "127.0.0.1"
port = {SMTP}
security = "plain"
[mail.imap]
host = "127.0.0.1"
port = {IMAP}
security = "plain"
username = "agent@example.test"
password_file = "{work}/pw"
[[users]]
name = "alice"
emails = ["alice@example.test"]
""")
    tmuxd = lambda *a: subprocess.run([BIN, "--config", config, *a], capture_output=True, text=True, check=True).stdout.strip()
    to = tmuxd("mail-address", "alice")
    log = open(os.path.join(work, "daemon.log"), "w")
    daemon = subprocess.Popen([BIN, "--config", config, "serve"], stderr=log, stdout=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "info"})
    deadline = time.time() + 30
    while "IMAP mailbox selected" not in open(os.path.join(work, "daemon.log")).read():
        assert time.time() < deadline, "daemon did not start"
        time.sleep(0.05)

    ref_box, alice_box = Idle("ref@example.test"), Idle("alice@example.test")
    ref, confirm, typed = [], [], []
    for i in range(ROUNDS):
        ref.append(ref_box.wait_exists(lambda: send("ref@example.test", f"From: alice@example.test\r\nSubject: r{i}\r\n\r\nx\r\n")))
        confirm.append(alice_box.wait_exists(lambda: send(to, command(to, "bench", f"c{i}@bench", f"round {i}"))))
        # The confirmation's Reply-To carries the token.
        m = subprocess.run(["python3", os.path.join(ROOT, "tests/it/common/mailclient.py"), "list", str(IMAP), "alice@example.test", PASSWORD], capture_output=True, text=True, check=True)
        mails = [x for x in json.loads(m.stdout) if dict(x["headers"]).get("In-Reply-To") == f"<c{i}@bench>" and "Reply-To" in dict(x["headers"])]
        assert mails, (i, m.stdout[:2000])
        reply_to = dict(mails[0]["headers"])["Reply-To"]
        t0 = time.perf_counter()
        send(reply_to, command(reply_to, "Re: bench", f"y{i}@bench", "YES"))
        while f"got: round {i}" not in pane():
            time.sleep(0.005)
        typed.append(time.perf_counter() - t0)
        # The result mail arrives before the next round starts.
        while mailbox_count("alice@example.test") < 2 * (i + 1):
            time.sleep(0.05)

    # Throughput: a burst on one SMTP connection.
    s = smtplib.SMTP("127.0.0.1", SMTP)
    t0 = time.perf_counter()
    for i in range(BURST):
        send("ref@example.test", f"From: alice@example.test\r\nSubject: b{i}\r\n\r\nx\r\n", s)
    while mailbox_count("ref@example.test") < ROUNDS + BURST:
        time.sleep(0.05)
    ref_burst = time.perf_counter() - t0
    before = audit_count("pending")
    t0 = time.perf_counter()
    for i in range(BURST):
        send(to, command(to, "burst", f"b{i}@bench", f"burst {i}"), s)
    while audit_count("pending") < before + BURST:
        time.sleep(0.02)
    bridge_burst = time.perf_counter() - t0
    s.quit()

    med = statistics.median
    r = med(ref)
    # The README's table (scripts/measurements.sh mail).
    ms = lambda v: f"{v * 1000:.0f} ms"
    print("| | p50 | ratio |")
    print("|---|---|---|")
    print(f"| reference: submit → IDLE reports delivery ({ROUNDS} rounds) | {ms(r)} | 1 |")
    print(f"| command mail → confirmation reported in the sender's mailbox | {ms(med(confirm))} | {med(confirm) / r:.2f}× (two deliveries are 2.00×) |")
    print(f"| YES mail → text in the pane | {ms(med(typed))} | {med(typed) / r:.2f}× |")
    print(f"| burst of {BURST} commands: decisions per second | {BURST / bridge_burst:.1f} msg/s | {ref_burst / bridge_burst:.2f}× plain delivery's {BURST / ref_burst:.0f} msg/s |")
finally:
    if daemon:
        daemon.terminate()
        daemon.wait()
        subprocess.run(["tmux", "-S", os.path.join(work, "run/alice/tmux"), "kill-server"], capture_output=True)
    subprocess.run([os.path.join(ROOT, "scripts/mail-testbed.sh"), "stop", bed])
