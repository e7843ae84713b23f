//! The tmux argv builder: typed commands with exact targets, text after
//! `--`, and every argument escaped against tmux's own argv parser, which
//! treats an argument ending in `;` as a command separator.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::names::Name;

/// A pane id as tmux prints it, `%N`: an exact pane target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PaneId(String);

impl PaneId {
    pub fn parse(s: &str) -> Option<PaneId> {
        let digits = s.strip_prefix('%')?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| PaneId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A target for a tmux command, always exact.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// `=name`: exactly this session (no prefix or pattern matching).
    Session(&'a Name),
    /// `=name:`: the current window of exactly this session.
    Window(&'a Name),
    /// `%N`.
    Pane(&'a PaneId),
}

impl Target<'_> {
    fn arg(&self) -> String {
        match self {
            Target::Session(n) => format!("={n}"),
            Target::Window(n) => format!("={n}:"),
            Target::Pane(p) => p.0.clone(),
        }
    }
}

/// One tmux command with its arguments.
#[derive(Clone, Debug, Default)]
pub struct Command {
    args: Vec<OsString>,
}

impl Command {
    fn new(name: &str) -> Command {
        Command {
            args: vec![name.into()],
        }
    }
    fn flag(mut self, f: &str) -> Command {
        self.args.push(f.into());
        self
    }
    fn opt(mut self, f: &str, value: impl AsRef<OsStr>) -> Command {
        self.args.push(f.into());
        self.args.push(value.as_ref().to_owned());
        self
    }
    fn target(self, t: Target<'_>) -> Command {
        self.opt("-t", t.arg())
    }
    /// Ends the options; what follows is positional, even if it starts with `-`.
    fn positional<I, S>(mut self, rest: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.push("--".into());
        self.args
            .extend(rest.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// `new-session -d -s NAME -c DIR -P -F FORMAT -- ARGV...`: a detached
    /// session running `argv` directly (no shell), printing `format`.
    pub fn new_session(
        name: &Name,
        window: &str,
        workdir: &Path,
        format: &str,
        env: &[String],
        argv: &[String],
    ) -> Command {
        let mut c = Command::new("new-session")
            .flag("-d")
            .opt("-s", name.as_str())
            .opt("-n", window)
            .opt("-c", workdir)
            .flag("-P")
            .opt("-F", format);
        for e in env {
            c = c.opt("-e", e);
        }
        c.positional(argv)
    }

    /// `respawn-pane -c DIR -t PANE -- ARGV...` for a pane whose program exited.
    /// `env`: `VAR=VALUE` for the program (`-e`).
    pub fn respawn_pane(pane: &PaneId, workdir: &Path, env: &[String], argv: &[String]) -> Command {
        let mut c = Command::new("respawn-pane").opt("-c", workdir);
        for e in env {
            c = c.opt("-e", e);
        }
        c.target(Target::Pane(pane)).positional(argv)
    }

    pub fn has_session(name: &Name) -> Command {
        Command::new("has-session").target(Target::Session(name))
    }

    pub fn kill_session(name: &Name) -> Command {
        Command::new("kill-session").target(Target::Session(name))
    }

    /// `list-sessions -F FORMAT`.
    pub fn list_sessions(format: &str) -> Command {
        Command::new("list-sessions").opt("-F", format)
    }

    /// `list-panes -a -F FORMAT`: every pane of the server.
    pub fn list_all_panes(format: &str) -> Command {
        Command::new("list-panes").flag("-a").opt("-F", format)
    }

    /// A user option (`@name`) on a session. tmux 3.3a resolves the
    /// target of `set-option` as a pane: `=name` fails, `=name:` works.
    pub fn set_session_option(session: &Name, option: &str, value: &str) -> Command {
        Command::new("set-option")
            .target(Target::Window(session))
            .positional([option, value])
    }

    pub fn unset_session_option(session: &Name, option: &str) -> Command {
        Command::new("set-option")
            .flag("-u")
            .target(Target::Window(session))
            .positional([option])
    }

    /// A session user option set to `format` expanded in the session's
    /// context (`-F`), e.g. `#{pane_id}` right after `new-session`.
    pub fn set_session_option_format(session: &Name, option: &str, format: &str) -> Command {
        Command::new("set-option")
            .flag("-F")
            .target(Target::Window(session))
            .positional([option, format])
    }

    /// A window option on the current window of `session`.
    pub fn set_session_window_option(session: &Name, option: &str, value: &str) -> Command {
        Command::new("set-option")
            .flag("-w")
            .target(Target::Window(session))
            .positional([option, value])
    }

    /// A window option on the window holding `pane`.
    pub fn set_window_option(pane: &PaneId, option: &str, value: &str) -> Command {
        Command::new("set-option")
            .flag("-w")
            .target(Target::Pane(pane))
            .positional([option, value])
    }

    /// Types `text` literally (no key names) into `pane`.
    pub fn send_text(pane: &PaneId, text: &str) -> Command {
        Command::new("send-keys")
            .flag("-l")
            .target(Target::Pane(pane))
            .positional([text])
    }

    /// Presses a named key (`Enter`, `C-c`) in `pane`.
    pub fn send_key(pane: &PaneId, key: SpecialKey) -> Command {
        Command::new("send-keys")
            .target(Target::Pane(pane))
            .positional([key.name()])
    }

    /// `load-buffer -b NAME -`: a buffer from the invocation's stdin.
    pub fn load_buffer_stdin(buffer: &str) -> Command {
        Command::new("load-buffer").opt("-b", buffer).flag("-")
    }

    /// `paste-buffer -d -p -b NAME -t PANE`: paste (bracketed when the
    /// program asked for it) and delete the buffer.
    pub fn paste_buffer(buffer: &str, pane: &PaneId) -> Command {
        Command::new("paste-buffer")
            .flag("-d")
            .flag("-p")
            .opt("-b", buffer)
            .target(Target::Pane(pane))
    }

    /// `pipe-pane -O -t TARGET -- COMMAND`: everything the pane prints goes
    /// to COMMAND's stdin (run by the server with `sh -c`). Never `-o`:
    /// with a pipe already open that toggles it closed.
    pub fn pipe_pane_to(target: Target<'_>, command: &str) -> Command {
        Command::new("pipe-pane")
            .flag("-O")
            .target(target)
            .positional([command])
    }

    /// `display-message -p -t PANE FORMAT`: `format` expanded for `pane`.
    pub fn display(pane: &PaneId, format: &str) -> Command {
        Command::new("display-message")
            .flag("-p")
            .target(Target::Pane(pane))
            .positional([format])
    }

    /// `capture-pane -p -N -t PANE`: the visible screen as text, one line
    /// per row, trailing spaces kept (`-N`) so the cursor column is right.
    pub fn capture_screen(pane: &PaneId) -> Command {
        Command::new("capture-pane")
            .flag("-p")
            .flag("-N")
            .target(Target::Pane(pane))
    }

    /// `capture-pane -p -e -J -S -LINES`: the pane's last `lines` lines of
    /// history and its screen, with escape sequences for colours, wrapped
    /// lines joined.
    pub fn capture_history(pane: &PaneId, lines: u32) -> Command {
        Command::new("capture-pane")
            .flag("-p")
            .flag("-e")
            .flag("-J")
            .opt("-S", format!("-{lines}"))
            .target(Target::Pane(pane))
    }

    /// `wait-for CHANNEL`: returns once the channel is signalled (at once if
    /// it was signalled while no one waited).
    pub fn wait_channel(channel: &str) -> Command {
        Command::new("wait-for").positional([channel])
    }

    /// `wait-for -S CHANNEL`: wakes whoever waits on the channel.
    pub fn signal_channel(channel: &str) -> Command {
        Command::new("wait-for").flag("-S").positional([channel])
    }

    /// `attach-session -t =NAME [-r]`.
    /// `attach-session` as a terminal user does (`tmuxd attach`).
    pub fn attach(name: &Name, read_only: bool) -> Command {
        let c = Command::new("attach-session").target(Target::Session(name));
        if read_only {
            c.flag("-r")
        } else {
            c
        }
    }

    /// `attach-session` for a web viewer: with `ignore-size`, so that it
    /// sizes no window until [`Command::take_size`] (the page's size
    /// policy, in `web::terminal`).
    pub fn attach_viewer(name: &Name, read_only: bool) -> Command {
        let flags = if read_only {
            "read-only,ignore-size"
        } else {
            "ignore-size"
        };
        Command::new("attach-session")
            .opt("-f", flags)
            .target(Target::Session(name))
    }

    /// Client `tty` (its terminal's path) counts when tmux sizes windows:
    /// its `ignore-size` flag cleared (tmux then sizes each window by its
    /// latest client, `window-size latest`).
    pub fn take_size(tty: &Path) -> Command {
        Command::new("refresh-client")
            .opt("-t", tty)
            .opt("-f", "!ignore-size")
    }

    /// Client `tty` becomes session `name`'s latest client, as typing
    /// makes it (`switch-client` to the session it is on).
    pub fn make_latest(tty: &Path, name: &Name) -> Command {
        Command::new("switch-client")
            .opt("-c", tty)
            .target(Target::Session(name))
    }

    /// `list-clients -t =NAME -F FORMAT`: the clients attached to session `name`.
    pub fn list_clients(name: &Name, format: &str) -> Command {
        Command::new("list-clients")
            .target(Target::Session(name))
            .opt("-F", format)
    }

    /// A server option (`set-option -s`).
    pub fn set_server_option(option: &str, value: &str) -> Command {
        Command::new("set-option")
            .flag("-s")
            .positional([option, value])
    }

    /// The command's name (`send-keys`), for error messages.
    pub fn name(&self) -> String {
        self.args[0].to_string_lossy().into_owned()
    }

    /// Length in bytes of the arguments, for tmux's message size limit.
    pub fn encoded_len(&self) -> usize {
        self.args.iter().map(|a| a.len() + 1).sum()
    }
}

/// Keys we press by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialKey {
    Enter,
    Interrupt,
}

impl SpecialKey {
    fn name(self) -> &'static str {
        match self {
            SpecialKey::Enter => "Enter",
            SpecialKey::Interrupt => "C-c",
        }
    }
}

/// Escapes one argument for tmux's argv parser: a trailing `;` would end
/// the command, so it is written `\;`, which tmux turns back into `;`.
fn escape_arg(arg: &OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = arg.as_bytes();
    if bytes.last() == Some(&b';') {
        let mut v = bytes[..bytes.len() - 1].to_vec();
        v.extend_from_slice(b"\\;");
        OsString::from_vec(v)
    } else {
        arg.to_owned()
    }
}

/// The argv after `tmux -S SOCKET` for a sequence of commands run in one
/// invocation (separated by a bare `;`).
pub fn invocation_args(commands: &[Command]) -> Vec<OsString> {
    let mut argv = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        if i > 0 {
            argv.push(OsString::from(";"));
        }
        argv.extend(c.args.iter().map(|a| escape_arg(a)));
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(argv: Vec<OsString>) -> Vec<String> {
        argv.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn trailing_semicolons_are_escaped_everywhere() {
        let pane = PaneId::parse("%3").unwrap();
        let argv = strings(invocation_args(&[
            Command::send_text(&pane, "ls;"),
            Command::send_key(&pane, SpecialKey::Enter),
        ]));
        assert_eq!(
            argv,
            [
                "send-keys",
                "-l",
                "-t",
                "%3",
                "--",
                "ls\\;",
                ";",
                "send-keys",
                "-t",
                "%3",
                "--",
                "Enter"
            ]
        );
        // A text already ending in `\;` keeps its backslash.
        let argv = strings(invocation_args(&[Command::send_text(&pane, "a\\;")]));
        assert_eq!(argv.last().unwrap(), "a\\\\;");
        // Semicolons elsewhere need nothing.
        let argv = strings(invocation_args(&[Command::send_text(&pane, "a;b")]));
        assert_eq!(argv.last().unwrap(), "a;b");
    }

    #[test]
    fn targets_are_exact() {
        let n = Name::new("main").unwrap();
        let argv = strings(invocation_args(&[Command::has_session(&n)]));
        assert_eq!(argv, ["has-session", "-t", "=main"]);
        assert_eq!(Target::Window(&n).arg(), "=main:");
    }

    #[test]
    fn text_that_looks_like_a_flag_is_positional() {
        let pane = PaneId::parse("%0").unwrap();
        let argv = strings(invocation_args(&[Command::send_text(&pane, "-t =x")]));
        assert_eq!(&argv[4..], ["--", "-t =x"]);
    }

    #[test]
    fn pane_ids() {
        assert!(PaneId::parse("%12").is_some());
        for bad in ["12", "%", "%1a", "=main:", "%-1", ""] {
            assert!(PaneId::parse(bad).is_none(), "{bad}");
        }
    }
}
