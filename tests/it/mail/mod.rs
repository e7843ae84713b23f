//! The email bridge against real Postfix and Dovecot on loopback: the full
//! loop over IMAP IDLE and SMTP, every bad input, and crash safety.

mod claude;
mod cluster;
mod confirm;
mod mta;
mod recovery;

use crate::common::anthropic::claude;
use crate::common::{marker, wait_for, wait_for_or, Env, Mail, Testbed};
use nix::sys::signal::Signal;

const AR_PASS: &str = "Authentication-Results: mx.example.test; dkim=pass header.d=example.test; dmarc=pass header.from=example.test";

/// An agent that answers each line with `got: LINE`; `busy` first prints
/// ticks for six seconds (so it is mid-answer).
const AGENT: &str = r#"command = ["sh", "-c", "while IFS= read -r l; do case \"$l\" in busy*) for i in $(seq 1 30); do echo tick $i; sleep 0.2; done;; esac; echo \"got: $l\"; done"]"#;

fn config(bed: &Testbed, mail_extra: &str, users: &str) -> String {
    format!(
        r#"[agent]
{AGENT}
idle_after_s = 1
waiting_pattern = ""

[mail]
address = "agent@example.test"
authserv_id = "mx.example.test"
web_url = "http://tmuxd.example.test"
result_timeout_s = 20
{mail_extra}

[mail.smtp]
host = "127.0.0.1"
port = {smtp}
security = "plain"

[mail.imap]
host = "127.0.0.1"
port = {imap}
security = "plain"
username = "agent@example.test"
password_file = "{{dir}}/imap-password"

{users}
"#,
        smtp = bed.smtp,
        imap = bed.imap,
    )
}

const ALICE: &str = "[[users]]\nname = \"alice\"\nemails = [\"alice@example.test\"]\n";
const BOB: &str = "[[users]]\nname = \"bob\"\nemails = [\"bob@example.test\"]\n";

fn setup(bed: &Testbed, mail_extra: &str, users: &str) -> Env {
    let env = Env::new(&config(bed, mail_extra, users));
    std::fs::write(env.path().join("imap-password"), &bed.password).unwrap();
    env
}

/// A message as the MTA would hand it over (our Authentication-Results on
/// top when `ar` is given).
fn mail(
    ar: Option<&str>,
    from: &str,
    to: &str,
    subject: &str,
    id: &str,
    extra: &str,
    body: &str,
) -> String {
    let ar = ar.map(|a| format!("{a}\n")).unwrap_or_default();
    format!(
        "{ar}From: {from}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{id}>\nDate: Sat, 21 Nov 2026 10:00:00 +0000\nMIME-Version: 1.0\n{extra}{}\n\n{body}\n",
        if extra.contains("Content-Type") { "" } else { "Content-Type: text/plain; charset=utf-8\n" }
    )
}

fn secret(env: &Env, user: &str) -> String {
    env.ok(&["mail-address", user]).trim().to_owned()
}

/// Audit entries as `mail-log --json` prints them.
fn audit(env: &Env) -> Vec<serde_json::Value> {
    env.ok(&["mail-log", "--json", "--limit", "1000"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The decisions recorded for Message-ID `id`.
fn decisions(env: &Env, id: &str) -> Vec<String> {
    audit(env)
        .into_iter()
        .filter(|e| e["message_id"] == id)
        .map(|e| e["decision"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_decision(env: &Env, id: &str, decision: &str) {
    wait_for(30, &format!("decision {decision} for {id}"), || {
        decisions(env, id)
            .iter()
            .any(|d| d == decision)
            .then_some(())
    });
}

/// The one confirmation of Message-ID `id` in `mailbox`: its Reply-To.
fn confirmation_in(bed: &Testbed, mailbox: &str, id: &str) -> String {
    let inbox = wait_for(30, &format!("the confirmation of {id}"), || {
        let all = bed.list(mailbox);
        all.iter()
            .any(|m| m.header("In-Reply-To") == format!("<{id}>"))
            .then_some(all)
    });
    let confirmations = replies_to(&inbox, id);
    assert_eq!(confirmations.len(), 1, "{inbox:?}");
    confirmations[0].header("Reply-To").to_owned()
}

fn replies_to<'a>(mails: &'a [Mail], id: &str) -> Vec<&'a Mail> {
    mails
        .iter()
        .filter(|m| m.header("In-Reply-To") == format!("<{id}>"))
        .collect()
}

/// Inputs recorded in `id`'s transcript from the email bridge.
fn email_inputs(env: &Env, id: &str) -> usize {
    env.ok(&["transcript", id, "--format", "text"])
        .lines()
        .filter(|l| l.contains("input from email:"))
        .count()
}
