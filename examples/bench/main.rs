//! Browser-terminal benchmark: tmuxd's WebSocket terminal against a direct
//! `tmux attach` in a local PTY (the reference), measured in the same run.
//!
//! Run with `scripts/bench.sh` (release build). It starts the real daemon
//! on a private directory and port, and measures:
//! - keystroke echo latency p50/p99/max over 2000 keys;
//! - time for a 50 MB flood to reach the viewer (end marker), with 1, 10
//!   and 50 viewers (all must see the marker), and the daemon's CPU for it
//!   per viewer-MB;
//! - daemon CPU and wakeups over 30 s with 50 idle viewers.
//!
//! Each figure is printed beside the reference and as a ratio.
//!
//! `scripts/bench.sh scale`: 200 sessions over 50 users (see `scale.rs`).
//! `scripts/bench.sh browser`: real headless Chromium viewers (see
//! `browser.rs`).
//! `scripts/bench.sh workspace`: 2 GB workspace downloads and the
//! daemon's memory (see `workspace.rs`).
//!
//! `scripts/bench.sh transcript` measures recording instead: ingest
//! throughput and CPU per MB (the recorder in this process, on a spool
//! backlog), bytes on disk per raw byte, and the 50 MB flood time-to-marker
//! in a viewer with recording on against recording off (two daemons,
//! alternating rounds).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use portable_pty::{CommandBuilder, PtySize};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod browser;
mod fanout;
mod scale;
mod transcript;
mod workspace;
use browser::browser_bench;
use fanout::fanout_bench;
use scale::scale_bench;
use transcript::transcript_bench;
use workspace::workspace_bench;

const KEYS: usize = 2000;
const ECHO_ROUNDS: usize = 4;
const FLOOD_BYTES: usize = 50_000_000;
const IDLE_SECS: u64 = 30;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Daemon {
    child: Child,
    /// Kept for the daemon's lifetime; removed on drop.
    _dir: tempfile::TempDir,
    _run: tempfile::TempDir,
    url: String,
    token: String,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// The daemon measured: `BENCH_TMUXD`, or this build's.
fn tmuxd_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("BENCH_TMUXD") {
        return bin.into();
    }
    let exe = std::env::current_exe().unwrap();
    // target/release/examples/bench -> target/release/tmuxd
    exe.parent().unwrap().parent().unwrap().join("tmuxd")
}

/// Whether the daemon of the default run, echo and flood records
/// (`BENCH_NO_TRANSCRIPTS=1`: not, to measure what recording adds apart).
fn recording() -> bool {
    std::env::var_os("BENCH_NO_TRANSCRIPTS").is_none()
}

fn start_daemon(transcripts: bool) -> Daemon {
    start_daemon_with(&tmuxd_bin(), transcripts)
}

/// A daemon of the binary `bin` with one user, `bench`.
fn start_daemon_with(bin: &Path, transcripts: bool) -> Daemon {
    start_daemon_for(
        bin,
        transcripts,
        "[[users]]\nname = \"bench\"\nworkdir = \"{d}\"\n",
        "bench",
    )
}

/// A daemon for `users` (a TOML `[[users]]` list; `{d}` is its
/// directory), with a token for `token_user`.
fn start_daemon_for(bin: &Path, transcripts: bool, users: &str, token_user: &str) -> Daemon {
    assert!(
        bin.exists(),
        "{} is missing: build with `cargo build --release --bins --examples`",
        bin.display()
    );
    let dir = tempfile::Builder::new()
        .prefix("tmuxd-b")
        .tempdir_in("/tmp")
        .unwrap();
    // The runtime directory (sockets, spools) on a tmpfs, as under systemd;
    // the transcript database on disk.
    let rundir = tempfile::Builder::new()
        .prefix("tmuxd-b")
        .tempdir_in("/dev/shm")
        .unwrap();
    let d = dir.path().display();
    let r = rundir.path().display();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\n# Run as root on purpose: the agent is a plain shell.\nallow_root_agents = true\nmax_sessions_per_user = 8\nstate_dir = \"{d}/s\"\nruntime_dir = \"{r}/r\"\n[web]\nlisten = \"127.0.0.1:0\"\nmax_viewers_per_session = 64\nmax_viewers_per_user = 64\n[transcript]\nenabled = {transcripts}\n[agent]\ncommand = [\"sh\"]\n{}",
            users.replace("{d}", &d.to_string())
        ),
    )
    .unwrap();
    let token = tmuxd_with(bin, &config, dir.path(), &["token", token_user]);
    let (child, url) = serve(bin, &config, dir.path());
    let socket = rundir.path().join(format!("r/{token_user}/tmux"));
    Daemon {
        child,
        _dir: dir,
        _run: rundir,
        url,
        token,
        socket,
    }
}

