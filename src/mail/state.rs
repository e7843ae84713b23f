//! The bridge's durable state, outside the transcript database: one JSON
//! file written atomically (write, fsync, rename, fsync the directory), and
//! an append-only audit log.
//!
//! Everything one decision changes (the Message-ID marked handled, a
//! pending confirmation, a queued job, a reply in the outbox) is committed
//! in one write, so a crash leaves either all of it or none of it, and the
//! message is then handled again from scratch or recognized as handled.
//! The daemon holds an exclusive lock on `STATE_DIR/mail/lock` while it
//! runs. The volume is small (pending confirmations and replies in flight;
//! handled ids are kept 30 days).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use super::items::{Action, Attachment, ImapMark, Job, Outgoing, Pending, Stage, Thread};
use super::Outcome;

/// Handled Message-IDs are remembered this long.
const HANDLED_KEEP_MS: u64 = 30 * 24 * 3600 * 1000;
/// The audit log moves on to a new file past this size...
const AUDIT_ROTATE: u64 = 8 * 1024 * 1024;
/// ...keeping this many old ones (`audit.jsonl.1` newest): 64 MiB of
/// history in all, the oldest file dropped first.
const AUDIT_KEEP: usize = 8;
/// Handled Message-IDs kept at most (the oldest are forgotten first), so
/// the state file, rewritten per decision, stays small whatever arrives.
const HANDLED_MAX: usize = 10_000;

/// Everything in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub imap: Option<ImapMark>,
    /// Message-ID -> when it was handled (ms).
    #[serde(default)]
    pub handled: BTreeMap<String, u64>,
    #[serde(default)]
    pub pending: Vec<Pending>,
    #[serde(default)]
    pub jobs: Vec<Job>,
    #[serde(default)]
    pub outbox: Vec<Outgoing>,
}

impl State {
    /// Turns pending `id` into `job`; false if it is gone (used, cancelled,
    /// expired), so a confirmation takes effect at most once.
    /// Forgets handled ids older than 30 days, and the oldest beyond
    /// [`HANDLED_MAX`].
    fn prune(&mut self, now: u64) {
        let cutoff = now.saturating_sub(HANDLED_KEEP_MS);
        self.handled.retain(|_, t| *t >= cutoff);
        if self.handled.len() > HANDLED_MAX {
            let mut times: Vec<u64> = self.handled.values().copied().collect();
            times.sort_unstable();
            let keep_from = times[times.len() - HANDLED_MAX];
            self.handled.retain(|_, t| *t >= keep_from);
            // Ties at the boundary: drop arbitrary ones to stay bounded.
            while self.handled.len() > HANDLED_MAX {
                let Some(k) = self.handled.keys().next().cloned() else {
                    break;
                };
                self.handled.remove(&k);
            }
        }
    }

    pub fn confirm(&mut self, id: &str, job: Job) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| p.id != id);
        let found = self.pending.len() < before;
        if found {
            self.jobs.push(job);
        }
        found
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub ts_ms: u64,
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub decision: Outcome,
    pub reason: String,
    /// The command, for authenticated senders only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

impl AuditEntry {
    /// An entry of now, about no message yet.
    pub fn new(decision: Outcome, reason: impl Into<String>) -> AuditEntry {
        AuditEntry {
            ts_ms: now_ms(),
            message_id: String::new(),
            from: None,
            user: None,
            session: None,
            decision,
            reason: reason.into(),
            command: None,
            flags: Vec::new(),
        }
    }
}

/// Failure to read or write the mail state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({reason}); move it away to start with an empty mail state")]
    Damaged { path: PathBuf, reason: String },
    #[error("{0} is locked by another tmuxd")]
    Locked(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The mail state directory and its open files.
pub struct MailStore {
    dir: PathBuf,
    /// std mutex: held only for a short in-memory change and one small
    /// file write, never across an `.await`.
    state: Mutex<State>,
    audit: Mutex<()>,
    /// Counts changes to the pending commands and the audit log: the Email
    /// page's live view waits on it.
    changes: tokio::sync::watch::Sender<u64>,
    _lock: nix::fcntl::Flock<File>,
}

/// `STATE_DIR/mail`.
pub fn mail_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("mail")
}

