//! The decision for each inbound message, and its effects.
//!
//! One path for every message, whether IMAP fetched it or an MTA piped it
//! to `tmuxd mail-ingest`: parse within caps, drop duplicates, never answer
//! automatic mail, authenticate the sender (fail closed, quarantined and
//! never answered), rate-limit, then either act on a confirmation token or
//! read the command. The decision and everything it changes (the message
//! marked handled, a pending confirmation, a queued job, a reply in the
//! outbox) are committed in one write; the audit log gets one line per
//! decision. Decisions are made one message at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::message::{self, Caps, Inbound};
use super::risk;
use super::sender::{self, AddressKey, CONFIRM_PREFIX};
use super::state::{
    mail_dir, now_ms, Action, AuditEntry, Job, MailStore, Outgoing, Pending, Stage, Thread,
};
use crate::auth::constant_time_eq;
use crate::config::{Config, ConfirmPolicy, MailConfig, UserConfig};
use crate::names::{Name, SessionId};
use crate::supervisor::Supervisor;

/// Longest command typed from mail.
const MAX_COMMAND_CHARS: usize = 4000;
/// Lines `transcript` sends by default, and at most.
const TRANSCRIPT_LINES: (usize, usize) = (40, 500);

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The audit decision (`rejected`, `pending`, ...).
    pub decision: &'static str,
    pub reason: String,
    /// Unauthenticated or unreadable: moved out of the way, never answered.
    pub quarantine: bool,
}

/// The bridge; cloneable handle.
#[derive(Clone)]
pub struct Bridge(Arc<Inner>);

struct Inner {
    /// Replaced on reload; std lock, read briefly.
    config: RwLock<Arc<Config>>,
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
    /// Our host name, in the loop header and Message-IDs.
    host: String,
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
    decision: &'static str,
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
    fn new(decision: &'static str, reason: impl Into<String>) -> Decision {
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
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Bridge {
    /// Opens the mail state (taking its lock) and the address key.
    pub fn open(config: Arc<Config>, supervisor: Supervisor) -> anyhow::Result<Bridge> {
        let dir = mail_dir(&config.state_dir);
        let store = MailStore::open(&dir)?;
        let key = AddressKey::load_or_create(&dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("key").display()))?;
        let host = hostname();
        Ok(Bridge(Arc::new(Inner {
            config: RwLock::new(config),
            store,
            key,
            supervisor,
            limiter: Mutex::new(Limiter::default()),
            deciding: Mutex::new(HashMap::new()),
            outbox_wake: Notify::new(),
            exec_wake: Notify::new(),
            host,
        })))
    }

    pub fn set_config(&self, config: Arc<Config>) {
        *self.0.config.write().expect("config lock") = config;
    }

    pub fn config(&self) -> Arc<Config> {
        self.0.config.read().expect("config lock").clone()
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
        let now = now_ms();
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
        let now = now_ms();
        let pending = self
            .0
            .store
            .read(|st| {
                st.pending
                    .iter()
                    .find(|p| p.id == id && p.user == user.as_str())
                    .cloned()
            })
            .ok_or_else(|| {
                "no such pending command (already confirmed, cancelled or expired)".to_owned()
            })?;
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
            return Err("no such pending command (already confirmed, cancelled or expired)".into());
        }
        self.audit_pending(
            &pending,
            "confirmed",
            &format!("confirmed on the web page by {who}"),
        );
        self.0.exec_wake.notify_one();
        Ok(())
    }

    fn audit_pending(&self, p: &Pending, decision: &str, reason: &str) {
        self.audit(AuditEntry {
            ts_ms: now_ms(),
            message_id: p.thread.in_reply_to.clone(),
            from: Some(p.thread.to.clone()),
            user: Some(p.user.clone()),
            session: Some(p.session.clone()),
            decision: decision.into(),
            reason: reason.into(),
            command: Some(p.action.describe()),
            flags: p.flags.clone(),
        });
    }

