//! The page's size policy: which viewer's terminal sets a session's
//! window size.
//!
//! Web viewers attach with tmux's `ignore-size` flag, so watching never
//! resizes anyone. A writable viewer takes the size (its flag cleared, and
//! made the session's latest client) when it is the only client that would
//! size the window, when it first types, and when its user asks to fit the
//! window to their terminal; from then on tmux's `window-size latest` gives
//! the window the size of whichever such client typed last. Read-only
//! viewers never take it.
//! Plain `tmux attach` clients size windows as tmux always does.
//!
//! The tmux calls run beside the relay (a deadline each, tmux's call
//! timeout), so a slow tmux never holds up a viewer's bytes.

use std::path::{Path, PathBuf};

use crate::names::{Name, SessionId};
use crate::tmux::{Command, Tmux};

/// This viewer's client sizes the window from now on.
pub(super) fn take(tmux: &Tmux, id: &SessionId, tty: &Path) {
    let (tmux, id, tty) = (tmux.clone(), id.clone(), tty.to_owned());
    tokio::spawn(async move { take_now(&tmux, &id, &tty).await });
}

/// Takes the size if no other client of the session sizes its window
/// (the first viewer of a session gets its own size).
pub(super) fn take_if_alone(tmux: &Tmux, id: &SessionId, tty: &Path) {
    let (tmux, id, tty) = (tmux.clone(), id.clone(), tty.to_owned());
    tokio::spawn(async move {
        match sizing_clients(&tmux, &id.session).await {
            Ok(others) if others.iter().all(|c| c == &tty) => take_now(&tmux, &id, &tty).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot list the session's clients")
            }
        }
    });
}

async fn take_now(tmux: &Tmux, id: &SessionId, tty: &Path) {
    let commands = [
        Command::take_size(tty),
        Command::make_latest(tty, &id.session),
    ];
    if let Err(e) = tmux.run(&commands).await {
        tracing::warn!(session = %id, error = %e, "cannot give the viewer the window size");
    }
}

/// The terminals of the session's clients that size its window.
async fn sizing_clients(
    tmux: &Tmux,
    session: &Name,
) -> Result<Vec<PathBuf>, crate::tmux::TmuxError> {
    let out = tmux
        .run(&[Command::list_clients(
            session,
            "#{client_flags} #{client_tty}",
        )])
        .await?;
    Ok(parse_sizing(&out))
}

fn parse_sizing(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(flags, _)| !flags.split(',').any(|f| f == "ignore-size"))
        .map(|(_, tty)| PathBuf::from(tty))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_with_ignore_size_do_not_size() {
        let out =
            "attached,focused,ignore-size,UTF-8 /dev/pts/3\nattached,focused,UTF-8 /dev/pts/4\n";
        assert_eq!(parse_sizing(out), vec![PathBuf::from("/dev/pts/4")]);
        assert!(parse_sizing("").is_empty());
    }
}
