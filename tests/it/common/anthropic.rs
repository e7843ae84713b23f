//! A small stand-in of the Anthropic Messages API on loopback, for running
//! the real Claude Code CLI offline: a request whose last message is the
//! user's text is answered with a `Bash` tool_use running `command`; any
//! other (a tool result, or a request without tools) with text. Streamed
//! as server-sent events when asked, like the real API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Env;

pub const CLAUDE: &str = "/opt/tmuxd-test/claude-code-2.1.332/node_modules/.bin/claude";

/// A user `alice` whose agent is Claude Code, offline, in its default
/// permission mode (it asks before running a command).
fn claude_env(api: &MessagesApi) -> Env {
    assert!(
        std::path::Path::new(CLAUDE).exists(),
        "{CLAUDE} is required (scripts/deps.sh installs it)"
    );
    let env = Env::new("");
    let d = env.path().display().to_string();
    let home = format!("{d}/home");
    let work = format!("{d}/work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // First run already done: onboarding, theme and trust of the workdir.
    let state = serde_json::json!({
        "hasCompletedOnboarding": true, "theme": "dark", "numStartups": 5,
        "projects": {work.clone(): {"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true}}
    });
    std::fs::write(format!("{home}/.claude.json"), state.to_string()).unwrap();
    let body = format!(
        "[[users]]\nname = \"alice\"\nworkdir = \"{work}\"\nprofile = \"claude\"\ncommand = [\"env\", \"HOME={home}\", \"ANTHROPIC_BASE_URL={url}\", \"ANTHROPIC_AUTH_TOKEN=stand-in\", \"DISABLE_AUTOUPDATER=1\", \"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\", \"{CLAUDE}\", \"--permission-mode\", \"default\"]\n",
        url = api.url
    );
    let text = std::fs::read_to_string(&env.config).unwrap() + &body;
    std::fs::write(&env.config, text).unwrap();
    env
}

/// A [`claude_env`] whose stand-in has Claude log each Bash run in a
/// [`RunLog`], with Claude Code's hooks on or off.
pub fn claude(hooks: bool) -> (RunLog, MessagesApi, Env) {
    let ran = RunLog::new();
    let api = MessagesApi::start(&ran.command());
    let env = claude_env(&api);
    if !hooks {
        without_hooks(&env);
    }
    (ran, api, env)
}

/// Turns Claude Code's hooks off in a [`claude_env`]: the screen alone.
fn without_hooks(env: &Env) {
    let config = std::fs::read_to_string(&env.config).unwrap();
    let off = config.replace(
        "profile = \"claude\"\n",
        "profile = \"claude\"\nhooks = false\n",
    );
    assert_ne!(off, config);
    std::fs::write(&env.config, off).unwrap();
}

/// Where the stand-in's Bash command records each run of it.
pub struct RunLog {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl RunLog {
    pub fn new() -> RunLog {
        let dir = tempfile::Builder::new()
            .prefix("tmuxd-claude")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("ran.log");
        RunLog { _dir: dir, path }
    }

    /// The command Claude is asked to run: appends one line per run.
    pub fn command(&self) -> String {
        format!("echo ran/RAN-MARKER >> {}", self.path.display())
    }

    /// How many times it ran.
    pub fn count(&self) -> usize {
        std::fs::read_to_string(&self.path)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

pub struct MessagesApi {
    pub url: String,
    stop: Arc<AtomicBool>,
    /// tool_use answers given.
    pub tool_uses: Arc<AtomicUsize>,
}

impl MessagesApi {
    /// Starts the stand-in; each tool_use runs `command` in Bash.
    pub fn start(command: &str) -> MessagesApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let tool_uses = Arc::new(AtomicUsize::new(0));
        let (s, t, command) = (stop.clone(), tool_uses.clone(), command.to_owned());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (t, command) = (t.clone(), command.clone());
                std::thread::spawn(move || serve(conn, &command, &t));
            }
        });
        MessagesApi {
            url,
            stop,
            tool_uses,
        }
    }
}

impl Drop for MessagesApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// Answers requests on one keep-alive connection until it closes (or
/// stays silent for a minute).
fn serve(conn: TcpStream, command: &str, tool_uses: &AtomicUsize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut out = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if r.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let (ctype, reply) = if path.starts_with("/v1/messages/count_tokens") {
            ("application/json", r#"{"input_tokens":10}"#.to_owned())
        } else if path.starts_with("/v1/messages") {
            answer(&body, command, tool_uses)
        } else {
            ("application/json", "{}".to_owned())
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn answer(
    body: &serde_json::Value,
    command: &str,
    tool_uses: &AtomicUsize,
) -> (&'static str, String) {
    let has_bash = body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"));
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let tool_result = last["content"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "tool_result"));
    let model = body["model"].clone();
    let n = tool_uses.load(Ordering::SeqCst);
    let (block, delta, stop) = if has_bash && !tool_result {
        tool_uses.fetch_add(1, Ordering::SeqCst);
        let input = serde_json::json!({"command": command, "description": "Record a run"});
        (
            serde_json::json!({"type": "tool_use", "id": format!("toolu_{n}"), "name": "Bash", "input": {}}),
            serde_json::json!({"type": "input_json_delta", "partial_json": input.to_string()}),
            "tool_use",
        )
    } else {
        (
            serde_json::json!({"type": "text", "text": ""}),
            serde_json::json!({"type": "text_delta", "text": "All done."}),
            "end_turn",
        )
    };
    let message = serde_json::json!({
        "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 1}
    });
    if body["stream"] != true {
        let mut m = message;
        m["content"] = serde_json::json!([{"type": "text", "text": "All done."}]);
        m["stop_reason"] = "end_turn".into();
        return ("application/json", m.to_string());
    }
    let events = [
        (
            "message_start",
            serde_json::json!({"type": "message_start", "message": message}),
        ),
        (
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": block}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ),
        (
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            serde_json::json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        ),
        ("message_stop", serde_json::json!({"type": "message_stop"})),
    ];
    let sse = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    ("text/event-stream", sse)
}
