//! First run (issue 16): every CLI error names what was wrong and the next
//! step, in one line, with exit status 2.

use crate::common::Env;

/// Runs `args`; asserts exit 2 and one line on stderr containing each of
/// `says`.
fn says(env: &Env, args: &[&str], says: &[&str]) {
    let out = env.run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: more than one line: {err}"
    );
    for s in says {
        assert!(err.contains(s), "{args:?}: {err:?} does not say {s:?}");
    }
}

#[test]
fn cli_errors_name_the_problem_and_the_next_step() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n",
    );
    let config = env.config.display().to_string();
    // An unknown user: which users there are, in which config.
    says(
        &env,
        &["send", "carol/main", "hi"],
        &["no such user carol", "alice, bob", &config],
    );
    says(
        &env,
        &["token", "carol"],
        &["no such user carol", "alice, bob"],
    );
    // A token for nobody: how to say who, or list, or revoke.
    says(
        &env,
        &["token"],
        &["tmuxd token USER", "alice, bob", "--list", "--revoke"],
    );
    // The daemon down: how to start it.
    says(
        &env,
        &["send", "alice/main", "hi"],
        &["no such session alice/main", "tmuxd serve"],
    );
    says(&env, &["attach", "alice/main"], &["tmuxd serve"]);
    says(
        &env,
        &["attach"],
        &["tmuxd attach USER[/SESSION]", "alice, bob"],
    );
    // A bad pattern: one line.
    says(
        &env,
        &["transcript", "alice/main", "--grep", "("],
        &["invalid --grep pattern", "unclosed group"],
    );

    // An empty token list says so; a list has a header.
    let out = env.run(&["token", "--list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tokens yet"));
    env.token("alice", "user");
    let list = env.ok(&["token", "--list"]);
    assert!(list.starts_with("ID"), "{list}");
    assert!(
        list.lines().nth(1).unwrap_or("").contains("alice"),
        "{list}"
    );

    // With the daemon running, attach without a terminal says it needs one.
    let _d = env.serve();
    env.wait_pane("alice", "main", "");
    says(&env, &["attach", "alice/main"], &["needs a terminal"]);
}

#[test]
fn a_port_in_use_names_web_listen_and_leaves_no_control_socket() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = Env::new(&format!(
        "[web]\nlisten = \"127.0.0.1:{port}\"\n[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n"
    ));
    let out = env.run(&["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port} ([web] listen)"))
            && err.contains(&format!(
                "edit web.listen in {}: web.listen = \"127.0.0.1:{}\"",
                env.config.display(),
                port + 1
            )),
        "{err}"
    );
    assert!(
        !env.path().join("run/tmuxd.sock").exists(),
        "a stale control socket was left"
    );
}
