//! The agent understood: the real Claude Code CLI (npm, pinned in
//! scripts/deps.sh) runs in a tmuxd session against a stand-in of the
//! Messages API on loopback. Its real permission dialog makes the session
//! `waiting` with the question, the command and the options in the API;
//! an answer types only while that question is on screen, once; after a
//! SIGKILL and restart the question is read again off tmux's screen.

use std::time::{Duration, Instant};

use crate::common::accounts::UnixUsers;
use crate::common::anthropic::claude;
use crate::common::client::call;
use crate::common::{wait_for, wait_for_or, Env, BIN};
use nix::sys::signal::Signal;

pub(crate) fn main_session(url: &str, token: &str) -> serde_json::Value {
    let (status, body) = call("GET", &format!("{url}/api/sessions"), Some(token), None);
    assert_eq!(status, 200, "{body}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    all.into_iter()
        .find(|s| s["id"] == "alice/main")
        .expect("alice/main listed")
}

pub(crate) fn answer(url: &str, token: &str, question: &str, option: &str) -> (u16, String) {
    call(
        "POST",
        &format!("{url}/api/sessions/alice/main/answer"),
        Some(token),
        Some(serde_json::json!({"question": question, "option": option})),
    )
}

/// Asks Claude for something; waits until its permission dialog is drawn
/// and the API shows the session waiting; returns the question and how
/// long after the dialog was drawn the API said `waiting`.
fn ask(env: &Env, url: &str, token: &str, prompt: &str) -> (serde_json::Value, Duration) {
    let (status, body) = call(
        "POST",
        &format!("{url}/api/sessions/alice/main/input"),
        Some(token),
        Some(serde_json::json!({"text": prompt})),
    );
    assert_eq!(status, 204, "{body}");
    wait_for(30, "Claude's permission dialog", || {
        env.pane_text("alice", "main")
            .contains("Do you want to proceed?")
            .then_some(())
    });
    let drawn = Instant::now();
    let question = wait_for(10, "the session waiting with a question", || {
        let s = main_session(url, token);
        (s["agent_state"] == "waiting" && s["question"].is_object()).then(|| s["question"].clone())
    });
    let after = drawn.elapsed();
    eprintln!("waiting {after:?} after the dialog was drawn");
    (question, after)
}

#[test]
fn claude_permission_prompt_is_a_question_answered_once() {
    let (ran, api, mut env) = claude(true);
    let runs = || ran.count();
    let d = env.serve();
    let url = d.url();
    let token = env.token("alice", "user");
    env.wait_pane("alice", "main", "shortcuts");
    assert_eq!(main_session(&url, &token)["agent_profile"], "claude");

    // The dialog: waiting within a second, with the question, the command
    // and its options.
    let (q, after) = ask(&env, &url, &token, "make a marker file");
    assert!(
        after < Duration::from_secs(1),
        "waiting {after:?} after the dialog was drawn"
    );
    assert_eq!(q["text"], "Do you want to proceed?");
    let detail: Vec<String> = serde_json::from_value(q["detail"].clone()).unwrap();
    assert!(
        detail.iter().any(|l| l == &ran.command()),
        "the command is in the question: {detail:?}"
    );
    // Claude's own PermissionRequest hook says which tool, exactly (its
    // report may come a moment after the dialog is drawn).
    let tool = wait_for(10, "the hook's report of the tool", || {
        let s = main_session(&url, &token);
        (s["question"]["id"] == q["id"] && s["question"]["tool"].is_object())
            .then(|| s["question"]["tool"].clone())
    });
    assert_eq!(tool["name"], "Bash", "{tool}");
    assert_eq!(tool["input"]["command"], ran.command().as_str(), "{tool}");
    let labels: Vec<String> = q["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap().to_owned())
        .collect();
    assert!(labels.len() >= 3, "{labels:?}");
    assert_eq!(labels[0], "Yes");
    assert_eq!(labels.last().unwrap(), "No");
    assert!(labels[1].starts_with("Yes, and"), "{labels:?}");
    let qid = q["id"].as_str().unwrap().to_owned();

    // A wrong id or option types nothing.
    let (status, body) = answer(&url, &token, "0123456789abcdef0123456789abcdef", "1");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("nothing was typed"), "{body}");
    let (status, body) = answer(&url, &token, &qid, "9");
    assert_eq!(status, 400, "{body}");
    assert!(env
        .pane_text("alice", "main")
        .contains("Do you want to proceed?"));
    assert_eq!(runs(), 0);

    // The answer runs the tool exactly once; replayed, it types nothing.
    let (status, body) = answer(&url, &token, &qid, "1");
    assert_eq!(status, 204, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs() != 1 {
        assert!(
            Instant::now() < deadline,
            "the command did not run; the screen:\n{}",
            env.pane_text("alice", "main")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for(20, "the dialog to close", || {
        let s = main_session(&url, &token);
        (s["agent_state"] != "waiting" && s["question"].is_null()).then_some(())
    });
    let (status, body) = answer(&url, &token, &qid, "1");
    assert_eq!(status, 409, "{body}");

    // Asked again, then the daemon is SIGKILLed and restarted with the
    // dialog on screen: waiting again, the same question answerable.
    let (before, _) = ask(&env, &url, &token, "make another marker file");
    env.kill_daemons();
    let d = env.serve();
    let url = d.url();
    let again = wait_for(10, "waiting again after the restart", || {
        let s = main_session(&url, &token);
        (s["agent_state"] == "waiting" && s["question"].is_object()).then(|| s["question"].clone())
    });
    assert_eq!(again["text"], before["text"]);
    assert_eq!(again["detail"], before["detail"]);
    assert_eq!(again["options"], before["options"]);
    // The old id died with the old daemon: stale, nothing typed.
    let (status, body) = answer(&url, &token, before["id"].as_str().unwrap(), "1");
    assert_eq!(status, 409, "{body}");
    assert_eq!(runs(), 1);
    // This time from the CLI, which lists it too.
    let listed = env.session("alice/main").expect("listed");
    assert_eq!(
        listed["question"], again,
        "sessions --json shows the question"
    );
    assert_eq!(listed["agent_state"], "waiting");
    let table = env.ok(&["sessions"]);
    assert!(
        table.contains("alice/main asks: Do you want to proceed?"),
        "{table}"
    );
    let qid = again["id"].as_str().unwrap();
    assert!(
        table.contains(&format!("tmuxd answer {qid} OPTION")),
        "{table}"
    );
    let out = env.run(&["answer", qid, "7"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing was typed"),
        "{out:?}"
    );
    env.ok(&["answer", qid, "1"]);
    wait_for(20, "the second command to run", || {
        (runs() == 2).then_some(())
    });
    let out = env.run(&["answer", qid, "1"]);
    assert_eq!(out.status.code(), Some(2), "a replayed answer: {out:?}");
    assert_eq!(api.tool_calls(), 2);

    // The text export shows the dialog as it was on screen, and the
    // answers as input records, each before the output it caused.
    let text = env.ok(&["transcript", "alice", "--format", "text"]);
    assert!(text.contains("Do you want to proceed?"), "{text}");
    let answers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("[tmuxd ") && l.ends_with("] 1") && l.contains(" input from "))
        .collect();
    assert_eq!(answers.len(), 2, "{text}");
    assert!(
        answers[0].contains("input from api:alice] 1"),
        "{answers:?}"
    );
    assert!(answers[1].contains("input from cli:uid="), "{answers:?}");
    assert!(
        text.contains(" hook] {\"event\":\"PermissionRequest\""),
        "{text}"
    );
}

/// Hooks off: the screen alone makes the session wait and reads the same
/// question; the answer runs the tool once.
#[test]
fn claude_question_without_hooks_is_read_off_the_screen() {
    let (ran, _api, mut env) = claude(false);
    let d = env.serve();
    let url = d.url();
    let token = env.token("alice", "user");
    env.wait_pane("alice", "main", "shortcuts");
    let (q, after) = ask(&env, &url, &token, "make a marker file");
    assert!(
        after < Duration::from_secs(1),
        "waiting {after:?} after the dialog was drawn"
    );
    assert_eq!(q["text"], "Do you want to proceed?");
    assert!(q.get("tool").is_none(), "no hook, no tool: {q}");
    let detail: Vec<String> = serde_json::from_value(q["detail"].clone()).unwrap();
    assert!(detail.iter().any(|l| l == &ran.command()), "{detail:?}");
    let (status, body) = answer(&url, &token, q["id"].as_str().unwrap(), "1");
    assert_eq!(status, 204, "{body}");
    wait_for(20, "the command to run", || {
        (ran.count() == 1).then_some(())
    });
    let text = env.ok(&["transcript", "alice", "--format", "text"]);
    assert!(!text.contains(" hook] "), "{text}");
}

/// A user's hook socket takes reports from that user only: another user
/// cannot connect to it, reports naming another user's session are
/// dropped, and a connection from another uid (root) is refused.
#[test]
fn hook_socket_answers_only_its_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let users = UnixUsers::create(2);
    let (a, b) = (&users.0[0], &users.0[1]);
    // Agents that ignore the --settings tmuxd appends for Claude Code.
    let env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\", \"-c\", \"exec sleep 1000\", \"--\"]\nprofile = \"claude\"\n[[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"/tmp/{a}-home\"\n[[users]]\nname = \"bob\"\nunix_user = \"{b}\"\nworkdir = \"/tmp/{b}-home\"\n"
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let mut env = env;
    let d = env.serve();
    let hooks = env.path().join("run/hooks");
    let alice_sock = hooks.join("alice.sock");
    let bob_sock = hooks.join("bob.sock");
    wait_for(10, "the hook sockets", || {
        (alice_sock.exists() && bob_sock.exists()).then_some(())
    });
    let dir = std::fs::metadata(&hooks).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (0, 0o711));
    let sock = std::fs::metadata(&alice_sock).unwrap();
    assert_eq!((sock.uid(), sock.mode() & 0o777), (users.uid(0), 0o600));

    // `tmuxd hook` as USER, reporting a permission request for SESSION
    // through SOCKET.
    let report = |user: &str, socket: &std::path::Path, session: &str, tag: &str| {
        let event = serde_json::json!({
            "hook_event_name": "PermissionRequest",
            "tool_name": "Bash",
            "tool_input": {"command": tag},
        });
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", user, "--", BIN, "hook"])
            .env("TMUXD_HOOK", socket)
            .env("TMUXD_SESSION", session);
        let out = crate::common::run_fed(cmd, event.to_string().as_bytes());
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    };
    let recorded = |tag: &str| {
        env.ok(&["transcript", "alice", "--format", "text"])
            .contains(tag)
    };

    // bob at alice's socket: not even a connection.
    report(b, &alice_sock, "alice/main", "FROM-BOB-AT-ALICE");
    // bob at his own socket, naming alice's session: dropped.
    report(b, &bob_sock, "alice/main", "FROM-BOB-AS-ALICE");
    // root at alice's socket: refused by its peer uid.
    let event = serde_json::json!({"hook_event_name": "PermissionRequest", "tool_name": "Bash", "tool_input": {"command": "FROM-ROOT"}});
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("hook")
        .env("TMUXD_HOOK", &alice_sock)
        .env("TMUXD_SESSION", "alice/main");
    assert!(crate::common::run_fed(cmd, event.to_string().as_bytes())
        .status
        .success());
    // alice herself: recorded.
    report(a, &alice_sock, "alice/main", "FROM-ALICE");
    wait_for(10, "alice's report recorded", || {
        recorded("FROM-ALICE").then_some(())
    });
    for tag in ["FROM-BOB-AT-ALICE", "FROM-BOB-AS-ALICE", "FROM-ROOT"] {
        assert!(!recorded(tag), "{tag} was recorded");
    }
    // Users removed and added by SIGHUP: bob's socket closes, and opens
    // again for his reports when he is back.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let bob_section = &text[text.find("[[users]]\nname = \"bob\"").unwrap()..];
    std::fs::write(&env.config, text.replace(bob_section, "")).unwrap();
    d.signal(Signal::SIGHUP);
    wait_for(10, "bob's hook socket closed", || {
        (!bob_sock.exists()).then_some(())
    });
    std::fs::write(&env.config, &text).unwrap();
    d.signal(Signal::SIGHUP);
    wait_for(10, "bob's hook socket again", || {
        bob_sock.exists().then_some(())
    });
    report(b, &bob_sock, "bob/main", "FROM-BOB");
    wait_for(10, "bob's report recorded", || {
        env.ok(&["transcript", "bob", "--format", "text"])
            .contains("FROM-BOB")
            .then_some(())
    });
    // With the daemon down a hook still exits at once, silently.
    env.kill_daemons();
    report(a, &alice_sock, "alice/main", "DAEMON-DOWN");
}

/// A user `alice` whose agent is the shell `script`, asking
/// "Proceed? (y/n)" (profile `generic` with that pattern).
fn script_agent(script: &str) -> Env {
    let env = Env::new(
        r#"[agent]
command = ["sh", "{dir}/agent.sh"]
profile = "generic"
waiting_pattern = "Proceed\\? \\(y/n\\)"
idle_after_s = 1
[[users]]
name = "alice"
"#,
    );
    std::fs::write(env.path().join("agent.sh"), script).unwrap();
    env
}

/// Waits (10 s) for alice/main to be waiting on "Proceed? (y/n)".
fn asks_proceed(env: &Env, what: &str) {
    let s = wait_for_or(
        10,
        what,
        || {
            let s = env.session("alice/main")?;
            (s["agent_state"] == "waiting").then_some(s)
        },
        || {
            format!(
                "pane:\n{}\nsession: {:?}",
                env.pane_text("alice", "main"),
                env.session("alice/main")
            )
        },
    );
    assert_eq!(s["question"]["text"], "Proceed? (y/n)", "{s}");
}

/// A window resized by a client other than the page's (here tmux itself,
/// as a plain `tmux attach` of another size does): the daemon's screen
/// takes the new size. The agent draws its question at column 90 of the
/// last row, which an 80-column screen would wrap into `P` / `roceed?`.
#[test]
fn a_window_resized_outside_the_page_is_followed() {
    let mut env = script_agent(
        "draw() { set -- $(stty size); printf '\\033[2J\\033[%s;90HProceed? (y/n)' \"$1\"; }\n\
         trap draw WINCH\n\
         while :; do sleep 0.1; done\n",
    );
    let _d = env.serve();
    wait_for(10, "the agent", || {
        (env.session("alice/main")?["agent_state"] == "idle").then_some(())
    });
    let out = env.tmux(
        "alice",
        &["resize-window", "-t", "=main:", "-x", "120", "-y", "30"],
    );
    assert!(out.status.success(), "{out:?}");
    asks_proceed(&env, "the question at the new size");
}

/// A flood far larger than a screen is not drawn on the daemon's screen
/// byte by byte; the screen is taken from tmux once it is in. Mid-flood
/// the agent asks at the top row, above a scroll region the flood goes
/// through: the question is seen only if that screen is tmux's.
#[test]
fn a_question_inside_a_large_flood_is_read_from_tmux() {
    let mut env = script_agent(
        "printf '\\033[2J\\033[3;24r\\033[24;1H'\n\
         flood() { yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 4000000; }\n\
         flood; printf '\\0337\\033[1;1HProceed? (y/n)\\0338'; flood\n\
         exec sleep 1000\n",
    );
    let _d = env.serve();
    let raw = || env.ok(&["transcript", "alice", "--format", "raw"]).len();
    wait_for_or(
        60,
        "the whole flood in the transcript",
        || (raw() >= 8_000_000).then_some(()),
        || format!("pane:\n{}", env.pane_text("alice", "main")),
    );
    asks_proceed(&env, "the question asked inside the flood");
}