    pub(super) fn audit(&self, entry: AuditEntry) {
        crate::metrics::mail_decision(&entry.decision);
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
        let now = now_ms();
        let caps = Caps {
            max_bytes: mail.max_message_bytes,
            max_depth: mail.max_mime_depth,
            ..Caps::default()
        };
        let (message_id, d, mark) = match message::parse(raw, caps) {
            Err(e) => (
                message::message_id_of(raw),
                Decision::new("rejected", e.to_string()).quarantined(),
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
                    Decision::new("duplicate", "this Message-ID was handled before"),
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
                        d.decision = "refused";
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
            d.decision = "failed";
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
            decision: d.decision.into(),
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

    async fn decide(&self, mail: &MailConfig, msg: &Inbound, now: u64) -> Decision {
        let config = self.config();
        let (our_local, our_domain) = mail.address.split_once('@').expect("validated address");
        let ours = |a: &str| {
            sender::split_address(a).is_some_and(|(l, _, d)| l == our_local && d == our_domain)
        };
        if msg.from.iter().any(|f| ours(f)) {
            return Decision::new("ignored", "from our own address (a loop)");
        }
        if let Some(why) = &msg.automatic {
            return Decision::new("ignored", format!("automatic mail: {why}"));
        }
        let from = match msg.from.as_slice() {
            [one] => one.clone(),
            [] => return Decision::new("rejected", "no From address").quarantined(),
            many => {
                return Decision::new("rejected", format!("From has {} addresses", many.len()))
                    .quarantined()
            }
        };
        let d = |decision, reason: String| {
            let mut d = Decision::new(decision, reason);
            d.from = Some(from.clone());
            d
        };
        let candidates: Vec<&UserConfig> = config
            .users
            .iter()
            .filter(|u| u.emails.iter().any(|e| e == &from))
            .collect();
        if candidates.is_empty() {
            return d("rejected", "the sender is not in any user's emails".into()).quarantined();
        }
        let tags: Vec<String> = msg
            .recipients
            .iter()
            .filter_map(|r| sender::split_address(r))
            .filter(|(l, _, dom)| l == our_local && dom == our_domain)
            .filter_map(|(_, t, _)| t)
            .collect();
        if tags.is_empty() {
            return d("rejected", "not addressed to a secret address".into()).quarantined();
        }
        let from_domain = sender::domain_of(&from).unwrap_or_default();
        if let Err(why) =
            sender::check_authentication(&msg.auth_results, &mail.authserv_id, &from_domain)
        {
            return d("rejected", format!("sender not authenticated: {why}")).quarantined();
        }

        // A confirmation?
        if let Some(token) = tags.iter().find_map(|t| t.strip_prefix(CONFIRM_PREFIX)) {
            let hash = sender::token_hash(token);
            let pending = self.0.store.read(|st| {
                st.pending
                    .iter()
                    .rfind(|p| constant_time_eq(p.token_hash.as_bytes(), hash.as_bytes()))
                    .cloned()
            });
            let Some(p) = pending else {
                let mut x = d(
                    "refused",
                    "unknown or already used confirmation token".into(),
                );
                x.effect = Effect::Reply(self.reply_to_msg(
                    &from,
                    msg,
                    "This confirmation is unknown, already used or expired. Nothing was typed.\n\nMail the command again to get a new confirmation.",
                ));
                return x;
            };
            let mut x = d("refused", String::new());
            x.user = Some(p.user.clone());
            x.session = Some(p.session.clone());
            x.command = Some(p.action.describe());
            x.flags = p.flags.clone();
            let owner_ok = config
                .users
                .iter()
                .any(|u| u.name.as_str() == p.user && u.emails.contains(&from));
            if p.thread.to != from || !owner_ok {
                // Do not answer: the token's owner did not send this.
                x.reason = "the confirmation token belongs to another sender".into();
                return x.quarantined();
            }
            if p.expires_ms <= now {
                x.decision = "expired";
                x.reason = "the confirmation token has expired".into();
                x.effect = Effect::Drop(
                    p.id.clone(),
                    Some(self.reply_to_msg(
                        &from,
                        msg,
                        &format!(
                            "This confirmation expired at {}. Nothing was typed.\n\nMail the command again to get a new confirmation.",
                            crate::clock::iso8601(p.expires_ms / 1000)
                        ),
                    )),
                );
                return x;
            }
            if self.limited(mail, &from, &p.user) {
                x.decision = "rejected";
                x.reason = "rate limit reached".into();
                return x;
            }
            let answer = message::first_line(&msg.text).map(|l| {
                l.trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
                    .to_ascii_lowercase()
            });
            match answer.as_deref() {
                Some("yes" | "y" | "confirm" | "ok") => {
                    x.decision = "confirmed";
                    x.reason = "confirmed by reply".into();
                    x.effect = Effect::Confirm(p.id.clone(), job_from(&p, now));
                }
                Some("no" | "n" | "cancel") => {
                    x.decision = "cancelled";
                    x.reason = "cancelled by reply".into();
                    x.effect = Effect::Drop(
                        p.id.clone(),
                        Some(self.reply_to_msg(&from, msg, "Cancelled. Nothing was typed.")),
                    );
                }
                _ => {
                    x.reason = "the reply's first line is neither YES nor NO".into();
                    x.effect = Effect::Reply(self.reply_to_msg(
                        &from,
                        msg,
                        "Your reply's first line was neither YES nor NO, so nothing was typed. The confirmation is still open: reply YES to type the command, NO to cancel.",
                    ));
                }
            }
            return x;
        }

        // A command: the tag names the user.
        let Some(user) = candidates.iter().find(|u| {
            let tag = self.0.key.user_tag(u.name.as_str());
            tags.iter()
                .any(|t| constant_time_eq(t.as_bytes(), tag.as_bytes()))
        }) else {
            return d("rejected", "wrong secret address for this sender".into()).quarantined();
        };
        let mut x = d("refused", String::new());
        x.user = Some(user.name.to_string());
        if self.limited(mail, &from, user.name.as_str()) {
            x.decision = "rejected";
            x.reason = "rate limit reached".into();
            return x;
        }
        let refuse = |mut x: Decision, why: String| {
            x.effect = Effect::Reply(self.reply_to_msg(
                &from,
                msg,
                &format!("Refused: {why}.\n\nNothing was typed. Send `help` for how to use this address."),
            ));
            x.reason = why;
            x
        };
        if msg.undecodable {
            return refuse(x, "the text could not be decoded (unknown charset or invalid bytes); send it as UTF-8".into());
        }
        let session = match session_from_subject(&msg.subject) {
            Ok(s) => s,
            Err(why) => return refuse(x, why),
        };
        x.session = Some(session.to_string());
        let mut id = SessionId::new(user.name.clone(), session);
        let Some(line) = message::first_line(&msg.text) else {
            return refuse(
                x,
                "the mail has no command (its first line is empty)".into(),
            );
        };
        x.command = Some(line.to_owned());
        let action = match parse_command(line) {
            Ok(Command::Verb(v)) => {
                x.decision = "answered";
                x.reason = format!("answered {}", v.name());
                let body = self.answer(v, user, &id).await;
                x.effect = Effect::Reply(self.reply_to_msg(&from, msg, &body));
                return x;
            }
            Ok(Command::Act(a)) => a,
            Ok(Command::New(name)) => {
                id.session = name;
                x.session = Some(id.session.to_string());
                Action::New
            }
            Err(why) => return refuse(x, why),
        };
        let exists = match self.0.supervisor.server(&id.user) {
            Ok(server) => server.info(&id.session).await.is_ok(),
            Err(e) => return refuse(x, e.to_string()),
        };
        match (&action, exists) {
            (Action::New, true) => return refuse(x, format!("{id} already exists")),
            (Action::New, false) | (_, true) => {}
            (_, false) => {
                let why = format!("{id} does not exist; mail `new {}` first", id.session);
                return refuse(x, why);
            }
        }
        let flags: Vec<String> = match &action {
            Action::Prompt { text } => risk::flags(text).into_iter().map(String::from).collect(),
            _ => Vec::new(),
        };
        x.flags = flags.clone();
        let blocked: Vec<&String> = flags.iter().filter(|f| user.block.contains(f)).collect();
        if !blocked.is_empty() {
            let names: Vec<&str> = blocked.iter().map(|s| s.as_str()).collect();
            return refuse(x, format!("blocked by your policy: {}", names.join(", ")));
        }
        let confirm = match user.confirm {
            ConfirmPolicy::Always => true,
            ConfirmPolicy::Risky => !flags.is_empty(),
            ConfirmPolicy::Never => false,
        };
        let thread = self.thread(&from, msg);
        if !confirm {
            x.decision = "queued";
            x.reason =
                format!("no confirmation needed (confirm = {:?})", user.confirm).to_lowercase();
            x.effect = Effect::Queue(Job {
                id: new_id(),
                user: id.user.to_string(),
                session: id.session.to_string(),
                action,
                thread,
                stage: Stage::Queued,
                queued_ms: now,
                typed_ms: None,
            });
            return x;
        }
        let token = match sender::new_token() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "no randomness for a confirmation token");
                x.decision = "failed";
                x.reason = "internal error".into();
                return x;
            }
        };
        let pending = Pending {
            id: new_id(),
            token_hash: sender::token_hash(&token),
            user: id.user.to_string(),
            session: id.session.to_string(),
            action,
            flags,
            thread,
            created_ms: now,
            expires_ms: now + mail.confirm_ttl.as_millis() as u64,
        };
        let body = self.confirmation_body(mail, &pending, &id);
        let mut reply = self.reply_to_msg(&from, msg, &body);
        reply.subject = format!(
            "Confirm: [{}] {}",
            id.session,
            clip(&pending.action.describe(), 60)
        );
        reply.reply_to = Some(address_with_tag(
            &mail.address,
            &format!("{CONFIRM_PREFIX}{token}"),
        ));
        x.decision = "pending";
        x.reason = "confirmation requested".into();
        x.effect = Effect::Pend(Box::new((pending, reply)));
        x
    }

