//! Health, metrics, the systemd unit, doctor, install and reload.

use super::*;

#[test]
fn healthz_and_metrics() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\"]\nrestart_delay_ms = 100\n[[users]]\nname = \"alice\"\n[[users]]\nname = \"crash\"\ncommand = [\"sh\", \"-c\", \"sleep 0.2; exit 1\"]\n",
    );
    let d = env.serve();
    let base = d.url();
    let get = |path: &str| -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent.get(&format!("{base}{path}")).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let (status, body) = get("/healthz");
    assert_eq!(status, 200);
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            h["live"].as_bool(),
            h["ready"].as_bool(),
            h["users"].as_u64()
        ),
        (Some(true), Some(true), Some(2))
    );
    env.ok(&["send", "alice", &format!("echo metric-{}", marker())]);
    let value = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    };
    let metrics = wait_for(20, "restarts and transcript bytes counted", || {
        let (status, text) = get("/metrics");
        assert_eq!(status, 200);
        (value(&text, "tmuxd_agent_restarts_total ")? >= 1
            && value(&text, "tmuxd_transcript_bytes_total ")? > 0)
            .then_some(text)
    });
    for family in [
        "tmuxd_sessions",
        "tmuxd_agents",
        "tmuxd_viewers",
        "tmuxd_viewer_bytes_sent_total",
        "tmuxd_transcript_ingest_lag_bytes",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{metrics}"
        );
    }
    assert!(
        value(&metrics, "tmuxd_sessions{state=\"running\"}").unwrap() >= 1,
        "{metrics}"
    );
}

#[test]
fn unit_file_verifies_and_its_exposure_stays_low() {
    crate::common::require("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/tmuxd.service"
    ))
    .unwrap();
    // verify checks that ExecStart exists: point it at the built binary.
    let unit = unit.replace("/usr/local/bin/tmuxd", crate::common::BIN);
    let path = dir.path().join("tmuxd.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "verify warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for tmuxd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    eprintln!("systemd-analyze security exposure: {score}");
    // 3.3 when written; a change that weakens the unit must be deliberate.
    assert!(score <= 3.5, "exposure {score} > 3.5:\n{text}");
}

#[test]
fn doctor_names_each_problem_with_its_fix() {
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let d = env.serve();
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("ok       tmux 3."), "{text}");
    assert!(text.contains("the daemon answers"), "{text}");
    // A socket directory others can reach, and the daemon down.
    let dir = env.socket("alice").parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    d.signal(Signal::SIGTERM);
    assert!(env.reap(d.pid).success());
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "PROBLEM  socket directory {} is mode 755",
            dir.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("fix: chmod 700 {}", dir.display())),
        "{text}"
    );
    assert!(text.contains("the daemon is not running"), "{text}");
    assert!(
        text.contains("transcript database") && text.contains("opens"),
        "{text}"
    );
    // A broken config: the key and where to fix it.
    std::fs::write(&env.config, "[[users]]\nname = \"Bad\"\n").unwrap();
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains(&format!(
            "fix: edit users[0].name in {}",
            env.config.display()
        )),
        "{text}"
    );
}

