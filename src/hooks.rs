//! Agent hooks: Claude Code and Codex CLI report their permission dialogs
//! (with the tool and its input) and the end of each turn (Claude also its
//! notifications) through a hook command, `tmuxd hook`, that tmuxd
//! configures for the sessions it starts (on the agent's command line:
//! Claude's `--settings`, Codex's `-c`; never the user's own settings
//! files). The command talks to the daemon over a per-user socket,
//! `RUNTIME_DIR/hooks/USER.sock`: in a directory the daemon owns, owned by
//! the user, mode 0600, and every connection's peer uid is checked against
//! the user's. The hook reports
//! and returns at once with no decision, so the agent's own dialog shows
//! (its "ask"): it can never hang the agent, and answers go through the
//! same question objects as everywhere else. Screen detection stays the
//! fallback (agents without hooks, `hooks = false`, a daemon that is down).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::names::{Name, SessionId};
use crate::recorder::Recorder;

/// A hook's message is at most this long (one JSON line).
const MAX_MESSAGE: u64 = 1024 * 1024;

/// How long a hook may take to send its message.
const HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment a session's agent gets: where to report, as whom.
pub const ENV_SOCKET: &str = "TMUXD_HOOK";
pub const ENV_SESSION: &str = "TMUXD_SESSION";

/// The directory of the hook sockets.
pub fn dir(config: &Config) -> PathBuf {
    config.runtime_dir.join("hooks")
}

/// `user`'s hook socket.
pub fn socket(config: &Config, user: &Name) -> PathBuf {
    dir(config).join(format!("{user}.sock"))
}

/// The profiles whose agents have hooks tmuxd sets up.
pub const PROFILES: &[&str] = &["claude", "codex"];

/// How long the agent waits for `tmuxd hook` (it returns at once).
const HOOK_COMMAND_TIMEOUT: u64 = 10;

/// `tmuxd hook` as a shell command line: the running binary, quoted.
fn hook_command() -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tmuxd"));
    format!(
        "'{}' hook",
        exe.display().to_string().replace('\'', r"'\''")
    )
}

/// The arguments that point a `profile`'s agent hooks at `tmuxd hook`,
/// appended to the agent's command line (the user's own settings files
/// are never edited); empty for profiles without hooks.
pub fn agent_args(profile: &str) -> Vec<String> {
    match profile {
        "claude" => vec!["--settings".to_owned(), claude_settings(&hook_command())],
        "codex" => codex_overrides(&hook_command()),
        _ => Vec::new(),
    }
}

/// Claude Code's `--settings`: PermissionRequest, Notification and Stop.
fn claude_settings(command: &str) -> String {
    let hook = serde_json::json!([{
        "matcher": "*",
        "hooks": [{"type": "command", "command": command, "timeout": HOOK_COMMAND_TIMEOUT}]
    }]);
    serde_json::json!({
        "hooks": {"PermissionRequest": hook, "Notification": hook, "Stop": hook}
    })
    .to_string()
}

/// Codex CLI's `-c` overrides: PermissionRequest and Stop hooks (Codex has
/// no Notification hook), and their trust. Codex runs a hook that is not
/// managed only once its hash is trusted, else it asks at start ("Hooks
/// need review"); tmuxd's own hooks come trusted, in the same overrides,
/// by the hash Codex computes (checked against the real CLI by the agent
/// tests). A Codex that hashes differently asks that question at start and
/// works as before once answered.
fn codex_overrides(command: &str) -> Vec<String> {
    let mut handler = toml::Table::new();
    handler.insert("type".into(), "command".into());
    handler.insert("command".into(), command.into());
    handler.insert("timeout".into(), (HOOK_COMMAND_TIMEOUT as i64).into());
    let mut group = toml::Table::new();
    group.insert("hooks".into(), toml::Value::Array(vec![handler.into()]));
    let groups = toml::Value::Array(vec![group.into()]);
    let mut state = toml::Table::new();
    let mut args = Vec::new();
    for (event, label) in [
        ("PermissionRequest", "permission_request"),
        ("Stop", "stop"),
    ] {
        args.push("-c".to_owned());
        args.push(format!("hooks.{event}={groups}"));
        let mut trusted = toml::Table::new();
        trusted.insert(
            "trusted_hash".into(),
            codex_hook_hash(label, command).into(),
        );
        // The key Codex gives the first handler of the first group of
        // an event set on its command line.
        state.insert(
            format!("/<session-flags>/config.toml:{label}:0:0"),
            trusted.into(),
        );
    }
    args.push("-c".to_owned());
    args.push(format!("hooks.state={}", toml::Value::Table(state)));
    args
}

