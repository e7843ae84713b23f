//! Confirmation expiry on a held clock: a YES just inside the TTL types,
//! one just past it is refused as expired, on the web page too; no waiting.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::config::HostDefaults;

const AR: &str = "Authentication-Results: mx.example.test; dkim=pass header.d=example.test; dmarc=pass header.from=example.test";

fn bridge(dir: &std::path::Path, clock: Clock) -> Bridge {
    let text = format!(
        r#"[daemon]
state_dir = "{d}/state"
runtime_dir = "{d}/run"

[mail]
address = "agent@example.test"
authserv_id = "mx.example.test"
confirm_ttl_s = 600

[mail.smtp]
host = "127.0.0.1"
port = 9
security = "plain"

[[users]]
name = "alice"
emails = ["alice@example.test"]
confirm = "always"
"#,
        d = dir.display()
    );
    let host = HostDefaults {
        state_dir: "/var/lib/tmuxd".into(),
        agent: vec!["/bin/sh".into()],
        home: dir.to_path_buf(),
        login: "test".into(),
        spool_dir: None,
    };
    let config = Arc::new(Config::parse(&text, "t.toml", &host).expect("config"));
    let (_, live) = Live::new(config.clone());
    let supervisor = Supervisor::new(&config, None, CancellationToken::new(), TaskTracker::new());
    Bridge::open(live, supervisor, clock).expect("bridge")
}

fn message(id: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "{AR}\nFrom: alice@example.test\nTo: {to}\nSubject: {subject}\nMessage-ID: <{id}>\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
    )
    .into_bytes()
}

/// Mails `new NAME` and returns the confirmation's reply address.
async fn pend(b: &Bridge, name: &str) -> String {
    let to = b.user_address("alice");
    let h = b
        .handle(&message(name, &to, "x", &format!("new {name}")))
        .await;
    assert_eq!(h.decision, Outcome::Pending, "{}", h.reason);
    b.store()
        .read(|st| {
            st.outbox
                .iter()
                .find(|o| o.in_reply_to.as_deref() == Some(name))
                .and_then(|o| o.reply_to.clone())
        })
        .expect("a confirmation with a reply address")
}

#[tokio::test]
async fn confirmations_expire_by_the_bridges_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(crate::mail::state::now_ms());
    let b = bridge(dir.path(), clock.clone());
    let ttl = Duration::from_secs(600);

    let inside = pend(&b, "inside").await;
    clock.advance(ttl - Duration::from_secs(1));
    let h = b.handle(&message("y1", &inside, "Re", "yes")).await;
    assert_eq!(h.decision, Outcome::Confirmed, "{}", h.reason);

    let late = pend(&b, "late").await;
    let web = pend(&b, "web").await;
    assert!(!web.is_empty());
    let web_id = b.pending_for(&"alice".parse().unwrap())[0].id.clone();
    clock.advance(ttl);
    let h = b.handle(&message("y2", &late, "Re", "YES")).await;
    assert_eq!(h.decision, Outcome::Expired, "{}", h.reason);
    let reply = b.store().read(|st| {
        st.outbox
            .iter()
            .find(|o| o.in_reply_to.as_deref() == Some("y2"))
            .map(|o| o.body.clone())
    });
    let reply = reply.expect("the late YES is answered");
    assert!(
        reply.contains("expired") && reply.contains("Nothing was typed"),
        "{reply}"
    );
    // Expired ones are neither listed nor confirmable on the page.
    assert!(b.pending_for(&"alice".parse().unwrap()).is_empty());
    let e = b
        .confirm_web(&"alice".parse().unwrap(), &web_id, "test")
        .unwrap_err();
    assert!(e.contains("expired"), "{e}");
    // Only the confirmation inside the TTL became a job.
    assert_eq!(b.store().read(|st| st.jobs.len()), 1);
}