#[test]
fn install_script_is_idempotent_and_uninstalls() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh");
    let install = |extra: &[&str]| {
        let out = Command::new(script)
            .args(["--root", &r, "--bin", crate::common::BIN, "--no-systemd"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let p = |rel: &str| root.path().join(rel);
    // --help says every option; a relative root is refused, naming it.
    let help = Command::new(script).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--root DIR") && help.contains("--uninstall"),
        "{help}"
    );
    let rel = Command::new(script)
        .args([
            "--root",
            "staging",
            "--bin",
            crate::common::BIN,
            "--no-systemd",
        ])
        .output()
        .unwrap();
    assert_eq!(rel.status.code(), Some(2));
    let said = String::from_utf8_lossy(&rel.stderr);
    assert!(said.contains("staging is a relative path"), "{said}");
    let first = install(&[]);
    assert!(first.contains("installed the example config"), "{first}");
    for f in [
        "usr/local/bin/tmuxd",
        "etc/systemd/system/tmuxd.service",
        "etc/tmuxd/config.toml",
        "usr/local/share/doc/tmuxd/README.md",
    ] {
        assert!(p(f).exists(), "{f}");
    }
    assert_eq!(
        std::fs::metadata(p("var/lib/tmuxd")).unwrap().mode() & 0o777,
        0o700
    );
    // A second run keeps the operator's config.
    std::fs::write(p("etc/tmuxd/config.toml"), "# mine\n").unwrap();
    let second = install(&[]);
    assert!(!second.contains("installed the example config"));
    assert_eq!(
        std::fs::read_to_string(p("etc/tmuxd/config.toml")).unwrap(),
        "# mine\n"
    );
    // --prefix is reflected in the unit.
    install(&["--prefix", "/opt/tmuxd"]);
    let unit = std::fs::read_to_string(p("etc/systemd/system/tmuxd.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/opt/tmuxd/bin/tmuxd --config"),
        "{unit}"
    );
    // Uninstall keeps config and state; --purge removes them.
    install(&["--uninstall", "--prefix", "/opt/tmuxd"]);
    assert!(!p("opt/tmuxd/bin/tmuxd").exists() && !p("etc/systemd/system/tmuxd.service").exists());
    assert!(p("etc/tmuxd/config.toml").exists() && p("var/lib/tmuxd").exists());
    install(&["--uninstall", "--purge"]);
    assert!(
        !p("etc/tmuxd").exists()
            && !p("var/lib/tmuxd").exists()
            && !p("usr/local/bin/tmuxd").exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_users_and_keeps_other_viewers() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let users = |names: &[&str]| -> String {
        let mut b = String::from("[agent]\ncommand = [\"sh\"]\n");
        for n in names {
            b.push_str(&format!("[[users]]\nname = \"{n}\"\n"));
        }
        b
    };
    let mut env = Env::new(&users(&["alice", "bob"]));
    let alice = env.token("alice", "user");
    let bob = env.token("bob", "user");
    let d = env.serve();
    let base = d.url();
    let open = |token: String| {
        let base = base.clone();
        async move {
            let mut req = format!(
                "{}/ws/sessions/{}/main",
                base.replacen("http", "ws", 1),
                token.split('.').next().unwrap()
            )
            .into_client_request()
            .unwrap();
            req.headers_mut()
                .insert("Authorization", format!("Bearer {token}").parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            // The hello.
            let first = ws.next().await.unwrap().unwrap();
            assert!(matches!(first, Message::Text(_)), "{first:?}");
            ws
        }
    };
    let mut alice_ws = open(alice.clone()).await;
    let mut bob_ws = open(bob.clone()).await;
    let bob_pid = env.session("bob/main").unwrap()["agent_pid"]
        .as_u64()
        .unwrap();

    // The file now has alice and carol: bob is removed, carol added.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let head = &text[..text.find("[agent]").unwrap()];
    std::fs::write(&env.config, format!("{head}{}", users(&["alice", "carol"]))).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log(10, "SIGHUP: config reloaded");
    assert!(d.log().contains("added=carol removed=bob"), "{}", d.log());
    wait_for(10, "carol's session", || {
        env.tmux("carol", &["has-session", "-t", "=main"])
            .status
            .success()
            .then_some(())
    });

    // Bob's viewer is closed, his session keeps running, and the web no
    // longer serves him.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match bob_ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return f.reason.to_string(),
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, "user removed from the config");
    assert!(alive(bob_pid), "bob's agent keeps running");
    assert!(env
        .tmux("bob", &["has-session", "-t", "=main"])
        .status
        .success());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .get(&format!("{base}/api/sessions"))
        .header("Authorization", &format!("Bearer {bob}"))
        .call()
        .unwrap();
    assert_eq!(r.into_body().read_to_string().unwrap(), "[]");

    // Alice's viewer stayed connected through the reload.
    let m = marker();
    alice_ws
        .send(Message::Binary(
            format!("echo after-hup-$((1+1))-{m}\r").into_bytes().into(),
        ))
        .await
        .unwrap();
    let needle = format!("after-hup-2-{m}");
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = alice_ws.next().await {
            if let Message::Binary(b) = msg {
                seen.extend_from_slice(&b);
                if String::from_utf8_lossy(&seen).contains(&needle) {
                    return;
                }
            }
        }
        panic!("alice's viewer ended");
    })
    .await
    .unwrap();

    // An invalid config is refused; the daemon keeps running on the old one.
    std::fs::write(
        &env.config,
        format!("{head}[[users]]\nname = \"Bad Name\"\n"),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log(10, "keeping the running one");
    let r = agent
        .get(&format!("{base}/api/sessions"))
        .header("Authorization", &format!("Bearer {alice}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .into_body()
        .read_to_string()
        .unwrap()
        .contains("alice/main"));
    // SIGTERM exits within 5 s with every session still running.
    let t0 = std::time::Instant::now();
    d.signal(Signal::SIGTERM);
    assert!(env.reap(d.pid).success());
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
    for user in ["alice", "bob", "carol"] {
        assert!(
            env.tmux(user, &["has-session", "-t", "=main"])
                .status
                .success(),
            "{user}"
        );
    }
}
