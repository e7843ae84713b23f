//! One viewer's terminal: a PTY running `tmux attach` (read-only viewers
//! `attach -r`) on the session's socket.
//!
//! The PTY is opened here and the tmux client spawned with it as the
//! controlling terminal, as the account that owns the tmux server; the
//! daemon then does non-blocking I/O on the PTY
//! master through the tokio reactor, so a viewer costs no threads and no
//! polling. Back-pressure is tmux's own: when a viewer does not read, its
//! tmux client blocks on the PTY, and the tmux server skips output for that
//! client and redraws later, so neither the agent nor other viewers slow
//! down, and the daemon holds at most one read buffer per viewer.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use crate::names::Name;
use crate::tmux::{Command as TmuxCommand, Tmux};

/// Output read in one go of at least this much is a flood's (or a
/// redraw's), worth gathering (see [`ViewerPty::read`]).
const GATHER_FROM: usize = 1024;
/// How long a flood's output is gathered into one frame: what streaming
/// output waits at most (an eighth of a 60 Hz screen's frame). 1 ms cost
/// 16% (50 viewers) to 29% (10 viewers) more CPU per viewer-MB.
const GATHER_FOR: Duration = Duration::from_millis(2);
/// Output read this soon after the last is streaming.
const STREAMING: Duration = Duration::from_millis(2);

/// Largest terminal accepted from a viewer.
pub const MAX_COLS: u16 = 1000;
pub const MAX_ROWS: u16 = 1000;

/// A PTY running `tmux attach` for one viewer.
pub struct ViewerPty {
    /// The PTY master, non-blocking.
    io: AsyncFd<OwnedFd>,
    child: Option<std::process::Child>,
    /// The terminal's path (`/dev/pts/N`): tmux names the client by it.
    tty: std::path::PathBuf,
}

impl ViewerPty {
    /// Attaches to `session` on `tmux`'s socket with a `cols`×`rows` terminal.
    ///
    /// The tmux client runs as the account that owns the tmux server (see
    /// [`Tmux::std_command`]): a tmux server can make its clients run
    /// commands (`detach-client -E`, `lock-command`), so a client started
    /// as root would be root code execution for whoever controls the
    /// server. portable-pty cannot spawn under another uid, so the PTY is
    /// opened and the client started here: `setsid`, the slave as its
    /// controlling terminal, then the account switch.
    pub fn spawn(
        tmux: &Tmux,
        session: &Name,
        read_only: bool,
        cols: u16,
        rows: u16,
    ) -> io::Result<ViewerPty> {
        let pty = nix::pty::openpty(&winsize(cols, rows), None)?;
        let tty = nix::unistd::ttyname(&pty.slave)?;
        if let Some((uid, gid)) = tmux.account_ids() {
            // As login(1) does: the terminal belongs to who uses it.
            nix::unistd::fchown(&pty.slave, Some(uid.into()), Some(gid.into()))?;
        }
        let mut cmd = tmux.std_command(&[TmuxCommand::attach_viewer(session, read_only)]);
        cmd.env("TERM", "xterm-256color")
            .stdin(Stdio::from(pty.slave.try_clone()?))
            .stdout(Stdio::from(pty.slave.try_clone()?))
            .stderr(Stdio::from(pty.slave));
        // SAFETY: only async-signal-safe calls (setsid, ioctl) in the child.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        // Only the child keeps the slave open (the Command held our
        // copies and is dropped here): EOF when it exits.
        drop(cmd);
        Ok(ViewerPty {
            io: watch(pty.master)?,
            child: Some(child),
            tty,
        })
    }

