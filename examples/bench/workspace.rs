//! `scripts/bench.sh workspace`: downloads of a 2 GB workspace through the
//! daemon (the workspace helper as the user, streamed to an HTTP client
//! that discards it), with the daemon's resident memory sampled every
//! 100 ms: how much it grows above where it started. Incompressible
//! content, so every byte crosses the daemon.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::{row, start_daemon, Daemon};

const FILES: usize = 20;
const FILE_BYTES: usize = 100 << 20;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Downloads `query` and returns (bytes, seconds, RSS growth in KB).
fn download(d: &Daemon, query: &str) -> (u64, f64, u64) {
    let pid = d.child.id();
    let base = rss_kb(pid);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = std::thread::spawn({
        let done = done.clone();
        move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        }
    });
    let start = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(&format!("{}/api/sessions/bench/main/files?{query}", d.url))
        .header("Authorization", &format!("Bearer {}", d.token))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "download of {query}");
    let mut body = r.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = peak.join().unwrap();
    (total, secs, peak.saturating_sub(base))
}

pub async fn workspace_bench() {
    let d = start_daemon(false);
    // The bench user's workdir is the daemon's directory.
    let ws = d._dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..FILES {
        let mut f = std::fs::File::create(ws.join(format!("f{i:02}.bin"))).unwrap();
        for _ in 0..FILE_BYTES / chunk.len() {
            for b in chunk.chunks_mut(8) {
                // xorshift: incompressible enough for gzip.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            f.write_all(&chunk).unwrap();
        }
    }
    row(&[
        "download (2 GB workspace, incompressible)",
        "bytes sent",
        "throughput",
        "daemon RSS growth (peak, sampled 100 ms)",
    ]);
    row(&["---", "---", "---", "---"]);
    for (what, query) in [
        ("one 100 MB file", "path=ws/f00.bin"),
        (
            "the directory as tar.gz (2 GB of files)",
            "path=ws&format=tar.gz",
        ),
    ] {
        let (bytes, secs, growth) = download(&d, query);
        row(&[
            what,
            &format!("{:.0} MB", bytes as f64 / 1e6),
            &format!("{:.0} MB/s", bytes as f64 / 1e6 / secs),
            &format!("{:.1} MB", growth as f64 / 1024.0),
        ]);
    }
}
