//! Mail from the MTA to a root daemon (issue 19), set up as the README
//! says: Postfix's pipe(8) runs `tmuxd mail-ingest --socket
//! RUNTIME_DIR/mail.sock` as an unprivileged account in `[mail]
//! ingest_group`. A command and its YES arrive that way and the text is
//! typed once; with the daemon stopped the message waits in Postfix's
//! queue and is delivered, once, when it is back; an account outside the
//! group is refused for good (77), not "try later" (75).

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use super::*;
use crate::common::accounts::UnixUsers;

/// What the README's pipe delivery produces: a confirmation in alice's box
/// for `id`, its reply-to address.
fn confirmation_for(bed: &Testbed, id: &str) -> String {
    confirmation_in(bed, "alice@example.test", id)
}

fn command(bed: &Testbed, to: &str, id: &str, text: &str) {
    bed.send(
        "alice@example.test",
        to,
        &mail(
            Some(AR_PASS),
            "alice@example.test",
            to,
            "a command",
            id,
            "",
            text,
        ),
    );
}

fn yes(bed: &Testbed, reply_to: &str, id: &str, of: &str) {
    bed.send(
        "alice@example.test",
        reply_to,
        &mail(
            Some(AR_PASS),
            "alice@example.test",
            reply_to,
            "Re: Confirm",
            id,
            &format!("In-Reply-To: <{of}>\n"),
            "YES",
        ),
    );
}

#[test]
fn postfix_pipes_mail_as_an_unprivileged_account_to_a_root_daemon() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs the daemon as root and Postfix's pipe as other accounts: run it as root (CI does)"
    );
    // The pipe's account (its own group is the ingest group), and one
    // outside that group.
    let accounts = UnixUsers::create(2);
    let (pipe, stranger) = (&accounts.0[0], &accounts.0[1]);
    let mut env = Env::new(&format!(
        "[agent]\n{AGENT}\nidle_after_s = 1\nwaiting_pattern = \"\"\n\n\
         [mail]\naddress = \"agent@example.test\"\nauthserv_id = \"mx.example.test\"\nresult_timeout_s = 20\n\
         ingest_group = \"{pipe}\"\n\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = SMTP_PORT\nsecurity = \"plain\"\n\n{ALICE}"
    ));
    std::fs::set_permissions(
        env.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let socket = env.path().join("run/mail.sock").display().to_string();
    let bed = Testbed::start_with(&[
        ("MAIL_TESTBED_PIPE_TO", "agent@example.test"),
        ("MAIL_TESTBED_PIPE_USER", pipe),
        (
            "MAIL_TESTBED_PIPE_ARGV",
            &format!("{} mail-ingest --socket {socket}", crate::common::BIN),
        ),
    ]);
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("SMTP_PORT", &bed.smtp.to_string()),
    )
    .unwrap();
    let to = secret(&env, "alice");

    // A command, its confirmation, a YES, typed once: all through the pipe.
    let d = env.serve();
    let m = marker();
    command(&bed, &to, "p1@x", &format!("first {m}"));
    let reply_to = confirmation_for(&bed, "p1@x");
    yes(&bed, &reply_to, "p1y@x", "p1@x");
    env.wait_pane("alice", "main", &format!("got: first {m}"));
    wait_decision(&env, "p1@x", "executed");
    assert_eq!(decisions(&env, "p1@x"), vec!["pending", "executed"]);
    assert!(bed.maillog().contains("relay=tmuxd"), "{}", bed.maillog());

    // The daemon down: the message waits in Postfix's queue...
    d.signal(Signal::SIGTERM);
    assert!(env.reap(d.pid).success());
    command(&bed, &to, "p2@x", &format!("second {m}"));
    wait_for(30, "Postfix defers the message", || {
        let log = bed.maillog();
        (log.contains("relay=tmuxd") && log.contains("status=deferred")).then_some(())
    });
    assert!(bed.postqueue(&["-p"]).contains("agent+"), "not queued");
    // ...and is delivered once the daemon is back (a queue run now,
    // rather than at Postfix's next retry).
    let _d = env.serve();
    bed.postqueue(&["-f"]);
    let reply_to = confirmation_for(&bed, "p2@x");
    yes(&bed, &reply_to, "p2y@x", "p2@x");
    env.wait_pane("alice", "main", &format!("got: second {m}"));
    wait_for(30, "the queue empties", || {
        bed.postqueue(&["-p"])
            .contains("Mail queue is empty")
            .then_some(())
    });
    wait_decision(&env, "p2@x", "executed");
    assert_eq!(decisions(&env, "p2@x"), vec!["pending", "executed"]);
    let pane = env.pane_text("alice", "main");
    assert_eq!(
        pane.matches(&format!("got: second {m}")).count(),
        1,
        "{pane}"
    );
    assert_eq!(email_inputs(&env, "alice"), 2);

    let out = env.run(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!(
            "ok       mail socket {socket} is the daemon's, for group {pipe}"
        )),
        "{report}"
    );

    // Outside the group: refused for good, saying how to fix it.
    let account = nix::unistd::User::from_name(stranger).unwrap().unwrap();
    let mut cmd = std::process::Command::new(crate::common::BIN);
    cmd.args(["mail-ingest", "--socket", &socket])
        .env_clear()
        .uid(account.uid.as_raw())
        .gid(account.gid.as_raw())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let raw = mail(
        Some(AR_PASS),
        "alice@example.test",
        &to,
        "s",
        "p3@x",
        "",
        "third",
    );
    let out = crate::common::run_fed(cmd, raw.as_bytes());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.contains(&format!(
            "{stranger} may not deliver mail to {socket}, which is for group {pipe}"
        )) && err.contains(&format!("usermod -aG {pipe} {stranger}")),
        "{err}"
    );
    assert!(decisions(&env, "p3@x").is_empty());
}

#[test]
fn a_missing_ingest_group_is_named_with_how_to_make_it() {
    let env = Env::new(&format!(
        "[mail]\naddress = \"agent@example.test\"\nauthserv_id = \"mx.example.test\"\n\
         ingest_group = \"tmuxd-no-such-group\"\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n\n{ALICE}"
    ));
    let out = env.run(&["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mail.ingest_group: no such group \"tmuxd-no-such-group\": create it (`groupadd --system tmuxd-no-such-group`)"),
        "{err}"
    );
}
