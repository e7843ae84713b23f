//! One HTTP/1.1 POST (hyper's client connection, TLS by rustls), with a
//! deadline on the whole exchange.

use std::time::Duration;

use hyper::header;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::message::Request;
use crate::config::WebhookTarget;

/// Connect, send and read the status within this.
const DEADLINE: Duration = Duration::from_secs(15);

/// POSTs `request` to `target`; the response's status.
pub async fn post(target: &WebhookTarget, request: &Request) -> Result<u16, String> {
    tokio::time::timeout(DEADLINE, exchange(target, request))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {DEADLINE:?}")))
}

async fn exchange(target: &WebhookTarget, request: &Request) -> Result<u16, String> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect: {}", crate::config::io_reason(&e)))?;
    let default_port = if target.tls { 443 } else { 80 };
    let host = match target.port {
        p if p == default_port => target.host.clone(),
        p => format!("{}:{p}", target.host),
    };
    let mut builder = hyper::Request::post(target.path.as_str())
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, request.content_type)
        .header(header::USER_AGENT, "tmuxd");
    for (k, v) in &request.headers {
        builder = builder.header(*k, v.as_str());
    }
    let req = builder
        .body(axum::body::Body::from(request.body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    if !target.tls {
        return send(tcp, req).await;
    }
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| format!("server name: {e}"))?;
    let connector = crate::tls::connector().map_err(|e| format!("TLS: {e}"))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    send(tls, req).await
}

async fn send<S>(stream: S, req: hyper::Request<axum::body::Body>) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // The connection is driven beside the request (it hands the response
    // over, then may close) and ended with it: nothing outlives the
    // deadline.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    Ok(resp.status().as_u16())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
