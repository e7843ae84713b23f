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
//! Agent state: `running` while output arrives, `idle` after `idle_after` of
//! quiet, `waiting` when the recent text matches the agent's prompt pattern,
//! `exited` when the supervisor says so. Transitions are recorded in the
//! transcript and broadcast to subscribers. The only timer is the next idle
//! deadline; an idle daemon has none.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::names::SessionId;
use crate::session::ExitInfo;
use crate::transcript::{Retention, SessionLog, SpoolMark, Store, StoreError, TextRenderer};
use crate::userfs::{Refused, UserDir};

/// Output counts as paused after this much quiet; then it is ingested.
/// During a burst the recorder only watches the spool's tail for agent
/// state, so recording never competes with the agent and its viewers.
const QUIET: Duration = Duration::from_millis(100);
/// ...unless a session's backlog grows past this (bounded spool size).
const MAX_BACKLOG: u64 = 64 * 1024 * 1024;
/// Bytes at the end of the spool read for agent state during a burst.
const TAIL_PEEK: u64 = 8 * 1024;
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
/// Recent rendered text kept for prompt matching.
const RECENT_TEXT: usize = 4096;

/// What the agent is doing, as derived from its output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum AgentState {
    Running,
    Idle,
    /// The recent output matches the prompt pattern: it waits for input.
    Waiting,
    Exited {
        status: Option<i32>,
        signal: Option<i32>,
    },
}

impl AgentState {
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::Running => "running",
            AgentState::Idle => "idle",
            AgentState::Waiting => "waiting",
            AgentState::Exited { .. } => "exited",
        }
    }
}

/// A state transition, as broadcast to subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub id: SessionId,
    pub state: AgentState,
}

/// How agent state is derived.
#[derive(Clone, Debug)]
pub struct ActivityConfig {
    pub idle_after: Duration,
    /// Per user: the prompt pattern that means "waiting for you".
    pub waiting: HashMap<String, regex::Regex>,
}

/// Who typed something (recorded with the input).
pub fn source_web(user: &str) -> String {
    format!("web:{user}")
}

struct Tracked {
    log: SessionLog,
    state: AgentState,
    idle_at: Option<Instant>,
    text: TextRenderer,
    recent: String,
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
    states: broadcast::Sender<StateChange>,
    inotify: AsyncFd<InotifyFd>,
    /// Watched spool directories by watch descriptor.
    watches: Mutex<HashMap<nix::sys::inotify::WatchDescriptor, String>>,
    /// Jobs for the ingest thread (started on first use).
    ingest_jobs: Mutex<Option<std::sync::mpsc::SyncSender<IngestJob>>>,
}

/// Sessions to ingest, and where to report the new marks.
type IngestJob = (Vec<SessionId>, tokio::sync::oneshot::Sender<Ingested>);

/// What one ingest round did: new marks, and the sessions that have more
/// than their share left.
#[derive(Default)]
struct Ingested {
    marks: Vec<(SessionId, SpoolMark)>,
    left: HashSet<SessionId>,
}

