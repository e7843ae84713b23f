//! Config tests: the example, defaults, every error naming its key.

use super::*;

fn host() -> HostDefaults {
    HostDefaults {
        state_dir: "/var/lib/tmuxd".into(),
        agent: vec!["/bin/sh".into()],
        home: "/home/test".into(),
        login: "test".into(),
        spool_dir: None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "t.toml", &host())
}

fn key_of(text: &str) -> String {
    let e = parse(text).unwrap_err();
    assert!(e.to_string().starts_with("t.toml: "), "{e}");
    e.key().to_owned()
}

#[test]
fn example_config_is_valid() {
    let c = Config::parse(EXAMPLE, "example", &host()).unwrap();
    assert!(c.users.len() >= 2);
    assert_eq!(c.web.listen.to_string(), "127.0.0.1:7681");
    // The example spells out the defaults.
    assert_eq!(c.workspace, crate::config::WorkspaceConfig::default());
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse("[[users]]\nname = \"alice\"\n").unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/tmuxd"));
    assert_eq!(c.runtime_dir, PathBuf::from("/var/lib/tmuxd/run"));
    assert_eq!(c.users[0].command, vec!["/bin/sh"]);
    assert_eq!(c.users[0].workdir, PathBuf::from("/home/test"));
    assert_eq!(
        c.tmux_socket(&c.users[0].name),
        PathBuf::from("/var/lib/tmuxd/run/alice/tmux")
    );
    assert_eq!(c.restart.mode, RestartMode::Always);
}

#[test]
fn errors_name_the_key() {
    let cases = [
        ("[[users]]\nname = \"alice\"\nnmae = 1\n", "users[0].nmae"),
        ("[daemon]\nstate_dri = \"/x\"\n", "daemon.state_dri"),
        ("bogus = 1\n[[users]]\nname = \"a\"\n", "bogus"),
        (
            "[[users]]\nname = \"alice\"\ncommand = \"claude\"\n",
            "users[0].command",
        ),
        ("[[users]]\nname = 7\n", "users[0].name"),
        ("[[users]]\nname = \"Alice\"\n", "users[0].name"),
        (
            "[[users]]\nname = \"a\"\n[[users]]\nname = \"b\"\n[[users]]\nname = \"a\"\n",
            "users[2].name",
        ),
        (
            "[[users]]\nname = \"a\"\ncommand = []\n",
            "users[0].command",
        ),
        (
            "[[users]]\nname = \"a\"\nworkdir = \"rel\"\n",
            "users[0].workdir",
        ),
        (
            "[[users]]\nname = \"a\"\nemails = [\"nope\"]\n",
            "users[0].emails[0]",
        ),
        (
            "[web]\nlisten = \"localhost\"\n[[users]]\nname = \"a\"\n",
            "web.listen",
        ),
        (
            "[agent]\nrestart = \"sometimes\"\n[[users]]\nname = \"a\"\n",
            "agent.restart",
        ),
        (
            "[agent]\nrestart_delay_ms = -1\n[[users]]\nname = \"a\"\n",
            "agent.restart_delay_ms",
        ),
        (
            "[daemon]\nstate_dir = \"x\"\n[[users]]\nname = \"a\"\n",
            "daemon.state_dir",
        ),
        (
            "[workspace]\nuploads = \"../elsewhere\"\n[[users]]\nname = \"a\"\n",
            "workspace.uploads",
        ),
        (
            "[workspace]\nmax_upload_bytes = 0\n[[users]]\nname = \"a\"\n",
            "workspace.max_upload_bytes",
        ),
        (
            "[workspace]\nmax_download_files = 0\n[[users]]\nname = \"a\"\n",
            "workspace.max_download_files",
        ),
        ("users = 3\n", "users"),
        (
            "[[users]]\nname = \"a\"\n[users.sessions.Bad]\nenv = { X = \"1\" }\n",
            "users[0].sessions.Bad",
        ),
        (
            "[[users]]\nname = \"a\"\n[users.sessions.review]\nsecrets = { K = \"rel\" }\n",
            "users[0].sessions.review.secrets.K",
        ),
        ("[[users]\n", "(syntax)"),
    ];
    for (text, key) in cases {
        assert_eq!(key_of(text), key, "for {text:?}");
    }
}

#[test]
fn duplicate_user_names_the_first() {
    let e = parse("[[users]]\nname = \"a\"\n[[users]]\nname = \"a\"\n").unwrap_err();
    assert!(e.problems[0].reason.contains("users[0]"), "{e}");
}

