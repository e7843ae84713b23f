//! `scripts/bench.sh transcript`: the recorder's ingest and screen cost
//! per MB, disk use per raw byte, and a flood with recording on against off.

use super::*;

/// Process CPU time (user + system) so far.
fn own_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

/// Bytes allocated on disk under `dir` (like `du`).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let m = entry.metadata().unwrap();
        total += if m.is_dir() {
            disk_usage(&entry.path())
        } else {
            m.blocks() * 512
        };
    }
    total
}

/// Terminal-like output: colored `ls -l`-style lines, build-log lines,
/// prompts. Deterministic.
fn terminal_like(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 200);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let words = [
        "src", "lib", "target", "release", "tmuxd", "session", "render", "config", "test", "index",
        "cargo", "build",
    ];
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = |k: u64| words[(k % words.len() as u64) as usize];
        let line = match x % 4 {
            0 => format!(
                "-rw-r--r-- 1 alice staff {:>8} Nov 21 06:{:02} \x1b[1;34m{}/{}.rs\x1b[0m\r\n",
                x % 100_000,
                x % 60,
                w(x >> 8),
                w(x >> 16)
            ),
            1 => format!(
                "\x1b[32m   Compiling\x1b[0m {} v0.{}.{} (/home/alice/{})\r\n",
                w(x >> 4),
                x % 10,
                x % 30,
                w(x >> 12)
            ),
            2 => format!(
                "test {}::{}::{} ... \x1b[32mok\x1b[0m\r\n",
                w(x >> 3),
                w(x >> 9),
                w(x >> 21)
            ),
            _ => format!(
                "\x1b[1;32malice@box\x1b[0m:\x1b[1;34m~/{}\x1b[0m$ {} {}\r\n",
                w(x >> 5),
                w(x >> 11),
                w(x >> 19)
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(bytes);
    out
}

pub async fn transcript_bench() {
    use tmuxd::recorder::{ActivityConfig, Recorder};
    use tmuxd::transcript::{Retention, Store};
    const MB: usize = 1_000_000;
    let numbered: Vec<u8> = (0..5_000_000)
        .flat_map(|i| format!("{i:09}\n").into_bytes())
        .collect();
    let mut random = vec![0u8; 50 * MB];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    row(&[
        "content (50 MB backlog)",
        "ingest",
        "CPU per MB",
        "bytes on disk per raw byte",
        "spool left",
        "the screen alone, CPU per MB",
        "every byte drawn too, against ingest",
    ]);
    row(&["---", "---", "---", "---", "---", "---", "---"]);
    for (name, data) in [
        ("numbered lines", numbered),
        (
            "terminal-like (colored `ls`, build and test logs)",
            terminal_like(50 * MB),
        ),
        ("random bytes (incompressible, worst case)", random),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let rec = Recorder::new(
            store,
            dir.path().join("spool"),
            Retention {
                max_bytes: u64::MAX,
                max_age: Duration::from_secs(86_400),
            },
            ActivityConfig {
                idle_after: Duration::from_secs(10),
                profiles: Default::default(),
            },
        )
        .unwrap();
        let id = "bench/main".parse().unwrap();
        rec.track(&id).unwrap();
        let spool = rec.spool_path(&id);
        std::fs::write(&spool, &data).unwrap();
        let (t0, c0) = (Instant::now(), own_cpu());
        rec.catch_up().await;
        let (elapsed, cpu) = (t0.elapsed(), own_cpu() - c0);
        let mb = data.len() as f64 / MB as f64;
        let disk = disk_usage(&dir.path().join("db"));
        let spool_left = disk_usage(&dir.path().join("spool"));
        // What the screen model alone costs for the same bytes, in the
        // chunks ingest reads (ingest draws only a backlog's last MiB
        // and takes the screen from tmux instead).
        let c1 = own_cpu();
        let mut screen = tmuxd::screen::Screen::new(80, 24);
        for chunk in data.chunks(1 << 20) {
            screen.feed(chunk);
        }
        std::hint::black_box(screen.lines());
        let screen_cpu = own_cpu() - c1;
        row(&[
            name,
            &format!("{:.0} MB/s", mb / elapsed.as_secs_f64()),
            &format!("{:.1} ms", cpu.as_secs_f64() * 1000.0 / mb),
            &format!("{:.2}", disk as f64 / data.len() as f64),
            &format!("{} KB", spool_left / 1000),
            &format!("{:.1} ms", screen_cpu.as_secs_f64() * 1000.0 / mb),
            &format!(
                "{:.1}×",
                (cpu + screen_cpu).as_secs_f64() / cpu.as_secs_f64().max(1e-9)
            ),
        ]);
    }

    // Flood time-to-marker in one viewer, recording on vs off.
    let on = start_daemon(true);
    let off = start_daemon(false);
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..5 {
        for (k, d) in [&on, &off].into_iter().enumerate() {
            let mut v = vec![Viewer::ws(d).await];
            v[0].drain().await;
            times[k].push(flood(&mut v, &format!("t{round}{k}")).await);
            v.pop().unwrap().close().await;
        }
    }
    for t in &mut times {
        t.sort();
    }
    let (a, b) = (times[0][2], times[1][2]);
    println!();
    row(&["figure", "recording on", "recording off", "ratio"]);
    row(&["---", "---", "---", "---"]);
    row(&[
        "50 MB flood to end marker in a viewer (median of 5 alternating rounds)",
        &format!("{:.2} s", a.as_secs_f64()),
        &format!("{:.2} s", b.as_secs_f64()),
        &format!("{:.2}×", ratio(a, b)),
    ]);
}
