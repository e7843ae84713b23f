//! A small HTTP/1.1 server on loopback for the agents' API stand-ins
//! (`anthropic`, `openai`): keep-alive connections, bodies by
//! Content-Length, each request answered by the stand-in's own route with
//! a content type and a body (JSON, or server-sent events). Also the
//! [`RunLog`] the stand-ins' tool calls append to.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Answers one request: (path, JSON body) → (content type, body).
type Answer = dyn Fn(&str, &serde_json::Value) -> (&'static str, String) + Send + Sync;

/// A stand-in's route: (path, JSON body, the command its tool calls run,
/// the tool calls it answered so far) → (content type, body).
pub type Route = fn(&str, &serde_json::Value, &str, &AtomicUsize) -> (&'static str, String);

/// A running stand-in of an agent's API; stops accepting when dropped.
pub struct AgentApi {
    pub url: String,
    _server: StandIn,
    tool_calls: Arc<AtomicUsize>,
}

impl AgentApi {
    /// Starts a stand-in answering by `route`, whose tool calls run
    /// `command`.
    pub fn start(command: &str, route: Route) -> AgentApi {
        let tool_calls = Arc::new(AtomicUsize::new(0));
        let (t, command) = (tool_calls.clone(), command.to_owned());
        let server = StandIn::start(Arc::new(move |path: &str, body: &serde_json::Value| {
            route(path, body, &command, &t)
        }));
        AgentApi {
            url: server.url.clone(),
            _server: server,
            tool_calls,
        }
    }

    /// The tool calls it answered.
    pub fn tool_calls(&self) -> usize {
        self.tool_calls.load(Ordering::SeqCst)
    }
}

struct StandIn {
    url: String,
    stop: Arc<AtomicBool>,
}

impl StandIn {
    fn start(answer: Arc<Answer>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let answer = answer.clone();
                std::thread::spawn(move || serve(conn, &*answer));
            }
        });
        StandIn { url, stop }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// Answers requests on one keep-alive connection until it closes (or
/// stays silent for a minute).
fn serve(conn: TcpStream, answer: &Answer) {
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
        let (ctype, reply) = answer(path, &body);
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Server-sent events from (name, data) pairs.
pub fn sse(events: &[(&str, serde_json::Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// Where a stand-in's shell command records each run of it.
pub struct RunLog {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl RunLog {
    pub fn new() -> RunLog {
        RunLog::in_dir(std::path::Path::new("/tmp"))
    }

    /// A log in a new directory under `parent`, writable by everyone (an
    /// agent running as another account, or in a sandbox that sees only
    /// `parent`).
    pub fn in_dir(parent: &std::path::Path) -> RunLog {
        let dir = tempfile::Builder::new()
            .prefix("tmuxd-agent")
            .tempdir_in(parent)
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.path().join("ran.log");
        RunLog { _dir: dir, path }
    }

    /// The command the agent is asked to run: appends one line per run.
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
