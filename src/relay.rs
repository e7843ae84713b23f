//! One viewer's terminal: a PTY running `tmux attach` (read-only viewers
//! `attach -r`) on the session's socket.
//!
//! portable-pty opens the PTY and spawns the tmux client with it as the
//! controlling terminal; the daemon then does non-blocking I/O on the PTY
//! master through the tokio reactor, so a viewer costs no threads and no
//! polling. Back-pressure is tmux's own: when a viewer does not read, its
//! tmux client blocks on the PTY, and the tmux server skips output for that
//! client and redraws later, so neither the agent nor other viewers slow
//! down, and the daemon holds at most one read buffer per viewer.

use std::io;
use std::os::fd::OwnedFd;

use portable_pty::{CommandBuilder, MasterPty, PtySize};
use tokio::io::unix::AsyncFd;

use crate::names::Name;
use crate::tmux::{Command as TmuxCommand, Tmux};

/// Largest terminal accepted from a viewer.
pub const MAX_COLS: u16 = 1000;
pub const MAX_ROWS: u16 = 1000;

/// A PTY running `tmux attach` for one viewer.
pub struct ViewerPty {
    io: AsyncFd<OwnedFd>,
    /// Only used for resizing; a mutex makes the viewer `Sync`.
    master: std::sync::Mutex<Box<dyn MasterPty + Send>>,
    child: Option<Box<dyn portable_pty::Child + Send + Sync>>,
}

impl ViewerPty {
    /// Attaches to `session` on `tmux`'s socket with a `cols`×`rows` terminal.
    pub fn spawn(
        tmux: &Tmux,
        session: &Name,
        read_only: bool,
        cols: u16,
        rows: u16,
    ) -> io::Result<ViewerPty> {
        let pair = portable_pty::native_pty_system()
            .openpty(size(cols, rows))
            .map_err(io::Error::other)?;
        let argv = tmux.argv(&[TmuxCommand::attach(session, read_only)]);
        let mut cmd = CommandBuilder::new(&argv[0]);
        cmd.args(&argv[1..]);
        for var in crate::tmux::SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("TERM", "xterm-256color");
        let child = pair.slave.spawn_command(cmd).map_err(io::Error::other)?;
        // Only the child keeps the slave open: EOF when it exits.
        drop(pair.slave);
        let master = pair.master;
        let raw = master
            .as_raw_fd()
            .ok_or_else(|| io::Error::other("the PTY has no file descriptor"))?;
        let fd = nix::unistd::dup(unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) })?;
        set_nonblocking(&fd)?;
        // SAFETY: `fd` is our own duplicate, owned by the AsyncFd until drop.
        let io = unsafe {
            AsyncFd::register_with_interest(
                fd,
                tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE,
            )
        }
        .map_err(|e| e.into_parts().1)?;
        Ok(ViewerPty {
            io,
            master: std::sync::Mutex::new(master),
            child: Some(child),
        })
    }

    /// Reads what tmux drew; `Ok(0)` once the tmux client has exited.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.io.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Ok(n)) => return Ok(n),
                // The slave side closed: Linux reports EIO, not EOF.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes keystrokes to tmux.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.io.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Resizes the terminal; tmux redraws for the new size.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        self.master
            .lock()
            .expect("pty lock")
            .resize(size(cols, rows))
            .map_err(io::Error::other)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.process_id())
    }
}

impl Drop for ViewerPty {
    fn drop(&mut self) {
        // Hang up the tmux client (it detaches; the session is untouched)
        // and reap it off the async threads: portable-pty's kill waits.
        if let Some(mut child) = self.child.take() {
            let mut reap = move || {
                let _ = child.kill();
                let _ = child.wait();
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn_blocking(reap)),
                Err(_) => reap(),
            }
        }
    }
}

fn size(cols: u16, rows: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Whether a viewer's requested size is acceptable.
pub fn valid_size(cols: u32, rows: u32) -> Option<(u16, u16)> {
    let ok = (1..=u32::from(MAX_COLS)).contains(&cols) && (1..=u32::from(MAX_ROWS)).contains(&rows);
    ok.then_some((cols as u16, rows as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(valid_size(80, 24), Some((80, 24)));
        for (c, r) in [(0, 24), (80, 0), (1001, 24), (80, 100_000), (u32::MAX, 1)] {
            assert_eq!(valid_size(c, r), None);
        }
    }
}