#[test]
fn bounds_default_and_refuse_zero() {
    let c = parse("[[users]]\nname = \"a\"\n").unwrap();
    assert_eq!(c.web.bounds, WebBounds::default());
    assert_eq!(c.max_sessions_per_user, 16);
    let c = parse("[daemon]\nmax_sessions_per_user = 3\n[web]\nheader_timeout_s = 4\nmax_viewers_per_user = 5\ntrusted_proxies = [\"192.0.2.1\"]\n[[users]]\nname = \"a\"\n").unwrap();
    assert_eq!(c.max_sessions_per_user, 3);
    assert_eq!(c.web.bounds.header_timeout, Duration::from_secs(4));
    assert_eq!(c.web.bounds.max_viewers_per_user, 5);
    assert_eq!(
        c.web.trusted_proxies,
        ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
    );
    for (text, key) in [
        ("[web]\nheader_timeout_s = 0\n", "web.header_timeout_s"),
        (
            "[web]\nmax_viewers_per_session = 0\n",
            "web.max_viewers_per_session",
        ),
        (
            "[daemon]\nmax_sessions_per_user = 0\n",
            "daemon.max_sessions_per_user",
        ),
        (
            "[web]\ntrusted_proxies = [\"proxy\"]\n",
            "web.trusted_proxies[0]",
        ),
    ] {
        let e = parse(&format!("{text}[[users]]\nname = \"a\"\n")).unwrap_err();
        assert_eq!(e.key(), key, "{e}");
    }
}

#[test]
fn public_listen_needs_a_tls_proxy() {
    let text = "[web]\nlisten = \"0.0.0.0:443\"\ntls_proxy = true\norigins = [\"https://t.example.com\"]\n[[users]]\nname = \"a\"\n";
    let c = parse(text).unwrap();
    assert!(c.web.tls_proxy);
    assert_eq!(c.web.origins, ["https://t.example.com"]);
    let e = parse("[web]\nlisten = \"0.0.0.0:80\"\n[[users]]\nname = \"a\"\n").unwrap_err();
    assert!(e.problems[0].reason.contains("tls_proxy"), "{e}");
}

#[test]
fn overlong_socket_path_is_refused() {
    let dir = format!("/{}", "d".repeat(100));
    let text = format!("[daemon]\nruntime_dir = \"{dir}\"\n[[users]]\nname = \"alice\"\n");
    assert_eq!(key_of(&text), "daemon.runtime_dir");
}

#[test]
fn mail_errors_name_the_key() {
    let base = "[[users]]\nname = \"a\"\nblock = [\"nope\"]\n";
    assert_eq!(key_of(base), "users[0].block[0]");
    let mail = |extra: &str| {
        format!("[mail]\naddress = \"agent@example.org\"\nauthserv_id = \"mx.example.org\"\n{extra}\n[[users]]\nname = \"a\"\n")
    };
    let smtp = "[mail.smtp]\nhost = \"smtp.example.org\"\nsecurity = \"plain\"\n";
    assert_eq!(key_of(&mail(smtp)), "mail.smtp.security");
    let ok = "[mail.smtp]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n";
    let c = parse(&mail(ok)).unwrap();
    assert_eq!(c.mail.as_ref().unwrap().smtp.port, 25);
    assert_eq!(
        key_of(&mail(&format!("max_message_bytes = 99999999\n{ok}"))),
        "mail.max_message_bytes"
    );
    assert_eq!(
        key_of(&mail(&format!(
            "{ok}[mail.imap]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n"
        ))),
        "mail.imap.username"
    );
    assert_eq!(
        key_of(&format!("[transcript]\nenabled = false\n{}", mail(ok))),
        "mail.enabled"
    );
    assert_eq!(
        key_of(&mail(&format!("ingest_group = \"a:b\"\n{ok}"))),
        "mail.ingest_group"
    );
    let c = parse(&mail(&format!("ingest_group = \"tmuxd-mail\"\n{ok}"))).unwrap();
    assert_eq!(c.mail.unwrap().ingest_group.as_deref(), Some("tmuxd-mail"));
    assert_eq!(
        key_of(&mail(ok).replace("agent@example.org", "agent+x@example.org")),
        "mail.address"
    );
    let off = mail(ok).replace("[mail]\n", "[mail]\nenabled = false\n");
    assert!(parse(&off).unwrap().mail.is_none());
}

#[test]
fn backoff_doubles_and_caps() {
    let p = RestartPolicy {
        mode: RestartMode::OnFailure,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
        reset_after: Duration::from_secs(10),
    };
    let d: Vec<u128> = (1..=6).map(|n| p.delay(n).as_millis()).collect();
    assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(p.delay(u32::MAX).as_millis(), 1000);
    assert!(p.wants_restart(Some(1)) && p.wants_restart(None));
    assert!(!p.wants_restart(Some(0)));
}

#[test]
fn embedded_default_sanitizes_login() {
    let mut h = host();
    h.login = "John.Doe".into();
    let c = Config::embedded(&h);
    assert_eq!(c.users[0].name.as_str(), "john-doe");
    assert_eq!(c.web.listen.ip().to_string(), "127.0.0.1");
}

