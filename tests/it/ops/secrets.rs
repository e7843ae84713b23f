//! Per-user agent settings (issue 16): a secret read from a 0600 file
//! reaches the agent's environment and nowhere else: not the daemon's log,
//! the transcript, any process's argv, tmux's environment or an API answer.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::common::accounts::UnixUsers;
use crate::common::client::call;
use crate::common::{marker, wait_for, Env};

#[test]
fn a_secret_from_a_private_file_is_in_the_agents_environment_only() {
    let users = UnixUsers::create(1);
    let a = users.0[0].clone();
    let home = format!("/tmp/{a}-home");
    let secret = format!("sk-test-{}", marker());
    let key_file = format!("{home}/anthropic.key");
    std::fs::write(&key_file, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&key_file, PermissionsExt::from_mode(0o600)).unwrap();
    let uid = users.uid(0);
    nix::unistd::chown(key_file.as_str(), Some(uid.into()), None).unwrap();
    assert_eq!(std::fs::metadata(&key_file).unwrap().uid(), uid);

    // The agent proves what it got without printing it: a digest and the
    // plain variable, in a file of its own.
    let seen = format!("{home}/seen");
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\", \"-c\", \"printf %s \\\"$ANTHROPIC_API_KEY\\\" | sha256sum > {seen}; echo model=$MODEL >> {seen}; exec sh\"]\n\
         env = {{ MODEL = \"claude-test\" }}\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{home}\"\n\
         secrets = {{ ANTHROPIC_API_KEY = \"{key_file}\" }}\n"
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let token = env.token("alice", "user");
    let d = env.serve();
    let got = wait_for(20, "the agent's report", || {
        let s = std::fs::read_to_string(&seen).ok()?;
        s.contains("model=").then_some(s)
    });
    let digest = {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(secret.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(
        got.starts_with(&digest),
        "the agent did not get the secret: {got}"
    );
    assert!(got.contains("model=claude-test"), "{got}");

    // Nowhere else.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(&secret),
        "the secret is in a process's argv"
    );
    let tmux_env = env.tmux("alice", &["show-environment", "-t", "=main"]);
    assert!(
        !String::from_utf8_lossy(&tmux_env.stdout).contains(&secret),
        "in tmux's environment"
    );
    assert!(!d.log().contains(&secret), "in the daemon's log");
    for format in ["text", "raw"] {
        let t = env.ok(&["transcript", "alice/main", "--format", format]);
        assert!(!t.contains(&secret), "in the {format} transcript");
    }
    let (_, sessions) = call(
        "GET",
        &format!("{}/api/sessions", d.url()),
        Some(&token),
        None,
    );
    assert!(!sessions.contains(&secret), "in the API's answer");
    assert!(
        !env.ok(&["sessions", "--json"]).contains(&secret),
        "in sessions --json"
    );
    let config = std::fs::read_to_string(&env.config).unwrap();
    assert!(!config.contains(&secret));

    // doctor checks the file: private and the account's.
    let out = env.run(&["doctor"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("secret ANTHROPIC_API_KEY") && said.contains("is private"),
        "{said}"
    );
    std::fs::set_permissions(&key_file, PermissionsExt::from_mode(0o640)).unwrap();
    let out = env.run(&["doctor"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("can be read by others") && said.contains(&format!("chmod 600 {key_file}")),
        "{said}"
    );
}