    /// Reads what tmux drew into `buf[*filled..]`, counting it in
    /// `*filled`, and returns `*filled` once it is a frame to send (the
    /// caller sends `buf[..n]` and sets `*filled` to 0); `Ok(0)` once the
    /// tmux client has exited. `previous` is when the last output was
    /// read, unless the viewer typed since.
    ///
    /// tmux writes a flood to its clients in small pieces (a few lines and
    /// cursor moves each, as it reads them from the pane; a hundred bytes
    /// each with 50 viewers): a frame, a TCP send and a trip through the
    /// relay per piece was most of what a viewer cost. Output that streams
    /// (readable within [`STREAMING`] of the last read, with no keystroke
    /// between) or comes in bulk (a first read of at least
    /// [`GATHER_FROM`]) is let gather in the PTY for [`GATHER_FOR`], then
    /// taken in one read, into one frame. The echo of a key, and output
    /// after a pause, go out at once.
    ///
    /// Cancel-safe: what was read stays counted in `*filled` when the
    /// future is dropped (a relay's `select!` takes a keystroke meanwhile),
    /// and the next call goes on gathering from there.
    pub async fn read(
        &self,
        buf: &mut [u8],
        filled: &mut usize,
        previous: Option<Instant>,
    ) -> io::Result<usize> {
        loop {
            if *filled == 0 {
                // Streaming output is not read at once (that would be a read
                // of its own); a first read tells whether other output is bulk.
                self.io.readable().await?.retain_ready();
                let streaming = previous.is_some_and(|at| at.elapsed() < STREAMING);
                if !streaming {
                    *filled = self.read_some(buf).await?;
                    if *filled < GATHER_FROM {
                        return Ok(*filled);
                    }
                }
            }
            // Not reading meanwhile: each piece tmux writes would be a
            // wakeup and a read of its own.
            tokio::time::sleep(GATHER_FOR).await;
            let room = &mut buf[*filled..];
            let taken = match self.io.readable().now_or_never() {
                Some(ready) => Self::read_ready(&mut ready?, room),
                None => Err(io::ErrorKind::WouldBlock.into()),
            };
            match taken {
                Ok(n) => *filled += n,
                // Nothing came after all (the readiness was left from a
                // read that filled the buffer): wait for output again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && *filled == 0 => continue,
                // Said by the next read, after what was gathered.
                Err(_) if *filled > 0 => {}
                Err(e) => return Err(e),
            }
            return Ok(*filled);
        }
    }

