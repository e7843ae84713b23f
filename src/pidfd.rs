//! Waiting for a process that is not our child to exit, without polling.
//!
//! Agents are children of their tmux server, not of the daemon, and outlive
//! it; the daemon learns that one exited through a pidfd (Linux 5.3+), which
//! becomes readable when the process ends. An idle session costs no wakeups.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A handle on a process, readable once it has exited.
pub struct PidFd(AsyncFd<OwnedFd>);

impl PidFd {
    /// Opens a pidfd for `pid`. Fails with `ESRCH` if no such process exists.
    ///
    /// A pid can be reused once its process is reaped, so callers confirm
    /// after opening that `pid` still is the process they meant (for us: the
    /// pane is still alive with that pid), which proves the pidfd refers to it.
    pub fn open(pid: u32) -> io::Result<PidFd> {
        let pid =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a fresh descriptor that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: `fd` is open, owned by the AsyncFd, and never replaced.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(PidFd(fd))
    }

    /// Completes when the process has exited.
    pub async fn exited(&self) -> io::Result<()> {
        let _ready = self.0.readable().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_when_the_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = PidFd::open(child.id()).unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(100), fd.exited());
        assert!(waiting.await.is_err(), "must not be ready while running");
        child.kill().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), fd.exited())
            .await
            .expect("pidfd became readable")
            .unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn refuses_a_missing_process() {
        assert!(PidFd::open(u32::MAX).is_err());
    }
}
