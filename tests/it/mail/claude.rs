//! A real Claude Code question answered by mail.

use super::*;

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
    assert_eq!(api.tool_calls(), 1);
    let text = env.ok(&["transcript", "alice", "--format", "text"]);
    assert!(
        text.contains("input from mail:alice@example.test] 1"),
        "{text}"
    );
}
