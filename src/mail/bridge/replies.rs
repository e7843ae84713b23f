//! What the bridge mails back: confirmations, answers to verbs, help,
//! threaded replies.

use super::*;

impl Bridge {
    pub(super) fn confirmation_body(
        &self,
        mail: &MailConfig,
        p: &Pending,
        id: &SessionId,
    ) -> String {
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

    pub(super) fn thread(&self, to: &str, msg: &Inbound) -> Thread {
        Thread {
            to: to.to_owned(),
            subject: msg.subject.clone(),
            in_reply_to: msg.message_id.clone(),
            references: msg.references.clone(),
        }
    }

    pub(super) fn reply_to_msg(&self, to: &str, msg: &Inbound, body: &str) -> Outgoing {
        self.reply(&self.thread(to, msg), body)
    }

    /// A reply in `thread`.
    pub(in crate::mail) fn reply(&self, thread: &Thread, body: &str) -> Outgoing {
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
            created_ms: crate::mail::state::now_ms(),
            last_error: None,
        }
    }

    pub(super) async fn answer(&self, verb: Verb, user: &UserConfig, id: &SessionId) -> String {
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
                    Err(e) => e.for_users(),
                },
                Err(e) => e.for_users(),
            },
            Verb::Sessions => match sup.server(&id.user) {
                Ok(server) => match server.list().await {
                    Ok(list) => {
                        let mut b = String::from("Your sessions:\n");
                        for s in list {
                            let agent = sup
                                .recorder()
                                .and_then(|r| r.state(&s.id))
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
                    Err(e) => e.for_users(),
                },
                Err(e) => e.for_users(),
            },
            Verb::Snapshots => match sup.snapshots(id).await {
                Ok(list) if list.is_empty() => format!("{id} has no snapshots yet."),
                Ok(list) => {
                    let mut b = format!(
                        "Snapshots of {id}, oldest first (mail `rollback ID` to restore one):\n"
                    );
                    for s in list {
                        b.push_str(&format!(
                            "  {}  {}  {}\n",
                            s.id,
                            crate::clock::iso8601(s.time_ms / 1000),
                            s.why
                        ));
                        if !s.changed.is_empty() {
                            b.push_str(&format!("      then changed: {}\n", s.changed.join(", ")));
                        }
                    }
                    b
                }
                Err(e) => e.message,
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

pub(super) fn state_name(s: crate::session::State) -> String {
    format!("{s:?}").to_lowercase()
}

/// `local@domain` + tag -> `local+tag@domain`.
pub fn address_with_tag(address: &str, tag: &str) -> String {
    match address.split_once('@') {
        Some((l, d)) => format!("{l}+{tag}@{d}"),
        None => address.to_owned(),
    }
}

pub(super) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

pub(super) fn help_text(address: &str, user: &UserConfig) -> String {
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