/// Ingest runs at this niceness: recording must never slow the agent or
/// the viewers. What it has not read yet waits safely in the spool.
const INGEST_NICE: i32 = 10;

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
        Ok(Recorder(Arc::new(Inner {
            store,
            spool_root,
            retention: std::sync::RwLock::new(retention),
            activity: std::sync::RwLock::new(activity),
            sessions: Mutex::new(HashMap::new()),
            wake,
            wake_rx: Mutex::new(Some(wake_rx)),
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

    /// The spool file of `id`.
    pub fn spool_path(&self, id: &SessionId) -> PathBuf {
        spool_path(&self.0.spool_root, id)
    }

    /// The spool directory of `id`'s user (theirs: tmux writes it as them).
    fn spool_dir(&self, id: &SessionId) -> PathBuf {
        self.0.spool_root.join(id.user.as_str())
    }

    /// Opens `id`'s spool as [`UserDir`] allows: a regular file of the
    /// directory's owner, never through a link, never blocking.
    fn spool_file(&self, id: &SessionId, write: bool) -> Result<std::fs::File, Refused> {
        UserDir::open(&self.spool_dir(id))?.open_file(&spool_name(id), write)
    }

    /// Logs and records a refused spool once per reason; `None`: usable again.
    fn note_refused(&self, id: &SessionId, refused: Option<&Refused>) {
        let reason = refused.map(Refused::to_string);
        let log = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            if t.refused == reason {
                return;
            }
            t.refused = reason;
            t.log.clone()
        };
        if let Some(r) = refused {
            tracing::warn!(session = %id, path = %self.spool_path(id).display(), reason = %r, "spool refused: not recording this session until it is a regular file of its user again");
            let _ = log.event(
                "spool-refused",
                serde_json::json!({"reason": r.to_string()}),
            );
        }
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
                    text: TextRenderer::default(),
                    recent: String::new(),
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

    /// Records keystrokes from a terminal viewer; durable with the next
    /// flush (not one fsync per key).
    pub fn keystrokes(&self, id: &SessionId, source: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        if let Err(e) = self.log(id).and_then(|l| l.input(source, &text)) {
            tracing::error!(session = %id, error = %e, "cannot record input");
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

    /// The current state of `id`, if tracked.
    pub fn state(&self, id: &SessionId) -> Option<AgentState> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .map(|t| t.state.clone())
    }

    /// The recent rendered text of `id` (what prompt patterns match), if
    /// tracked: current even before the latest output is ingested.
    pub fn recent_text(&self, id: &SessionId) -> Option<String> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .map(recent_view)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.0.states.subscribe()
    }

    fn set_state(&self, id: &SessionId, state: AgentState, idle_at: Option<Instant>) {
        let changed = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            t.idle_at = idle_at;
            let changed = t.state != state;
            t.state = state.clone();
            changed.then(|| t.log.clone())
        };
        if let Some(log) = changed {
            let _ = log.event("state", serde_json::to_value(&state).unwrap_or_default());
            let _ = self.0.states.send(StateChange {
                id: id.clone(),
                state,
            });
        }
    }

    /// Ingests, derives state and applies retention until `cancel`; then
    /// ingests what is left and flushes.
    pub async fn run(self, cancel: CancellationToken) {
        let Some(mut wake_rx) = self.0.wake_rx.lock().expect("wake lock").take() else {
            return;
        };
        // Catch up on everything written while the daemon was down.
        let mut dirty = self.tracked();
        // Ingested but not yet flushed: the spool keeps it until then.
        let mut unflushed: HashMap<SessionId, SpoolMark> = HashMap::new();
        loop {
            if !dirty.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(QUIET) => {}
                    _ = cancel.cancelled() => {}
                }
                if cancel.is_cancelled() {
                    break;
                }
                // Sessions that printed again meanwhile are mid-burst.
                let mut again = HashSet::new();
                self.drain_inotify(&mut again);
                while let Ok(id) = wake_rx.try_recv() {
                    dirty.insert(id);
                }
                let (busy, ready): (HashSet<SessionId>, HashSet<SessionId>) =
                    std::mem::take(&mut dirty)
                        .into_iter()
                        .chain(again.iter().cloned())
                        .collect::<HashSet<_>>()
                        .into_iter()
                        .partition(|id| again.contains(id) && self.backlog(id) < MAX_BACKLOG);
                for id in &busy {
                    self.peek_tail(id);
                }
                dirty = busy;
                if !ready.is_empty() {
                    let left = self.ingest_round(ready, &mut unflushed).await;
                    dirty.extend(left);
                }
                continue;
            }
            // Output paused: make it durable and reclaim the spool.
            if !unflushed.is_empty() {
                self.flush_and_reclaim(&mut unflushed).await;
            }
            let next_idle = self.next_idle();
            tokio::select! {
                r = self.0.inotify.readable() => match r {
                    Ok(mut guard) => {
                        guard.clear_ready();
                        self.drain_inotify(&mut dirty);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "inotify failed; transcripts stop");
                        break;
                    }
                },
                Some(id) = wake_rx.recv() => { dirty.insert(id); }
                _ = sleep_until(next_idle) => self.idle_transitions(),
                _ = cancel.cancelled() => break,
            }
        }
        // Shutdown: take in what is left and make it durable.
        self.flush_and_reclaim(&mut unflushed).await;
        self.catch_up().await;
    }

    /// Every session being recorded.
    fn tracked(&self) -> HashSet<SessionId> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Ingests everything every tracked session's spool holds, now, and
    /// makes it durable.
    pub async fn catch_up(&self) {
        let mut unflushed = HashMap::new();
        let mut ids = self.tracked();
        while !ids.is_empty() {
            ids = self.ingest_round(ids, &mut unflushed).await;
        }
        self.flush_and_reclaim(&mut unflushed).await;
    }

    fn next_idle(&self) -> Option<Instant> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .values()
            .filter_map(|t| t.idle_at)
            .min()
    }

    fn idle_transitions(&self) {
        let now = Instant::now();
        let due: Vec<(SessionId, bool)> = {
            let sessions = self.0.sessions.lock().expect("sessions lock");
            sessions
                .iter()
                .filter(|(_, t)| t.idle_at.is_some_and(|at| at <= now))
                .map(|(id, t)| (id.clone(), self.waiting_matches(id, &recent_view(t))))
                .collect()
        };
        for (id, waiting) in due {
            let current = self.state(&id);
            let next = match current {
                Some(AgentState::Exited { .. }) | None => continue,
                _ if waiting => AgentState::Waiting,
                _ => AgentState::Idle,
            };
            self.set_state(&id, next, None);
        }
    }

    fn waiting_matches(&self, id: &SessionId, recent: &str) -> bool {
        self.0
            .activity
            .read()
            .expect("activity lock")
            .waiting
            .get(id.user.as_str())
            .is_some_and(|re| re.is_match(recent))
    }

    /// Reads pending inotify events; marks their sessions dirty.
    fn drain_inotify(&self, dirty: &mut HashSet<SessionId>) {
        loop {
            match self.0.inotify.get_ref().0.read_events() {
                Ok(events) if !events.is_empty() => {
                    let watches = self.0.watches.lock().expect("watches lock");
                    for ev in events {
                        let (Some(user), Some(name)) = (watches.get(&ev.wd), ev.name) else {
                            continue;
                        };
                        let Some(session) = name.to_str().and_then(|n| n.strip_suffix(".out"))
                        else {
                            continue;
                        };
                        if let Ok(id) = format!("{user}/{session}").parse::<SessionId>() {
                            dirty.insert(id);
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// Ingests a share of the given sessions; flushes and reclaims spool
    /// space when enough has accumulated. Returns the sessions with more.
    async fn ingest_round(
        &self,
        ids: HashSet<SessionId>,
        unflushed: &mut HashMap<SessionId, SpoolMark>,
    ) -> HashSet<SessionId> {
        let (reply, done) = tokio::sync::oneshot::channel();
        let sent = self
            .ingest_thread()
            .send((ids.into_iter().collect(), reply));
        if sent.is_err() {
            tracing::error!("the transcript ingest thread is gone");
            return HashSet::new();
        }
        let Ingested { marks, left } = done.await.unwrap_or_default();
        unflushed.extend(marks);
        let due = {
            let sessions = self.0.sessions.lock().expect("sessions lock");
            unflushed.iter().any(|(id, mark)| {
                sessions
                    .get(id)
                    .is_some_and(|t| mark.offset >= t.punched + PUNCH_EVERY)
            })
        };
        if due {
            self.flush_and_reclaim(unflushed).await;
        }
        left
    }

    /// Spool bytes not yet in any transcript (the ingest lag).
    pub fn total_backlog(&self) -> u64 {
        self.tracked().iter().map(|id| self.backlog(id)).sum()
    }

    /// Spool bytes of `id` not yet in the transcript.
    fn backlog(&self, id: &SessionId) -> u64 {
        let size = UserDir::open(&self.spool_dir(id))
            .and_then(|d| d.stat(&spool_name(id)))
            .map(|st| st.st_size as u64)
            .unwrap_or(0);
        let offset = self
            .log(id)
            .and_then(|l| l.spool_mark())
            .map(|m| m.offset)
            .unwrap_or(0);
        size.saturating_sub(offset)
    }

    /// Mid-burst: derive agent state from the spool's last few KiB only.
    fn peek_tail(&self, id: &SessionId) {
        let Ok(file) = self.spool_file(id, false) else {
            return;
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = size.saturating_sub(TAIL_PEEK);
        let mut buf = vec![0u8; (size - start) as usize];
        if let Ok(n) = read_full_at(&file, &mut buf, start) {
            buf.truncate(n);
            if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
                // The tail is not a continuation of what was rendered.
                t.text = TextRenderer::default();
                t.recent.clear();
            }
            self.observe_output(id, &buf);
        }
    }

    /// The low-priority thread that reads spools into the store.
    fn ingest_thread(&self) -> std::sync::mpsc::SyncSender<IngestJob> {
        let mut jobs = self.0.ingest_jobs.lock().expect("ingest lock");
        if let Some(tx) = jobs.as_ref() {
            return tx.clone();
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<IngestJob>(1);
        // The thread holds only a weak handle, so it ends with the recorder.
        let weak = Arc::downgrade(&self.0);
        std::thread::Builder::new()
            .name("tmuxd-ingest".into())
            .spawn(move || {
                // SAFETY: setpriority on our own thread id; no pointers.
                unsafe {
                    libc::setpriority(
                        libc::PRIO_PROCESS,
                        nix::unistd::gettid().as_raw() as libc::id_t,
                        INGEST_NICE,
                    )
                };
                while let Ok((ids, reply)) = rx.recv() {
                    let Some(inner) = weak.upgrade() else { break };
                    let rec = Recorder(inner);
                    let _ = reply.send(rec.ingest_all(ids));
                }
            })
            .expect("spawn the ingest thread");
        *jobs = Some(tx.clone());
        tx
    }

    /// Ingests each session until its spool is read or its [`QUANTUM`]
    /// is used (on the ingest thread).
    fn ingest_all(&self, ids: Vec<SessionId>) -> Ingested {
        let mut done = Ingested::default();
        for id in ids {
            let mut budget = QUANTUM;
            loop {
                match self.ingest(&id) {
                    Ok(Some((mark, more))) => {
                        done.marks.push((id.clone(), mark));
                        budget = budget.saturating_sub(MAX_READ);
                        if more && budget == 0 {
                            done.left.insert(id.clone());
                        }
                        if !more || budget == 0 {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(session = %id, error = %e, "transcript ingest failed");
                        break;
                    }
                }
            }
        }
        done
    }

    /// Makes ingested data durable, then frees it from the spools.
    async fn flush_and_reclaim(&self, unflushed: &mut HashMap<SessionId, SpoolMark>) {
        if let Err(e) = self.0.store.flush().await {
            tracing::error!(error = %e, "transcript flush failed");
            return;
        }
        // Only durable data may leave the spool.
        for (id, mark) in unflushed.drain() {
            self.reclaim(&id, mark);
        }
    }

    /// Appends what the spool holds beyond the stored offset (at most
    /// MAX_READ). Returns the new mark and whether more is left.
    fn ingest(&self, id: &SessionId) -> Result<Option<(SpoolMark, bool)>, StoreError> {
        let path = self.spool_path(id);
        let file = match self.spool_file(id, false) {
            Ok(f) => {
                self.note_refused(id, None);
                f
            }
            Err(Refused::NotFound) => return Ok(None),
            Err(refused) => {
                self.note_refused(id, Some(&refused));
                return Ok(None);
            }
        };
        let meta = file
            .metadata()
            .map_err(|e| StoreError::BadRecord(e.to_string()))?;
        let log = match self.0.sessions.lock().expect("sessions lock").get(id) {
            Some(t) => t.log.clone(),
            None => return Ok(None),
        };
        let mut mark = log.spool_mark()?;
        if mark.inode != 0 && mark.inode != meta.ino() {
            tracing::warn!(session = %id, path = %path.display(), "spool file was replaced; reading the new one from its start");
            log.event(
                "spool-replaced",
                serde_json::json!({"ingested_offset": mark.offset}),
            )?;
            mark = SpoolMark {
                inode: meta.ino(),
                offset: 0,
            };
            self.reset_punched(id);
        } else if meta.len() < mark.offset {
            tracing::warn!(session = %id, path = %path.display(), size = meta.len(), offset = mark.offset, "spool file shrank; reading it from its start");
            log.event(
                "spool-shrank",
                serde_json::json!({"size": meta.len(), "ingested_offset": mark.offset}),
            )?;
            mark = SpoolMark {
                inode: meta.ino(),
                offset: 0,
            };
            self.reset_punched(id);
        }
        mark.inode = meta.ino();
        // cat only appends; a hole past what was ingested was made by
        // someone else (a sparse file) and holds no output: skip it.
        let data = next_data(&file, mark.offset, meta.len());
        if data > mark.offset {
            log.event(
                "spool-hole-skipped",
                serde_json::json!({"from": mark.offset, "to": data}),
            )?;
            mark.offset = data;
            if data == meta.len() {
                log.append_output(&[], mark)?;
                return Ok(Some((mark, false)));
            }
        }
        let available = meta.len().saturating_sub(mark.offset);
        if available == 0 {
            return Ok(None);
        }
        let take = available.min(MAX_READ);
        let mut buf = vec![0u8; take as usize];
        let n = read_full_at(&file, &mut buf, mark.offset)
            .map_err(|e| StoreError::BadRecord(e.to_string()))?;
        buf.truncate(n);
        if buf.is_empty() {
            return Ok(None);
        }
        let new = SpoolMark {
            inode: mark.inode,
            offset: mark.offset + buf.len() as u64,
        };
        let stored = log.append_output(&buf, new)?;
        crate::metrics::add(&crate::metrics::COUNTERS.transcript_bytes, buf.len() as u64);
        if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
            t.stored = t.stored.map(|s| s + stored);
        }
        self.observe_output(id, &buf);
        Ok(Some((new, take < available)))
    }

    fn reset_punched(&self, id: &SessionId) {
        if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
            t.punched = 0;
        }
    }

    /// Output arrived: running (or waiting if the prompt shows), idle later.
    fn observe_output(&self, id: &SessionId, bytes: &[u8]) {
        let waiting = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            let done = t.text.feed(bytes);
            t.recent.push_str(&done);
            if t.recent.len() > RECENT_TEXT {
                let cut = t.recent.len() - RECENT_TEXT;
                let cut = (cut..t.recent.len())
                    .find(|i| t.recent.is_char_boundary(*i))
                    .unwrap_or(0);
                t.recent.drain(..cut);
            }
            self.waiting_matches(id, &recent_view(t))
        };
        let state = if waiting {
            AgentState::Waiting
        } else {
            AgentState::Running
        };
        let exited = matches!(self.state(id), Some(AgentState::Exited { .. }));
        if !exited {
            self.set_state(id, state, Some(Instant::now() + self.idle_after()));
        }
    }

    /// Frees ingested spool data (whole blocks) and applies retention.
    fn reclaim(&self, id: &SessionId, mark: SpoolMark) {
        let (punched, log, stored, age_due) =
            match self.0.sessions.lock().expect("sessions lock").get(id) {
                Some(t) => (
                    t.punched,
                    t.log.clone(),
                    t.stored,
                    t.age_checked.is_none_or(|at| at.elapsed() >= AGE_CHECK),
                ),
                None => return,
            };
        let upto = mark.offset & !4095;
        if upto > punched {
            let file = self.spool_file(id, true).map_err(std::io::Error::other);
            match file.and_then(|f| punch(&f, upto)) {
                Ok(()) => {
                    if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
                        t.punched = upto;
                    }
                }
                Err(e) => tracing::warn!(session = %id, error = %e, "cannot reclaim spool space"),
            }
        }
        // Retention scans the log: only when it may be over its size, and
        // hourly for age.
        let stored = stored.unwrap_or_else(|| log.stored_bytes());
        let retention = *self.0.retention.read().expect("retention lock");
        if stored <= retention.max_bytes && !age_due {
            self.set_stored(id, Some(stored), None);
            return;
        }
        match log.apply_retention(retention) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(session = %id, dropped = n, "transcript retention dropped old chunks")
            }
            Err(e) => tracing::error!(session = %id, error = %e, "transcript retention failed"),
        }
        self.set_stored(id, Some(log.stored_bytes()), Some(Instant::now()));
    }

    fn set_stored(&self, id: &SessionId, stored: Option<u64>, age_checked: Option<Instant>) {
        if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
            t.stored = stored;
            if age_checked.is_some() {
                t.age_checked = age_checked;
            }
        }
    }
}

