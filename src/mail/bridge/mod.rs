//! The decision for each inbound message, and its effects.
//!
//! One path for every message, whether IMAP fetched it or an MTA piped it
//! to `tmuxd mail-ingest`: parse within caps, drop duplicates, never answer
//! automatic mail, authenticate the sender (fail closed, quarantined and
//! never answered), rate-limit, then either act on a confirmation token or
//! read the command. The decision and everything it changes (the message
//! marked handled, a pending confirmation, a queued job, a reply in the
//! outbox) are committed in one write; the audit log gets one line per
//! decision. Decisions are made one message at a time per Message-ID.
//!
//! Parts: `grammar` (the command line), `decide` (the decision), `replies`
//! (what is mailed back); this file commits decisions and their effects.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::message::{self, Caps, Inbound};
use super::sender::{self, AddressKey, CONFIRM_PREFIX};
use super::state::{
    mail_dir, Action, AuditEntry, Job, MailStore, Outgoing, Pending, Stage, Thread,
};
use super::Outcome;
use crate::auth::constant_time_eq;
use crate::clock::Clock;
use crate::config::{Config, ConfirmPolicy, Live, MailConfig, UserConfig};
use crate::names::{Name, SessionId};
use crate::risk;
use crate::supervisor::Supervisor;

mod decide;
#[cfg(test)]
mod expiry_tests;
mod grammar;
mod questions;
mod replies;
#[cfg(test)]
mod tests;

use decide::{job_from, Limiter};
use grammar::TRANSCRIPT_LINES;
pub(crate) use grammar::{forbidden, with_files};
pub use grammar::{parse_command, session_from_subject, Command, Verb};
pub use replies::address_with_tag;
use replies::clip;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The audit decision (`rejected`, `pending`, ...).
    pub decision: Outcome,
    pub reason: String,
    /// Unauthenticated or unreadable: moved out of the way, never answered.
    pub quarantine: bool,
}

/// Why a pending command cannot be confirmed or cancelled from the page.
const GONE: &str = "no such pending command (already confirmed, cancelled or expired)";

/// The bridge; cloneable handle.
#[derive(Clone)]
pub struct Bridge(Arc<Inner>);

struct Inner {
    config: Live,
    store: MailStore,
    key: AddressKey,
    supervisor: Supervisor,
    limiter: Mutex<Limiter>,
    /// One decision at a time per Message-ID (IMAP and mail-ingest may
    /// bring the same message); different messages, and so different
    /// users, never wait on each other's tmux calls. std mutex around the
    /// map only; entries live while their message is being decided.
    deciding: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    outbox_wake: Notify,
    exec_wake: Notify,
    /// Questions mailed, answerable by reply (std mutex, held briefly).
    tickets: Mutex<questions::Tickets>,
    /// Our host name, in the loop header and Message-IDs.
    host: String,
    /// What confirmations expire by.
    clock: Clock,
}

/// What a decision changes besides the audit log.
enum Effect {
    None,
    Reply(Outgoing),
    Pend(Box<(Pending, Outgoing)>),
    Queue(Job),
    /// A confirmation: the pending (by id) becomes a job, if still there.
    Confirm(String, Job),
    /// Drop a pending confirmation (cancelled, expired), maybe replying.
    Drop(String, Option<Outgoing>),
}

struct Decision {
    decision: Outcome,
    reason: String,
    quarantine: bool,
    from: Option<String>,
    user: Option<String>,
    session: Option<String>,
    command: Option<String>,
    flags: Vec<String>,
    effect: Effect,
}

impl Decision {
    fn new(decision: Outcome, reason: impl Into<String>) -> Decision {
        Decision {
            decision,
            reason: reason.into(),
            quarantine: false,
            from: None,
            user: None,
            session: None,
            command: None,
            flags: Vec::new(),
            effect: Effect::None,
        }
    }
    fn quarantined(mut self) -> Decision {
        self.quarantine = true;
        self
    }
}

/// A new random id (64 bits, hex).
pub(super) fn new_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    crate::auth::hex(&b)
}

