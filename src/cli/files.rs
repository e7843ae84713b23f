//! `tmuxd put` and `tmuxd get`: files into and out of a session's
//! workspace, through the daemon (which does the work as the session's
//! Unix user, and records it).

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::{daemon_answer, unreachable, verbs::daemon_message, CliError};
use crate::config::Config;
use crate::control::{self, Request};
use crate::names::SessionId;

fn no_daemon() -> CliError {
    CliError::Failed(anyhow::anyhow!(
        "the daemon is not running: start it with `tmuxd serve` (files go in and out through it, as the session's user)"
    ))
}

pub(super) async fn put(
    config: &Config,
    id: &SessionId,
    file: &Path,
    name: Option<String>,
) -> Result<(), CliError> {
    let stdin = file == Path::new("-");
    let name = match (name, stdin) {
        (Some(n), _) => n,
        (None, true) => {
            return Err(CliError::BadInput(
                "reading stdin (-): say the file's name with --name".into(),
            ))
        }
        (None, false) => file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| CliError::BadInput(format!("{} names no file", file.display())))?,
    };
    let request = Request::Put {
        id: id.to_string(),
        name,
    };
    let path = config.control_socket();
    let r = if stdin {
        control::request_with_body(&path, &request, Some(&mut tokio::io::stdin())).await
    } else {
        let mut f = tokio::fs::File::open(file).await.map_err(|e| {
            CliError::BadInput(format!(
                "cannot read {}: {}",
                file.display(),
                crate::config::io_reason(&e)
            ))
        })?;
        control::request_with_body(&path, &request, Some(&mut f)).await
    };
    let (r, _) = r.map_err(unreachable(config))?.ok_or_else(no_daemon)?;
    let stored: crate::workspace::Stored =
        serde_json::from_str(&daemon_answer(r)?).map_err(|e| CliError::Failed(e.into()))?;
    println!("stored {} ({} bytes) in {id}", stored.path, stored.bytes);
    Ok(())
}

#[derive(serde::Deserialize)]
struct Head {
    name: String,
}

pub(super) async fn get(
    config: &Config,
    id: &SessionId,
    (path, format, transcript): (Option<String>, Option<String>, bool),
    output: Option<PathBuf>,
) -> Result<(), CliError> {
    let request = Request::Get {
        id: id.to_string(),
        path: path.unwrap_or_default(),
        format,
        transcript,
    };
    let (r, mut rest) = control::request_stream(&config.control_socket(), &request)
        .await
        .map_err(unreachable(config))?
        .ok_or_else(no_daemon)?;
    let head: Head =
        serde_json::from_str(&daemon_answer(r)?).map_err(|e| CliError::Failed(e.into()))?;
    let copied = match output.as_deref() {
        Some(p) if p == Path::new("-") => {
            tokio::io::copy(&mut rest, &mut tokio::io::stdout()).await
        }
        out => {
            // By default the download's own name, here; never over a file.
            let target = out
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(&head.name));
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .await
                .map_err(|e| {
                    CliError::BadInput(format!(
                        "cannot write {}: {} (say another file with -o, or -o - for stdout)",
                        target.display(),
                        crate::config::io_reason(&e)
                    ))
                })?;
            let n = tokio::io::copy(&mut rest, &mut f).await;
            let n = match n {
                Ok(n) => f.flush().await.map(|_| n),
                e => e,
            };
            if n.is_ok() {
                eprintln!("saved {}", target.display());
            } else {
                // A cut transfer leaves no file that looks whole.
                let _ = tokio::fs::remove_file(&target).await;
            }
            n
        }
    };
    copied
        .map(|_| ())
        .map_err(|e| CliError::Failed(anyhow::anyhow!("the download was cut off: {e}")))
}

/// `snapshot`, `snapshots` and `rollback`.
pub(super) async fn snapshots(
    config: &Config,
    request: Request,
    json: bool,
) -> Result<(), CliError> {
    let message = daemon_message(config, &request)
        .await?
        .ok_or_else(no_daemon)?;
    let bad = |e: serde_json::Error| CliError::Failed(e.into());
    match request {
        Request::Snapshot { id } => {
            let s: serde_json::Value = serde_json::from_str(&message).map_err(bad)?;
            println!("snapshot {} of {id}", s["id"].as_str().unwrap_or("?"));
        }
        Request::Rollback { id, snapshot } => {
            let s: serde_json::Value = serde_json::from_str(&message).map_err(bad)?;
            println!(
                "{id} is back at snapshot {snapshot}; what it was just before is snapshot {} (roll back to it to undo)",
                s["id"].as_str().unwrap_or("?")
            );
        }
        _ if json => println!("{message}"),
        _ => {
            let list: Vec<serde_json::Value> = serde_json::from_str(&message).map_err(bad)?;
            if list.is_empty() {
                println!("no snapshots yet (`tmuxd snapshot ID` takes one)");
            }
            for s in list {
                let when = crate::clock::iso8601(s["time_ms"].as_u64().unwrap_or(0) / 1000);
                println!(
                    "{}  {when}  {}",
                    s["id"].as_str().unwrap_or("?"),
                    s["why"].as_str().unwrap_or("")
                );
                let changed: Vec<&str> = s["changed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str())
                    .collect();
                if !changed.is_empty() {
                    println!("    then changed: {}", changed.join(", "));
                }
            }
        }
    }
    Ok(())
}
