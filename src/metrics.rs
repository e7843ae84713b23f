//! Counters for `/metrics` (Prometheus text format) and the daemon's
//! readiness for `/healthz`. Plain atomics: every part of the daemon counts
//! without locks; gauges (sessions by state, viewers, ingest lag) are read
//! from their owners at scrape time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Process-wide counters.
pub struct Counters {
    pub bytes_to_viewers: AtomicU64,
    pub bytes_from_viewers: AtomicU64,
    pub agent_restarts: AtomicU64,
    pub transcript_bytes: AtomicU64,
    /// Open HTTP connections (a gauge).
    pub connections: AtomicU64,
    pub ready: AtomicBool,
}

pub static COUNTERS: Counters = Counters {
    bytes_to_viewers: AtomicU64::new(0),
    bytes_from_viewers: AtomicU64::new(0),
    agent_restarts: AtomicU64::new(0),
    transcript_bytes: AtomicU64::new(0),
    connections: AtomicU64::new(0),
    ready: AtomicBool::new(false),
};

/// Counts by one label's value.
type Labelled = std::sync::Mutex<std::collections::BTreeMap<String, u64>>;

/// Mail decisions by kind (`pending`, `rejected`, ...).
static MAIL_DECISIONS: Labelled = std::sync::Mutex::new(std::collections::BTreeMap::new());
/// Refusals by the limit that refused (`viewers_per_session`, ...).
static LIMIT_REFUSALS: Labelled = std::sync::Mutex::new(std::collections::BTreeMap::new());

fn count(map: &Labelled, value: &str) {
    let mut m = map.lock().expect("metrics lock");
    *m.entry(value.to_owned()).or_default() += 1;
}

fn samples(map: &Labelled, label: &str) -> Vec<(String, u64)> {
    let m = map.lock().expect("metrics lock");
    m.iter()
        .map(|(k, v)| (format!("{label}=\"{k}\""), *v))
        .collect()
}

pub fn mail_decision(kind: &str) {
    count(&MAIL_DECISIONS, kind);
}

/// `(labels, count)` samples of mail decisions.
pub fn mail_decisions() -> Vec<(String, u64)> {
    samples(&MAIL_DECISIONS, "decision")
}

/// A request or connection refused by the limit `limit`.
pub fn limit_refused(limit: &str) {
    count(&LIMIT_REFUSALS, limit);
}

/// `(labels, count)` samples of refusals by limit.
pub fn limit_refusals() -> Vec<(String, u64)> {
    samples(&LIMIT_REFUSALS, "limit")
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Builds the Prometheus text exposition.
#[derive(Default)]
pub struct Exposition(String);

impl Exposition {
    /// One metric family: `# HELP`, `# TYPE` and its samples
    /// (`labels` like `state="running"`, or empty).
    pub fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
        use std::fmt::Write;
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.0, "{name} {value}");
            } else {
                let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
            }
        }
    }

    pub fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut e = Exposition::default();
        e.family(
            "tmuxd_sessions",
            "gauge",
            "Sessions by state.",
            &[("state=\"running\"".into(), 2)],
        );
        e.family(
            "tmuxd_agent_restarts_total",
            "counter",
            "Agent restarts.",
            &[(String::new(), 5)],
        );
        assert_eq!(
            e.finish(),
            "# HELP tmuxd_sessions Sessions by state.\n# TYPE tmuxd_sessions gauge\ntmuxd_sessions{state=\"running\"} 2\n\
             # HELP tmuxd_agent_restarts_total Agent restarts.\n# TYPE tmuxd_agent_restarts_total counter\ntmuxd_agent_restarts_total 5\n"
        );
    }
}