impl Bridge {
    /// Opens the mail state (taking its lock) and the address key.
    pub fn open(config: Live, supervisor: Supervisor, clock: Clock) -> anyhow::Result<Bridge> {
        let dir = mail_dir(&config.get().state_dir);
        let store = MailStore::open(&dir)?;
        let key = AddressKey::load_or_create(&dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("key").display()))?;
        let host = hostname();
        Ok(Bridge(Arc::new(Inner {
            config,
            store,
            key,
            supervisor,
            limiter: Mutex::new(Limiter::default()),
            deciding: Mutex::new(HashMap::new()),
            outbox_wake: Notify::new(),
            exec_wake: Notify::new(),
            tickets: Mutex::new(questions::Tickets::default()),
            host,
            clock,
        })))
    }

    /// The bridge's time, in Unix milliseconds.
    pub(super) fn now_ms(&self) -> u64 {
        self.0.clock.now_ms()
    }

    pub fn config(&self) -> Arc<Config> {
        self.0.config.get()
    }

    pub(super) fn mail(&self) -> MailConfig {
        self.config()
            .mail
            .clone()
            .expect("the bridge runs only with [mail]")
    }

    pub fn store(&self) -> &MailStore {
        &self.0.store
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.0.supervisor
    }

    pub(super) fn host(&self) -> &str {
        &self.0.host
    }

    pub(super) fn exec_wake(&self) -> &Notify {
        &self.0.exec_wake
    }

    pub(super) fn outbox_wake(&self) -> &Notify {
        &self.0.outbox_wake
    }

    /// `user`'s secret address.
    pub fn user_address(&self, user: &str) -> String {
        address_with_tag(&self.mail().address, &self.0.key.user_tag(user))
    }

    /// Pending confirmations of `user` (for the web page).
    pub fn pending_for(&self, user: &Name) -> Vec<Pending> {
        let now = self.now_ms();
        self.0.store.read(|st| {
            st.pending
                .iter()
                .filter(|p| p.user == user.as_str() && p.expires_ms > now)
                .cloned()
                .collect()
        })
    }

    /// Confirms pending `id` of `user` from the authenticated web page.
    pub fn confirm_web(&self, user: &Name, id: &str, who: &str) -> Result<(), String> {
        let now = self.now_ms();
        let pending = self.pending_of(user, id)?;
        if pending.expires_ms <= now {
            return Err("this confirmation has expired; mail the command again".into());
        }
        let job = job_from(&pending, now);
        let done = self
            .0
            .store
            .update(|st| st.confirm(&pending.id, job))
            .map_err(|e| {
                tracing::error!(error = %e, "cannot write the mail state");
                "internal error; nothing was confirmed".to_owned()
            })?;
        if !done {
            return Err(GONE.into());
        }
        self.audit_pending(
            &pending,
            Outcome::Confirmed,
            &format!("confirmed on the web page by {who}"),
        );
        self.0.exec_wake.notify_one();
        Ok(())
    }

    /// Cancels one of `user`'s pending commands from the web page: nothing
    /// is typed, and a later YES finds nothing to confirm.
    pub fn cancel_web(&self, user: &Name, id: &str, who: &str) -> Result<(), String> {
        let pending = self.pending_of(user, id)?;
        let done = self
            .0
            .store
            .update(|st| {
                let before = st.pending.len();
                st.pending.retain(|p| p.id != pending.id);
                st.pending.len() < before
            })
            .map_err(|e| {
                tracing::error!(error = %e, "cannot write the mail state");
                "internal error; nothing was cancelled".to_owned()
            })?;
        if !done {
            return Err(GONE.into());
        }
        self.audit_pending(
            &pending,
            Outcome::Cancelled,
            &format!("cancelled on the web page by {who}"),
        );
        Ok(())
    }

    /// `user`'s pending command `id`.
    /// Whether `user`'s pending command `id` raised risk flags.
    pub fn pending_is_risky(&self, user: &Name, id: &str) -> bool {
        self.pending_of(user, id).is_ok_and(|p| !p.flags.is_empty())
    }

    fn pending_of(&self, user: &Name, id: &str) -> Result<Pending, String> {
        self.0
            .store
            .read(|st| {
                st.pending
                    .iter()
                    .find(|p| p.id == id && p.user == user.as_str())
                    .cloned()
            })
            .ok_or_else(|| GONE.to_owned())
    }

    fn audit_pending(&self, p: &Pending, decision: Outcome, reason: &str) {
        self.audit(AuditEntry {
            ts_ms: self.now_ms(),
            message_id: p.thread.in_reply_to.clone(),
            from: Some(p.thread.to.clone()),
            user: Some(p.user.clone()),
            session: Some(p.session.clone()),
            decision,
            reason: reason.into(),
            command: Some(p.action.describe()),
            flags: p.flags.clone(),
        });
    }

    pub(super) fn audit(&self, entry: AuditEntry) {
        crate::metrics::mail_decision(entry.decision.as_str());
        tracing::info!(
            decision = %entry.decision,
            reason = %entry.reason,
            user = entry.user.as_deref().unwrap_or("-"),
            session = entry.session.as_deref().unwrap_or("-"),
            "mail"
        );
        self.0.store.audit(&entry);
    }

    /// Handles one RFC 5322 message.
    pub async fn handle(&self, raw: &[u8]) -> Handled {
        let key = message::message_id_of(raw);
        let slot = self
            .0
            .deciding
            .lock()
            .expect("deciding lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let handled = {
            let _one = slot.lock().await;
            self.decide_and_finish(raw).await
        };
        let mut deciding = self.0.deciding.lock().expect("deciding lock");
        // Ours and the map's: nobody else waits for this message.
        if Arc::strong_count(&slot) == 2 {
            deciding.remove(&key);
        }
        handled
    }

    async fn decide_and_finish(&self, raw: &[u8]) -> Handled {
        let mail = self.mail();
        let now = self.now_ms();
        let caps = Caps {
            max_bytes: mail.max_message_bytes,
            max_depth: mail.max_mime_depth,
            ..Caps::default()
        };
        let (message_id, d, mark) = match message::parse(raw, caps) {
            Err(e) => (
                message::message_id_of(raw),
                Decision::new(Outcome::Rejected, e.to_string()).quarantined(),
                true,
            ),
            Ok(msg)
                if self
                    .0
                    .store
                    .read(|st| st.handled.contains_key(&msg.message_id)) =>
            {
                (
                    msg.message_id,
                    Decision::new(Outcome::Duplicate, "this Message-ID was handled before"),
                    false,
                )
            }
            Ok(msg) => {
                let d = self.decide(&mail, &msg, now).await;
                (msg.message_id, d, true)
            }
        };
        // Quarantined mail is never answered and never typed: it needs no
        // handled mark (so junk cannot fill the state file).
        let mark = mark && !d.quarantine;
        self.finish(&message_id, d, now, mark)
    }

    /// Commits `d` (and marks `message_id` handled if `mark`), audits it,
    /// and says what became of the message.
    fn finish(&self, message_id: &str, mut d: Decision, now: u64, mark: bool) -> Handled {
        let effect = std::mem::replace(&mut d.effect, Effect::None);
        let mut wake_exec = false;
        let mut wake_outbox = false;
        let r = self.0.store.update(|st| {
            if mark {
                st.handled.insert(message_id.to_owned(), now);
            }
            match effect {
                Effect::None => {}
                Effect::Reply(o) => {
                    st.outbox.push(o);
                    wake_outbox = true;
                }
                Effect::Pend(b) => {
                    let (p, o) = *b;
                    st.pending.push(p);
                    st.outbox.push(o);
                    wake_outbox = true;
                }
                Effect::Queue(j) => {
                    st.jobs.push(j);
                    wake_exec = true;
                }
                Effect::Confirm(id, j) => {
                    if st.confirm(&id, j) {
                        wake_exec = true;
                    } else {
                        d.decision = Outcome::Refused;
                        d.reason = "this confirmation was already used".into();
                    }
                }
                Effect::Drop(id, o) => {
                    st.pending.retain(|p| p.id != id);
                    if let Some(o) = o {
                        st.outbox.push(o);
                        wake_outbox = true;
                    }
                }
            }
        });
        if let Err(e) = r {
            // Not marked handled: the message is handled again later.
            tracing::error!(error = %e, "cannot write the mail state");
            d.decision = Outcome::Failed;
            d.reason = "could not write the mail state; will retry".into();
        }
        let handled = Handled {
            decision: d.decision,
            reason: d.reason.clone(),
            quarantine: d.quarantine,
        };
        self.audit(AuditEntry {
            ts_ms: now,
            message_id: message_id.to_owned(),
            from: d.from,
            user: d.user,
            session: d.session,
            decision: d.decision,
            reason: d.reason,
            command: d.command,
            flags: d.flags,
        });
        if wake_exec {
            self.0.exec_wake.notify_one();
        }
        if wake_outbox {
            self.0.outbox_wake.notify_one();
        }
        handled
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
