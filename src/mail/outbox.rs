//! Replies, sent by SMTP (lettre) from the persisted outbox.
//!
//! A reply is committed to the outbox together with the decision that
//! caused it, and leaves only once the server accepted it: a failed send
//! is retried with backoff (5 s doubling to 15 min) for three days, then
//! given up and audited. Every reply says `Auto-Submitted: auto-replied`,
//! threads with `In-Reply-To`/`References`, carries our loop header, and
//! has a Message-ID fixed when it was queued, so a send repeated after a
//! crash is recognizably the same mail.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use super::Outcome;

use super::bridge::Bridge;
use super::message::LOOP_HEADER;
use super::state::{now_ms, AuditEntry, Outgoing};
use crate::config::{MailConfig, MailSecurity, MailServer};

const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(15 * 60);
const GIVE_UP_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);
/// One SMTP exchange may take this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a password file (trailing newline removed).
pub fn read_password(server: &MailServer) -> anyhow::Result<Option<String>> {
    match (&server.username, &server.password_file) {
        (Some(_), Some(path)) => {
            let s = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("{}: {}", path.display(), crate::config::io_reason(&e))
            })?;
            Ok(Some(s.trim_end_matches(['\r', '\n']).to_owned()))
        }
        _ => Ok(None),
    }
}

fn transport(server: &MailServer) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let tls = || TlsParameters::new(server.host.clone());
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host.clone())
        .port(server.port)
        .timeout(Some(SMTP_TIMEOUT))
        .tls(match server.security {
            MailSecurity::Tls => Tls::Wrapper(tls()?),
            MailSecurity::Starttls => Tls::Required(tls()?),
            MailSecurity::Plain => Tls::None,
        });
    if let (Some(user), Some(pass)) = (&server.username, read_password(server)?) {
        b = b.credentials(Credentials::new(user.clone(), pass));
    }
    Ok(b.build())
}

fn bracket(id: &str) -> String {
    format!("<{}>", id.trim_start_matches('<').trim_end_matches('>'))
}

/// The RFC 5322 message for `o`.
pub fn build(mail: &MailConfig, host: &str, o: &Outgoing) -> anyhow::Result<Message> {
    let from: Mailbox = format!("tmuxd <{}>", mail.address).parse()?;
    let to: Mailbox =
        o.to.parse()
            .map_err(|e| anyhow::anyhow!("recipient {:?}: {e}", o.to))?;
    let mut b = Message::builder()
        .from(from)
        .to(to)
        .subject(o.subject.clone())
        .message_id(Some(format!("<tmuxd.{}@{host}>", o.id)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-replied".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(LOOP_HEADER),
            host.to_owned(),
        ));
    if let Some(r) = &o.reply_to {
        b = b.reply_to(r.parse()?);
    }
    if let Some(id) = &o.in_reply_to {
        b = b.in_reply_to(bracket(id));
    }
    let refs: Vec<String> = o
        .references
        .iter()
        .filter(|r| !r.starts_with("sha256:"))
        .map(|r| bracket(r))
        .collect();
    if !refs.is_empty() {
        b = b.references(refs.join(" "));
    }
    Ok(b.header(ContentType::TEXT_PLAIN).body(o.body.clone())?)
}

async fn send(bridge: &Bridge, o: &Outgoing) -> anyhow::Result<()> {
    let mail = bridge.mail();
    let msg = build(&mail, bridge.host(), o)?;
    transport(&mail.smtp)?.send(msg).await?;
    Ok(())
}

fn backoff(attempts: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << attempts.min(16))
        .min(MAX_RETRY)
}

/// Sends due replies until `cancel`.
pub async fn run(bridge: Bridge, cancel: CancellationToken) {
    loop {
        let now = now_ms();
        let due: Vec<Outgoing> = bridge.store().read(|st| {
            st.outbox
                .iter()
                .filter(|o| o.next_ms <= now)
                .cloned()
                .collect()
        });
        for o in due {
            if cancel.is_cancelled() {
                return;
            }
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = send(&bridge, &o) => r,
            };
            let r = match result {
                Ok(()) => {
                    tracing::info!(reply = %o.id, attempts = o.attempts + 1, "mail reply sent");
                    bridge
                        .store()
                        .update(|st| st.outbox.retain(|x| x.id != o.id))
                }
                Err(e)
                    if Duration::from_millis(now_ms().saturating_sub(o.created_ms))
                        > GIVE_UP_AFTER =>
                {
                    tracing::error!(reply = %o.id, error = %e, "giving up on a mail reply");
                    bridge.audit(AuditEntry {
                        message_id: o.in_reply_to.clone().unwrap_or_default(),
                        from: Some(o.to.clone()),
                        ..AuditEntry::new(
                            Outcome::SendFailed,
                            format!("gave up after {} attempts: {e}", o.attempts + 1),
                        )
                    });
                    bridge
                        .store()
                        .update(|st| st.outbox.retain(|x| x.id != o.id))
                }
                Err(e) => {
                    let wait = backoff(o.attempts);
                    tracing::warn!(reply = %o.id, error = %e, retry_in_s = wait.as_secs(), "mail reply not sent; will retry");
                    bridge.store().update(|st| {
                        if let Some(x) = st.outbox.iter_mut().find(|x| x.id == o.id) {
                            x.attempts += 1;
                            x.next_ms = now_ms() + wait.as_millis() as u64;
                            x.last_error = Some(e.to_string());
                        }
                    })
                }
            };
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot write the mail state");
            }
        }
        let next = bridge
            .store()
            .read(|st| st.outbox.iter().map(|o| o.next_ms).min());
        let sleep = match next {
            Some(t) => Duration::from_millis(t.saturating_sub(now_ms()).max(50)),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = bridge.outbox_wake().notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(30), MAX_RETRY);
    }
}