    fn limited(&self, mail: &MailConfig, from: &str, user: &str) -> bool {
        let mut l = self.0.limiter.lock().expect("limiter lock");
        !l.allow(
            &[
                (format!("s:{from}"), mail.sender_per_hour),
                (format!("u:{user}"), mail.user_per_hour),
            ],
            Instant::now(),
        )
    }

    fn confirmation_body(&self, mail: &MailConfig, p: &Pending, id: &SessionId) -> String {
        let mut b = String::new();
        b.push_str(&format!(
            "tmuxd received this command from {} for {id}:\n\n",
            p.thread.to
        ));
        for line in p.action.describe().lines() {
            b.push_str(&format!("    {line}\n"));
        }
        b.push('\n');
        if p.flags.is_empty() {
            b.push_str("Risk flags: none\n");
        } else {
            b.push_str("Risk flags:\n");
            for f in &p.flags {
                let what = risk::FLAGS
                    .iter()
                    .find(|x| x.0 == f)
                    .map(|x| x.1)
                    .unwrap_or("");
                b.push_str(&format!("  - {f}: {what}\n"));
            }
        }
        b.push_str(&format!(
            "\nNothing has been typed yet. To type it into {id}, reply to this mail with YES as the first line; reply NO to cancel. The reply address carries a single-use token: it works once, only from {}, and expires at {} ({} minutes).\n",
            p.thread.to,
            crate::clock::iso8601(p.expires_ms / 1000),
            mail.confirm_ttl.as_secs().div_ceil(60),
        ));
        if let Some(url) = &mail.web_url {
            b.push_str(&format!(
                "\nOr confirm it on the web page (after logging in): {url}/#/m/{}\n",
                p.id
            ));
        }
        b
    }

