//! The email bridge against real Postfix and Dovecot on loopback: the full
//! loop over IMAP IDLE and SMTP, every bad input, and crash safety.

mod common;

use common::anthropic::claude;
use common::{marker, wait_for, Env, Mail, Testbed};
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
        "http://tmuxd.example.test/#/m/",
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
    // The thread goes on by mail: a reply is the next command.
    assert_eq!(r.header("Reply-To"), to);
    for needle in [
        format!("got: {text}"),
        "done: alice/main is idle".into(),
        format!("Typed: {text}"),
        "Transcript: http://tmuxd.example.test/#/t/alice/main".into(),
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

#[test]
fn bad_input_is_never_typed_never_loops_and_is_audited() {
    let bed = Testbed::start();
    let mut env = setup(
        &bed,
        "confirm_ttl_s = 6\nmax_message_bytes = 65536",
        &format!("{ALICE}\n{BOB}"),
    );
    let alice_to = secret(&env, "alice");
    let bob_to = secret(&env, "bob");
    assert_ne!(alice_to, bob_to);
    let _d = env.serve();
    let alice = "alice@example.test";
    let send = |id: &str,
                ar: Option<&str>,
                from: &str,
                to: &str,
                subject: &str,
                extra: &str,
                body: &str| {
        bed.send(from, to, &mail(ar, from, to, subject, id, extra, body));
    };

    // Unauthenticated: quarantined, never answered.
    send("spoof@x", None, alice, &alice_to, "s", "", "rm -rf ~");
    send(
        "wrong-id@x",
        Some("Authentication-Results: evil.example; dmarc=pass header.from=example.test"),
        alice,
        &alice_to,
        "s",
        "",
        "ls",
    );
    let forged = "Authentication-Results: mx.example.test; dmarc=fail header.from=example.test\nAuthentication-Results: mx.example.test; dmarc=pass header.from=example.test";
    send("below@x", Some(forged), alice, &alice_to, "s", "", "ls");
    send(
        "stranger@x",
        Some("Authentication-Results: mx.example.test; dmarc=pass header.from=example.test"),
        "mallory@example.test",
        &alice_to,
        "s",
        "",
        "ls",
    );
    send(
        "wrong-secret@x",
        Some(AR_PASS),
        alice,
        "agent+guessed@example.test",
        "s",
        "",
        "ls",
    );
    send("bob-secret@x", Some(AR_PASS), alice, &bob_to, "s", "", "ls");
    let big = "x".repeat(100 * 1024);
    send("big@x", Some(AR_PASS), alice, &alice_to, "s", "", &big);
    let mut deep = String::new();
    for i in 0..12 {
        deep.push_str(&format!(
            "--b{i}\nContent-Type: multipart/mixed; boundary=\"b{}\"\n\n",
            i + 1
        ));
    }
    deep.push_str("--b12\nContent-Type: text/plain\n\nls\n");
    for i in (0..=12).rev() {
        deep.push_str(&format!("--b{i}--\n"));
    }
    send(
        "deep@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "s",
        "Content-Type: multipart/mixed; boundary=\"b0\"\n",
        &deep,
    );
    // Automatic mail: ignored, never answered.
    send(
        "auto@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "Out of office",
        "Auto-Submitted: auto-replied\n",
        "I am away",
    );
    send(
        "list@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "digest",
        "List-Id: <x.lists.example.test>\n",
        "ls",
    );
    send(
        "loop@x",
        Some(AR_PASS),
        "agent@example.test",
        &alice_to,
        "s",
        "",
        "ls",
    );
    // A real bounce: Postfix's DSN for mail the agent sent to a dead mailbox.
    bed.send("agent@example.test", "bounce@example.test", "From: agent@example.test\nTo: bounce@example.test\nSubject: x\nMessage-ID: <tobounce@x>\n\nx\n");
    // Authenticated but bad: refused with an explanation, nothing typed.
    send(
        "yes-no-token@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "s",
        "",
        "YES",
    );
    send(
        "empty@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "s",
        "",
        "\n> only a quote\n-- \nsig",
    );
    send(
        "escape@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "s",
        "",
        "ls \u{1b}[2J\u{1b}]0;pwned\u{7}",
    );
    send(
        "charset@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "s",
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
        "caf=E9=FF=FE",
    );
    send(
        "badname@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "[No Such!]",
        "",
        "ls",
    );
    // Latin-1, declared: decoded correctly and offered for confirmation.
    send("latin1@x", Some(AR_PASS), alice, &alice_to, "s", "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n", "echo caf=E9");
    // A duplicate Message-ID (a resent or replayed mail).
    send(
        "risky@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "s",
        "",
        "git push --force origin main",
    );
    send(
        "risky@x",
        Some(AR_PASS),
        alice,
        &alice_to,
        "s",
        "",
        "git push --force origin main",
    );

    let cases: &[(&str, &str)] = &[
        ("spoof@x", "rejected"),
        ("wrong-id@x", "rejected"),
        ("below@x", "rejected"),
        ("stranger@x", "rejected"),
        ("wrong-secret@x", "rejected"),
        ("bob-secret@x", "rejected"),
        ("big@x", "rejected"),
        ("deep@x", "rejected"),
        ("auto@x", "ignored"),
        ("list@x", "ignored"),
        ("loop@x", "ignored"),
        ("yes-no-token@x", "refused"),
        ("empty@x", "refused"),
        ("escape@x", "refused"),
        ("charset@x", "refused"),
        ("badname@x", "refused"),
        ("latin1@x", "pending"),
        ("risky@x", "pending"),
    ];
    for (id, decision) in cases {
        wait_decision(&env, id, decision);
    }
    // The DSN (Return-Path <>, Auto-Submitted) is the fourth ignored.
    wait_for(30, "the bounce to be ignored", || {
        let ignored = audit(&env)
            .into_iter()
            .filter(|e| e["decision"] == "ignored")
            .count();
        (ignored == 4).then_some(())
    });
    wait_decision(&env, "risky@x", "duplicate");
    let log = audit(&env);
    let reason = |id: &str| -> String {
        log.iter()
            .find(|e| e["message_id"] == id)
            .map(|e| e["reason"].as_str().unwrap().to_owned())
            .unwrap()
    };
    for (id, needle) in [
        ("spoof@x", "no Authentication-Results from mx.example.test"),
        ("below@x", "dmarc=fail"),
        ("big@x", "limit is 65536"),
        ("deep@x", "MIME nesting"),
        ("escape@x", "U+001B"),
        ("charset@x", "could not be decoded"),
    ] {
        assert!(reason(id).contains(needle), "{id}: {}", reason(id));
    }
    // Quarantined mail was moved out of the inbox.
    let quarantined = bed.list_in("agent@example.test", "tmuxd-quarantine");
    assert_eq!(
        quarantined.len(),
        8,
        "{:?}",
        quarantined
            .iter()
            .map(|m| m.header("Message-ID"))
            .collect::<Vec<_>>()
    );

    // Confirmations: the flags are shown; latin-1 arrived as "café".
    let inbox = bed.wait_mail(alice, 7);
    let confirm = |id: &str| -> Mail {
        let r = replies_to(&inbox, id);
        assert_eq!(r.len(), 1, "one reply to {id}");
        r[0].clone()
    };
    assert!(confirm("latin1@x").body.contains("    echo café\n"));
    let risky = confirm("risky@x");
    assert!(
        risky.body.contains("force-push: rewrites shared history"),
        "{}",
        risky.body
    );
    assert!(confirm("yes-no-token@x")
        .body
        .contains("without a confirmation token"));
    assert!(confirm("escape@x").body.contains("never typed"));
    // No reply to anything unauthenticated or automatic.
    for (id, decision) in cases {
        if matches!(*decision, "rejected" | "ignored") {
            assert!(replies_to(&inbox, id).is_empty(), "{id} was answered");
        }
    }
    assert_eq!(
        inbox.len(),
        7,
        "exactly the refusals and confirmations: {:?}",
        inbox
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );

    // Tokens: another sender's, a replay, an expired one.
    let token_of = |m: &Mail| m.header("Reply-To").to_owned();
    let risky_token = token_of(&risky);
    send(
        "bob-yes@x",
        Some(AR_PASS),
        "bob@example.test",
        &risky_token,
        "Re",
        "",
        "YES",
    );
    wait_decision(&env, "bob-yes@x", "refused");
    assert!(
        bed.list("bob@example.test").is_empty(),
        "bob was answered for alice's token"
    );
    let latin_token = token_of(&confirm("latin1@x"));
    send(
        "yes1@x",
        Some(AR_PASS),
        alice,
        &latin_token,
        "Re",
        "",
        "yes",
    );
    wait_decision(&env, "yes1@x", "confirmed");
    env.wait_pane("alice", "main", "got: echo café");
    send(
        "replay@x",
        Some(AR_PASS),
        alice,
        &latin_token,
        "Re",
        "",
        "yes",
    );
    wait_decision(&env, "replay@x", "refused");
    // risky@x was never confirmed; its token expires.
    std::thread::sleep(std::time::Duration::from_secs(6));
    send(
        "late@x",
        Some(AR_PASS),
        alice,
        &risky_token,
        "Re",
        "",
        "YES",
    );
    wait_decision(&env, "late@x", "expired");
    let inbox = wait_for(30, "replies to the replay and the late YES", || {
        let all = bed.list(alice);
        (replies_to(&all, "replay@x").len() == 1 && replies_to(&all, "late@x").len() == 1)
            .then_some(all)
    });
    assert!(replies_to(&inbox, "replay@x")[0]
        .body
        .contains("unknown, already used or expired"));
    assert!(replies_to(&inbox, "late@x")[0].body.contains("expired"));

    // Typed exactly once, and nothing else ever was.
    let pane = env.pane_text("alice", "main");
    assert_eq!(pane.matches("got:").count(), 1, "{pane}");
    assert!(!pane.contains("pwned") && !pane.contains("push"), "{pane}");
    assert_eq!(email_inputs(&env, "alice"), 1);
}

#[test]
fn sigkill_before_confirmation_and_before_execution_types_once() {
    let bed = Testbed::start();
    let mut env = setup(&bed, "", ALICE);
    let to = secret(&env, "alice");
    let alice = "alice@example.test";
    let d1 = env.serve();
    let m = marker();
    let text = format!("hello {m}");
    bed.send(
        alice,
        &to,
        &mail(
            Some(AR_PASS),
            alice,
            &to,
            "crash",
            "k1@example.test",
            "",
            &text,
        ),
    );
    // Killed as soon as the decision is committed (the confirmation may or
    // may not have left yet).
    wait_decision(&env, "k1@example.test", "pending");
    d1.signal(Signal::SIGKILL);
    env.reap(d1.pid);
    let _d2 = env.serve();
    let inbox = bed.wait_mail(alice, 1);
    let reply_to = inbox[0].header("Reply-To").to_owned();
    assert!(reply_to.contains("+c-"), "{reply_to}");

    // Make the agent busy, confirm, and kill the daemon while the job waits.
    env.ok(&["send", "alice", "busy"]);
    env.wait_pane("alice", "main", "tick 2");
    bed.send(
        alice,
        &reply_to,
        &mail(
            Some(AR_PASS),
            alice,
            &reply_to,
            "Re: crash",
            "k2@example.test",
            "",
            "YES",
        ),
    );
    wait_decision(&env, "k2@example.test", "confirmed");
    assert!(
        !env.pane_text("alice", "main")
            .contains(&format!("got: {text}")),
        "typed while the agent was busy"
    );
    let d2 = _d2;
    d2.signal(Signal::SIGKILL);
    env.reap(d2.pid);
    let _d3 = env.serve();
    env.wait_pane("alice", "main", &format!("got: {text}"));
    let pane = env.pane_text("alice", "main");
    assert!(
        pane.find("tick 30").unwrap() < pane.find(&format!("got: {text}")).unwrap(),
        "typed before the agent finished:\n{pane}"
    );
    wait_decision(&env, "k1@example.test", "executed");
    let inbox = wait_for(30, "the result mail", || {
        let all = bed.list(alice);
        all.iter()
            .any(|x| x.header("Subject") == "Re: crash")
            .then_some(all)
    });
    let result = inbox
        .iter()
        .find(|x| x.header("Subject") == "Re: crash")
        .unwrap();
    assert!(
        result.body.contains(&format!("got: {text}")),
        "{}",
        result.body
    );
    // Exactly once, whatever happened.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        env.pane_text("alice", "main")
            .matches(&format!("got: {text}"))
            .count(),
        1
    );
    assert_eq!(email_inputs(&env, "alice"), 1);
    assert_eq!(
        decisions(&env, "k1@example.test")
            .iter()
            .filter(|d| *d == "executed")
            .count(),
        1
    );
}