/// Runs `tmuxd --config CONFIG ARGS`; its stdout.
fn tmuxd(config: &Path, home: &Path, args: &[&str]) -> String {
    tmuxd_with(&tmuxd_bin(), config, home, args)
}

fn tmuxd_with(bin: &Path, config: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Starts `BIN serve`; returns it once ready, with its URL.
fn serve(bin: &Path, config: &Path, home: &Path) -> (Child, String) {
    let log = home.join("log");
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("HOME", home)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(i) = text.find("url=http://") {
            let rest = &text[i + 4..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if text.contains(" ready ") {
                break rest[..end].trim_end_matches('/').to_owned();
            }
        }
        assert!(Instant::now() < deadline, "daemon did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(5));
    };
    (child, url)
}

/// A terminal client: the WebSocket viewer or the reference PTY.
enum Viewer {
    Ws(Box<Ws>),
    Pty {
        output: mpsc::Receiver<Vec<u8>>,
        input: Box<dyn Write + Send>,
        child: Box<dyn portable_pty::Child + Send + Sync>,
        _master: Box<dyn portable_pty::MasterPty + Send>,
    },
}

impl Viewer {
    async fn ws(d: &Daemon) -> Viewer {
        let url = format!(
            "{}/ws/sessions/bench/main?cols=120&rows=40",
            d.url.replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", d.token).parse().unwrap(),
        );
        // As browsers do, with Nagle off.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .unwrap();
        Viewer::Ws(Box::new(ws))
    }

    fn pty(socket: &Path) -> Viewer {
        let pair = portable_pty::native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 120,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new("tmux");
        cmd.args([
            "-S",
            &socket.display().to_string(),
            "attach-session",
            "-t",
            "=main",
        ]);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("TMUX");
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let input = pair.master.take_writer().unwrap();
        let (tx, rx) = mpsc::channel(64);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Viewer::Pty {
            output: rx,
            input,
            child,
            _master: pair.master,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        match self {
            Viewer::Ws(ws) => ws
                .send(Message::Binary(bytes.to_vec().into()))
                .await
                .unwrap(),
            Viewer::Pty { input, .. } => {
                input.write_all(bytes).unwrap();
                input.flush().unwrap();
            }
        }
    }

    /// The next chunk of terminal output.
    async fn recv(&mut self) -> Vec<u8> {
        match self {
            Viewer::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => return b.to_vec(),
                    Some(Ok(Message::Close(f))) => panic!("closed: {f:?}"),
                    Some(Ok(_)) => continue,
                    other => panic!("websocket: {other:?}"),
                }
            },
            Viewer::Pty { output, .. } => output.recv().await.expect("pty output"),
        }
    }

    async fn wait_for(&mut self, needle: &[u8], secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("{:?} not seen in {secs}s", String::from_utf8_lossy(needle))
                });
            tail.extend_from_slice(&chunk);
            if tail.windows(needle.len()).any(|w| w == needle) {
                return;
            }
            let keep = tail.len().saturating_sub(needle.len());
            tail.drain(..keep);
        }
    }

    /// Drops queued output.
    async fn drain(&mut self) {
        while let Ok(_chunk) = tokio::time::timeout(Duration::from_millis(200), self.recv()).await {
        }
    }

    async fn close(self) {
        match self {
            Viewer::Ws(mut ws) => {
                let _ = ws.send(Message::Close(None)).await;
            }
            Viewer::Pty { mut child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Keystroke echo at the shell prompt (the terminal echoes each key): each
/// key is sent once the previous one came back, `keys` of them. The
/// client does what a terminal does before it can paint: every byte goes
/// through a terminal emulator (vt100, as xterm.js parses in the page),
/// and the echo counts once the cursor's line changed.
async fn echo_latency(v: &mut Viewer, keys: usize) -> Vec<Duration> {
    v.drain().await;
    let size = |n| std::num::NonZeroU16::new(n).expect("nonzero");
    let mut term = vt100::Parser::new(size(40), size(120), 0);
    let line = |t: &vt100::Parser| {
        let s = t.screen();
        s.rows(0, 120)
            .nth(s.cursor_position().0 as usize)
            .unwrap_or_default()
    };
    let mut samples = Vec::with_capacity(keys);
    for i in 0..keys {
        let before = line(&term);
        let key = b'a' + (i % 26) as u8;
        let t0 = Instant::now();
        v.send(&[key]).await;
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(10), v.recv())
                .await
                .expect("no echo in 10 s");
            term.process(&chunk);
            if line(&term) != before {
                break;
            }
        }
        samples.push(t0.elapsed());
    }
    // ^U: erase the typed line.
    v.send(&[0x15]).await;
    v.drain().await;
    samples
}

/// Echo samples for the PTY reference and tmuxd, in alternating rounds
/// (a fresh viewer each round, one attached at a time), sorted.
async fn echo_rounds(d: &Daemon) -> (Vec<Duration>, Vec<Duration>) {
    let (mut reference, mut relay) = (Vec::new(), Vec::new());
    for _ in 0..ECHO_ROUNDS {
        let mut pty = Viewer::pty(&d.socket);
        reference.extend(echo_latency(&mut pty, KEYS / ECHO_ROUNDS).await);
        pty.close().await;
        let mut ws = Viewer::ws(d).await;
        relay.extend(echo_latency(&mut ws, KEYS / ECHO_ROUNDS).await);
        ws.close().await;
    }
    reference.sort();
    relay.sort();
    (reference, relay)
}

/// A flood of FLOOD_BYTES, then a marker; time until every viewer saw it.
async fn flood(viewers: &mut [Viewer], tag: &str) -> Duration {
    let marker = format!("flood-{tag}-");
    let computed = format!("{marker}{}", 40 + 2);
    let t0 = Instant::now();
    viewers[0]
        .send(format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {FLOOD_BYTES}; echo {marker}$((40+2))\r").as_bytes())
        .await;
    let waits = viewers
        .iter_mut()
        .map(|v| v.wait_for(computed.as_bytes(), 300));
    futures_util::future::join_all(waits).await;
    t0.elapsed()
}

/// A flood seen by `n` WebSocket viewers of `d`: the time until all saw
/// the marker, and the daemon's CPU (ms) meanwhile.
async fn ws_flood(d: &Daemon, n: usize, tag: &str) -> (Duration, u64) {
    let mut wss = Vec::new();
    for _ in 0..n {
        wss.push(Viewer::ws(d).await);
    }
    for v in &mut wss {
        v.drain().await;
    }
    let c0 = cpu_ms(d.child.id());
    let t = flood(&mut wss, tag).await;
    let cpu = cpu_ms(d.child.id()) - c0;
    for v in wss {
        v.close().await;
    }
    (t, cpu)
}

fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks * 1000 / 100
}

/// Every thread's context switches (voluntary + not), by "tid:name".
fn thread_switches(pid: u32) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("")
            .trim();
        let n: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        out.insert(format!("{}:{name}", t.file_name().to_string_lossy()), n);
    }
    out
}

