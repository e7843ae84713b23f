//! Push notifications (issue 17): webhooks reach a receiver on loopback
//! once per state change of the agent (waiting, done, exited), signed
//! when a secret is set, in the receivers' formats, with only who and
//! where in `minimal` content; none while the session is on a visible
//! page.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use hmac::{KeyInit, Mac};

use crate::common::client::{connect, hello};
use crate::common::{wait_for, Env};

/// One request the receiver got: path, headers (lowercased names), body.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// An HTTP receiver on loopback answering 200 to everything, until dropped.
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                if let Ok(stream) = stream {
                    if let Some(hit) = read_request(stream) {
                        h.lock().unwrap().push(hit);
                    }
                }
            }
        });
        Receiver { port, hits, stop }
    }

    fn hits(&self, path: &str) -> Vec<Hit> {
        let all = self.hits.lock().unwrap();
        all.iter().filter(|h| h.path == path).cloned().collect()
    }

    fn events(&self, path: &str) -> Vec<String> {
        self.hits(path)
            .iter()
            .map(|h| h.header("x-tmuxd-event").to_owned())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_request(mut stream: TcpStream) -> Option<Hit> {
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Some(Hit {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

const SECRET: &str = "webhook-secret-for-the-test";

/// Asks (a dialog, gone once answered, as agents draw them), works a
/// second, rests, exits 3 when told: waiting, done, exited.
const AGENT: &str = r#"command = ["sh", "-c", "printf 'Proceed? (y/n) '; read a; printf '\\033[2J\\033[H'; echo \"working $a\"; sleep 1; echo finished; read b; exit 3"]
restart = "never"
idle_after_s = 1
waiting_pattern = "Proceed\\?"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_signed_once_per_state_change_and_not_while_watched() {
    let rx = Receiver::start();
    let port = rx.port;
    let mut env = Env::new(&format!(
        "[agent]\n{AGENT}\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{port}/full\"\nsecret_file = \"{{dir}}/hook-secret\"\n\
         page_url = \"https://tmuxd.example.test\"\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{port}/slack\"\nformat = \"slack\"\ncontent = \"minimal\"\n\
         page_url = \"https://tmuxd.example.test\"\n\
         [[users]]\nname = \"alice\"\n"
    ));
    std::fs::write(env.path().join("hook-secret"), format!("{SECRET}\n")).unwrap();
    let token = env.token("alice", "user");
    let d = env.serve();

    // Waiting, then done after the answer, then exited: once each.
    wait_for(20, "the waiting notification", || {
        (rx.events("/full") == ["waiting"]).then_some(())
    });
    env.ok(&["send", "alice", "y"]);
    wait_for(20, "the done notification", || {
        (rx.events("/full") == ["waiting", "done"]).then_some(())
    });
    env.ok(&["send", "alice", "bye"]);
    wait_for(20, "the exited notification", || {
        (rx.events("/full").len() == 3).then_some(())
    });
    // Nothing more comes for the same states.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(rx.events("/full"), ["waiting", "done", "exited"]);
    assert_eq!(rx.events("/slack"), ["waiting", "done", "exited"]);

    // Signed: HMAC-SHA256 over "TIMESTAMP.BODY", a fresh timestamp.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for hit in rx.hits("/full") {
        let ts = hit.header("x-tmuxd-timestamp");
        let t: u64 = ts.parse().unwrap();
        assert!(now.abs_diff(t) < 120, "stale timestamp {t}");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.{}", hit.body).as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hit.header("x-tmuxd-signature"), format!("sha256={want}"));
    }
    let full: Vec<serde_json::Value> = rx
        .hits("/full")
        .iter()
        .map(|h| serde_json::from_str(&h.body).unwrap())
        .collect();
    assert_eq!(full[0]["session"], "alice/main");
    assert_eq!(full[0]["url"], "https://tmuxd.example.test/#/s/alice/main");
    assert!(
        full[0]["screen"].as_str().unwrap().contains("Proceed?"),
        "{}",
        full[0]
    );
    assert_eq!(full[2]["exit"], "status 3");
    // Minimal and unsigned: who and where, nothing from the screen.
    let slack = rx.hits("/slack");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&slack[0].body).unwrap()["text"],
        "alice/main needs you https://tmuxd.example.test/#/s/alice/main"
    );
    assert!(slack
        .iter()
        .all(|h| !h.body.contains("Proceed") && h.header("x-tmuxd-signature").is_empty()));

    // On a visible page: no notification for what the viewer sees.
    env.ok(&["new", "alice/two"]);
    wait_for(20, "alice/two waiting", || {
        (rx.events("/full").len() == 4).then_some(())
    });
    let mut ws = connect(&d.url(), "/ws/sessions/alice/two", Some(&token), None)
        .await
        .unwrap();
    hello(&mut ws).await;
    use futures_util::SinkExt;
    let visible = |v: bool| {
        tokio_tungstenite::tungstenite::Message::Text(
            serde_json::json!({"type": "visible", "visible": v})
                .to_string()
                .into(),
        )
    };
    ws.send(visible(true)).await.unwrap();
    // Let the control message land before the state changes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    env.ok(&["send", "alice/two", "y"]);
    wait_for(20, "alice/two working", || {
        env.pane_text("alice", "two")
            .contains("finished")
            .then_some(())
    });
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        rx.events("/full").len(),
        4,
        "a notification while watched: {:?}",
        rx.events("/full")
    );
    // Hidden again: the exit is news.
    ws.send(visible(false)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    env.ok(&["send", "alice/two", "bye"]);
    wait_for(20, "alice/two's exit notified", || {
        (rx.events("/full").len() == 5).then_some(())
    });
    assert_eq!(rx.events("/full")[4], "exited");
    assert!(!d.log().contains(SECRET));
}
