//! `tmuxd serve`: start-up, adoption, signals and shutdown.
//!
//! Start-up creates the state and runtime directories, binds the control
//! socket (refusing if another daemon answers on it), adopts every user's
//! sessions and creates missing `main`s. SIGTERM and SIGINT cancel every
//! task and wait for them (bounded); tmux servers and agents are never
//! touched, so they outlive the daemon and the next start adopts them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::control::{ControlServer, IngestServer};
use crate::supervisor::Supervisor;

/// How long shutdown waits for tasks to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    for (key, dir, mode) in config.roots() {
        crate::roots::ensure(dir, mode).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    }

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Install handlers before doing work, so an early SIGTERM is graceful.
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let control = ControlServer::bind(&config.control_socket()).await?;
    // Ours, just bound: no stale sockets left for the next start.
    let unbind = || {
        let _ = std::fs::remove_file(config.control_socket());
        let _ = std::fs::remove_file(config.mail_socket());
    };
    let ingest = match config.mail.as_ref().and_then(|m| m.ingest_group.as_deref()) {
        Some(group) => match IngestServer::bind(&config.mail_socket(), group) {
            Ok(server) => Some(server),
            Err(e) => {
                unbind();
                return Err(e.into());
            }
        },
        None => None,
    };
    let listener = match crate::web::bind(&config).await {
        Ok(l) => l,
        Err(e) => {
            unbind();
            return Err(e);
        }
    };
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
    let mut config = Arc::new(config);
    // Web and mail read the config from here; a reload is one send.
    let (reloaded, live) = crate::config::Live::new(config.clone());
    let bridge = match &config.mail {
        Some(mail) => {
            let bridge = crate::mail::Bridge::open(
                live.clone(),
                supervisor.clone(),
                crate::clock::Clock::default(),
            )?;
            tracker.spawn(crate::mail::exec::run(bridge.clone(), cancel.clone()));
            tracker.spawn(crate::mail::outbox::run(bridge.clone(), cancel.clone()));
            tracker.spawn(crate::mail::exec::notify_waiting(
                bridge.clone(),
                cancel.clone(),
            ));
            if let Some(imap) = &mail.imap {
                tracker.spawn(crate::mail::imap::run(
                    bridge.clone(),
                    imap.clone(),
                    cancel.clone(),
                ));
            }
            if let Some(ingest) = ingest {
                tracker.spawn(ingest.run(bridge.clone(), cancel.clone(), tracker.clone()));
            }
            tracing::info!(address = %mail.address, imap = mail.imap.is_some(), "email bridge running");
            Some(bridge)
        }
        None => None,
    };
    tracker.spawn(control.run(
        supervisor.clone(),
        bridge.clone(),
        cancel.clone(),
        tracker.clone(),
    ));
    let web = crate::web::AppState::new(
        live.clone(),
        supervisor.clone(),
        bridge.clone(),
        cancel.clone(),
        tracker.clone(),
    );
    tracker.spawn(crate::web::serve(listener, web.clone()));
    tracker.spawn(crate::matrix::run(
        live.clone(),
        supervisor.clone(),
        cancel.clone(),
    ));
    if let Some(rec) = supervisor.recorder().cloned() {
        let page = web.clone();
        let on_screen: crate::webhooks::Visible = Arc::new(move |id| page.on_screen(id));
        tracker.spawn(crate::webhooks::run(
            live.clone(),
            rec,
            on_screen,
            cancel.clone(),
        ));
    }
    tracing::info!(
        url = %format!("http://{web_addr}/"),
        "web terminal listening"
    );
    crate::metrics::COUNTERS
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let status = format!(
        "STATUS={} users; {} sessions adopted, {} created{}; web on http://{web_addr}/",
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

    if let Some(note) = config.root_agents_note() {
        tracing::warn!("{note}");
    }

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
                crate::notify::notify("RELOADING=1");
                let status = match reload(&config, &supervisor).await {
                    Ok(new) => {
                        reloaded.send_replace(new.clone());
                        let status = format!("STATUS={} users; config reloaded", new.users.len());
                        config = new;
                        status
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: the new config is invalid; keeping the running one");
                        "STATUS=config reload failed; running on the previous config".to_owned()
                    }
                };
                crate::notify::notify(&format!("READY=1\n{status}"));
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

/// Re-reads the config file (SIGHUP) and applies what can change while
/// running; settings that need a restart keep their running values.
async fn reload(
    current: &Arc<Config>,
    supervisor: &Supervisor,
) -> Result<Arc<Config>, crate::config::ConfigError> {
    use crate::config::{Config, HostDefaults, EMBEDDED};
    let host = HostDefaults::detect();
    let inspected = if current.origin == EMBEDDED {
        Config::embedded(&host).inspected()
    } else {
        Config::inspect(std::path::Path::new(&current.origin), &host)?
    };
    let mut new = inspected.checked()?;
    let fixed = [
        ("daemon.state_dir", new.state_dir != current.state_dir),
        ("daemon.runtime_dir", new.runtime_dir != current.runtime_dir),
        ("web.listen", new.web.listen != current.web.listen),
        (
            "transcript.enabled",
            new.transcript.enabled != current.transcript.enabled,
        ),
        (
            "transcript.spool_dir",
            new.transcript.spool_dir != current.transcript.spool_dir,
        ),
        ("mail", new.mail != current.mail),
    ];
    for (key, changed) in fixed {
        if changed {
            tracing::warn!(key, "SIGHUP: this setting changes only when the daemon restarts; keeping the running value");
        }
    }
    new.state_dir = current.state_dir.clone();
    new.runtime_dir = current.runtime_dir.clone();
    new.web.listen = current.web.listen;
    new.transcript.enabled = current.transcript.enabled;
    new.transcript.spool_dir = current.transcript.spool_dir.clone();
    new.mail = current.mail.clone();

    let report = supervisor.reload(&new).await;
    if let Some(rec) = supervisor.recorder() {
        rec.set_policy(
            crate::transcript::Retention {
                max_bytes: new.transcript.max_bytes,
                max_age: new.transcript.max_age,
            },
            activity_config(&new),
        );
    }
    let new = Arc::new(new);
    let names = |v: &[crate::names::Name]| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    tracing::info!(
        added = %names(&report.added),
        removed = %names(&report.removed),
        changed = %names(&report.changed),
        "SIGHUP: config reloaded"
    );
    if !report.removed.is_empty() {
        tracing::warn!(
            users = %names(&report.removed),
            "users removed from the config: their tmux sessions keep running, detached from web and mail"
        );
    }
    Ok(new)
}

/// Idle time and each user's agent profile.
fn activity_config(config: &Config) -> crate::recorder::ActivityConfig {
    let profiles = config
        .users
        .iter()
        .map(|u| (u.name.to_string(), std::sync::Arc::new(u.agent_profile())))
        .collect();
    crate::recorder::ActivityConfig {
        idle_after: config.idle_after,
        profiles,
    }
}