/// All threads' context switches.
fn wakeups(pid: u32) -> u64 {
    thread_switches(pid).values().sum()
}

/// The reference: a flood seen by `n` PTY viewers of `socket`.
async fn reference_flood(socket: &Path, n: usize) -> Duration {
    let mut refs: Vec<Viewer> = (0..n).map(|_| Viewer::pty(socket)).collect();
    for v in &mut refs {
        v.drain().await;
    }
    let t = flood(&mut refs, &format!("r{n}")).await;
    for v in refs {
        v.close().await;
    }
    t
}

fn tmux_server_pid(socket: &Path) -> u32 {
    let out = Command::new("tmux")
        .arg("-S")
        .arg(socket)
        .args(["display-message", "-p", "#{pid}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// One row of a markdown table.
fn row(cells: &[&str]) {
    println!("| {} |", cells.join(" | "));
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("transcript") => return transcript_bench().await,
        Some("scale") => return scale_bench().await,
        Some("browser") => return browser_bench().await,
        Some("workspace") => return workspace_bench().await,
        Some("flood") => {
            // `bench flood N`: one N-viewer flood of this build, for
            // profiling (perf, strace) the relay.
            let n = std::env::args()
                .nth(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(10);
            let d = start_daemon(recording());
            eprintln!("daemon pid {}", d.child.id());
            let (t, cpu) = ws_flood(&d, n, "p").await;
            let per_mb = cpu as f64 / (n * FLOOD_BYTES) as f64 * 1e6;
            println!(
                "{n} viewers: {:.2} s, daemon CPU {cpu} ms, {per_mb:.2} ms per viewer-MB",
                t.as_secs_f64()
            );
            return;
        }
        Some("fanout") => {
            let baseline = std::env::args()
                .nth(2)
                .expect("usage: bench fanout BASELINE_TMUXD");
            return fanout_bench(Path::new(&baseline)).await;
        }
        _ => {}
    }
    // `bench echo`: the keystroke echo figures alone.
    let echo_only = std::env::args().nth(1).as_deref() == Some("echo");
    let d = start_daemon(recording());
    let daemon_pid = d.child.id();
    row(&["figure", "tmuxd (WebSocket)", "reference (PTY)", "ratio"]);
    row(&["---", "---", "---", "---"]);

    // Echo latency on the same session, alternating.
    let (r, w) = echo_rounds(&d).await;
    for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        let (a, b) = (percentile(&w, p), percentile(&r, p));
        row(&[
            &format!("keystroke echo {name} ({KEYS} keys)"),
            &format!("{:.3} ms", a.as_secs_f64() * 1000.0),
            &format!("{:.3} ms", b.as_secs_f64() * 1000.0),
            &format!("{:.2}×", ratio(a, b)),
        ]);
    }
    if echo_only {
        return;
    }
    for n in [1usize, 10, 50] {
        let tr = reference_flood(&d.socket, n).await;
        let (tw, relay_cpu) = ws_flood(&d, n, &format!("w{n}")).await;
        let viewers = format!("{n} viewer{}", if n == 1 { "" } else { "s" });
        row(&[
            &format!("50 MB flood to end marker, {viewers}"),
            &format!("{:.2} s", tw.as_secs_f64()),
            &format!("{:.2} s", tr.as_secs_f64()),
            &format!("{:.2}×", ratio(tw, tr)),
        ]);
        // The daemon's CPU for the flood (recording included), per MB
        // delivered to one viewer.
        let viewer_mb = (n * FLOOD_BYTES) as f64 / 1e6;
        row(&[
            &format!("daemon CPU per viewer-MB, {viewers}"),
            &format!("{:.2} ms", relay_cpu as f64 / viewer_mb),
            "",
            "",
        ]);
    }

    // Idle: 50 viewers, nothing printed.
    let tmux_pid = tmux_server_pid(&d.socket);
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(Viewer::ws(&d).await);
    }
    for v in &mut idle {
        v.drain().await;
    }
    // The attach redraws make the session `running`; it turns `idle`
    // 10 s later (idle_after_s). Idle is measured after that.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (c0, w0, t0) = (cpu_ms(daemon_pid), wakeups(daemon_pid), cpu_ms(tmux_pid));
    tokio::time::sleep(Duration::from_secs(IDLE_SECS)).await;
    let (c1, w1, t1) = (cpu_ms(daemon_pid), wakeups(daemon_pid), cpu_ms(tmux_pid));
    row(&[
        &format!("CPU over {IDLE_SECS} s, 50 idle viewers"),
        &format!("{} ms", c1 - c0),
        &format!("(tmux server: {} ms)", t1 - t0),
        "",
    ]);
    row(&[
        &format!("daemon wakeups over {IDLE_SECS} s, 50 idle viewers"),
        &(w1 - w0).to_string(),
        "",
        "",
    ]);
    for v in idle {
        v.close().await;
    }
}
