//! `/healthz` and `/metrics`: counts only, no names, no secrets.

use super::*;

/// Liveness (it answers) and readiness (sessions adopted, listeners up).
pub async fn healthz(State(state): State<AppState>) -> Response {
    let ready = crate::metrics::COUNTERS
        .ready
        .load(std::sync::atomic::Ordering::Relaxed);
    let body = serde_json::json!({
        "status": if ready { "ok" } else { "starting" },
        "live": true,
        "ready": ready,
        "users": state.config().users.len(),
        "recording": state.supervisor.recorder().is_some(),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Prometheus text format. No secrets and no session names: counts only.
pub async fn metrics(State(state): State<AppState>) -> Response {
    use crate::metrics::{get, Exposition, COUNTERS};
    let mut by_state: std::collections::BTreeMap<&'static str, u64> =
        ["starting", "running", "exited", "stopped"]
            .into_iter()
            .map(|k| (k, 0))
            .collect();
    let mut agent_states: std::collections::BTreeMap<&'static str, u64> =
        ["running", "idle", "waiting", "exited"]
            .into_iter()
            .map(|k| (k, 0))
            .collect();
    let mut viewers = 0u64;
    let servers = state.supervisor.servers();
    let lists = futures_util::future::join_all(servers.iter().map(|s| s.list())).await;
    for listed in lists {
        let Ok(list) = listed else {
            continue;
        };
        for s in list {
            let key = match s.state {
                SessionState::Starting => "starting",
                SessionState::Running => "running",
                SessionState::Exited => "exited",
                SessionState::Stopped => "stopped",
            };
            *by_state.entry(key).or_default() += 1;
            viewers += state.viewer_count(&s.id) as u64;
            if let Some(a) = state.supervisor.recorder().and_then(|r| r.state(&s.id)) {
                *agent_states.entry(a.name()).or_default() += 1;
            }
        }
    }
    let labelled =
        |label: &str, m: std::collections::BTreeMap<&'static str, u64>| -> Vec<(String, u64)> {
            m.into_iter()
                .map(|(k, v)| (format!("{label}=\"{k}\""), v))
                .collect()
        };
    let one = |v: u64| vec![(String::new(), v)];
    let mut e = Exposition::default();
    e.family(
        "tmuxd_sessions",
        "gauge",
        "Sessions by tmux state.",
        &labelled("state", by_state),
    );
    e.family(
        "tmuxd_agents",
        "gauge",
        "Agents by state derived from their output.",
        &labelled("state", agent_states),
    );
    e.family(
        "tmuxd_viewers",
        "gauge",
        "Open browser terminals.",
        &one(viewers),
    );
    e.family(
        "tmuxd_viewer_bytes_sent_total",
        "counter",
        "Terminal bytes relayed to viewers.",
        &one(get(&COUNTERS.bytes_to_viewers)),
    );
    e.family(
        "tmuxd_viewer_bytes_received_total",
        "counter",
        "Keystroke bytes relayed from viewers.",
        &one(get(&COUNTERS.bytes_from_viewers)),
    );
    e.family(
        "tmuxd_agent_restarts_total",
        "counter",
        "Agents restarted after they exited.",
        &one(get(&COUNTERS.agent_restarts)),
    );
    e.family(
        "tmuxd_transcript_bytes_total",
        "counter",
        "Output bytes stored in transcripts.",
        &one(get(&COUNTERS.transcript_bytes)),
    );
    let lag = state
        .supervisor
        .recorder()
        .map(|r| r.total_backlog())
        .unwrap_or(0);
    e.family(
        "tmuxd_transcript_ingest_lag_bytes",
        "gauge",
        "Spooled output not yet stored.",
        &one(lag),
    );
    e.family(
        "tmuxd_mail_decisions_total",
        "counter",
        "Email bridge decisions by kind (rejected, pending, confirmed, executed, ...).",
        &crate::metrics::mail_decisions(),
    );
    e.family(
        "tmuxd_connections",
        "gauge",
        "Open HTTP connections.",
        &one(get(&COUNTERS.connections)),
    );
    let config = state.config();
    let b = config.web.bounds;
    e.family(
        "tmuxd_limit",
        "gauge",
        "Configured caps ([web] max_*, [daemon] max_sessions_per_user).",
        &labelled(
            "limit",
            [
                ("connections_per_address", b.max_connections_per_address),
                ("viewers_per_session", b.max_viewers_per_session),
                ("viewers_per_user", b.max_viewers_per_user),
                ("sessions_per_user", config.max_sessions_per_user),
            ]
            .into_iter()
            .map(|(k, v)| (k, v as u64))
            .collect(),
        ),
    );
    e.family(
        "tmuxd_limit_refusals_total",
        "counter",
        "Connections and requests refused by a cap or timeout, by limit.",
        &crate::metrics::limit_refusals(),
    );
    let mut r = e.finish().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
