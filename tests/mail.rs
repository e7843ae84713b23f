//! The email bridge against real Postfix and Dovecot on loopback: the full
//! loop over IMAP IDLE and SMTP, every bad input, and crash safety.

mod common;

use common::{marker, wait_for, Env, Mail, Testbed};

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

#[test]
fn full_loop_command_confirm_execute_reply() {
    let bed = Testbed::start();
    let mut env = setup(&bed, "", ALICE);
    let to = secret(&env, "alice");
    assert!(
        to.starts_with("agent+") && to.ends_with("@example.test"),
        "{to}"
    );
    let d = env.serve();
    d.wait_log(15, "IMAP mailbox selected");
    let m = marker();
    let text = format!("hello {m}");
    bed.send(
        "alice@example.test",
        &to,
        &mail(
            Some(AR_PASS),
            "Alice <alice@example.test>",
            &to,
            "a question",
            "c1@example.test",
            "",
            &format!("{text}\n\n-- \nAlice"),
        ),
    );

    // The confirmation: exact text, session, flags, token address, headers.
    let inbox = bed.wait_mail("alice@example.test", 1);
    let c = &inbox[0];
    assert!(
        c.header("Subject").starts_with("Confirm: [main] hello"),
        "{:?}",
        c.headers
    );
    assert_eq!(c.header("Auto-Submitted"), "auto-replied");
    assert_eq!(c.header("In-Reply-To"), "<c1@example.test>");
    assert!(c.header("References").contains("<c1@example.test>"));
    assert!(!c.header("X-Tmuxd-Loop").is_empty());
    let reply_to = c.header("Reply-To").to_owned();
    assert!(
        reply_to.starts_with("agent+c-") && reply_to.ends_with("@example.test"),
        "{reply_to}"
    );
    assert_eq!(
        reply_to.len(),
        "agent+c-".len() + 26 + "@example.test".len(),
        "128-bit token: {reply_to}"
    );
    for needle in [
        &format!("    {text}\n"),
        "alice/main",
        "Risk flags: none",
        "YES as the first line",
        "Nothing has been typed yet",
        "http://tmuxd.example.test/#mail/",
    ] {
        assert!(
            c.body.contains(needle),
            "{needle:?} not in confirmation:\n{}",
            c.body
        );
    }
    // Only the hash of the token is stored.
    let token = reply_to
        .trim_start_matches("agent+c-")
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    let state = std::fs::read_to_string(env.path().join("state/mail/state.json")).unwrap();
    assert!(!state.contains(&token), "the token itself is stored");
    assert!(
        !env.pane_text("alice", "main")
            .contains(&format!("got: {text}")),
        "typed before confirmation"
    );

    // YES, as a mail client replies (quoting the confirmation).
    let quoted: String = c.body.lines().map(|l| format!("> {l}\n")).collect();
    bed.send(
        "alice@example.test",
        &reply_to,
        &mail(
            Some(AR_PASS),
            "alice@example.test",
            &reply_to,
            &format!("Re: {}", c.header("Subject")),
            "y1@example.test",
            "In-Reply-To: <c1@example.test>\n",
            &format!("Yes!\n\nOn Sat, tmuxd wrote:\n{quoted}"),
        ),
    );
    env.wait_pane("alice", "main", &format!("got: {text}"));

    // The result: what the agent printed, threaded to the command.
    let inbox = bed.wait_mail("alice@example.test", 2);
    let r = inbox
        .iter()
        .find(|x| x.header("Subject") == "Re: a question")
        .expect("result mail");
    assert_eq!(r.header("In-Reply-To"), "<c1@example.test>");
    assert_eq!(r.header("Auto-Submitted"), "auto-replied");
    for needle in [
        format!("got: {text}"),
        "done: alice/main is idle".into(),
        format!("Typed: {text}"),
        "Transcript: http://tmuxd.example.test/#transcript/alice/main".into(),
    ] {
        assert!(
            r.body.contains(&needle),
            "{needle:?} not in result:\n{}",
            r.body
        );
    }
    // Exactly once: in the pane and in the transcript.
    assert_eq!(
        env.pane_text("alice", "main")
            .matches(&format!("got: {text}"))
            .count(),
        1
    );
    assert_eq!(email_inputs(&env, "alice"), 1);
    // Handled messages are flagged seen; the audit log tells the story.
    let agent_box = bed.list("agent@example.test");
    assert_eq!(agent_box.len(), 2);
    assert!(
        agent_box.iter().all(|m| m.flags.contains("\\Seen")),
        "{agent_box:?}"
    );
    assert_eq!(
        decisions(&env, "c1@example.test"),
        vec!["pending", "executed"]
    );
    assert_eq!(decisions(&env, "y1@example.test"), vec!["confirmed"]);
    let metrics = ureq::get(&format!("{}/metrics", d.url()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("tmuxd_mail_decisions_total{decision=\"executed\"} 1"),
        "{metrics}"
    );
}
