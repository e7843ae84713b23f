//! What tmux is told about the sessions tmuxd starts, for the terminals
//! viewers see them in (xterm.js in the page, with `TERM=xterm-256color`):
//! the server's terminal features and the options agents ask for, each
//! session's options, and the window's name.

use crate::names::Name;
use crate::tmux::Command;

/// Server options (`set-option -s`), set whenever a session is created.
const SERVER: &[(&str, &str)] = &[
    // 24-bit colour to the viewers' terminals (tmux otherwise cuts it to
    // 256 colours); tmux's defaults for xterm* already include clipboard
    // (OSC 52), focus and title. An index of its own, so setting it again
    // replaces rather than appends.
    ("terminal-features[90]", "xterm-256color:RGB"),
    // Agents may set the clipboard (OSC 52): tmux passes it to the
    // viewers' terminals, and the page to the browser's clipboard. Nothing
    // reads the browser's clipboard.
    ("set-clipboard", "on"),
    // Claude Code asks for focus events; keys with modifiers tmux can tell
    // apart reach programs that ask for them.
    ("focus-events", "on"),
    ("extended-keys", "on"),
    // An Esc pressed alone (the page's quick key, Claude Code's interrupt)
    // reaches the program at once instead of after tmux's default 500 ms
    // wait for a sequence to follow; sequences arrive in one frame.
    ("escape-time", "10"),
];

/// Session options (`set-option` on the session).
const SESSION: &[(&str, &str)] = &[
    // The status line redrawn when something changes, not every 15 s for
    // its clock: idle viewers cost nothing.
    ("status-interval", "0"),
    // The viewers' title follows the program's (its pane title).
    ("set-titles", "on"),
    ("set-titles-string", "#T"),
];

pub(super) fn server() -> Vec<Command> {
    SERVER
        .iter()
        .map(|(o, v)| Command::set_server_option(o, v))
        .collect()
}

pub(super) fn session(name: &Name) -> Vec<Command> {
    SESSION
        .iter()
        .map(|(o, v)| Command::set_session_option(name, o, v))
        .collect()
}

/// The window's name: the agent's program (`claude`, `codex`, `bash`),
/// not tmux's guess from the launcher (`sh`).
pub fn window_name(command: &[String]) -> String {
    let program = command.first().map(String::as_str).unwrap_or("agent");
    let base = program.rsplit('/').next().unwrap_or(program);
    if base.is_empty() {
        "agent".to_owned()
    } else {
        base.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::window_name;

    #[test]
    fn window_named_after_the_program() {
        assert_eq!(
            window_name(&["/usr/bin/claude".into(), "--x".into()]),
            "claude"
        );
        assert_eq!(window_name(&["codex".into()]), "codex");
        assert_eq!(window_name(&[]), "agent");
        assert_eq!(window_name(&["/".into()]), "agent");
    }
}
