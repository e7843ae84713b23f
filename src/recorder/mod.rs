//! The recorder: tails each session's spool file into its transcript, and
//! derives the agent's state from what it prints.
//!
//! tmux writes every byte a pane prints to `STATE_DIR/spool/USER/SESSION.out`
//! through `pipe-pane` (a `cat` that belongs to the tmux server, so nothing
//! is lost while the daemon is down). The recorder waits on inotify (no
//! polling), coalesces bursts for a few milliseconds, appends the new bytes
//! and the new offset in one batch, flushes, and only then punches the
//! ingested range out of the spool file, so disk use stays bounded and a
//! crash at any instant neither loses nor duplicates a byte.
//!
//! Agent state: every ingested byte goes, in order, to the session's
//! [`Screen`]; `running` while output arrives, `idle` after `idle_after` of
//! quiet, `waiting` while the screen shows a question the agent's profile
//! recognises (a pending question, answerable once), `exited` when the
//! supervisor says so. Transitions are recorded in the
//! transcript and broadcast to subscribers. The only timer is the next idle
//! deadline; an idle daemon has none.
//!
//! Parts: `activity` (agent state), `questions` (pending questions),
//! `upkeep` (the screen's upkeep), `typing` (keystrokes grouped into input
//! records), `replies` (terminal replies are not typing), `run` (the loop),
//! `ingest` (the ingest thread, reclaiming and retention), `spool` (paths,
//! the `pipe-pane` command, opening spools safely).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::Profile;
use crate::exit::ExitInfo;
use crate::names::SessionId;
use crate::screen::Screen;
use crate::transcript::{Retention, SessionLog, SpoolMark, Store, StoreError};
use crate::userfs::{Refused, UserDir};

mod activity;
mod ingest;
mod questions;
mod replies;
pub use replies::typed_part;
mod run;
mod spool;
#[cfg(test)]
mod tests;
mod typing;
mod upkeep;

use crate::spool::{make_private_dir, next_data, punch, read_full_at, spool_name, spool_path};
pub use activity::{source_web, ActivityConfig, AgentState, Changes, StateChange};
use ingest::{Ingested, Job};
use questions::Asked;
pub use questions::{AgentView, AnswerError, PendingQuestion, QUESTION_SETTLE, QUESTION_TTL};

/// Output counts as paused after this much quiet; then it is ingested.
/// During a burst the recorder only watches the spool's tail for agent
/// state, so recording never competes with the agent and its viewers.
const QUIET: Duration = Duration::from_millis(100);

/// ...unless a session's backlog grows past this (bounded spool size).
const MAX_BACKLOG: u64 = 64 * 1024 * 1024;

/// Read at most this much at a time (bounded memory).
const MAX_READ: u64 = 1024 * 1024;

/// A session's share of one ingest round: one user's huge spool never
/// stalls the others' recording.
const QUANTUM: u64 = 8 * MAX_READ;

/// Flush and punch ingested spool data out once this much has accumulated
/// (and whenever output pauses).
const PUNCH_EVERY: u64 = 16 * 1024 * 1024;

/// How often age-based retention runs per session while it prints.
const AGE_CHECK: Duration = Duration::from_secs(3600);

struct Tracked {
    log: SessionLog,
    state: AgentState,
    idle_at: Option<Instant>,
    screen: Screen,
    /// Spool offset the screen shows output up to (after a seed).
    screen_from: u64,
    /// Output was left off the screen (a large backlog): it is to be taken
    /// from tmux once the backlog is in.
    screen_stale: bool,
    question: Option<PendingQuestion>,
    /// Keystrokes not yet recorded.
    typing: Option<typing::Typing>,
    /// The tool call the agent's hook says it asks about, and when.
    hook_tool: Option<(serde_json::Value, Instant)>,
    /// Spool bytes already punched out.
    punched: u64,
    /// Stored bytes of the transcript (counted once, then kept up to date).
    stored: Option<u64>,
    /// When age-based retention last ran.
    age_checked: Option<Instant>,
    /// Why the spool was last refused (logged once per reason).
    refused: Option<String>,
}

/// The recorder; cloneable handle.
#[derive(Clone)]
pub struct Recorder(Arc<Inner>);

