//! Mail over a cluster's nodes (issue 18): the real Postfix testbed with
//! the transport table `tmuxd router-config --postfix` makes, and a pipe
//! transport per node as the README sets it up: each user's command and
//! its YES reach their own node, which types it once; the other node
//! never sees it.

use super::*;
use crate::common::accounts::UnixUsers;

/// A node of the two-node cluster: [mail] at `address`, mail by its
/// socket only (an MTA's pipe account in `group`).
fn node(cluster: &std::path::Path, name: &str, address: &str, group: &str) -> Env {
    Env::new(&format!(
        "[agent]\n{AGENT}\nidle_after_s = 1\nwaiting_pattern = \"\"\n\n\
         [mail]\naddress = \"{address}\"\nauthserv_id = \"mx.example.test\"\nresult_timeout_s = 20\ningest_group = \"{group}\"\n\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = SMTP_PORT\nsecurity = \"plain\"\n\n\
         [cluster]\nfile = \"{}\"\nnode = \"{name}\"\n\n{ALICE}{BOB}",
        cluster.display()
    ))
}

/// `from` mails `text` to `to`; returns the Reply-To of the confirmation
/// that comes back to them.
fn command_confirmed(bed: &Testbed, from: &str, to: &str, id: &str, text: &str) -> String {
    bed.send(
        from,
        to,
        &mail(Some(AR_PASS), from, to, "a command", id, "", text),
    );
    confirmation_in(bed, from, id)
}

#[test]
fn postfix_routes_each_users_mail_to_their_node() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs the nodes as root and Postfix's pipe as another account: run it as root (CI does)"
    );
    let accounts = UnixUsers::create(1);
    let pipe = &accounts.0[0];
    let shared = tempfile::Builder::new()
        .prefix("tmuxd-t")
        .tempdir_in("/tmp")
        .unwrap();
    let cluster = shared.path().join("cluster.toml");
    std::fs::write(
        &cluster,
        "[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\nusers = [\"alice\"]\n\
         mail = \"agent-a@example.test\"\nmail_transport = \"tmuxda:\"\n\
         [[nodes]]\nname = \"b\"\nurl = \"http://127.0.0.1:2\"\nusers = [\"bob\"]\n\
         mail = \"agent-b@example.test\"\nmail_transport = \"tmuxdb:\"\n",
    )
    .unwrap();
    let mut a = node(&cluster, "a", "agent-a@example.test", pipe);
    let mut b = node(&cluster, "b", "agent-b@example.test", pipe);
    for env in [&a, &b] {
        std::fs::set_permissions(
            env.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    // The transport table from the cluster file; a pipe service per node,
    // as the README's master.cf snippet.
    let transport = shared.path().join("transport");
    let cluster_arg = cluster.display().to_string();
    std::fs::write(
        &transport,
        a.ok(&["router-config", "--postfix", "--cluster", &cluster_arg]),
    )
    .unwrap();
    let mut master = String::new();
    let mut main = String::new();
    for (service, env) in [("tmuxda", &a), ("tmuxdb", &b)] {
        let socket = env.path().join("run/mail.sock");
        master.push_str(&format!(
            "{service} unix - n n - - pipe\n  flags=DR user={pipe} argv={} mail-ingest --socket {}\n",
            crate::common::BIN,
            socket.display()
        ));
        main.push_str(&format!("{service}_destination_recipient_limit = 1\n"));
    }
    let (master_file, main_file) = (shared.path().join("master"), shared.path().join("main"));
    std::fs::write(&master_file, master).unwrap();
    std::fs::write(&main_file, main).unwrap();
    let bed = Testbed::start_with(&[
        ("MAIL_TESTBED_TRANSPORT", transport.to_str().unwrap()),
        ("MAIL_TESTBED_MASTER", master_file.to_str().unwrap()),
        ("MAIL_TESTBED_MAIN", main_file.to_str().unwrap()),
    ]);
    for env in [&a, &b] {
        let text = std::fs::read_to_string(&env.config).unwrap();
        std::fs::write(
            &env.config,
            text.replace("SMTP_PORT", &bed.smtp.to_string()),
        )
        .unwrap();
    }
    // Each node gives out only its own users' addresses, on its address.
    let (to_alice, to_bob) = (secret(&a, "alice"), secret(&b, "bob"));
    assert!(to_alice.starts_with("agent-a+"), "{to_alice}");
    assert!(to_bob.starts_with("agent-b+"), "{to_bob}");
    assert_eq!(a.run(&["mail-address", "bob"]).status.code(), Some(2));
    let _da = a.serve();
    let _db = b.serve();

    let m = marker();
    for (env, from, to, user, id) in [
        (&a, "alice@example.test", &to_alice, "alice", "ca@x"),
        (&b, "bob@example.test", &to_bob, "bob", "cb@x"),
    ] {
        let reply_to = command_confirmed(&bed, from, to, id, &format!("{user} {m}"));
        let yes_id = format!("y{id}");
        bed.send(
            from,
            &reply_to,
            &mail(
                Some(AR_PASS),
                from,
                &reply_to,
                "Re: Confirm",
                &yes_id,
                &format!("In-Reply-To: <{id}>\n"),
                "YES",
            ),
        );
        env.wait_pane(user, "main", &format!("got: {user} {m}"));
        wait_decision(env, id, "executed");
    }
    // Each node saw its own user's mail only, and typed it once.
    assert!(decisions(&a, "cb@x").is_empty() && decisions(&b, "ca@x").is_empty());
    assert_eq!(email_inputs(&a, "alice"), 1);
    assert_eq!(email_inputs(&b, "bob"), 1);
    let log = bed.maillog();
    assert!(
        log.contains("relay=tmuxda") && log.contains("relay=tmuxdb"),
        "{log}"
    );
}
