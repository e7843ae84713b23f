//! Crash safety of mailed commands, policies, rate limits and web confirmation.

use super::*;

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
    // Exactly once, whatever happened: no job is left that could type it
    // again (the job ends in the same state write that queues the result).
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path().join("state/mail/state.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["jobs"].as_array().map_or(0, Vec::len),
        0,
        "a job is left: {state}"
    );
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
    wait_for_or(
        15,
        "the confirmed command in alice/main",
        || {
            env.pane_text("alice", "main")
                .contains("got: rm -rf build")
                .then_some(())
        },
        || {
            format!(
                "pane:\n{}\nsession: {:?}\nmail log:\n{}\ndaemon log:\n{}",
                env.pane_text("alice", "main"),
                env.session("alice/main"),
                env.ok(&["mail-log", "alice"]),
                d.log()
            )
        },
    );
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

/// A command that arrives while the agent has exited and waits for its
/// restart is typed into the restarted agent, not into the dead pane.
#[test]
fn a_command_for_an_exited_agent_waits_for_its_restart() {
    let bed = Testbed::start();
    let text = config(&bed, "", &format!("{ALICE}confirm = \"never\"\n")).replacen(
        "[agent]\n",
        "[agent]\nrestart_delay_ms = 3000\n",
        1,
    );
    let env = Env::new(&text);
    std::fs::write(env.path().join("imap-password"), &bed.password).unwrap();
    let mut env = env;
    let _d = env.serve();
    let alice_to = secret(&env, "alice");
    let pid = wait_for(15, "alice's agent", || {
        env.session("alice/main")?["agent_pid"].as_u64()
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    wait_for(10, "the agent exited", || {
        (env.session("alice/main")?["agent_state"] == "exited").then_some(())
    });
    let raw = mail(
        Some(AR_PASS),
        "alice@example.test",
        &alice_to,
        "s",
        "x1@x",
        "",
        "after the restart",
    );
    let out = env.run_with_stdin(&["mail-ingest"], raw.as_bytes());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("queued:"),
        "{out:?}"
    );
    wait_decision(&env, "x1@x", "executed");
    env.wait_pane("alice", "main", "got: after the restart");
    let s = env.session("alice/main").unwrap();
    assert_ne!(s["agent_pid"].as_u64(), Some(pid), "{s}");
    assert_eq!(email_inputs(&env, "alice"), 1);
}
