//! `tmuxd attach` for a session whose tmux server belongs to another
//! account: a terminal relay.
//!
//! Run as root, `tmuxd attach alice` must not hand root's terminal to a
//! process of alice's: her tmux server can make its clients run commands
//! (`detach-client -E`), and a process holding a terminal can push input
//! into it (`TIOCSTI`) for the shell that gets it back. So the tmux client
//! runs as alice on a PTY of its own ([`ViewerPty`], as for web viewers),
//! and this relay copies bytes between that PTY and the caller's terminal,
//! which it puts in raw mode and restores on every exit path.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::unix::AsyncFd;

use crate::names::Name;
use crate::relay::ViewerPty;
use crate::tmux::Tmux;

/// Restores the caller's terminal mode on drop.
struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    fn enter() -> std::io::Result<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The caller's terminal size.
fn terminal_size() -> (u16, u16) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes into a valid local winsize.
    let ok = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (ws.ws_col, ws.ws_row)
    } else {
        (80, 24)
    }
}

/// Attaches to `session` through a PTY whose tmux client runs as the
/// server's account; returns when the client exits (detach, or the session
/// ends).
pub async fn relay(tmux: &Tmux, session: &Name, read_only: bool) -> std::io::Result<()> {
    if !nix::unistd::isatty(std::io::stdin())? {
        return Err(std::io::Error::other(
            "attach needs a terminal on standard input",
        ));
    }
    let (cols, rows) = terminal_size();
    let pty = ViewerPty::spawn(tmux, session, read_only, cols, rows)?;
    let _raw = RawTerminal::enter()?;
    // A description of the terminal of our own, non-blocking for the
    // reactor (the caller's shell shares fd 0's and must not see that flag).
    use nix::fcntl::OFlag;
    let stdin: OwnedFd = nix::fcntl::open(
        "/proc/self/fd/0",
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: `stdin` is our own fd, owned by the AsyncFd until drop.
    let input = unsafe { AsyncFd::register_with_interest(stdin, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut out = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut keys = vec![0u8; 4096];
    loop {
        tokio::select! {
            n = pty.read(&mut out, &mut filled, None) => {
                let n = n?;
                filled = 0;
                if n == 0 {
                    return Ok(());
                }
                // The caller's terminal; small writes, and the CLI has
                // nothing else to do meanwhile.
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&out[..n])?;
                stdout.flush()?;
            }
            r = input.readable() => {
                let mut guard = r?;
                match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), &mut keys).map_err(std::io::Error::from)) {
                    Ok(Ok(0)) => return Ok(()),
                    Ok(Ok(n)) => pty.write_all(&keys[..n]).await?,
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            _ = winch.recv() => {
                let (cols, rows) = terminal_size();
                pty.resize(cols, rows)?;
            }
        }
    }
}