struct Inner {
    store: Store,
    spool_root: PathBuf,
    /// Replaced on reload; std locks, only read in short sync sections.
    retention: std::sync::RwLock<Retention>,
    activity: std::sync::RwLock<ActivityConfig>,
    /// std mutex: never held across an `.await`.
    sessions: Mutex<HashMap<SessionId, Tracked>>,
    /// Asks the loop to ingest a session now (bounded; a full queue means
    /// the loop is already due to run).
    wake: mpsc::Sender<SessionId>,
    wake_rx: Mutex<Option<mpsc::Receiver<SessionId>>>,
    /// Sessions whose window was resized, until they are quiet.
    resized: Mutex<HashSet<SessionId>>,
    /// Quiet after a resize: their screens are to be taken from tmux
    /// again (the supervisor takes the receiver).
    screen_requests: mpsc::Sender<SessionId>,
    screen_requests_rx: Mutex<Option<mpsc::Receiver<SessionId>>>,
    /// A session's idle deadline was set, or an input record started:
    /// the loop recomputes its timer.
    retimed: tokio::sync::Notify,
    states: broadcast::Sender<StateChange>,
    inotify: AsyncFd<InotifyFd>,
    /// Watched spool directories by watch descriptor.
    watches: Mutex<HashMap<nix::sys::inotify::WatchDescriptor, String>>,
    /// Jobs for the ingest thread (started on first use).
    ingest_jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Recorder {
    pub fn new(
        store: Store,
        spool_root: PathBuf,
        retention: Retention,
        activity: ActivityConfig,
    ) -> std::io::Result<Recorder> {
        use nix::sys::inotify::{InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let (wake, wake_rx) = mpsc::channel(1024);
        let (screen_requests, screen_requests_rx) = mpsc::channel(256);
        Ok(Recorder(Arc::new(Inner {
            store,
            spool_root,
            retention: std::sync::RwLock::new(retention),
            activity: std::sync::RwLock::new(activity),
            sessions: Mutex::new(HashMap::new()),
            wake,
            wake_rx: Mutex::new(Some(wake_rx)),
            retimed: tokio::sync::Notify::new(),
            resized: Mutex::new(HashSet::new()),
            screen_requests,
            screen_requests_rx: Mutex::new(Some(screen_requests_rx)),
            states: broadcast::channel(256).0,
            // SAFETY: the Inotify owns its fd and keeps it open until drop.
            inotify: unsafe {
                AsyncFd::register_with_interest(InotifyFd(inotify), tokio::io::Interest::READABLE)
            }
            .map_err(|e| e.into_parts().1)?,
            watches: Mutex::new(HashMap::new()),
            ingest_jobs: Mutex::new(None),
        })))
    }

    /// Applies reloaded retention limits and agent-state settings.
    pub fn set_policy(&self, retention: Retention, activity: ActivityConfig) {
        *self.0.retention.write().expect("retention lock") = retention;
        *self.0.activity.write().expect("activity lock") = activity;
    }

    fn idle_after(&self) -> Duration {
        self.0.activity.read().expect("activity lock").idle_after
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// Starts recording `id`: its spool directory exists and is watched, and
    /// whatever its spool holds is ingested soon.
    pub fn track(&self, id: &SessionId) -> Result<(), StoreError> {
        let dir = self.0.spool_root.join(id.user.as_str());
        make_private_dir(&dir)
            .map_err(|e| StoreError::BadRecord(format!("spool dir {}: {e}", dir.display())))?;
        {
            use nix::sys::inotify::AddWatchFlags as F;
            let mut watches = self.0.watches.lock().expect("watches lock");
            if !watches.values().any(|u| u == id.user.as_str()) {
                let wd = self
                    .0
                    .inotify
                    .get_ref()
                    .0
                    .add_watch(
                        &dir,
                        F::IN_MODIFY
                            | F::IN_CREATE
                            | F::IN_MOVED_TO
                            | F::IN_CLOSE_WRITE
                            | F::IN_DONT_FOLLOW
                            | F::IN_ONLYDIR,
                    )
                    .map_err(|e| {
                        StoreError::BadRecord(format!("inotify on {}: {e}", dir.display()))
                    })?;
                watches.insert(wd, id.user.to_string());
            }
        }
        let mut sessions = self.0.sessions.lock().expect("sessions lock");
        if !sessions.contains_key(id) {
            sessions.insert(
                id.clone(),
                Tracked {
                    log: self.0.store.session(id)?,
                    state: AgentState::Running,
                    idle_at: Some(Instant::now() + self.idle_after()),
                    screen: Screen::new(
                        crate::screen::DEFAULT_SIZE.0,
                        crate::screen::DEFAULT_SIZE.1,
                    ),
                    screen_from: 0,
                    screen_stale: false,
                    question: None,
                    typing: None,
                    hook_tool: None,
                    punched: 0,
                    stored: None,
                    age_checked: None,
                    refused: None,
                },
            );
        }
        drop(sessions);
        let _ = self.0.wake.try_send(id.clone());
        Ok(())
    }

    /// The transcript of `id` (tracked or not).
    pub fn log(&self, id: &SessionId) -> Result<SessionLog, StoreError> {
        self.0.store.session(id)
    }

    /// Records a lifecycle event.
    pub fn event(&self, id: &SessionId, kind: &str, detail: serde_json::Value) {
        if let Err(e) = self.log(id).and_then(|l| l.event(kind, detail)) {
            tracing::error!(session = %id, error = %e, "cannot record event");
        }
    }

    /// Records input and makes it durable.
    pub async fn input(&self, id: &SessionId, source: &str, text: &str) {
        let r = self.log(id).and_then(|l| l.input(source, text));
        let r = match r {
            Ok(()) => self.0.store.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::error!(session = %id, error = %e, "cannot record input");
        }
    }

    /// The agent ended (from the supervisor).
    pub fn agent_exited(&self, id: &SessionId, exit: &ExitInfo) {
        self.event(
            id,
            "agent-exit",
            serde_json::to_value(exit).unwrap_or_default(),
        );
        self.set_state(
            id,
            AgentState::Exited {
                status: exit.status,
                signal: exit.signal,
            },
            None,
        );
    }

    /// The agent (re)started (from the supervisor).
    pub fn agent_started(&self, id: &SessionId, kind: &str, pid: Option<u32>) {
        self.event(id, kind, serde_json::json!({ "pid": pid }));
        let idle_at = Instant::now() + self.idle_after();
        self.set_state(id, AgentState::Running, Some(idle_at));
        // The loop must learn about the new deadline.
        let _ = self.0.wake.try_send(id.clone());
    }

    /// Every session being recorded.
    pub fn tracked(&self) -> HashSet<SessionId> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .keys()
            .cloned()
            .collect()
    }
}

/// nix's Inotify, made usable with tokio's AsyncFd.
struct InotifyFd(nix::sys::inotify::Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
