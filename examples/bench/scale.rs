//! `scripts/bench.sh scale`: one daemon with 200 sessions over 50 users
//! (plain shells): how long the start takes (50 `main` sessions), each
//! further session, and adopting all 200 after a SIGKILL; memory per
//! session (the daemon's RSS, and the tmux servers' and agents'); and,
//! with 50 idle viewers attached and 20 dashboards open, every daemon
//! thread's wakeups over 60 s.

use super::*;

const USERS: usize = 50;
const PER_USER: usize = 4;
const IDLE_WINDOW: Duration = Duration::from_secs(60);
/// Open dashboards (event streams) during the idle minute.
const DASHBOARDS: usize = 20;

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Processes whose command line starts with `tmux -S` under `run_root`,
/// and their children (the agents): total RSS, KiB.
fn tmux_tree_rss(run_root: &Path) -> u64 {
    let root = run_root.display().to_string();
    let mut servers = Vec::new();
    let mut parents: HashMap<u32, u32> = HashMap::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        parents.insert(pid, ppid);
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with("tmux") && cmd.contains(&root) && !cmd.contains(" attach") {
            servers.push(pid);
        }
    }
    let in_tree = |mut pid: u32| {
        while pid > 1 {
            if servers.contains(&pid) {
                return true;
            }
            pid = parents.get(&pid).copied().unwrap_or(0);
        }
        false
    };
    parents
        .keys()
        .filter(|p| in_tree(**p))
        .map(|p| rss_kib(*p))
        .sum()
}

fn sessions_listed(config: &Path, home: &Path) -> usize {
    let json = tmuxd(config, home, &["sessions", "--json"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&json)
        .map(|v| v.len())
        .unwrap_or(0)
}

fn line(figure: &str, value: String) {
    row(&[figure, &value]);
}

pub async fn scale_bench() {
    let users: String = (0..USERS)
        .map(|u| format!("[[users]]\nname = \"u{u:02}\"\nworkdir = \"{{d}}\"\n"))
        .collect();
    let t0 = Instant::now();
    let mut d = start_daemon_for(&tmuxd_bin(), true, &users, "u00");
    let started = t0.elapsed();
    let config = d._dir.path().join("c.toml");
    let home = d._dir.path().to_owned();
    let run_root = d._run.path().to_owned();
    row(&[
        &format!(
            "{USERS} users, {} sessions (plain shells)",
            USERS * PER_USER
        ),
        "value",
    ]);
    row(&["---", "---"]);
    line(
        &format!("start, {USERS} users' main sessions created"),
        format!("{:.2} s", started.as_secs_f64()),
    );
    let t0 = Instant::now();
    for u in 0..USERS {
        for s in 1..PER_USER {
            tmuxd(&config, &home, &["new", &format!("u{u:02}/s{s}")]);
        }
    }
    let created = USERS * (PER_USER - 1);
    line(
        &format!("{created} more sessions by `tmuxd new`, each"),
        format!(
            "{:.1} ms",
            t0.elapsed().as_secs_f64() * 1000.0 / created as f64
        ),
    );
    let total = USERS * PER_USER;
    assert_eq!(sessions_listed(&config, &home), total);
    let pid = d.child.id();
    line(
        &format!("daemon RSS with {total} sessions, per session"),
        format!("{:.0} KiB", rss_kib(pid) as f64 / total as f64),
    );
    line(
        "tmux servers + agents (sh) RSS, per session",
        format!("{:.0} KiB", tmux_tree_rss(&run_root) as f64 / total as f64),
    );

    // SIGKILL, then a new daemon adopts every session.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let t0 = Instant::now();
    let (child, url) = serve(&tmuxd_bin(), &config, &home);
    let adopted = t0.elapsed();
    d.child = child;
    d.url = url;
    assert_eq!(sessions_listed(&config, &home), total);
    line(
        &format!("adopt {total} sessions after SIGKILL (to ready)"),
        format!("{:.2} s", adopted.as_secs_f64()),
    );

    // 50 idle viewers, one per user, and 20 open dashboards (their event
    // streams); then nothing happens for a minute.
    let pid = d.child.id();
    let mut viewers = Vec::new();
    let mut dashboards = Vec::new();
    for u in 0..USERS {
        let token = tmuxd(&config, &home, &["token", &format!("u{u:02}")]);
        if u < DASHBOARDS {
            dashboards.push(dashboard(&d.url, &token).await);
        }
        let url = format!(
            "{}/ws/sessions/u{u:02}/main?cols=120&rows=40",
            d.url.replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        viewers.push(Viewer::Ws(Box::new(ws)));
    }
    for v in &mut viewers {
        v.drain().await;
    }
    // Let attach-time work settle: the redraw makes each session
    // `running`, and `idle` 10 s later (idle_after_s).
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (before, cpu0) = (thread_switches(pid), cpu_ms(pid));
    tokio::time::sleep(IDLE_WINDOW).await;
    let (after, cpu1) = (thread_switches(pid), cpu_ms(pid));
    let mut woke: Vec<(String, u64)> = after
        .iter()
        .map(|(t, n)| (t.clone(), n - before.get(t).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    woke.sort_by_key(|w| std::cmp::Reverse(w.1));
    line(
        &format!(
            "idle {}s, {USERS} viewers, {DASHBOARDS} dashboards: daemon threads that woke (of {})",
            IDLE_WINDOW.as_secs(),
            after.len()
        ),
        woke.len().to_string(),
    );
    line(
        "their wakeups, total",
        woke.iter().map(|w| w.1).sum::<u64>().to_string(),
    );
    for (t, n) in woke.iter().take(5) {
        line(&format!("thread {t}"), n.to_string());
    }
    line(
        "daemon CPU over the idle minute",
        format!("{} ms", cpu1 - cpu0),
    );
    for v in viewers {
        v.close().await;
    }
    drop(dashboards);
    // The daemon's drop kills only the `bench`-named server; end them all,
    // once the daemon is gone (it would start a server it sees end again).
    let _ = d.child.kill();
    let _ = d.child.wait();
    for u in 0..USERS {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(run_root.join(format!("r/u{u:02}/tmux")))
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A dashboard's event stream (`GET /api/events`), open until dropped,
/// once its first event arrived.
async fn dashboard(url: &str, token: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: sessions") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the dashboard's first event")
            .unwrap();
        assert!(n > 0, "the event stream closed");
        seen.extend_from_slice(&buf[..n]);
    }
    s
}