    /// One read once the PTY is readable.
    async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match Self::read_ready(&mut self.io.readable().await?, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                read => return read,
            }
        }
    }

    /// A read of a PTY said to be readable: `Ok(0)` once the tmux client
    /// has exited; `WouldBlock` (the readiness cleared) if it was empty.
    ///
    /// A read that leaves room in `buf` has emptied the PTY, and another
    /// one now would only find it empty, which is not free on a PTY (the
    /// kernel first waits for its worker to pass on what tmux wrote): the
    /// reactor is asked to wait for the next wakeup instead.
    fn read_ready(ready: &mut AsyncFdReadyGuard<'_, OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
        match ready.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
            Ok(Ok(n)) => {
                if n > 0 && n < buf.len() {
                    ready.clear_ready();
                }
                Ok(n)
            }
            // The slave side closed: Linux reports EIO, not EOF.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => Ok(0),
            Ok(Err(e)) => Err(e),
            Err(_would_block) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Writes keystrokes to tmux.
    ///
    /// The master is in the reactor for reading only: a PTY wakes its
    /// master's writers each time the tmux server reads input from the
    /// slave, so a master watched for writing woke the relay once more per
    /// keystroke, on the echo's way (`perf sched`: the daemon preempted the
    /// tmux server for it). Writing is tried at once; only when the PTY is
    /// full is a second descriptor of it watched for room, until it has
    /// some.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        let mut room: Option<AsyncFd<OwnedFd>> = None;
        while !data.is_empty() {
            match nix::unistd::write(self.io.get_ref(), data) {
                Ok(n) => data = &data[n..],
                Err(nix::errno::Errno::EAGAIN) => {
                    let watch = match room.take() {
                        Some(watch) => watch,
                        None => register(
                            self.io.get_ref().try_clone()?,
                            tokio::io::Interest::WRITABLE,
                        )?,
                    };
                    watch.writable().await?.clear_ready();
                    room = Some(watch);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Resizes the terminal; tmux redraws for the new size.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let ws = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads a valid winsize from a live PTY master.
        if unsafe { libc::ioctl(self.io.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The tmux client's terminal, as `list-clients` names it.
    pub fn tty(&self) -> &std::path::Path {
        &self.tty
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for ViewerPty {
    fn drop(&mut self) {
        // Hang up the tmux client (it detaches; the session is untouched)
        // and reap it off the async threads.
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

fn winsize(cols: u16, rows: u16) -> nix::pty::Winsize {
    nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The PTY master, non-blocking, in the tokio reactor.
fn watch(master: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    set_nonblocking(&master)?;
    // Readable only: see `ViewerPty::write_all`.
    register(master, tokio::io::Interest::READABLE)
}

/// `fd` in the tokio reactor for `interest`.
fn register(fd: OwnedFd, interest: tokio::io::Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor until it is dropped.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into_parts().1)
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

    /// A PTY whose master is read as a viewer's is (no tmux), and its
    /// slave, raw: what is written to it reaches the master unchanged.
    fn pty_pair() -> (ViewerPty, OwnedFd) {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let pty = nix::pty::openpty(&winsize(80, 24), None).unwrap();
        let mut raw = tcgetattr(&pty.slave).unwrap();
        cfmakeraw(&mut raw);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &raw).unwrap();
        let viewer = ViewerPty {
            io: watch(pty.master).unwrap(),
            child: None,
            tty: std::path::PathBuf::new(),
        };
        (viewer, pty.slave)
    }

    #[tokio::test]
    async fn output_read_before_a_dropped_gathering_is_sent_after_all() {
        let (pty, slave) = pty_pair();
        let mut buf = vec![0u8; 64 * 1024];
        let mut filled = 0;
        let mut dropped_with_output = 0;
        for round in 0..20u8 {
            // Bulk output: the read gathers after its first bytes.
            let data = vec![b'a' + round; 3000];
            nix::unistd::write(&slave, &data).unwrap();
            let mut got = Vec::new();
            // Dropped at its second poll, as a relay's `select!` drops it
            // for a keystroke: after its first read, while it gathers
            // (unless the machine was slow enough for the gathering to end).
            tokio::select! {
                biased;
                n = pty.read(&mut buf, &mut filled, None) => {
                    got.extend_from_slice(&buf[..n.unwrap()]);
                    filled = 0;
                }
                _ = tokio::task::yield_now() => dropped_with_output += usize::from(filled > 0),
            }
            while got.len() < data.len() {
                let read = pty.read(&mut buf, &mut filled, None);
                let n = tokio::time::timeout(Duration::from_secs(5), read)
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: {} of 3000 bytes came", got.len()))
                    .unwrap();
                got.extend_from_slice(&buf[..n]);
                filled = 0;
            }
            assert_eq!(got, data, "round {round}");
        }
        assert!(
            dropped_with_output > 0,
            "no read was dropped while gathering"
        );
    }

    #[tokio::test]
    async fn a_small_read_is_a_frame_at_once_and_the_end_is_zero() {
        let (pty, slave) = pty_pair();
        let mut buf = vec![0u8; 64 * 1024];
        let mut filled = 0;
        nix::unistd::write(&slave, b"k").unwrap();
        // An echo after a pause: no gathering (no timer to wait out).
        let read = pty.read(&mut buf, &mut filled, None);
        let n = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"k");
        filled = 0;
        drop(slave);
        let read = pty.read(&mut buf, &mut filled, None);
        let n = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "the slave's close reads as the end");
    }

    #[tokio::test]
    async fn streaming_output_written_in_pieces_is_one_frame() {
        let (pty, slave) = pty_pair();
        let mut buf = vec![0u8; 64 * 1024];
        let mut frames = Vec::new();
        // The kernel passes a piece on within the 2 ms window unless the
        // machine is very busy: one of five tries is enough. Without the
        // gathering none is one frame (the first piece is read alone).
        for _ in 0..5 {
            let mut filled = 0;
            nix::unistd::write(&slave, b"first ").unwrap();
            tokio::time::timeout(Duration::from_secs(5), pty.io.readable())
                .await
                .unwrap()
                .unwrap()
                .retain_ready();
            // tmux's next piece comes once the read waits.
            let next_piece = async {
                nix::unistd::write(&slave, b"second").unwrap();
                std::future::pending::<()>().await
            };
            let n = tokio::time::timeout(Duration::from_secs(5), async {
                tokio::select! {
                    biased;
                    n = pty.read(&mut buf, &mut filled, Some(Instant::now())) => n.unwrap(),
                    _ = next_piece => unreachable!(),
                }
            })
            .await
            .unwrap();
            frames.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if frames.last().is_some_and(|f| f == "first second") {
                return;
            }
            // What was left for a next frame, if anything.
            let mut rest = 0;
            let read = pty.read(&mut buf, &mut rest, None);
            let _ = tokio::time::timeout(Duration::from_millis(200), read).await;
        }
        panic!("the pieces were never one frame: {frames:?}");
    }

    #[tokio::test]
    async fn input_beyond_what_the_pty_holds_waits_for_room_and_arrives_whole() {
        let (pty, slave) = pty_pair();
        let data: Vec<u8> = (0..256 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        let want = data.len();
        // tmux reads its input late: the PTY fills, the write must wait.
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut got = Vec::new();
            let mut buf = vec![0u8; 8192];
            while got.len() < want {
                match nix::unistd::read(&slave, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), pty.write_all(&data))
            .await
            .expect("the write never found room")
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "the write did not wait: the PTY held all of it"
        );
        let got = tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        assert!(
            got == data,
            "{} of {want} bytes arrived, or out of order",
            got.len()
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(valid_size(80, 24), Some((80, 24)));
        for (c, r) in [(0, 24), (80, 0), (1001, 24), (80, 100_000), (u32::MAX, 1)] {
            assert_eq!(valid_size(c, r), None);
        }
    }
}
