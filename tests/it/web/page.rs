//! The page's terminal, server side: the size policy between viewers, and
//! what tmux is told about the viewers' terminals (truecolor, clipboard,
//! titles, the window's name), against the real daemon and real tmux.

use std::time::Duration;

use crate::common::client::*;
use crate::common::{marker, wait_for, wait_for_or, Env};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

fn env(command: &str) -> Env {
    Env::new(&format!(
        "[agent]\ncommand = {command}\n[[users]]\nname = \"alice\"\n"
    ))
}

fn window_size(env: &Env) -> String {
    env.display("alice", "#{window_width}x#{window_height}")
}

async fn fit(ws: &mut Ws) {
    ws.send(Message::Text(r#"{"type":"fit"}"#.into()))
        .await
        .unwrap();
}

/// The window has `size` now and still after a second (what could change
/// it runs beside the relay).
async fn stays(env: &Env, size: &str, why: &str) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(window_size(env), size, "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_viewers_never_resize_and_the_last_typist_sets_the_size() {
    let mut env = env(r#"["sh"]"#);
    let alice = env.token("alice", "user");
    let watcher = env.token("alice", "read-only");
    let d = env.serve();
    let base = d.url();
    let path = |cols: u16, rows: u16| format!("/ws/sessions/alice/main?cols={cols}&rows={rows}");

    // The desktop, alone: the window takes its size (less tmux's status line).
    let mut desk = connect(&base, &path(120, 40), Some(&alice), None)
        .await
        .unwrap();
    hello(&mut desk).await;
    wait_for(10, "the desktop's size", || {
        (window_size(&env) == "120x39").then_some(())
    });

    // A phone opens the session and watches: nothing changes for the desktop.
    let mut phone = connect(&base, &path(44, 30), Some(&alice), None)
        .await
        .unwrap();
    hello(&mut phone).await;
    let m = marker();
    type_line(&mut desk, &format!("echo seen-$((6*7))-{m}")).await;
    read_until(&mut phone, &format!("seen-42-{m}"), 10).await;
    stays(&env, "120x39", "a watching phone resized the window").await;

    // The phone types: the window follows the last typist.
    phone
        .send(Message::Binary(b" ".to_vec().into()))
        .await
        .unwrap();
    wait_for(10, "the phone's size", || {
        (window_size(&env) == "44x29").then_some(())
    });

    // The desktop asks to fit the window to its terminal.
    fit(&mut desk).await;
    wait_for(10, "the desktop's size again", || {
        (window_size(&env) == "120x39").then_some(())
    });

    // A read-only viewer never sizes the window, even when it asks.
    let mut ro = connect(&base, &path(60, 20), Some(&watcher), None)
        .await
        .unwrap();
    hello(&mut ro).await;
    fit(&mut ro).await;
    stays(&env, "120x39", "a read-only viewer resized the window").await;

    // Typing again from the phone makes it the size again (tmux's latest).
    phone
        .send(Message::Binary(b" ".to_vec().into()))
        .await
        .unwrap();
    wait_for(10, "the phone's size again", || {
        (window_size(&env) == "44x29").then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_set_up_for_the_viewers_terminals() {
    let mut env = env(r#"["bash", "--norc", "--noprofile"]"#);
    let alice = env.token("alice", "user");
    let d = env.serve();
    let show = |args: &[&str]| {
        String::from_utf8_lossy(&env.tmux("alice", args).stdout)
            .trim()
            .to_owned()
    };
    // The window is named after the agent, and stays so.
    assert_eq!(env.display("alice", "#{window_name}"), "bash");
    assert_eq!(
        show(&["show-options", "-w", "-t", "=main:", "automatic-rename"]),
        "automatic-rename off"
    );
    // What tmux tells the viewers' terminals, and what agents ask for.
    assert!(
        show(&["show-options", "-s", "terminal-features"]).contains("xterm-256color:RGB"),
        "no RGB terminal feature"
    );
    for (option, value) in [
        ("set-clipboard", "on"),
        ("focus-events", "on"),
        ("extended-keys", "on"),
        ("escape-time", "10"),
    ] {
        assert_eq!(
            show(&["show-options", "-s", option]),
            format!("{option} {value}")
        );
    }

    let mut ws = connect(&d.url(), "/ws/sessions/alice/main", Some(&alice), None)
        .await
        .unwrap();
    hello(&mut ws).await;
    // 24-bit colour is announced to the agent.
    let m = marker();
    type_line(&mut ws, &format!("echo color-$COLORTERM-{m}")).await;
    read_until(&mut ws, &format!("color-truecolor-{m}"), 10).await;
    // The program's title reaches the viewer (tmux's set-titles): the
    // title is computed, so only tmux's title sequence can carry it.
    type_line(
        &mut ws,
        &format!("printf '\\033]2;title-%s-{m}\\033\\\\' $((6*7))"),
    )
    .await;
    read_until(&mut ws, &format!("\x1b]0;title-42-{m}"), 10).await;
    // A clipboard write (OSC 52) from the program reaches the viewer.
    let clip = format!("clip-42-{m}");
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &clip);
    type_line(
        &mut ws,
        &format!("printf '\\033]52;c;%s\\a' \"$(printf 'clip-%s-{m}' $((6*7)) | base64 -w0)\""),
    )
    .await;
    read_until(&mut ws, &encoded, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_the_panes_scrollback_for_its_viewers_only() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n",
    );
    let alice = env.token("alice", "read-only");
    let bob = env.token("bob", "user");
    let d = env.serve();
    let base = d.url();
    let m = marker();
    env.ok(&[
        "send",
        "alice/main",
        &format!("for i in $(seq 1 300); do echo h-$i-{m}; done"),
    ]);
    env.wait_pane("alice", "main", &format!("h-300-{m}"));
    let url = format!("{base}/api/sessions/alice/main/history");
    let (status, body) = call("GET", &url, Some(&alice), None);
    assert_eq!(status, 200, "{body}");
    // Lines long gone from the screen, in order, each once.
    let lines: Vec<&str> = body.lines().filter(|l| l.starts_with("h-")).collect();
    assert_eq!(lines.first(), Some(&format!("h-1-{m}").as_str()), "{body}");
    assert_eq!(lines.len(), 300, "{body}");
    // Fewer lines on request: the screen and the last of the history.
    let (_, short) = call("GET", &format!("{url}?lines=10"), Some(&alice), None);
    assert!(
        !short.contains(&format!("h-1-{m}\n")) && short.contains(&format!("h-300-{m}")),
        "{short}"
    );
    for (query, token, expected) in [
        ("?lines=0", Some(alice.as_str()), 400),
        ("?lines=50001", Some(alice.as_str()), 400),
        ("?nope=1", Some(alice.as_str()), 400),
        ("", Some(bob.as_str()), 404),
        ("", None, 401),
    ] {
        let (status, body) = call("GET", &format!("{url}{query}"), token, None);
        assert_eq!(status, expected, "{query}: {body}");
    }
}

/// A raw HTTP/1.1 event stream: what has arrived so far, read as it comes.
struct Stream(tokio::net::TcpStream, Vec<u8>);

impl Stream {
    async fn open(base: &str, token: &str) -> Stream {
        use tokio::io::AsyncWriteExt;
        let addr = base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        Stream(s, Vec::new())
    }

    /// Waits up to `within` for `needle` in what arrives after the last
    /// call; whether it came.
    async fn next_with(&mut self, needle: &str, within: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(i) = String::from_utf8_lossy(&self.1).find(needle) {
                self.1.drain(..i + needle.len());
                return true;
            }
            let mut buf = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.0.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.1.extend_from_slice(&buf[..n]),
                _ => return false,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_pushes_changes_and_nothing_else() {
    let mut env = env(r#"["sh"]"#);
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let mut events = Stream::open(&base, &alice).await;
    assert!(
        events.next_with("200 OK", Duration::from_secs(5)).await,
        "no 200"
    );
    assert!(
        events
            .next_with("text/event-stream", Duration::from_secs(1))
            .await
    );
    // The sessions at once.
    assert!(
        events
            .next_with("event: sessions", Duration::from_secs(5))
            .await
    );
    assert!(
        events
            .next_with("\"alice/main\"", Duration::from_secs(1))
            .await
    );
    // Idle: nothing comes (no timer, no keep-alive).
    assert!(
        !events.next_with("event:", Duration::from_secs(3)).await,
        "an event while idle"
    );

    // A session created elsewhere (the CLI) is pushed within a second.
    env.ok(&["new", "alice/extra"]);
    assert!(
        events
            .next_with("\"alice/extra\"", Duration::from_secs(1))
            .await,
        "the new session was not pushed within 1 s"
    );
    // A viewer joining is pushed too.
    let mut ws = connect(&base, "/ws/sessions/alice/main", Some(&alice), None)
        .await
        .unwrap();
    hello(&mut ws).await;
    assert!(
        events
            .next_with("\"viewers\":1", Duration::from_secs(1))
            .await,
        "the viewer was not pushed within 1 s"
    );
    // Its agent exiting is pushed: the session shows the exit.
    type_line(&mut ws, "exit 3").await;
    assert!(
        events
            .next_with("\"last_exit\":{\"status\":3", Duration::from_secs(3))
            .await,
        "the agent's exit was not pushed"
    );

    // Without a token: 401, no stream.
    let (status, _) = call("GET", &format!("{base}/api/events"), None, None);
    assert_eq!(status, 401);
}

/// Alice's `main` as the API lists it.
fn main_view(base: &str, token: &str) -> serde_json::Value {
    let (status, body) = call("GET", &format!("{base}/api/sessions"), Some(token), None);
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "alice/main")
        .cloned()
        .expect("alice/main listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exited_agent_restarts_now_when_asked_and_cards_show_its_screen() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\"]\nrestart_delay_ms = 60000\n[[users]]\nname = \"alice\"\n",
    );
    let alice = env.token("alice", "user");
    let watcher = env.token("alice", "read-only");
    let d = env.serve();
    let base = d.url();
    let restart = format!("{base}/api/sessions/alice/main/restart");

    // Running: nothing to restart.
    let (status, body) = call("POST", &restart, Some(&alice), None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not waiting to be restarted"), "{body}");

    // The card's preview is the end of the agent's screen; its name is the
    // agent's program.
    let pid = main_view(&base, &alice)["agent_pid"].clone();
    assert!(pid.is_u64(), "{pid}");
    let mut ws = connect(&base, "/ws/sessions/alice/main", Some(&alice), None)
        .await
        .unwrap();
    hello(&mut ws).await;
    let m = marker();
    type_line(&mut ws, &format!("echo card-$((6*7))-{m}")).await;
    let shows = |s: &serde_json::Value| {
        s["preview"].as_array().is_some_and(|p| {
            p.iter().any(|l| {
                l.as_str()
                    .is_some_and(|l| l.contains(&format!("card-42-{m}")))
            })
        })
    };
    // (The preview follows the recorder, which reads the output as tmux
    // spools it: a moment behind.)
    wait_for_or(
        10,
        "the card's preview showing the output",
        || shows(&main_view(&base, &alice)).then_some(()),
        || format!("{}", main_view(&base, &alice)),
    );
    type_line(&mut ws, "exit 3").await;
    let s = wait_for(10, "the agent waiting out its backoff", || {
        let s = main_view(&base, &alice);
        s["restart_due"].is_u64().then_some(s)
    });
    assert_eq!(s["agent_name"], "sh", "{s}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        main_view(&base, &alice)["restarts"],
        0,
        "restarted before its backoff"
    );

    // A read-only token may not; the user may, and it happens at once.
    let (status, _) = call("POST", &restart, Some(&watcher), None);
    assert_eq!(status, 403);
    let (status, body) = call("POST", &restart, Some(&alice), None);
    assert_eq!(status, 204, "{body}");
    let s = wait_for(5, "the agent restarted", || {
        let s = main_view(&base, &alice);
        (s["state"] == "running" && s["restarts"] == 1).then_some(s)
    });
    assert_ne!(s["agent_pid"], pid);
    assert!(s["restart_due"].is_null(), "{s}");
}

/// The top-level field names of `export type NAME = { ... }` in TypeScript
/// `source`.
fn ts_fields(source: &str, name: &str) -> std::collections::BTreeSet<String> {
    let head = format!("export type {name} = {{");
    let start = source
        .find(&head)
        .unwrap_or_else(|| panic!("no type {name}"))
        + head.len();
    let (mut depth, mut fields, mut token, mut in_name) =
        (1, std::collections::BTreeSet::new(), String::new(), true);
    for c in source[start..].chars() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ';' | '\n' if depth == 1 => {
                in_name = true;
                token.clear();
            }
            ':' if depth == 1 && in_name => {
                fields.insert(token.trim().trim_end_matches('?').to_owned());
                in_name = false;
            }
            _ if depth == 1 && in_name => token.push(c),
            _ => {}
        }
    }
    fields
}

fn json_keys(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_types_are_what_the_api_answers() {
    let mut env = env(r#"["sh"]"#);
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let ui =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/web/src/ui.ts")).unwrap();
    let (_, me) = call("GET", &format!("{base}/api/me"), Some(&alice), None);
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(ts_fields(&ui, "Me"), json_keys(&me), "web/src/ui.ts Me");
    let session = main_view(&base, &alice);
    assert_eq!(
        ts_fields(&ui, "Session"),
        json_keys(&session),
        "web/src/ui.ts Session"
    );
}
