//! `tmuxd sandbox-exec [--forward ADDR=HOST:PORT]... -- ARGV`: the first
//! program inside the sandbox. It gives the agent the default handling of
//! Ctrl-C and friends back (bubblewrap runs with them ignored, so a Ctrl-C
//! meant for the agent cannot end the sandbox), and with an allow-list
//! listens on each allowed address in the sandbox's own network namespace
//! and relays every connection over the daemon's Unix socket, naming the
//! session and the target; the daemon connects only to what the session's
//! policy lists. Without an allow-list it execs the agent.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{signal, SigHandler, Signal};

/// Relayed connections open at once; more are refused.
const MAX_RELAYS: usize = 64;

/// How long the daemon may take to accept a relayed connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the agent's terminal sends as signals (Ctrl-C, Ctrl-\, Ctrl-Z).
const TERMINAL_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTSTP];

/// Sets the handling of the terminal's signals for this process.
pub fn set_terminal_signals(handler: SigHandler) {
    for s in TERMINAL_SIGNALS {
        // SAFETY: SIG_IGN and SIG_DFL are not functions; nothing else runs
        // in this process yet.
        unsafe {
            let _ = signal(s, handler);
        }
    }
}

/// `tmuxd sandbox-exec`'s arguments.
pub struct Exec {
    pub net_socket: Option<PathBuf>,
    pub session: Option<String>,
    /// `ADDR=HOST:PORT`.
    pub forward: Vec<String>,
    pub argv: Vec<String>,
}

/// Runs the agent; returns its exit status (or why it could not start).
pub fn main(exec: Exec) -> i32 {
    let Some(program) = exec.argv.first() else {
        eprintln!("tmuxd: no agent command to run");
        return 2;
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(&exec.argv[1..]);
    // SAFETY: signal() with SIG_DFL is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            for s in TERMINAL_SIGNALS {
                let _ = signal(s, SigHandler::SigDfl);
            }
            Ok(())
        });
    }
    let forwards = match (&exec.net_socket, &exec.session) {
        (Some(socket), Some(session)) => match network(&exec.forward) {
            Ok(l) => Some((socket.clone(), session.clone(), l)),
            Err(e) => {
                eprintln!("tmuxd: cannot set up the sandbox's network: {e}");
                return 1;
            }
        },
        _ => None,
    };
    let Some((socket, session, listeners)) = forwards else {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        return not_started(program, &e);
    };
    let open = Arc::new(AtomicUsize::new(0));
    for (listener, target) in listeners {
        let (socket, session, open) = (socket.clone(), session.clone(), open.clone());
        std::thread::spawn(move || accept(listener, &socket, &session, &target, &open));
    }
    match cmd.status() {
        Ok(st) => {
            use std::os::unix::process::ExitStatusExt;
            st.code()
                .or_else(|| st.signal().map(|s| 128 + s))
                .unwrap_or(1)
        }
        Err(e) => not_started(program, &e),
    }
}

fn not_started(program: &str, e: &std::io::Error) -> i32 {
    if e.kind() == std::io::ErrorKind::NotFound {
        eprintln!("\ntmuxd: cannot start the agent: {program}: command not found in the sandbox");
        127
    } else {
        eprintln!("\ntmuxd: cannot start the agent: {program}: {e}");
        126
    }
}

/// The sandbox's own network namespace with a listener on every
/// `ADDR=TARGET`, and no capability left.
fn network(forward: &[String]) -> Result<Vec<(TcpListener, String)>, String> {
    super::netns::isolate().map_err(|e| format!("a network namespace of its own: {e}"))?;
    let listeners = listen_all(forward);
    super::netns::drop_capabilities().map_err(|e| format!("dropping capabilities: {e}"))?;
    listeners
}

/// Binds every `ADDR=TARGET` before the agent starts.
fn listen_all(forward: &[String]) -> Result<Vec<(TcpListener, String)>, String> {
    forward
        .iter()
        .map(|f| {
            let (addr, target) = f
                .split_once('=')
                .ok_or_else(|| format!("{f:?} is not ADDR=HOST:PORT"))?;
            let l = TcpListener::bind(addr).map_err(|e| format!("listening on {addr}: {e}"))?;
            Ok((l, target.to_owned()))
        })
        .collect()
}

/// Relays each connection to `listener` until the process ends (with the
/// agent).
fn accept(
    listener: TcpListener,
    socket: &Path,
    session: &str,
    target: &str,
    open: &Arc<AtomicUsize>,
) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_RELAYS {
            open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (socket, header, open) = (
            socket.to_owned(),
            format!("{session} {target}\n"),
            open.clone(),
        );
        std::thread::spawn(move || {
            let _ = relay(conn, &socket, &header);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// One connection: the header to the daemon, its `ok`, then bytes both
/// ways until either side closes.
fn relay(conn: TcpStream, socket: &Path, header: &str) -> std::io::Result<()> {
    let mut up = UnixStream::connect(socket)?;
    up.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    up.write_all(header.as_bytes())?;
    // Byte by byte: what follows the answer is the target's, not ours to
    // buffer.
    let mut answer = Vec::new();
    let mut byte = [0u8];
    while answer.len() < 64 && (&up).read(&mut byte)? == 1 && byte[0] != b'\n' {
        answer.push(byte[0]);
    }
    if answer != b"ok" {
        return Ok(());
    }
    up.set_read_timeout(None)?;
    let (mut up_r, mut conn_w) = (up.try_clone()?, conn.try_clone()?);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut conn_w);
        let _ = conn_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut conn_r, mut up_w) = (conn, up);
    let _ = std::io::copy(&mut conn_r, &mut up_w);
    let _ = up_w.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
    Ok(())
}
