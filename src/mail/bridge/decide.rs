//! One decision per message: authentication, confirmation tokens,
//! policies, rate limits; the effect is committed by the caller.

use super::*;

impl Bridge {
    pub(super) async fn decide(&self, mail: &MailConfig, msg: &Inbound, now: u64) -> Decision {
        let config = self.config();
        let (our_local, our_domain) = mail.address.split_once('@').expect("validated address");
        let ours = |a: &str| {
            sender::split_address(a).is_some_and(|(l, _, d)| l == our_local && d == our_domain)
        };
        if msg.from.iter().any(|f| ours(f)) {
            return Decision::new(Outcome::Ignored, "from our own address (a loop)");
        }
        if let Some(why) = &msg.automatic {
            return Decision::new(Outcome::Ignored, format!("automatic mail: {why}"));
        }
        let from = match msg.from.as_slice() {
            [one] => one.clone(),
            [] => return Decision::new(Outcome::Rejected, "no From address").quarantined(),
            many => {
                return Decision::new(
                    Outcome::Rejected,
                    format!("From has {} addresses", many.len()),
                )
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
            return d(
                Outcome::Rejected,
                "the sender is not in any user's emails".into(),
            )
            .quarantined();
        }
        let tags: Vec<String> = msg
            .recipients
            .iter()
            .filter_map(|r| sender::split_address(r))
            .filter(|(l, _, dom)| l == our_local && dom == our_domain)
            .filter_map(|(_, t, _)| t)
            .collect();
        if tags.is_empty() {
            return d(
                Outcome::Rejected,
                "not addressed to a secret address".into(),
            )
            .quarantined();
        }
        let from_domain = sender::domain_of(&from).unwrap_or_default();
        if let Err(why) =
            sender::check_authentication(&msg.auth_results, &mail.authserv_id, &from_domain)
        {
            return d(
                Outcome::Rejected,
                format!("sender not authenticated: {why}"),
            )
            .quarantined();
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
                    Outcome::Refused,
                    "unknown or already used confirmation token".into(),
                );
                x.effect = Effect::Reply(self.reply_to_msg(
                    &from,
                    msg,
                    "This confirmation is unknown, already used or expired. Nothing was typed.\n\nMail the command again to get a new confirmation.",
                ));
                return x;
            };
            let mut x = d(Outcome::Refused, String::new());
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
                x.decision = Outcome::Expired;
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
                x.decision = Outcome::Rejected;
                x.reason = "rate limit reached".into();
                return x;
            }
            let answer = message::first_line(&msg.text).map(|l| {
                l.trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
                    .to_ascii_lowercase()
            });
            match answer.as_deref() {
                Some("yes" | "y" | "confirm" | "ok") => {
                    x.decision = Outcome::Confirmed;
                    x.reason = "confirmed by reply".into();
                    x.effect = Effect::Confirm(p.id.clone(), job_from(&p, now));
                }
                Some("no" | "n" | "cancel") => {
                    x.decision = Outcome::Cancelled;
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

        // An answer to an agent's question?
        if let Some(token) = tags
            .iter()
            .find_map(|t| t.strip_prefix(questions::QUESTION_PREFIX))
        {
            return self
                .decide_answer(msg, &from, token, d(Outcome::Refused, String::new()))
                .await;
        }

        // A command: the tag names the user.
        let Some(user) = candidates.iter().find(|u| {
            let tag = self.0.key.user_tag(u.name.as_str());
            tags.iter()
                .any(|t| constant_time_eq(t.as_bytes(), tag.as_bytes()))
        }) else {
            return d(
                Outcome::Rejected,
                "wrong secret address for this sender".into(),
            )
            .quarantined();
        };
        let mut x = d(Outcome::Refused, String::new());
        x.user = Some(user.name.to_string());
        if self.limited(mail, &from, user.name.as_str()) {
            x.decision = Outcome::Rejected;
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
                x.decision = Outcome::Answered;
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
        let action = match with_files(action, &msg.attachments, &mail.attachment_types) {
            Ok(a) => a,
            Err(why) => return refuse(x, why),
        };
        let exists = match self.0.supervisor.server(&id.user) {
            Ok(server) => server.info(&id.session).await.is_ok(),
            Err(e) => return refuse(x, e.for_users()),
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
            Action::Prompt { text, .. } => {
                risk::flags(text).into_iter().map(String::from).collect()
            }
            _ => Vec::new(),
        };
        x.flags = flags.clone();
        let blocked: Vec<&String> = flags.iter().filter(|f| user.block.contains(f)).collect();
        if !blocked.is_empty() {
            let names: Vec<&str> = blocked.iter().map(|s| s.as_str()).collect();
            return refuse(x, format!("blocked by your policy: {}", names.join(", ")));
        }
        // Rolling files back is always confirmed, whatever the policy.
        let confirm = matches!(action, Action::Rollback { .. })
            || match user.confirm {
                ConfirmPolicy::Always => true,
                ConfirmPolicy::Risky => !flags.is_empty(),
                ConfirmPolicy::Never => false,
            };
        let thread = self.thread(&from, msg);
        if !confirm {
            x.decision = Outcome::Queued;
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
                x.decision = Outcome::Failed;
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
        x.decision = Outcome::Pending;
        x.reason = "confirmation requested".into();
        x.effect = Effect::Pend(Box::new((pending, reply)));
        x
    }

    pub(super) fn limited(&self, mail: &MailConfig, from: &str, user: &str) -> bool {
        let mut l = self.0.limiter.lock().expect("limiter lock");
        !l.allow(
            &[
                (format!("s:{from}"), mail.sender_per_hour),
                (format!("u:{user}"), mail.user_per_hour),
            ],
            Instant::now(),
        )
    }
}

/// Lifts a pending confirmation into a queued job.
pub(super) fn job_from(p: &Pending, now: u64) -> Job {
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

/// Sliding one-hour windows per key.
#[derive(Default)]
pub(super) struct Limiter(HashMap<String, VecDeque<Instant>>);

impl Limiter {
    /// Counts one event against every `(key, limit)`, if all allow it.
    pub(super) fn allow(&mut self, keys: &[(String, u32)], now: Instant) -> bool {
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
