//! The real Codex CLI (npm, pinned in scripts/deps.sh) in a tmuxd session,
//! offline against a stand-in of the Responses API: its approval dialog
//! makes the session `waiting` with the question, the command and the
//! options; with hooks on, tmuxd's PermissionRequest and Stop hooks (set
//! up and trusted on Codex's command line) report the exact command; with
//! them off the screen alone does. An answer runs the command once.

use crate::agent::{answer, main_session};
use crate::common::client::call;
use crate::common::openai::codex;
use crate::common::standin::AgentApi;
use crate::common::{wait_for, wait_for_or, Env};

const QUESTION: &str = "Would you like to run the following command?";

/// Asks Codex for something; returns the question once the API shows the
/// session waiting.
fn ask(env: &Env, url: &str, token: &str) -> serde_json::Value {
    let (status, body) = call(
        "POST",
        &format!("{url}/api/sessions/alice/main/input"),
        Some(token),
        Some(serde_json::json!({"text": "make a marker file"})),
    );
    assert_eq!(status, 204, "{body}");
    wait_for_or(
        30,
        "the session waiting with Codex's question",
        || {
            let s = main_session(url, token);
            (s["agent_state"] == "waiting" && s["question"].is_object())
                .then(|| s["question"].clone())
        },
        || format!("screen:\n{}", env.pane_text("alice", "main")),
    )
}

/// Starts Codex, asks, checks the question read off its screen, answers
/// "1" by the API and waits for the one run and Codex's last words;
/// returns the stand-in (still serving) and the environment.
fn ask_and_answer(hooks: bool) -> (AgentApi, Env) {
    let (ran, api, mut env) = codex(hooks);
    let d = env.serve();
    let url = d.url();
    let token = env.token("alice", "user");
    env.wait_pane("alice", "main", "for shortcuts");
    assert!(
        !env.pane_text("alice", "main").contains("Hooks need review"),
        "tmuxd's hooks come trusted"
    );
    assert_eq!(main_session(&url, &token)["agent_profile"], "codex");
    let q = ask(&env, &url, &token);
    assert_eq!(q["text"], QUESTION, "{q}");
    let detail: Vec<String> = serde_json::from_value(q["detail"].clone()).unwrap();
    assert!(
        detail.contains(&format!("$ {}", ran.command())),
        "the command is in the question: {detail:?}"
    );
    let labels: Vec<&str> = q["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert!(labels[0].starts_with("Yes, proceed"), "{labels:?}");
    assert!(labels[2].starts_with("No"), "{labels:?}");
    let q = if hooks {
        // Codex's PermissionRequest hook says which command, exactly.
        let q = wait_for(10, "the hook's report of the command", || {
            let s = main_session(&url, &token);
            (s["question"]["id"] == q["id"] && s["question"]["tool"].is_object())
                .then(|| s["question"].clone())
        });
        assert_eq!(q["tool"]["name"], "Bash", "{q}");
        assert_eq!(q["tool"]["input"]["command"], ran.command().as_str(), "{q}");
        q
    } else {
        assert!(q.get("tool").is_none(), "no hook, no tool: {q}");
        q
    };
    assert_eq!(ran.count(), 0);
    let (status, body) = answer(&url, &token, q["id"].as_str().unwrap(), "1");
    assert_eq!(status, 204, "{body}");
    wait_for(20, "the command to run", || {
        (ran.count() == 1).then_some(())
    });
    wait_for(20, "Codex done, the dialog gone", || {
        let s = main_session(&url, &token);
        (s["agent_state"] != "waiting" && s["question"].is_null()).then_some(())
    });
    let (status, body) = answer(&url, &token, q["id"].as_str().unwrap(), "1");
    assert_eq!(status, 409, "a replayed answer types nothing: {body}");
    assert_eq!(ran.count(), 1);
    assert_eq!(api.tool_calls(), 1);
    env.wait_pane("alice", "main", "All done.");
    (api, env)
}

#[test]
fn codex_approval_is_a_question_with_hooks() {
    let (_api, env) = ask_and_answer(true);
    // Both hooks reported: the request, and the end of the turn.
    let text = || env.ok(&["transcript", "alice", "--format", "text"]);
    wait_for_or(
        10,
        "the Stop hook's report",
        || {
            let text = text();
            (text.contains(" hook] {\"event\":\"PermissionRequest\"")
                && text.contains(" hook] {\"event\":\"Stop\""))
            .then_some(())
        },
        || {
            format!(
                "transcript:\n{}\nscreen:\n{}",
                text(),
                env.pane_text("alice", "main")
            )
        },
    );
}

#[test]
fn codex_approval_without_hooks_is_read_off_the_screen() {
    let (_api, env) = ask_and_answer(false);
    let text = env.ok(&["transcript", "alice", "--format", "text"]);
    assert!(text.contains(QUESTION), "{text}");
    assert!(!text.contains(" hook] "), "{text}");
}
