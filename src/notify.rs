//! systemd's service notification protocol (`sd_notify`): READY, STATUS,
//! WATCHDOG, RELOADING, STOPPING, sent as datagrams to `$NOTIFY_SOCKET`.
//! Without systemd (no `$NOTIFY_SOCKET`) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (e.g. `READY=1\nSTATUS=...`). Returns whether systemd was
/// told; errors are logged, never fatal.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let result = (|| -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), &path)?;
        }
        Ok(())
    })();
    if let Err(e) = &result {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
    result.is_ok()
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when it is
/// meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
