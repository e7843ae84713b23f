//! `scripts/bench.sh fanout [REV]`: the daemon's CPU per viewer-MB in 10-
//! and 50-viewer floods, this build against the tmuxd binary of an earlier
//! commit (which `scripts/bench.sh` builds from git), in the same run: two
//! daemons with the same config, floods alternating between them.

use super::*;

/// Rounds unless `BENCH_ROUNDS` says otherwise (CPU figures on a 2-core
/// VM vary by a tenth from round to round).
const ROUNDS: usize = 5;

pub async fn fanout_bench(baseline: &Path) {
    let rev = std::env::var("BENCH_BASELINE_REV").unwrap_or_else(|_| "baseline".into());
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let now = start_daemon(true);
    let base = start_daemon_with(baseline, true);
    row(&[
        &format!("figure ({rounds} alternating rounds)"),
        "this build",
        &rev,
        "change",
    ]);
    row(&["---", "---", "---", "---"]);
    for n in [10usize, 50] {
        let (mut t, mut cpu) = ([Duration::ZERO; 2], [0u64; 2]);
        for round in 0..rounds {
            // Alternate which daemon goes first.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let d = [&now, &base][i];
                let (ti, ci) = ws_flood(d, n, &format!("f{n}r{round}d{i}")).await;
                t[i] += ti;
                cpu[i] += ci;
            }
        }
        let viewer_mb = (rounds * n * FLOOD_BYTES) as f64 / 1e6;
        let per_mb = cpu.map(|c| c as f64 / viewer_mb);
        row(&[
            &format!("daemon CPU per viewer-MB, {n} viewers"),
            &format!("{:.2} ms", per_mb[0]),
            &format!("{:.2} ms", per_mb[1]),
            &format!("{:+.0}%", (per_mb[0] / per_mb[1] - 1.0) * 100.0),
        ]);
        row(&[
            &format!("50 MB flood to end marker, {n} viewers"),
            &format!("{:.2} s", t[0].as_secs_f64() / rounds as f64),
            &format!("{:.2} s", t[1].as_secs_f64() / rounds as f64),
            &format!("{:+.0}%", (ratio(t[0], t[1]) - 1.0) * 100.0),
        ]);
    }
}
