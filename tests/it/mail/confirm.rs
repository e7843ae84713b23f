//! The full mail loop and every bad input.

use super::*;

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
        "max_message_bytes = 65536",
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

    // Tokens: another sender's, a replay.
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
    // Expiry is tested on a held clock (src/mail/bridge/expiry_tests.rs).
    let inbox = wait_for(30, "the reply to the replay", || {
        let all = bed.list(alice);
        (replies_to(&all, "replay@x").len() == 1).then_some(all)
    });
    assert!(replies_to(&inbox, "replay@x")[0]
        .body
        .contains("unknown, already used or expired"));

    // Typed exactly once, and nothing else ever was.
    let pane = env.pane_text("alice", "main");
    assert_eq!(pane.matches("got:").count(), 1, "{pane}");
    assert!(!pane.contains("pwned") && !pane.contains("push"), "{pane}");
    assert_eq!(email_inputs(&env, "alice"), 1);
}