/// Codex's trust hash of one command hook: SHA-256 of the hook's
/// normalized identity as JSON with sorted keys and no spaces.
fn codex_hook_hash(label: &str, command: &str) -> String {
    use sha2::Digest;
    // serde_json's maps sort their keys (no `preserve_order` here).
    let identity = serde_json::json!({
        "event_name": label,
        "hooks": [{"async": false, "command": command, "timeout": HOOK_COMMAND_TIMEOUT, "type": "command"}]
    });
    let digest = sha2::Sha256::digest(identity.to_string().as_bytes());
    format!("sha256:{}", data_encoding::HEXLOWER.encode(&digest))
}

/// Serves one user's hook socket until `cancel`.
pub async fn serve_user(
    path: PathBuf,
    user: Name,
    owner: (u32, u32),
    recorder: Recorder,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let u = user.clone();
    crate::usersock::serve("hook", path, user, owner, cancel, tracker, move |stream| {
        let (rec, user) = (recorder.clone(), u.clone());
        async move {
            let r = tokio::time::timeout(HOOK_TIMEOUT, serve_one(stream, &user, &rec)).await;
            if !matches!(r, Ok(Ok(()))) {
                tracing::debug!(user = %user, "hook connection ended early");
            }
        }
    })
    .await;
}

async fn serve_one(stream: UnixStream, user: &Name, rec: &Recorder) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_MESSAGE))
        .read_line(&mut line)
        .await?;
    let msg: serde_json::Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    let id = msg["session"]
        .as_str()
        .and_then(|s| s.parse::<SessionId>().ok())
        .filter(|id| &id.user == user);
    let Some(id) = id else {
        write.write_all(b"{\"ok\":false}\n").await?;
        return Ok(());
    };
    rec.hook_event(&id, &msg["event"]);
    write.write_all(b"{\"ok\":true}\n").await
}

/// `tmuxd hook`: run by the agent (as the user) for each hook event, with
/// the event's JSON on stdin. Reports it and exits 0 with no output, so
/// the agent carries on as if there were no hook; never fails the agent.
pub fn run_hook_command() {
    let (Ok(socket), Ok(session)) = (std::env::var(ENV_SOCKET), std::env::var(ENV_SESSION)) else {
        return;
    };
    let mut input = Vec::new();
    use std::io::Read;
    if std::io::stdin()
        .take(MAX_MESSAGE - 4096)
        .read_to_end(&mut input)
        .is_err()
    {
        return;
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&input) else {
        return;
    };
    let msg = serde_json::json!({"session": session, "event": event});
    let _ = send(Path::new(&socket), &msg);
}

fn send(socket: &Path, msg: &serde_json::Value) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(HOOK_TIMEOUT))?;
    stream.set_read_timeout(Some(HOOK_TIMEOUT))?;
    let mut line = msg.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    std::io::BufReader::new(stream).read_line(&mut answer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes Codex CLI 0.171.0 itself wrote to `hooks.state` when
    /// told to trust these two hooks in a user's config.toml.
    #[test]
    fn codex_trust_hash_is_the_one_codex_writes() {
        assert_eq!(
            codex_hook_hash("permission_request", "/tmp/cx/hook.sh"),
            "sha256:352ef36d58e8b69ac20aeecfe71c722e383046662ddad2ce92cf84da6187cebd"
        );
        assert_eq!(
            codex_hook_hash("stop", "/tmp/cx/hook.sh"),
            "sha256:a2963ce8525970b22625661ec5c922e8dfea4816b4c6860f63fd428848714344"
        );
    }

    #[test]
    fn codex_overrides_are_toml_values() {
        let command = "'/opt/it''s/tmuxd' hook";
        let args = codex_overrides(command);
        assert_eq!(args.len(), 6);
        let mut parsed = toml::Table::new();
        for pair in args.chunks(2) {
            assert_eq!(pair[0], "-c");
            let (key, value) = pair[1].split_once('=').unwrap();
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .unwrap_or_else(|e| panic!("{value}: {e}"))["v"]
                .clone();
            parsed.insert(key.to_owned(), value);
        }
        let handler = &parsed["hooks.PermissionRequest"][0]["hooks"][0];
        assert_eq!(handler["command"].as_str(), Some(command));
        assert_eq!(handler["type"].as_str(), Some("command"));
        let state = &parsed["hooks.state"]["/<session-flags>/config.toml:stop:0:0"];
        assert_eq!(
            state["trusted_hash"].as_str(),
            Some(codex_hook_hash("stop", command).as_str())
        );
        assert!(agent_args("aider").is_empty());
        assert_eq!(agent_args("claude")[0], "--settings");
    }
}