    fn thread(&self, to: &str, msg: &Inbound) -> Thread {
        Thread {
            to: to.to_owned(),
            subject: msg.subject.clone(),
            in_reply_to: msg.message_id.clone(),
            references: msg.references.clone(),
        }
    }

    fn reply_to_msg(&self, to: &str, msg: &Inbound, body: &str) -> Outgoing {
        self.reply(&self.thread(to, msg), body)
    }

    /// A reply in `thread`.
    pub(super) fn reply(&self, thread: &Thread, body: &str) -> Outgoing {
        let subject = if thread.subject.to_ascii_lowercase().starts_with("re:") {
            thread.subject.clone()
        } else if thread.subject.is_empty() {
            "Re: your command".into()
        } else {
            format!("Re: {}", thread.subject)
        };
        let real_id = !thread.in_reply_to.is_empty() && !thread.in_reply_to.starts_with("sha256:");
        Outgoing {
            id: new_id(),
            to: thread.to.clone(),
            subject,
            body: body.to_owned(),
            reply_to: None,
            in_reply_to: real_id.then(|| thread.in_reply_to.clone()),
            references: thread.references.clone(),
            attempts: 0,
            next_ms: 0,
            created_ms: now_ms(),
            last_error: None,
        }
    }

    async fn answer(&self, verb: Verb, user: &UserConfig, id: &SessionId) -> String {
        let sup = &self.0.supervisor;
        match verb {
            Verb::Help => help_text(&self.user_address(user.name.as_str()), user),
            Verb::Status => match sup.server(&id.user) {
                Ok(server) => match server.info(&id.session).await {
                    Ok(info) => {
                        let agent = sup
                            .recorder()
                            .and_then(|r| r.state(id))
                            .map(|s| s.name())
                            .unwrap_or("unknown");
                        format!(
                            "{id}: session {}, agent {agent}, {} restarts, {} attached clients, last activity {}",
                            state_name(info.state),
                            info.restarts,
                            info.attached_clients,
                            info.last_activity.map(crate::clock::iso8601).unwrap_or_else(|| "-".into()),
                        )
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            },
            Verb::Sessions => match sup.server(&id.user) {
                Ok(server) => match server.list().await {
                    Ok(list) => {
                        let mut b = String::from("Your sessions:\n");
                        for s in list {
                            let sid = s.id.parse::<SessionId>().ok();
                            let agent = sid
                                .and_then(|i| sup.recorder().and_then(|r| r.state(&i)))
                                .map(|s| s.name())
                                .unwrap_or("unknown");
                            b.push_str(&format!(
                                "  {}  {}  agent {agent}\n",
                                s.id,
                                state_name(s.state)
                            ));
                        }
                        b
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            },
            Verb::Transcript(n) => {
                let text = sup.output_text(id, None);
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(n);
                format!(
                    "The last {} lines of {id}:\n\n{}\n",
                    lines.len() - start,
                    lines[start..].join("\n")
                )
            }
        }
    }
}

fn state_name(s: crate::session::State) -> String {
    format!("{s:?}").to_lowercase()
}

/// Lifts a pending confirmation into a queued job.
fn job_from(p: &Pending, now: u64) -> Job {
    Job {
        id: new_id(),
        user: p.user.clone(),
        session: p.session.clone(),
        action: p.action.clone(),
        thread: p.thread.clone(),
        stage: Stage::Queued,
        queued_ms: now,
        typed_ms: None,
    }
}

/// `local@domain` + tag -> `local+tag@domain`.
pub fn address_with_tag(address: &str, tag: &str) -> String {
    match address.split_once('@') {
        Some((l, d)) => format!("{l}+{tag}@{d}"),
        None => address.to_owned(),
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The session named in the subject (`[docs]`), else `main`.
pub fn session_from_subject(subject: &str) -> Result<Name, String> {
    let Some(start) = subject.find('[') else {
        return Ok(Name::main());
    };
    let rest = &subject[start + 1..];
    let Some(end) = rest.find(']') else {
        return Ok(Name::main());
    };
    let name = rest[..end].trim();
    Name::new(name).map_err(|e| format!("the subject names session [{name}]: {e}"))
}

/// A control verb answered at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Help,
    Status,
    Sessions,
    Transcript(usize),
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Help => "help",
            Verb::Status => "status",
            Verb::Sessions => "sessions",
            Verb::Transcript(_) => "transcript",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Verb(Verb),
    Act(Action),
    /// `new NAME`: create USER/NAME.
    New(Name),
}

/// Reads the first line of a mailed command.
pub fn parse_command(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let verb = words
        .first()
        .map(|w| w.to_ascii_lowercase())
        .unwrap_or_default();
    match (verb.as_str(), words.len()) {
        ("help", 1) => return Ok(Command::Verb(Verb::Help)),
        ("status", 1) => return Ok(Command::Verb(Verb::Status)),
        ("sessions", 1) => return Ok(Command::Verb(Verb::Sessions)),
        ("interrupt", 1) => return Ok(Command::Act(Action::Interrupt)),
        ("new", 2) => {
            let name = Name::new(words[1]).map_err(|e| format!("`new NAME`: {e}"))?;
            return Ok(Command::New(name));
        }
        ("transcript", 1) => return Ok(Command::Verb(Verb::Transcript(TRANSCRIPT_LINES.0))),
        ("transcript", 2) => {
            let n: usize = words[1]
                .parse()
                .map_err(|_| format!("`transcript N` needs a number of lines, not {:?}", words[1]))?;
            return Ok(Command::Verb(Verb::Transcript(n.clamp(1, TRANSCRIPT_LINES.1))));
        }
        ("yes" | "y" | "confirm", 1) => {
            return Err("a YES without a confirmation token: reply to the confirmation mail itself (its reply address carries the token)".into())
        }
        _ => {}
    }
    if let Some((i, c)) = line.char_indices().find(|(_, c)| forbidden(*c)) {
        return Err(format!(
            "the command contains the control or formatting character U+{:04X} at byte {i}; escape sequences and invisible characters are never typed",
            c as u32
        ));
    }
    if line.chars().count() > MAX_COMMAND_CHARS {
        return Err(format!(
            "the command is longer than {MAX_COMMAND_CHARS} characters"
        ));
    }
    Ok(Command::Act(Action::Prompt {
        text: line.to_owned(),
    }))
}

/// Characters never typed from mail, by Unicode category rather than by a
/// list: controls (Cc: escape sequences, tabs), format characters (Cf:
/// bidirectional and zero-width marks, soft hyphens, the TAG block),
/// private use (Co), unassigned code points (Cn), line and paragraph
/// separators; plus the letters and marks that render as nothing (Hangul
/// fillers, the blank Braille pattern, the combining grapheme joiner,
/// variation selectors, Khmer inherent vowels). A confirmation must show
/// everything that would be typed.
pub(crate) fn forbidden(c: char) -> bool {
    static INVISIBLE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = INVISIBLE.get_or_init(|| {
        regex::Regex::new(
            r"[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}\x{115F}\x{1160}\x{3164}\x{FFA0}\x{2800}\x{034F}\x{17B4}\x{17B5}\x{180B}-\x{180F}\x{FE00}-\x{FE0F}\x{E0100}-\x{E01EF}]",
        )
        .expect("invisible character class compiles")
    });
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

fn help_text(address: &str, user: &UserConfig) -> String {
    let mut b = format!(
        "Mail commands to {address} (keep this address secret). The first line of the mail is the command; the subject may name a session as [name] (default: main).\n\n\
         Commands:\n\
         \x20 any other line   typed into the session as a prompt, then Enter\n\
         \x20 interrupt        Ctrl-C\n\
         \x20 new NAME         create session NAME (then use [NAME] in the subject)\n\
         \x20 status           the session's state\n\
         \x20 sessions         your sessions\n\
         \x20 transcript [N]   the session's last N lines (default {})\n\
         \x20 help             this text\n\n\
         Your confirmation policy: {:?}. Blocked flags: {}.\n\nRisk flags:\n",
        TRANSCRIPT_LINES.0,
        user.confirm,
        if user.block.is_empty() { "none".into() } else { user.block.join(", ") },
    );
    for (name, what, _) in risk::FLAGS {
        b.push_str(&format!("  {name}: {what}\n"));
    }
    b
}

/// Sliding one-hour windows per key.
#[derive(Default)]
struct Limiter(HashMap<String, VecDeque<Instant>>);

impl Limiter {
    /// Counts one event against every `(key, limit)`, if all allow it.
    fn allow(&mut self, keys: &[(String, u32)], now: Instant) -> bool {
        const WINDOW: Duration = Duration::from_secs(3600);
        for (k, _) in keys {
            if let Some(q) = self.0.get_mut(k) {
                while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    q.pop_front();
                }
            }
        }
        self.0.retain(|_, q| !q.is_empty());
        if keys
            .iter()
            .any(|(k, limit)| self.0.get(k).is_some_and(|q| q.len() >= *limit as usize))
        {
            return false;
        }
        for (k, _) in keys {
            self.0.entry(k.clone()).or_default().push_back(now);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_verbs() {
        assert_eq!(parse_command("status"), Ok(Command::Verb(Verb::Status)));
        assert_eq!(
            parse_command("Transcript 5"),
            Ok(Command::Verb(Verb::Transcript(5)))
        );
        assert_eq!(
            parse_command("transcript 99999"),
            Ok(Command::Verb(Verb::Transcript(500)))
        );
        assert!(parse_command("transcript x").is_err());
        assert_eq!(
            parse_command("interrupt"),
            Ok(Command::Act(Action::Interrupt))
        );
        assert_eq!(
            parse_command("status of the build?"),
            Ok(Command::Act(Action::Prompt {
                text: "status of the build?".into()
            }))
        );
        assert!(parse_command("YES")
            .unwrap_err()
            .contains("without a confirmation token"));
        for bad in [
            "ls \u{1b}[31m",
            "a\tb",
            "x\u{7f}",
            "\u{9b}31m",
            "evil\u{202e}txt",
            "zero\u{200b}width",
            // Found passing the old list (issue 10).
            "tag\u{E0041}block",
            "soft\u{AD}hyphen",
            "arabic\u{61C}mark",
            "mongolian\u{180E}space",
            "emoji\u{FE0F}selector",
            "hangul\u{3164}filler",
            "choseong\u{115F}filler",
            "braille\u{2800}blank",
            "grapheme\u{34F}joiner",
            "musical\u{1D173}begin",
            "private\u{E000}use",
            "unassigned\u{378}point",
        ] {
            let e = parse_command(bad).unwrap_err();
            assert!(e.contains("never typed"), "{bad:?}: {e}");
        }
        assert!(parse_command(&"x".repeat(4001)).is_err());
        assert!(parse_command("café ünïcode is fine").is_ok());
    }

    #[test]
    fn sessions_from_subjects() {
        assert_eq!(session_from_subject("hello").unwrap().as_str(), "main");
        assert_eq!(
            session_from_subject("Re: [docs] x").unwrap().as_str(),
            "docs"
        );
        assert!(session_from_subject("[Bad Name]")
            .unwrap_err()
            .contains("[Bad Name]"));
        assert_eq!(
            address_with_tag("agent@x.org", "c-abc"),
            "agent+c-abc@x.org"
        );
    }

    #[test]
    fn limiter_counts_per_key_and_forgets() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let keys = |s: &str| vec![(format!("s:{s}"), 2), ("u:alice".to_string(), 3)];
        assert!(l.allow(&keys("a"), t0));
        assert!(l.allow(&keys("a"), t0));
        assert!(!l.allow(&keys("a"), t0), "sender limit");
        assert!(l.allow(&keys("b"), t0));
        assert!(!l.allow(&keys("c"), t0), "user limit");
        assert!(l.allow(&keys("c"), t0 + Duration::from_secs(3601)));
    }
}
