//! The accept loop: what a connection may hold before the router sees it.
//!
//! axum's `serve` has no header-read timeout and no caps, so connections are
//! served here with hyper's HTTP/1 server directly: `TCP_NODELAY` (keystroke
//! echoes must not wait for Nagle), at most `max_connections_per_address`
//! open connections per peer address (more are closed at once and counted),
//! and `header_timeout` for a request's headers, which is also how long an
//! idle keep-alive connection may wait for its next request. Upgrades
//! (WebSocket terminals) leave hyper's hands after the handshake. On
//! shutdown, open connections finish their request (bounded) and close.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};

use super::AppState;

/// How long shutdown waits for a connection's request in progress.
const DRAIN: Duration = Duration::from_secs(5);

/// Open connections per peer address. std mutex: counting only.
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection, counted until dropped.
struct Slot {
    table: Connections,
    addr: IpAddr,
}

impl Connections {
    fn acquire(&self, addr: IpAddr, max: usize) -> Option<Slot> {
        let mut map = self.0.lock().expect("connections lock");
        let n = map.entry(addr).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        crate::metrics::add(&crate::metrics::COUNTERS.connections, 1);
        Some(Slot {
            table: self.clone(),
            addr,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().expect("connections lock");
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
        crate::metrics::COUNTERS
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Accepts and serves connections until `state.cancel`.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState, app: Router) {
    let cancel = state.cancel.clone();
    let connections = Connections::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = cancel.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of fds and the like: say so, and let the backlog wait
                // briefly rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    _ = cancel.cancelled() => break,
                }
            }
        };
        let bounds = state.config().web.bounds;
        let Some(slot) = connections.acquire(peer.ip(), bounds.max_connections_per_address) else {
            crate::metrics::limit_refused("connections_per_address");
            tracing::warn!(addr = %peer.ip(), max = bounds.max_connections_per_address, "too many connections from one address; closing");
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let cancel = cancel.clone();
        state.tracker.spawn(async move {
            let _slot = slot;
            connection(stream, peer, app, bounds.header_timeout, cancel).await;
        });
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move {
            use tower_service::Service;
            app.call(req.map(axum::body::Body::new)).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = cancel.cancelled() => None,
    };
    let result = match done {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(DRAIN, conn).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        // Timeouts and peers going away are ordinary.
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}