pub use crate::clock::unix_now_ms as now_ms;

impl MailStore {
    /// Opens (creating) the mail state in `dir`, taking its lock.
    pub fn open(dir: &Path) -> Result<MailStore, StateError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| StateError::Locked(lock_path.clone()))?;
        let path = dir.join("state.json");
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<State>(&bytes).map_err(|e| StateError::Damaged {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        state.prune(now_ms());
        Ok(MailStore {
            dir: dir.to_owned(),
            state: Mutex::new(state),
            audit: Mutex::new(()),
            changes: tokio::sync::watch::channel(0).0,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A receiver that sees every change to the pending commands or the
    /// audit log.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A copy of the state.
    #[cfg(test)]
    pub fn snapshot(&self) -> State {
        self.read(State::clone)
    }

    /// Reads the state in place (no copy).
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("mail state lock"))
    }

    /// Changes the state with `f` and commits it; on a failed write the
    /// change is undone and the error returned. The write is fsynced: on a
    /// runtime worker the worker's other tasks move elsewhere meanwhile.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R, StateError> {
        off_worker(|| self.update_now(f))
    }

    fn update_now<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R, StateError> {
        let mut guard = self.state.lock().expect("mail state lock");
        let before = guard.clone();
        let r = f(&mut guard);
        if *guard == before {
            return Ok(r);
        }
        guard.prune(now_ms());
        if let Err(e) = write_atomic(&self.dir.join("state.json"), &guard) {
            *guard = before;
            return Err(e);
        }
        drop(guard);
        self.changed();
        Ok(r)
    }

    /// Appends `entry` to the audit log (fsynced; off the worker, as
    /// [`MailStore::update`]).
    pub fn audit(&self, entry: &AuditEntry) {
        off_worker(|| self.audit_now(entry))
    }

    fn audit_now(&self, entry: &AuditEntry) {
        let _g = self.audit.lock().expect("audit lock");
        let path = self.dir.join("audit.jsonl");
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > AUDIT_ROTATE) {
            // audit.jsonl.N-1 -> .N, ..., audit.jsonl -> .1: history kept.
            for n in (1..AUDIT_KEEP).rev() {
                let _ = std::fs::rename(audit_file(&self.dir, n), audit_file(&self.dir, n + 1));
            }
            let _ = std::fs::rename(&path, audit_file(&self.dir, 1));
        }
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| {
                let mut line = serde_json::to_vec(entry).expect("json");
                line.push(b'\n');
                f.write_all(&line)?;
                f.sync_data()
            });
        if let Err(e) = r {
            tracing::error!(path = %path.display(), error = %e, "cannot write the mail audit log");
        }
        self.changed();
    }
}

/// Runs blocking `f` (file writes with fsync, and the locks they are made
/// under) without holding up a multi-threaded runtime's other tasks: its
/// worker hands them on first. Elsewhere (tests, the CLI) `f` just runs.
fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The last `limit` audit entries (oldest first) that `keep` accepts; read
/// without the lock, so the CLI works beside a running daemon.
pub fn read_audit(
    dir: &Path,
    limit: usize,
    keep: impl Fn(&AuditEntry) -> bool,
) -> Result<Vec<AuditEntry>, StateError> {
    let mut out = std::collections::VecDeque::new();
    for n in (0..=AUDIT_KEEP).rev() {
        let path = audit_file(dir, n);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(io(&path))?;
            // A torn last line (crash mid-append) is skipped.
            let Ok(entry) = serde_json::from_str::<AuditEntry>(&line) else {
                continue;
            };
            if keep(&entry) {
                out.push_back(entry);
                if out.len() > limit {
                    out.pop_front();
                }
            }
        }
    }
    Ok(out.into())
}

/// `audit.jsonl` (n = 0) or the n-th older one, `audit.jsonl.N`.
fn audit_file(dir: &Path, n: usize) -> PathBuf {
    match n {
        0 => dir.join("audit.jsonl"),
        n => dir.join(format!("audit.jsonl.{n}")),
    }
}

