//! tmuxd's HTTP/1.1 client for its own calls out (webhooks, OpenID
//! Connect): one request per connection (hyper's client connection, TLS
//! by rustls), a deadline on the whole exchange, the answer's body capped.

use std::time::Duration;

use hyper::header;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::HttpUrl;

/// Connect, send and read the answer within this.
const DEADLINE: Duration = Duration::from_secs(15);

/// What was asked.
pub struct Request<'a> {
    pub method: hyper::Method,
    pub url: &'a HttpUrl,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The answer's body is read up to this many bytes (more: an error).
    pub max_answer: usize,
}

/// The answer.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `request`; its answer.
pub async fn send(request: Request<'_>) -> Result<Answer, String> {
    tokio::time::timeout(DEADLINE, exchange(request))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {DEADLINE:?}")))
}

async fn exchange(request: Request<'_>) -> Result<Answer, String> {
    let url = request.url;
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("connect: {}", crate::config::io_reason(&e)))?;
    let default_port = if url.tls { 443 } else { 80 };
    let host = match url.port {
        p if p == default_port => url.host.clone(),
        p => format!("{}:{p}", url.host),
    };
    let mut builder = hyper::Request::builder()
        .method(request.method)
        .uri(url.path.as_str())
        .header(header::HOST, host)
        .header(header::USER_AGENT, "tmuxd");
    for (k, v) in &request.headers {
        builder = builder.header(*k, v.as_str());
    }
    let req = builder
        .body(axum::body::Body::from(request.body))
        .map_err(|e| format!("request: {e}"))?;
    let max = request.max_answer;
    if !url.tls {
        return over(tcp, req, max).await;
    }
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| format!("server name: {e}"))?;
    let connector = crate::tls::connector().map_err(|e| format!("TLS: {e}"))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    over(tls, req, max).await
}

async fn over<S>(
    stream: S,
    req: hyper::Request<axum::body::Body>,
    max: usize,
) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // The connection is driven beside the request (it hands the answer
    // over, then may close) and ended with it: nothing outlives the
    // deadline.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), max)
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(Answer {
        status,
        body: body.to_vec(),
    })
}

/// Percent-encodes `s` for a URL path segment, query value or form field
/// (everything but RFC 3986's unreserved characters).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
