//! The CLI's side of the control socket: one request line, then (for an
//! upload) the body until the write side is shut, then the response line
//! and whatever streams after it.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{Request, Response};

/// The connection's read side after the response line.
pub type Rest = BufReader<tokio::io::Take<tokio::net::unix::OwnedReadHalf>>;

/// Sends `request` to the daemon. `Ok(None)` when no daemon is running.
pub async fn request(path: &Path, request: &Request) -> io::Result<Option<Response>> {
    Ok(request_stream(path, request).await?.map(|(r, _)| r))
}

/// Like [`request`], also returning the connection's remaining stream.
pub async fn request_stream(
    path: &Path,
    request: &Request,
) -> io::Result<Option<(Response, Rest)>> {
    request_with_body(path, request, None::<&mut tokio::io::Empty>).await
}

/// Like [`request_stream`], sending `body` after the request line (then
/// shutting the write side, so the daemon sees its end).
pub async fn request_with_body(
    path: &Path,
    request: &Request,
    body: Option<&mut (impl AsyncRead + Unpin)>,
) -> io::Result<Option<(Response, Rest)>> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    if let Some(body) = body {
        // The daemon may answer (and stop reading) before the end: its
        // answer says why.
        let _ = tokio::io::copy(body, &mut write).await;
        write.shutdown().await?;
    }
    let mut answer = String::new();
    let mut reader = BufReader::new(read.take(u64::MAX));
    // Creating a session waits for tmux; a minute is generous.
    tokio::time::timeout(Duration::from_secs(60), reader.read_line(&mut answer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the daemon did not answer"))??;
    let response =
        serde_json::from_str(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((response, reader)))
}