#[test]
fn mail_ingest_policies_rate_limits_and_web_confirmation() {
    let bed = Testbed::start();
    let users = format!(
        "{ALICE}confirm = \"risky\"\nblock = [\"privilege\"]\n\n[[users]]\nname = \"carol\"\nemails = [\"carol@example.test\"]\nconfirm = \"never\"\nnotify_waiting = true\nwaiting_pattern = \"proceed[?]\"\n"
    );
    let mut env = setup(&bed, "sender_per_hour = 5", &users);
    let alice_to = secret(&env, "alice");
    let carol_to = secret(&env, "carol");
    let ingest = |env: &Env, raw: &str| env.run_with_stdin(&["mail-ingest"], raw.as_bytes());
    let alice = "alice@example.test";
    // No daemon: the MTA is told to try again later (EX_TEMPFAIL).
    let out = ingest(
        &env,
        &mail(Some(AR_PASS), alice, &alice_to, "s", "i0@x", "", "ls"),
    );
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));

    let d = env.serve();
    // confirm = "risky": a harmless command runs at once...
    let out = ingest(
        &env,
        &mail(
            Some(AR_PASS),
            alice,
            &alice_to,
            "s",
            "i1@x",
            "",
            "plain words",
        ),
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "queued: no confirmation needed (confirm = risky)"
    );
    env.wait_pane("alice", "main", "got: plain words");
    // ...a risky one waits for confirmation, a blocked one is refused.
    let out = ingest(
        &env,
        &mail(
            Some(AR_PASS),
            alice,
            &alice_to,
            "s",
            "i2@x",
            "",
            "rm -rf build",
        ),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pending:"));
    let out = ingest(
        &env,
        &mail(
            Some(AR_PASS),
            alice,
            &alice_to,
            "s",
            "i3@x",
            "",
            "sudo make install",
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused: blocked by your policy: privilege"
    );
    // The sender's sixth message within the hour is dropped unanswered.
    let out = ingest(
        &env,
        &mail(Some(AR_PASS), alice, &alice_to, "s", "i4@x", "", "status"),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("answered:"));
    let out = ingest(
        &env,
        &mail(
            Some(AR_PASS),
            alice,
            &alice_to,
            "s",
            "i4b@x",
            "",
            "interrupt",
        ),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("queued:"),
        "interrupt is not risky"
    );
    let out = ingest(
        &env,
        &mail(Some(AR_PASS), alice, &alice_to, "s", "i5@x", "", "ls"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "rejected: rate limit reached"
    );
    // Unreadable input is refused by mail-ingest too, and audited.
    let out = ingest(&env, "not a message at all");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("rejected:"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // confirm = "never", and the control verbs.
    let carol = "carol@example.test";
    let out = ingest(
        &env,
        &mail(Some(AR_PASS), carol, &carol_to, "s", "n1@x", "", "new docs"),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("queued:"));
    wait_for(15, "carol/docs", || env.session("carol/docs"));
    let out = ingest(
        &env,
        &mail(
            Some(AR_PASS),
            carol,
            &carol_to,
            "[docs] hi",
            "n2@x",
            "",
            "in docs",
        ),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("queued:"));
    env.wait_pane("carol", "docs", "got: in docs");
    wait_for(15, "the output in the transcript", || {
        env.ok(&["transcript", "carol/docs"])
            .contains("got: in docs")
            .then_some(())
    });
    for (id, cmd) in [
        ("v1@x", "help"),
        ("v2@x", "sessions"),
        ("v3@x", "transcript 5"),
    ] {
        let out = ingest(
            &env,
            &mail(Some(AR_PASS), carol, &carol_to, "[docs] v", id, "", cmd),
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("answered:"),
            "{cmd}"
        );
    }
    let inbox = wait_for(30, "carol's replies", || {
        let all = bed.list(carol);
        ["v1@x", "v2@x", "v3@x", "n2@x"]
            .iter()
            .all(|id| !replies_to(&all, id).is_empty())
            .then_some(all)
    });
    assert!(
        replies_to(&inbox, "v1@x")[0].body.contains(&carol_to),
        "help shows the secret address"
    );
    assert!(replies_to(&inbox, "v2@x")[0].body.contains("carol/docs"));
    assert!(replies_to(&inbox, "v3@x")[0].body.contains("got: in docs"));
    assert!(replies_to(&inbox, "n2@x")[0].body.contains("got: in docs"));

    // notify_waiting: carol's session asks a question; she gets a mail
    // whose reply goes to her secret address.
    env.ok(&["send", "carol/docs", "shall we proceed?"]);
    let note = wait_for(30, "the waiting notification", || {
        bed.list(carol)
            .into_iter()
            .find(|m| m.header("Subject") == "[docs] waiting for your input")
    });
    assert_eq!(note.header("Reply-To"), carol_to);
    assert!(
        note.body.contains("got: shall we proceed?"),
        "{}",
        note.body
    );

    // The web page: alice sees and confirms her pending command; bob's
    // token (another user) cannot.
    let token = env.token("alice", "user");
    let pending: Vec<serde_json::Value> = ureq::get(&format!("{}/api/mail/pending", d.url()))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_body()
        .read_json()
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["command"], "rm -rf build");
    assert_eq!(pending[0]["flags"], serde_json::json!(["destructive"]));
    assert!(pending[0].get("token_hash").is_none());
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let carol_token = env.token("carol", "user");
    let r = ureq::post(&format!("{}/api/mail/pending/{id}/confirm", d.url()))
        .header("Authorization", &format!("Bearer {carol_token}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = ureq::post(&format!("{}/api/mail/pending/{id}/confirm", d.url()))
        .header("Authorization", &format!("Bearer {token}"))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 200);
    env.wait_pane("alice", "main", "got: rm -rf build");
    let log: Vec<serde_json::Value> = ureq::get(&format!("{}/api/mail/log", d.url()))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_body()
        .read_json()
        .unwrap();
    assert!(
        log.iter().all(|e| e["user"] == "alice"),
        "only alice's entries"
    );
    assert!(log.iter().any(
        |e| e["decision"] == "confirmed" && e["reason"].as_str().unwrap().contains("web page")
    ));
    // mail-log as a table.
    let table = env.ok(&["mail-log", "alice"]);
    assert!(
        table.contains("refused") && table.contains("blocked by your policy"),
        "{table}"
    );
}

/// The real Claude Code asks before running a command; the notification
/// mail lists the options and a reply with "1" to its address answers:
/// the tool runs once, a second reply types nothing, a reply from another
/// sender is never answered.
#[test]
fn claude_question_answered_by_mail() {
    claude_by_mail(true);
}

/// The same with Claude Code's hooks off: the screen alone.
#[test]
fn claude_question_answered_by_mail_without_hooks() {
    claude_by_mail(false);
}

fn claude_by_mail(hooks: bool) {
    let bed = Testbed::start();
    let (ran, api, mut env) = claude(hooks);
    // claude_env's alice, with mail: her address, notifications, a mailbox.
    let base = std::fs::read_to_string(&env.config).unwrap();
    let alice = "[[users]]\nname = \"alice\"\n";
    assert!(base.contains(alice));
    let users = base.replacen(
        alice,
        "[[users]]\nname = \"alice\"\nemails = [\"alice@example.test\"]\nnotify_waiting = true\n",
        1,
    );
    let mail_part = config(&bed, "", "");
    let mail_part = mail_part[mail_part.find("[mail]").unwrap()..]
        .replace("{dir}", &env.path().display().to_string());
    std::fs::write(&env.config, format!("{users}\n{mail_part}")).unwrap();
    std::fs::write(env.path().join("imap-password"), &bed.password).unwrap();
    let d = env.serve();
    d.wait_log(15, "IMAP mailbox selected");
    env.wait_pane("alice", "main", "shortcuts");
    env.ok(&["send", "alice/main", "make a marker file"]);

    let note = wait_for(60, "the question mail", || {
        bed.list("alice@example.test")
            .into_iter()
            .find(|m| m.header("Subject") == "[main] waiting for your input")
    });
    for needle in [
        "alice/main asks:",
        "Do you want to proceed?",
        &ran.command(),
        "  1. Yes",
        "  4. No",
    ] {
        assert!(
            note.body.contains(needle),
            "{needle:?} not in:\n{}",
            note.body
        );
    }
    let reply_to = note.header("Reply-To").to_owned();
    assert!(reply_to.starts_with("agent+q-"), "{reply_to}");

    // Someone else replying to it: never answered, nothing typed.
    bed.send(
        "mallory@example.test",
        &reply_to,
        &mail(
            Some(AR_PASS),
            "mallory@example.test",
            &reply_to,
            "Re: x",
            "qm@x",
            "",
            "1",
        ),
    );
    wait_decision(&env, "qm@x", "rejected");
    assert_eq!(ran.count(), 0);

    // Alice answers 1: it runs once, and she hears so.
    let answer = |id: &str| {
        bed.send(
            "alice@example.test",
            &reply_to,
            &mail(
                Some(AR_PASS),
                "Alice <alice@example.test>",
                &reply_to,
                "Re: [main] waiting for your input",
                id,
                "",
                "1\n\n> quoted question",
            ),
        )
    };
    answer("qa1@x");
    wait_decision(&env, "qa1@x", "answered");
    wait_for(20, "the command to run", || {
        (ran.count() == 1).then_some(())
    });
    let replies = wait_for(30, "the answer's reply", || {
        let all = bed.list("alice@example.test");
        let r: Vec<Mail> = all
            .into_iter()
            .filter(|m| m.header("In-Reply-To") == "<qa1@x>")
            .collect();
        (!r.is_empty()).then_some(r)
    });
    assert!(
        replies[0].body.contains("Answered 1. Yes"),
        "{}",
        replies[0].body
    );
    // Again: the question is gone, nothing is typed.
    answer("qa2@x");
    wait_decision(&env, "qa2@x", "refused");
    assert_eq!(ran.count(), 1);
    assert_eq!(api.tool_uses.load(std::sync::atomic::Ordering::SeqCst), 1);
    let text = env.ok(&["transcript", "alice", "--format", "text"]);
    assert!(
        text.contains("input from mail:alice@example.test] 1"),
        "{text}"
    );
}