/// The recent text a prompt pattern is matched against: the last lines and
/// the line being written (prompts rarely end with a newline).
fn recent_view(t: &Tracked) -> String {
    let mut view = t.recent.clone();
    view.push_str(&t.text.current_line());
    view
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

fn read_full_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// Deallocates `[0, upto)` of the spool file, keeping its size and offsets.
fn punch(file: &std::fs::File, upto: u64) -> std::io::Result<()> {
    use nix::fcntl::{fallocate, FallocateFlags};
    fallocate(
        file,
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        0,
        upto as i64,
    )?;
    Ok(())
}

/// `SPOOL_ROOT/USER/SESSION.out`.
pub fn spool_path(root: &Path, id: &SessionId) -> PathBuf {
    root.join(id.user.as_str()).join(spool_name(id))
}

fn spool_name(id: &SessionId) -> String {
    format!("{}.out", id.session)
}

/// The first offset at or after `from` that holds data (`size` if none).
fn next_data(file: &std::fs::File, from: u64, size: u64) -> u64 {
    use std::os::fd::AsRawFd;
    if from >= size {
        return from;
    }
    // SAFETY: lseek on a file we own; SEEK_DATA only reads the extent map
    // (it moves the offset, which our positioned reads do not use).
    let at = unsafe { libc::lseek(file.as_raw_fd(), from as libc::off_t, libc::SEEK_DATA) };
    match at {
        n if n >= 0 => n as u64,
        // ENXIO: nothing but a hole up to the end.
        _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) => size,
        // No SEEK_DATA here: read everything.
        _ => from,
    }
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The `pipe-pane` command for a spool file: the one shell string tmuxd
/// builds, from a path it generated, single-quoted.
pub fn pipe_command(spool: &Path) -> String {
    let quoted = spool.display().to_string().replace('\'', r"'\''");
    format!("exec cat >> '{quoted}'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::{export, ExportOptions, Format};

    fn recorder(dir: &Path, waiting: Option<&str>, idle_ms: u64) -> Recorder {
        let store = Store::open(&dir.join("db")).unwrap();
        let mut patterns = HashMap::new();
        if let Some(p) = waiting {
            patterns.insert("alice".to_owned(), regex::Regex::new(p).unwrap());
        }
        Recorder::new(
            store,
            dir.join("spool"),
            Retention {
                max_bytes: u64::MAX,
                max_age: Duration::from_secs(86_400),
            },
            ActivityConfig {
                idle_after: Duration::from_millis(idle_ms),
                waiting: patterns,
            },
        )
        .unwrap()
    }

    fn raw(rec: &Recorder, id: &SessionId) -> Vec<u8> {
        let mut out = Vec::new();
        export(
            &rec.log(id).unwrap(),
            Format::Raw,
            &ExportOptions::default(),
            &mut out,
        )
        .unwrap();
        out
    }

    fn append(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    #[tokio::test]
    async fn spool_shrunk_or_replaced_is_detected_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path(), None, 60_000);
        let id: SessionId = "alice/main".parse().unwrap();
        rec.track(&id).unwrap();
        let spool = rec.spool_path(&id);
        append(&spool, b"one\n");
        rec.catch_up().await;
        append(&spool, b"two\n");
        rec.catch_up().await;
        assert_eq!(raw(&rec, &id), b"one\ntwo\n");
        // Shrunk: truncated, then new output.
        std::fs::write(&spool, b"3\n").unwrap();
        rec.catch_up().await;
        assert_eq!(raw(&rec, &id), b"one\ntwo\n3\n");
        // Replaced: a new file renamed over it.
        let other = dir.path().join("new.out");
        std::fs::write(&other, b"four\nfive\n").unwrap();
        std::fs::rename(&other, &spool).unwrap();
        rec.catch_up().await;
        assert_eq!(raw(&rec, &id), b"one\ntwo\n3\nfour\nfive\n");
        // Nothing new: nothing added.
        rec.catch_up().await;
        assert_eq!(raw(&rec, &id), b"one\ntwo\n3\nfour\nfive\n");
        let mut text = Vec::new();
        export(
            &rec.log(&id).unwrap(),
            Format::Text,
            &ExportOptions::default(),
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("spool-shrank") && text.contains("spool-replaced"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn ingested_spool_space_is_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path(), None, 60_000);
        let id: SessionId = "alice/main".parse().unwrap();
        rec.track(&id).unwrap();
        let spool = rec.spool_path(&id);
        let data: Vec<u8> = (0..400_000)
            .flat_map(|i| format!("{i:07}\n").into_bytes())
            .collect();
        append(&spool, &data);
        for _ in 0..4 {
            rec.catch_up().await;
        }
        assert_eq!(raw(&rec, &id), data);
        let meta = std::fs::metadata(&spool).unwrap();
        assert_eq!(meta.len(), data.len() as u64, "offsets stay valid");
        assert!(
            meta.blocks() * 512 < 64 * 1024,
            "{} bytes still allocated",
            meta.blocks() * 512
        );
    }

    #[tokio::test(start_paused = true)]
    async fn states_running_idle_waiting_exited() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(dir.path(), Some(r"Do you want to proceed\?"), 1000);
        let id: SessionId = "alice/main".parse().unwrap();
        rec.track(&id).unwrap();
        let mut changes = rec.subscribe();
        rec.observe_output(&id, b"\x1b[1mworking...\x1b[0m\r\n");
        assert_eq!(rec.state(&id), Some(AgentState::Running));
        tokio::time::advance(Duration::from_millis(1100)).await;
        rec.idle_transitions();
        assert_eq!(rec.state(&id), Some(AgentState::Idle));
        rec.observe_output(&id, b"\x1b[33mDo you want\x1b[0m to proceed? (y/n) ");
        assert_eq!(rec.state(&id), Some(AgentState::Waiting));
        // Quiet while waiting: still waiting, not idle.
        tokio::time::advance(Duration::from_millis(1100)).await;
        rec.idle_transitions();
        assert_eq!(rec.state(&id), Some(AgentState::Waiting));
        rec.agent_exited(
            &id,
            &ExitInfo {
                status: Some(1),
                signal: None,
                at: None,
            },
        );
        assert_eq!(
            rec.state(&id),
            Some(AgentState::Exited {
                status: Some(1),
                signal: None
            })
        );
        let seen: Vec<&str> = std::iter::from_fn(|| changes.try_recv().ok())
            .map(|c| c.state.name())
            .collect();
        assert_eq!(seen, ["idle", "waiting", "exited"]);
    }

    #[test]
    fn pipe_command_quotes_the_path() {
        assert_eq!(
            pipe_command(Path::new("/var/x/a.out")),
            "exec cat >> '/var/x/a.out'"
        );
        assert_eq!(
            pipe_command(Path::new("/it's/a.out")),
            r"exec cat >> '/it'\''s/a.out'"
        );
    }
}
