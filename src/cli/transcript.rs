//! `tmuxd transcript`: through the daemon when it runs, else from the
//! database directly; and recording CLI input when the daemon is down.

use super::*;

pub(super) async fn transcript(
    config: &Config,
    id: &SessionId,
    format: Format,
    since: Option<String>,
    grep: Option<String>,
) -> Result<(), CliError> {
    let server = server_for(config, id)?;
    let since_ms = since
        .as_deref()
        .map(|s| crate::transcript::parse_since(s, crate::transcript::now().0))
        .transpose()
        .map_err(CliError::BadInput)?;
    let pattern = grep
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| {
            // One line: the regex crate's last line says what is wrong.
            let why = e.to_string();
            CliError::BadInput(format!(
                "invalid --grep pattern {:?}: {}",
                grep.as_deref().unwrap_or(""),
                why.lines()
                    .last()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
            ))
        })?;
    if pattern.is_some() && format != Format::Text {
        return Err(CliError::BadInput(
            "--grep works with --format text only".into(),
        ));
    }
    if !config.transcript.enabled {
        return Err(CliError::BadInput(
            "transcripts are turned off in the config ([transcript] enabled = false)".into(),
        ));
    }
    let request = Request::Transcript {
        id: id.to_string(),
        format,
        since_ms,
        grep: grep.clone(),
    };
    let mut stdout = tokio::io::stdout();
    match control::request_stream(&config.control_socket(), &request)
        .await
        .map_err(super::unreachable(config))?
    {
        Some((r, mut rest)) => {
            super::daemon_answer(r)?;
            match tokio::io::copy(&mut rest, &mut stdout).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(CliError::Failed(e.into())),
            }
        }
        None => {
            // No daemon: read the database ourselves (sled allows one
            // process at a time, and the daemon is not it now).
            let db = config.transcript_db();
            let store = if db.exists() {
                Some(Store::open(&db).map_err(|e| CliError::Failed(e.into()))?)
            } else {
                None
            };
            let recorded = match &store {
                Some(s) => s.has_session(id).map_err(|e| CliError::Failed(e.into()))?,
                None => false,
            };
            let live = server
                .tmux
                .has_session(&id.session)
                .await
                .map_err(SessionError::from)?;
            let store = match (store, recorded, live) {
                (Some(store), true, _) => store,
                (_, _, true) => return Err(CliError::BadInput(format!(
                    "{id} has no transcript yet: it was created while the daemon was down; what it prints waits in its spool and is stored once `tmuxd serve` adopts it"
                ))),
                _ => {
                    let missing = SessionError::NoSuchSession(id.clone());
                    return Err(super::verbs::missing_without_daemon(missing));
                }
            };
            let log = store.session(id).map_err(|e| CliError::Failed(e.into()))?;
            let options = ExportOptions {
                until_id: None,
                since_ms,
                grep: pattern,
                times: false,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match crate::transcript::export(&log, format, &options, &mut out)
                .and_then(|_| Ok(std::io::Write::flush(&mut out)?))
            {
                Ok(()) => Ok(()),
                Err(crate::transcript::ExportError::Io(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    Ok(())
                }
                Err(e) => Err(CliError::Failed(e.into())),
            }
        }
    }
}

/// With no daemon running, records CLI input in the transcript ourselves.
pub(super) fn record_input_directly(config: &Config, id: &SessionId, text: &str, enter: bool) {
    if !config.transcript.enabled {
        return;
    }
    let source = format!("cli:uid={}", nix::unistd::getuid());
    let typed = if enter {
        format!("{text}\n")
    } else {
        text.to_owned()
    };
    let result = Store::open(&config.transcript_db()).and_then(|store| {
        store.session(id)?.input(&source, &typed)?;
        store.flush_blocking()
    });
    if let Err(e) = result {
        eprintln!("tmuxd: the input was typed but not recorded: {e}");
    }
}
