//! A small stand-in of the Anthropic Messages API on loopback, for running
//! the real Claude Code CLI offline: a request whose last message is the
//! user's text is answered with a `Bash` tool_use running `command`; any
//! other (a tool result, or a request without tools) with text. Streamed
//! as server-sent events when asked, like the real API. The HTTP server is
//! [`super::standin`].

use std::sync::atomic::{AtomicUsize, Ordering};

use super::standin::{sse, AgentApi, RunLog};
use super::Env;

pub const CLAUDE: &str = "/opt/tmuxd-test/claude-code-2.1.332/node_modules/.bin/claude";

/// A user `alice` whose agent is Claude Code, offline, in its default
/// permission mode (it asks before running a command), with its hooks on
/// or off (the screen alone).
fn claude_env(api: &AgentApi, hooks: bool) -> Env {
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
        "[[users]]\nname = \"alice\"\nworkdir = \"{work}\"\nprofile = \"claude\"\nhooks = {hooks}\ncommand = [\"env\", \"HOME={home}\", \"ANTHROPIC_BASE_URL={url}\", \"ANTHROPIC_AUTH_TOKEN=stand-in\", \"DISABLE_AUTOUPDATER=1\", \"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\", \"{CLAUDE}\", \"--permission-mode\", \"default\"]\n",
        url = api.url
    );
    let text = std::fs::read_to_string(&env.config).unwrap() + &body;
    std::fs::write(&env.config, text).unwrap();
    env
}

/// A [`claude_env`] whose stand-in has Claude log each Bash run in a
/// [`RunLog`], with Claude Code's hooks on or off.
pub fn claude(hooks: bool) -> (RunLog, AgentApi, Env) {
    let ran = RunLog::new();
    let api = AgentApi::start(&ran.command(), route);
    let env = claude_env(&api, hooks);
    (ran, api, env)
}

/// A stand-in of the Messages API whose tool calls append to `ran`.
pub fn messages_api(ran: &RunLog) -> AgentApi {
    AgentApi::start(&ran.command(), route)
}

/// The Messages API's routes.
fn route(
    path: &str,
    body: &serde_json::Value,
    command: &str,
    tool_uses: &AtomicUsize,
) -> (&'static str, String) {
    if path.starts_with("/v1/messages/count_tokens") {
        ("application/json", r#"{"input_tokens":10}"#.to_owned())
    } else if path.starts_with("/v1/messages") {
        answer(body, command, tool_uses)
    } else {
        ("application/json", "{}".to_owned())
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
    ("text/event-stream", sse(&events))
}
