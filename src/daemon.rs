//! `tmuxd serve`: start-up, adoption, signals and shutdown.
//!
//! Start-up creates the state and runtime directories, binds the control
//! socket (refusing if another daemon answers on it), adopts every user's
//! sessions and creates missing `main`s. SIGTERM and SIGINT cancel every
//! task and wait for them (bounded); tmux servers and agents are never
//! touched, so they outlive the daemon and the next start adopts them.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::control::ControlServer;
use crate::supervisor::Supervisor;

/// How long shutdown waits for tasks to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    make_dir(&config.state_dir, 0o700)?;
    make_dir(&config.runtime_dir, 0o755)?;

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Install handlers before doing work, so an early SIGTERM is graceful.
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let control = ControlServer::bind(&config.control_socket()).await?;
    let listener = crate::web::bind(&config).await?;
    let web_addr = listener.local_addr().context("web listener address")?;
    let recorder = if config.transcript.enabled {
        // A daemon that was just killed may hold the database a moment longer.
        let store = crate::transcript::Store::open_waiting(
            &config.transcript_db(),
            Duration::from_secs(5),
        )?;
        let rec = crate::recorder::Recorder::new(
            store,
            config.spool_root(),
            crate::transcript::Retention {
                max_bytes: config.transcript.max_bytes,
                max_age: config.transcript.max_age,
            },
            activity_config(&config),
        )
        .context("starting the transcript recorder")?;
        Some(rec)
    } else {
        None
    };
    let supervisor = Supervisor::new(&config, recorder.clone(), cancel.clone(), tracker.clone());
    let report = supervisor.start().await;
    if let Some(rec) = recorder {
        tracker.spawn(rec.run(cancel.clone()));
    }
    tracker.spawn(control.run(supervisor.clone(), cancel.clone(), tracker.clone()));
    let config = Arc::new(config);
    let web = crate::web::AppState::new(
        config.clone(),
        supervisor.clone(),
        cancel.clone(),
        tracker.clone(),
    );
    tracker.spawn(crate::web::serve(listener, web));
    tracing::info!(
        url = %format!("http://{web_addr}/"),
        "web terminal listening"
    );
    crate::metrics::COUNTERS
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let status = format!(
        "STATUS={} users; {} sessions adopted, {} created{}",
        config.users.len(),
        report.adopted,
        report.created,
        if report.failed_users > 0 {
            format!("; {} users failing", report.failed_users)
        } else {
            String::new()
        }
    );
    crate::notify::notify(&format!("READY=1\n{status}"));
    tracing::info!(
        users = config.users.len(),
        created = report.created,
        adopted = report.adopted,
        failed_users = report.failed_users,
        elapsed_ms = started.elapsed().as_millis() as u64,
        config = %config.origin,
        "ready"
    );

    // Watchdog pings come from this loop: if it stalls, systemd notices.
    let mut watchdog = crate::notify::watchdog_interval().map(tokio::time::interval);
    loop {
        tokio::select! {
            _ = async { watchdog.as_mut().expect("checked").tick().await }, if watchdog.is_some() => {
                crate::notify::notify("WATCHDOG=1");
            }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break }
            _ = sighup.recv() => {
                tracing::warn!("SIGHUP: configuration reload is not supported by this version; restart the daemon to apply changes");
            }
        }
    }
    crate::notify::notify("STOPPING=1");
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not finish within {SHUTDOWN_GRACE:?}");
    }
    tracing::info!("stopped; tmux sessions keep running");
    Ok(())
}

/// Idle time and each user's prompt pattern (validated by the config).
fn activity_config(config: &Config) -> crate::recorder::ActivityConfig {
    let waiting = config
        .users
        .iter()
        .filter_map(|u| {
            let re = regex::Regex::new(u.waiting_pattern.as_deref()?).ok()?;
            Some((u.name.to_string(), re))
        })
        .collect();
    crate::recorder::ActivityConfig {
        idle_after: config.idle_after,
        waiting,
    }
}

fn make_dir(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_context(|| format!("cannot create directory {}", path.display()))
}
