//! The browser terminal's server side: WebSocket terminals (tokio-tungstenite)
//! and the HTTP API, against the real daemon and real tmux.

mod api;
mod page;
mod proxy;

use std::time::{Duration, Instant};

use crate::common::client::*;
use crate::common::{marker, wait_for, Env};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const SHELL_AGENT: &str = "[agent]\ncommand = [\"sh\"]\n";

fn env() -> Env {
    Env::new(&format!(
        "{SHELL_AGENT}[[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_auth_matrix() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let bob = env.token("bob", "user");
    let admin = env.token("bob", "admin");
    let d = env.serve();
    let base = d.url();
    let wrong = format!("alice.{}", "A".repeat(43));

    for (token, path, expected) in [
        (None, "/ws/sessions/alice/main", 4401),
        (Some(wrong.as_str()), "/ws/sessions/alice/main", 4401),
        (Some("garbage"), "/ws/sessions/alice/main", 4401),
        // Another user's session answers exactly like a missing one.
        (Some(bob.as_str()), "/ws/sessions/alice/main", 4404),
        (Some(alice.as_str()), "/ws/sessions/alice/nope", 4404),
        (Some(alice.as_str()), "/ws/sessions/carol/main", 4404),
    ] {
        let mut ws = connect(&base, path, token, None).await.expect("upgrade");
        let (code, reason) = close_of(&mut ws).await;
        assert_eq!(code, expected, "{path} with {token:?}: {reason}");
    }
    let (_, reason_missing) = close_of(
        &mut connect(&base, "/ws/sessions/alice/nope", Some(&alice), None)
            .await
            .unwrap(),
    )
    .await;
    let (_, reason_foreign) = close_of(
        &mut connect(&base, "/ws/sessions/alice/main", Some(&bob), None)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reason_missing, reason_foreign, "no existence leak");

    // Owner and admin get a terminal.
    for token in [&alice, &admin] {
        let mut ws = connect(&base, "/ws/sessions/alice/main", Some(token), None)
            .await
            .unwrap();
        let h = hello(&mut ws).await;
        assert_eq!(h["type"], "hello");
        assert_eq!(h["session"], "alice/main");
        assert_eq!(h["read_only"], false);
    }
    // Bad names never reach the upgrade (or tmux).
    for path in [
        "/ws/sessions/alice/a.b",
        "/ws/sessions/Alice/main",
        "/ws/sessions/alice/%23%7Bpid%7D",
    ] {
        assert_eq!(
            connect(&base, path, Some(&alice), None).await.err(),
            Some(404),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origin_matrix() {
    let mut env = Env::new(&format!(
        "{SHELL_AGENT}[web]\nlisten = \"127.0.0.1:0\"\norigins = [\"https://tmuxd.example.com\"]\n[[users]]\nname = \"alice\"\n"
    ));
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let own = base.clone();
    let path = "/ws/sessions/alice/main";
    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1:1",
        "https://tmuxd.example.com.evil.io",
    ] {
        assert_eq!(
            connect(&base, path, Some(&alice), Some(origin)).await.err(),
            Some(403),
            "{origin}"
        );
    }
    // Refused before authentication: no token needed to be told 403.
    assert_eq!(
        connect(&base, path, None, Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    for origin in [Some(own.as_str()), Some("https://tmuxd.example.com"), None] {
        let mut ws = connect(&base, path, Some(&alice), origin)
            .await
            .unwrap_or_else(|s| panic!("{origin:?}: {s}"));
        assert_eq!(hello(&mut ws).await["type"], "hello");
    }
    // The same rule guards state-changing HTTP requests.
    let (status, _) = {
        let mut resp = http()
            .post(&format!("{base}/api/sessions/alice/main/input"))
            .header("Authorization", &format!("Bearer {alice}"))
            .header("Origin", "http://evil.example")
            .send_json(serde_json::json!({"text": "x"}))
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    };
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_viewers_see_the_same_output_and_closing_one_leaves_the_session() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let path = "/ws/sessions/alice/main";
    let mut a = connect(&base, path, Some(&alice), None).await.unwrap();
    let mut b = connect(&base, path, Some(&alice), None).await.unwrap();
    hello(&mut a).await;
    hello(&mut b).await;
    let m = marker();
    type_line(&mut a, &format!("echo out-$((6*7))-{m}")).await;
    let needle = format!("out-42-{m}");
    read_until(&mut a, &needle, 10).await;
    read_until(&mut b, &needle, 10).await;
    let pid = env.session("alice/main").unwrap()["agent_pid"].clone();
    // The API counts both viewers.
    let (_, body) = call("GET", &format!("{base}/api/sessions"), Some(&alice), None);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["viewers"], 2, "{list}");

    a.close(None).await.unwrap();
    drop(a);
    let m2 = marker();
    type_line(&mut b, &format!("echo still-$((1+1))-{m2}")).await;
    read_until(&mut b, &format!("still-2-{m2}"), 10).await;
    let s = env.session("alice/main").unwrap();
    assert_eq!(
        (s["state"].as_str(), &s["agent_pid"]),
        (Some("running"), &pid)
    );
    wait_for(10, "viewer count back to 1", || {
        let (_, body) = call("GET", &format!("{base}/api/sessions"), Some(&alice), None);
        let list: serde_json::Value = serde_json::from_str(&body).ok()?;
        (list[0]["viewers"] == 1).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_repaints_the_screen() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let path = "/ws/sessions/alice/main";
    let mut ws = connect(&base, path, Some(&alice), None).await.unwrap();
    hello(&mut ws).await;
    let m = marker();
    type_line(&mut ws, &format!("echo paint-$((2+3))-{m}")).await;
    read_until(&mut ws, &format!("paint-5-{m}"), 10).await;
    drop(ws);
    // A new viewer gets the current screen without anything new printed.
    let mut again = connect(&base, path, Some(&alice), None).await.unwrap();
    read_until(&mut again, &format!("paint-5-{m}"), 10).await;
}

/// An idle session sends its viewer nothing: tmux redraws the status line
/// when something changes, not every 15 s for its clock (sessions get
/// `status-interval 0`), so idle viewers never wake the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_sends_its_viewer_nothing() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let d = env.serve();
    let mut ws = connect(&d.url(), "/ws/sessions/alice/main", Some(&alice), None)
        .await
        .unwrap();
    hello(&mut ws).await;
    let m = marker();
    type_line(&mut ws, &format!("echo idle-$((2+3))-{m}")).await;
    read_until(&mut ws, &format!("idle-5-{m}"), 10).await;
    // Let the attach's own output pass (tmux's terminal set-up ends a few
    // seconds in, when its queries to this client time out), then wait a
    // status interval and more.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(7), ws.next()).await {}
    let quiet = Duration::from_secs(16);
    match tokio::time::timeout(quiet, ws.next()).await {
        Err(_) => {}
        Ok(frame) => panic!("an idle session sent {frame:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_viewer_does_not_stop_a_20mb_flood_and_memory_stays_bounded() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let path = "/ws/sessions/alice/main";
    // A viewer that never reads again after its hello.
    let mut stalled = connect(&base, path, Some(&alice), None).await.unwrap();
    hello(&mut stalled).await;
    let mut reader = connect(&base, path, Some(&alice), None).await.unwrap();
    hello(&mut reader).await;
    let rss_before = d.rss_kib();

    let m = marker();
    type_line(
        &mut reader,
        &format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 20000000; echo; echo flood-$((40+2))-{m}"),
    )
    .await;
    let needle = format!("flood-42-{m}");
    let sampler = {
        let pid = d.pid;
        tokio::task::spawn_blocking(move || {
            let mut max = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && crate::common::alive(pid as u64) {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    max = max.max(kib);
                }
                std::thread::sleep(Duration::from_millis(50));
                if max > 0 && std::path::Path::new(&format!("/tmp/.stop-{pid}")).exists() {
                    break;
                }
            }
            max
        })
    };
    read_until(&mut reader, &needle, 60).await;
    std::fs::write(format!("/tmp/.stop-{}", d.pid), "").unwrap();
    let rss_max = sampler.await.unwrap();
    let _ = std::fs::remove_file(format!("/tmp/.stop-{}", d.pid));
    // The stalled viewer held no 20 MB queue: the daemon grew by far less
    // than the flood.
    assert!(
        rss_max < rss_before + 16 * 1024,
        "daemon RSS grew from {rss_before} KiB to {rss_max} KiB during a 20 MB flood"
    );
    // The stalled viewer is still connected and catches up with the screen.
    read_until(&mut stalled, &needle, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_control_messages_close_with_the_right_code() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let path = "/ws/sessions/alice/main";

    let mut ws = connect(&base, path, Some(&alice), None).await.unwrap();
    hello(&mut ws).await;
    ws.send(Message::Binary(vec![b'x'; 100 * 1024].into()))
        .await
        .unwrap();
    assert_eq!(close_of(&mut ws).await.0, 1009);

    for (text, reason) in [
        ("{not json", "malformed control message"),
        (
            r#"{"type":"resize","cols":"wide"}"#,
            "malformed control message",
        ),
        (
            r#"{"type":"launch-missiles"}"#,
            "unknown control message type",
        ),
    ] {
        let mut ws = connect(&base, path, Some(&alice), None).await.unwrap();
        hello(&mut ws).await;
        ws.send(Message::Text(text.into())).await.unwrap();
        let (code, got) = close_of(&mut ws).await;
        assert_eq!(
            (code, got.as_str()),
            (u16::from(CloseCode::Policy), reason),
            "{text}"
        );
    }

    // Absurd sizes are ignored; the terminal keeps working.
    let mut ws = connect(&base, path, Some(&alice), None).await.unwrap();
    hello(&mut ws).await;
    for (c, r) in [(0, 24), (80, 0), (100_000, 50)] {
        ws.send(Message::Text(
            format!(r#"{{"type":"resize","cols":{c},"rows":{r}}}"#).into(),
        ))
        .await
        .unwrap();
    }
    ws.send(Message::Text(
        r#"{"type":"resize","cols":100,"rows":30}"#.into(),
    ))
    .await
    .unwrap();
    // tmux applies the valid size (one row is its status line).
    wait_for(10, "pane resized to 100x29", || {
        (env.display("alice", "#{pane_width}x#{pane_height}") == "100x29").then_some(())
    });
    let m = marker();
    type_line(&mut ws, &format!("echo alive-$((5*5))-{m}")).await;
    read_until(&mut ws, &format!("alive-25-{m}"), 10).await;
    assert!(d.log().contains("resize to an unusable size ignored"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_viewers_keystrokes_change_nothing() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let ro = env.token("alice", "read-only");
    let d = env.serve();
    let base = d.url();
    let path = "/ws/sessions/alice/main";
    let mut viewer = connect(&base, path, Some(&ro), None).await.unwrap();
    assert_eq!(hello(&mut viewer).await["read_only"], true);
    let m = marker();
    type_line(&mut viewer, &format!("echo ro-typed-{m}")).await;
    // A writer asks for read-only too.
    let mut asked = connect(&base, &format!("{path}?read_only=true"), Some(&alice), None)
        .await
        .unwrap();
    assert_eq!(hello(&mut asked).await["read_only"], true);
    type_line(&mut asked, &format!("echo ro-asked-{m}")).await;
    // Then a writer types; once its line shows, the earlier ones would have.
    let mut writer = connect(&base, path, Some(&alice), None).await.unwrap();
    hello(&mut writer).await;
    type_line(&mut writer, &format!("echo writer-$((3*3))-{m}")).await;
    read_until(&mut viewer, &format!("writer-9-{m}"), 10).await;
    let pane = env.pane_text("alice", "main");
    assert!(pane.contains(&format!("writer-9-{m}")), "{pane}");
    assert!(
        !pane.contains(&format!("ro-typed-{m}")),
        "read-only keystrokes were typed:\n{pane}"
    );
    assert!(
        !pane.contains(&format!("ro-asked-{m}")),
        "read-only keystrokes were typed:\n{pane}"
    );
    // Read-only tokens cannot type through the API either.
    let (status, _) = call(
        "POST",
        &format!("{base}/api/sessions/alice/main/input"),
        Some(&ro),
        Some(serde_json::json!({"text": "echo no"})),
    );
    assert_eq!(status, 403);
}