fn write_atomic(path: &Path, state: &State) -> Result<(), StateError> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state).expect("json");
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    r.map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_failed_writes_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("mail");
        {
            let s = MailStore::open(&d).unwrap();
            assert!(matches!(MailStore::open(&d), Err(StateError::Locked(_))));
            s.update(|st| {
                st.handled.insert("a@b".into(), now_ms());
                st.imap = Some(ImapMark {
                    uidvalidity: 7,
                    last_uid: 3,
                });
            })
            .unwrap();
            // A write that cannot happen leaves memory as it was.
            std::fs::create_dir(d.join("state.json.tmp")).unwrap();
            assert!(s.update(|st| st.handled.insert("c@d".into(), 1)).is_err());
            assert!(!s.snapshot().handled.contains_key("c@d"));
            std::fs::remove_dir(d.join("state.json.tmp")).unwrap();
        }
        let s = MailStore::open(&d).unwrap();
        let st = s.snapshot();
        assert!(st.handled.contains_key("a@b"));
        assert_eq!(
            st.imap,
            Some(ImapMark {
                uidvalidity: 7,
                last_uid: 3
            })
        );
    }

    #[test]
    fn old_handled_ids_are_forgotten_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("mail");
        {
            let s = MailStore::open(&d).unwrap();
            s.update(|st| {
                st.handled.insert("old".into(), 1);
                st.handled.insert("new".into(), now_ms());
            })
            .unwrap();
        }
        let s = MailStore::open(&d).unwrap();
        assert_eq!(s.snapshot().handled.keys().collect::<Vec<_>>(), vec!["new"]);
        drop(s);
        std::fs::write(d.join("state.json"), b"{not json").unwrap();
        let e = MailStore::open(&d).err().unwrap().to_string();
        assert!(e.contains("state.json is damaged"), "{e}");
    }

    #[test]
    fn handled_ids_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = MailStore::open(dir.path()).unwrap();
        let now = now_ms();
        s.update(|st| {
            for i in 0..HANDLED_MAX as u64 + 500 {
                st.handled.insert(format!("id{i}"), now - 1_000_000 + i);
            }
        })
        .unwrap();
        let st = s.snapshot();
        assert_eq!(st.handled.len(), HANDLED_MAX);
        // The newest are kept.
        assert!(st
            .handled
            .contains_key(&format!("id{}", HANDLED_MAX as u64 + 499)));
        assert!(!st.handled.contains_key("id0"));
    }

    #[test]
    fn audit_rotation_keeps_history() {
        let dir = tempfile::tempdir().unwrap();
        let s = MailStore::open(dir.path()).unwrap();
        let reason = "x".repeat(1024 * 1024);
        // Each entry is ~1 MiB: rotations happen every ~8 entries.
        for i in 0..30u64 {
            s.audit(&AuditEntry {
                ts_ms: i,
                ..AuditEntry::new(Outcome::Rejected, reason.clone())
            });
        }
        let all = read_audit(dir.path(), 1000, |_| true).unwrap();
        // Nothing written was lost to a rotation, in order.
        assert_eq!(
            all.iter().map(|e| e.ts_ms).collect::<Vec<_>>(),
            (0..30).collect::<Vec<_>>()
        );
        assert!(audit_file(dir.path(), 2).exists());
    }

    #[test]
    fn audit_log_reads_back_filtered_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let s = MailStore::open(dir.path()).unwrap();
        for (i, user) in ["alice", "bob", "alice"].iter().enumerate() {
            s.audit(&AuditEntry {
                ts_ms: i as u64,
                user: Some(user.to_string()),
                ..AuditEntry::new(Outcome::Pending, "")
            });
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("audit.jsonl"))
            .unwrap()
            .write_all(b"{\"ts_ms\":")
            .unwrap();
        let alice = read_audit(dir.path(), 10, |e| e.user.as_deref() == Some("alice")).unwrap();
        assert_eq!(
            alice.iter().map(|e| e.ts_ms).collect::<Vec<_>>(),
            vec![0, 2]
        );
        let last = read_audit(dir.path(), 1, |_| true).unwrap();
        assert_eq!(last[0].ts_ms, 2);
    }
}