#[test]
fn every_problem_is_named_at_once() {
    let text = "[daemon]\nstate_dir = \"x\"\n[agent]\nidle_after_s = 0\n[web]\nlisten = \"nope\"\n\
        [workspace]\nmax_snapshots = 0\n[mail]\naddress = \"bad\"\nauthserv_id = \"mx.example.org\"\n\
        [mail.smtp]\nhost = \"smtp.example.org\"\nsecurity = \"plain\"\n\
        [[users]]\nname = \"Alice\"\nemails = [\"nope\"]\n\
        [[users]]\nname = \"bob\"\nblock = [\"nosuch\"]\nenv = { HOME = \"/x\" }\n";
    let e = parse(text).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "daemon.state_dir",
            "agent.idle_after_s",
            "web.listen",
            "users[0].name",
            "users[0].emails[0]",
            "users[1].block[0]",
            "users[1].env.HOME",
            "mail.address",
            "mail.smtp.security",
            "workspace.max_snapshots",
        ]
    );
    // A head line, then one line per problem with its key and reason.
    let shown = e.to_string();
    assert!(
        shown.starts_with("t.toml: 10 problems\n  daemon.state_dir: must be an absolute path\n"),
        "{shown}"
    );
    assert_eq!(shown.lines().count(), 11, "{shown}");
    // The fix names the file in use; with no file, where `init` writes.
    assert_eq!(e.fix(&e.problems[2]), "edit web.listen in t.toml");
    let embedded = crate::config::problems_fix(EMBEDDED, "users[0].workdir");
    assert!(
        embedded.contains("`tmuxd init` writes one") && embedded.contains("users[0].workdir"),
        "{embedded}"
    );
}

#[test]
fn a_file_without_users_runs_the_embedded_default_user() {
    for text in ["", "# only a comment\n", "[agent]\ncommand = [\"aider\"]\n"] {
        let c = parse(text).unwrap();
        let embedded = Config::embedded(&host());
        assert_eq!(c.users.len(), 1, "{text:?}");
        assert_eq!(c.users[0].name, embedded.users[0].name);
        assert_eq!(c.users[0].workdir, embedded.users[0].workdir);
        assert!(c.default_user && c.allow_root_agents, "{text:?}");
    }
    let c = parse("[agent]\ncommand = [\"aider\"]\n").unwrap();
    assert_eq!(c.users[0].command, ["aider"]);
    assert_eq!(c.users[0].profile, "aider");
    // Users of one's own: allow_root_agents as written.
    assert!(
        !parse("[[users]]\nname = \"a\"\n")
            .unwrap()
            .allow_root_agents
    );
}

#[test]
fn spools_go_to_the_hosts_tmpfs_only_with_default_directories() {
    let mut h = host();
    h.spool_dir = Some("/dev/shm/tmuxd-0/spool".into());
    let spool = |text: &str| Config::parse(text, "t", &h).unwrap().transcript.spool_dir;
    assert_eq!(spool(""), PathBuf::from("/dev/shm/tmuxd-0/spool"));
    assert_eq!(
        Config::embedded(&h).transcript.spool_dir,
        PathBuf::from("/dev/shm/tmuxd-0/spool")
    );
    assert_eq!(
        spool("[daemon]\nruntime_dir = \"/run/x\"\n"),
        PathBuf::from("/run/x/spool")
    );
    assert_eq!(
        spool("[daemon]\nstate_dir = \"/s\"\n"),
        PathBuf::from("/s/run/spool")
    );
    assert_eq!(
        Config::embedded(&host()).transcript.spool_dir,
        PathBuf::from("/var/lib/tmuxd/run/spool")
    );
}

#[test]
fn sign_in_settings_name_their_keys() {
    let oidc = |extra: &str| {
        format!("[web.oidc]\nissuer = \"https://id.example.com\"\nclient_id = \"tmuxd\"\nredirect_url = \"https://t.example.com/auth/oidc/callback\"\n{extra}[[users]]\nname = \"a\"\n")
    };
    let c = parse(&oidc("")).unwrap();
    assert_eq!(c.web.oidc.as_ref().unwrap().claim, "preferred_username");
    let bad = |text: &str| parse(text).unwrap_err().key().to_owned();
    assert_eq!(
        bad(&oidc("").replace("https://id.example.com", "http://id.example.com")),
        "web.oidc.issuer"
    );
    assert_eq!(
        bad(&oidc("").replace("/auth/oidc/callback", "/cb")),
        "web.oidc.redirect_url"
    );
    assert_eq!(bad(&oidc("scopes = [\"email\"]\n")), "web.oidc.scopes");
    let proxy = "[web.proxy_auth]\nheader = \"X Remote\"\nsecret_file = \"/s\"\nfrom = [\"127.0.0.1\"]\n[[users]]\nname = \"a\"\n";
    assert_eq!(bad(proxy), "web.proxy_auth.header");
    assert_eq!(
        bad(&proxy
            .replace("X Remote", "X-Remote")
            .replace("[\"127.0.0.1\"]", "[]")),
        "web.proxy_auth.from"
    );
    let hook = "[[webhooks]]\nurl = \"http://hooks.example.com/x\"\n[[users]]\nname = \"a\"\n";
    assert_eq!(bad(hook), "webhooks[0].url");
    assert_eq!(
        bad(&hook.replace(
            "http://hooks.example.com/x\"",
            "https://h/x\"\nevents = [\"sometimes\"]"
        )),
        "webhooks[0].events"
    );
}
