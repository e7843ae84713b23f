//! Per-user and per-session agent settings (issue 16): a secret read from
//! a 0600 file reaches the agent's environment and nowhere else: not the daemon's log,
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

    // A session of its own settings: another key and model.
    let review_secret = format!("sk-review-{}", marker());
    let review_key = format!("{home}/review.key");
    std::fs::write(&review_key, format!("{review_secret}\n")).unwrap();
    std::fs::set_permissions(&review_key, PermissionsExt::from_mode(0o600)).unwrap();
    nix::unistd::chown(review_key.as_str(), Some(uid.into()), None).unwrap();

    // The agent proves what it got without printing it: a digest and the
    // plain variable, in a file named after the model.
    let seen = format!("{home}/seen-claude-test");
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\", \"-c\", \"printf %s \\\"$ANTHROPIC_API_KEY\\\" | sha256sum > {home}/seen-$MODEL; echo model=$MODEL >> {home}/seen-$MODEL; exec sh\"]\n\
         env = {{ MODEL = \"claude-test\" }}\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{home}\"\n\
         secrets = {{ ANTHROPIC_API_KEY = \"{key_file}\" }}\n\
         [users.sessions.review]\nenv = {{ MODEL = \"claude-review\" }}\n\
         secrets = {{ ANTHROPIC_API_KEY = \"{review_key}\" }}\n\
         [users.sessions.cred]\nenv = {{ MODEL = \"claude-cred\" }}\n\
         secrets = {{ ANTHROPIC_API_KEY = \"credential:anthropic\" }}\n"
    ));
    // A systemd credential, as the service manager hands it over: a
    // directory only the daemon (root) can read.
    let cred_secret = format!("sk-cred-{}", marker());
    let creds = env.path().join("credentials-from-systemd");
    std::fs::create_dir(&creds).unwrap();
    std::fs::set_permissions(&creds, PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(creds.join("anthropic"), &cred_secret).unwrap();
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let token = env.token("alice", "user");
    let d = env.serve_with(&[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())]);
    let got = wait_for(20, "the agent's report", || {
        let s = std::fs::read_to_string(&seen).ok()?;
        s.contains("model=").then_some(s)
    });
    let digest = |secret: &str| {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(secret.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(
        got.starts_with(&digest(&secret)),
        "the agent did not get the secret: {got}"
    );
    assert!(got.contains("model=claude-test"), "{got}");
    // The review session gets its own, main keeps the user's.
    env.ok(&["new", "alice/review"]);
    let review = wait_for(20, "the review agent's report", || {
        let s = std::fs::read_to_string(format!("{home}/seen-claude-review")).ok()?;
        s.contains("model=").then_some(s)
    });
    assert!(review.starts_with(&digest(&review_secret)), "{review}");
    assert!(std::fs::read_to_string(&seen)
        .unwrap()
        .starts_with(&digest(&secret)));
    // The credential's session gets its value, from a copy only alice's
    // account can read.
    env.ok(&["new", "alice/cred"]);
    let cred = wait_for(20, "the credential agent's report", || {
        let s = std::fs::read_to_string(format!("{home}/seen-claude-cred")).ok()?;
        s.contains("model=").then_some(s)
    });
    assert!(cred.starts_with(&digest(&cred_secret)), "{cred}");
    let copies = env.path().join("run/credentials");
    let copy = std::fs::metadata(copies.join("alice.anthropic")).unwrap();
    assert_eq!((copy.uid(), copy.mode() & 0o777), (uid, 0o400));
    let dir = std::fs::metadata(&copies).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (0, 0o711));

    // Nowhere else.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    for secret in [&secret, &review_secret, &cred_secret] {
        assert!(
            !String::from_utf8_lossy(&ps.stdout).contains(secret.as_str()),
            "the secret is in a process's argv"
        );
        assert!(!d.log().contains(secret.as_str()), "in the daemon's log");
    }
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
