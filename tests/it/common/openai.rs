//! A small stand-in of the OpenAI Responses API on loopback, for running
//! the real Codex CLI offline: a request with tools whose last input is
//! the user's message is answered with an `exec_command` call of `command`
//! that asks for escalated permissions (so Codex asks the user first); any
//! other (the call's output, or a request without tools such as the title
//! Codex asks for) with text. Streamed as server-sent events like the real
//! API; the HTTP server is [`super::standin`].

use std::sync::atomic::{AtomicUsize, Ordering};

use super::standin::{sse, AgentApi, RunLog};
use super::Env;

pub const CODEX: &str = "/opt/tmuxd-test/codex-0.171.0/node_modules/.bin/codex";

/// The Responses API's routes.
fn route(
    path: &str,
    body: &serde_json::Value,
    command: &str,
    tool_calls: &AtomicUsize,
) -> (&'static str, String) {
    if path.ends_with("/responses") {
        ("text/event-stream", answer(body, command, tool_calls))
    } else {
        ("application/json", "{}".to_owned())
    }
}

fn answer(body: &serde_json::Value, command: &str, tool_calls: &AtomicUsize) -> String {
    let has_exec = body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "exec_command"));
    let last = body["input"]
        .as_array()
        .and_then(|i| i.last())
        .cloned()
        .unwrap_or_default();
    let n = tool_calls.load(Ordering::SeqCst);
    let item = if has_exec && last["type"] == "message" && last["role"] == "user" {
        tool_calls.fetch_add(1, Ordering::SeqCst);
        let arguments = serde_json::json!({
            "cmd": command,
            "sandbox_permissions": "require_escalated",
            "justification": "Record a run"
        });
        serde_json::json!({"type": "function_call", "call_id": format!("call_{n}"),
            "name": "exec_command", "arguments": arguments.to_string()})
    } else {
        serde_json::json!({"type": "message", "role": "assistant", "id": format!("msg_{n}"),
            "content": [{"type": "output_text", "text": "All done."}]})
    };
    let id = format!("resp_{n}");
    let usage = serde_json::json!({"input_tokens": 10, "input_tokens_details": null,
        "output_tokens": 1, "output_tokens_details": null, "total_tokens": 11});
    sse(&[
        (
            "response.created",
            serde_json::json!({"type": "response.created", "response": {"id": id}}),
        ),
        (
            "response.output_item.done",
            serde_json::json!({"type": "response.output_item.done", "item": item}),
        ),
        (
            "response.completed",
            serde_json::json!({"type": "response.completed", "response": {"id": id, "usage": usage}}),
        ),
    ])
}

/// A user `alice` whose agent is Codex CLI, offline against a
/// Responses API stand-in that has it log each run in a [`RunLog`], in its
/// default approval mode (it asks before running a command that wants out
/// of its sandbox), with its hooks on or off (the screen alone).
pub fn codex(hooks: bool) -> (RunLog, AgentApi, Env) {
    assert!(
        std::path::Path::new(CODEX).exists(),
        "{CODEX} is required (scripts/deps.sh installs it)"
    );
    let ran = RunLog::new();
    let api = AgentApi::start(&ran.command(), route);
    let env = Env::new("");
    let d = env.path().display().to_string();
    let home = format!("{d}/home");
    let work = format!("{d}/work");
    std::fs::create_dir_all(format!("{home}/.codex")).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // A model provider without login, no update check, the workdir trusted.
    let config = format!(
        "model = \"gpt-5\"\nmodel_provider = \"standin\"\ncheck_for_update_on_startup = false\n\
         [model_providers.standin]\nname = \"stand-in\"\nbase_url = \"{url}/v1\"\nwire_api = \"responses\"\n\
         requires_openai_auth = false\nsupports_websockets = false\n\
         [projects.\"{work}\"]\ntrust_level = \"trusted\"\n",
        url = api.url
    );
    std::fs::write(format!("{home}/.codex/config.toml"), config).unwrap();
    let body = format!(
        "[[users]]\nname = \"alice\"\nworkdir = \"{work}\"\nprofile = \"codex\"\nhooks = {hooks}\ncommand = [\"env\", \"HOME={home}\", \"{CODEX}\"]\n"
    );
    let text = std::fs::read_to_string(&env.config).unwrap() + &body;
    std::fs::write(&env.config, text).unwrap();
    (ran, api, env)
}
