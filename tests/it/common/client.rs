//! Clients for the daemon's web side: WebSocket terminals
//! (tokio-tungstenite) and HTTP calls (ureq).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a terminal; `Err` holds the HTTP status when the upgrade is refused.
pub async fn connect(
    base: &str,
    path: &str,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, u16> {
    let url = format!("{}{path}", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("connect {path}: {e}"),
    }
}

/// Reads until the server closes; returns the close code and reason.
pub async fn close_of(ws: &mut Ws) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next())
            .await
            .expect("close within 10 s")
        {
            Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("websocket error before close: {e}"),
        }
    }
}

/// Reads terminal output until `needle` shows up; returns the bytes read.
pub async fn read_until(ws: &mut Ws, needle: &str, secs: u64) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    loop {
        if String::from_utf8_lossy(&seen).contains(needle) {
            return seen;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!(
                "{needle:?} not seen in {secs}s; got {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(Some(Ok(Message::Binary(b)))) => {
                seen.extend_from_slice(&b);
                // Keep memory small on floods: the needle is short.
                if seen.len() > 1 << 20 {
                    seen.drain(..seen.len() - 4096);
                }
            }
            Ok(Some(Ok(Message::Text(_))))
            | Ok(Some(Ok(Message::Ping(_))))
            | Ok(Some(Ok(Message::Pong(_)))) => {}
            Ok(other) => panic!("unexpected {other:?} waiting for {needle:?}"),
        }
    }
}

/// The first text frame: the server's hello.
pub async fn hello(ws: &mut Ws) -> serde_json::Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("hello")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Binary(_))) => continue,
            other => panic!("expected hello, got {other:?}"),
        }
    }
}

pub async fn type_line(ws: &mut Ws, line: &str) {
    ws.send(Message::Binary(format!("{line}\r").into_bytes().into()))
        .await
        .unwrap();
}

pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// (status, body) of an HTTP request with optional bearer token and JSON.
pub fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, String) {
    let agent = http();
    let mut resp = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call().unwrap()
        }
        (m, body) => {
            let mut r = match m {
                "POST" => agent.post(url),
                "DELETE" => return delete(url, token),
                _ => unreachable!(),
            };
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            match body {
                Some(b) => r.send_json(b).unwrap(),
                None => r.send_empty().unwrap(),
            }
        }
    };
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

pub fn delete(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = http().delete(url);
    if let Some(t) = token {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = r.call().unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// Confirms the caller's first pending mailed command on the page's API
/// (`POST .../confirm`); returns it as the API listed it.
pub fn confirm_pending(base: &str, token: &str) -> serde_json::Value {
    let (status, pending) = call(
        "GET",
        &format!("{base}/api/mail/pending"),
        Some(token),
        None,
    );
    assert_eq!(status, 200, "{pending}");
    let pending: serde_json::Value = serde_json::from_str(&pending).unwrap();
    let first = pending[0].clone();
    let id = first["id"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing pending: {pending}"));
    let (status, body) = call(
        "POST",
        &format!("{base}/api/mail/pending/{id}/confirm"),
        Some(token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    first
}
