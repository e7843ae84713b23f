//! Inbound mail by IMAP IDLE (async-imap), on a dedicated mailbox.
//!
//! On each connection: log in (TLS, STARTTLS, or plain to a loopback
//! host), select the mailbox, and compare its UIDVALIDITY with the one
//! stored; then hand every message above the stored last UID to the bridge
//! in UID order, flag it `\Seen` (or move it to the quarantine mailbox),
//! and store the new last UID. Then IDLE until the server reports news,
//! 25 minutes pass, or the daemon stops. A message is fetched with a
//! partial fetch one byte over the size cap, so an oversized message never
//! enters memory whole. A crash between handling and storing the UID is
//! harmless: the Message-ID is already marked handled. Errors reconnect
//! with backoff (1 s doubling to 60 s).

use std::time::Duration;

use anyhow::Context;
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::UnsolicitedResponse;
use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

use super::bridge::Bridge;
use super::outbox::read_password;
use super::state::ImapMark;
use super::Outcome;
use crate::config::{ImapConfig, MailSecurity, MailServer};

const IDLE_FOR: Duration = Duration::from_secs(25 * 60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection, plain or TLS.
pub trait ImapStream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> ImapStream for T {}
type Stream = Box<dyn ImapStream>;

async fn tls(server: &MailServer, tcp: TcpStream) -> anyhow::Result<Stream> {
    let name = rustls::pki_types::ServerName::try_from(server.host.clone())
        .with_context(|| format!("{:?} is not a TLS server name", server.host))?;
    let stream = crate::tls::connector()?
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    Ok(Box::new(stream))
}

/// Connects and logs in.
pub async fn login(server: &MailServer) -> anyhow::Result<Session<Stream>> {
    let addr = (server.host.as_str(), server.port);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")?
        .with_context(|| format!("connecting to {}:{}", server.host, server.port))?;
    let stream: Stream = match server.security {
        MailSecurity::Plain => Box::new(tcp),
        MailSecurity::Tls => tls(server, tcp).await?,
        MailSecurity::Starttls => {
            let mut client = Client::new(tcp);
            client.read_response().await?.context("no IMAP greeting")?;
            client
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .context("STARTTLS refused")?;
            tls(server, client.into_inner()).await?
        }
    };
    let mut client = Client::new(stream);
    if server.security != MailSecurity::Starttls {
        client.read_response().await?.context("no IMAP greeting")?;
    }
    let user = server.username.clone().unwrap_or_default();
    let pass = read_password(server)?.unwrap_or_default();
    client
        .login(&user, &pass)
        .await
        .map_err(|(e, _)| anyhow::anyhow!("IMAP login as {user:?} failed: {e}"))
}

/// Reads the mailbox until `cancel`, reconnecting after errors.
pub async fn run(bridge: Bridge, imap: ImapConfig, cancel: CancellationToken) {
    let mut delay = Duration::from_secs(1);
    while !cancel.is_cancelled() {
        match connection(&bridge, &imap, &cancel).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_s = delay.as_secs(),
                    "IMAP connection failed"
                );
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
}

async fn connection(
    bridge: &Bridge,
    imap: &ImapConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let mut session = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        s = login(&imap.server) => s?,
    };
    // Exists already, most of the time.
    let _ = session.create(&imap.quarantine_mailbox).await;
    let mailbox = session
        .select(&imap.mailbox)
        .await
        .with_context(|| format!("selecting {:?}", imap.mailbox))?;
    let uidvalidity = mailbox.uid_validity.unwrap_or(0);
    let mut last = match bridge.store().read(|st| st.imap) {
        Some(m) if m.uidvalidity == uidvalidity => m.last_uid,
        Some(m) => {
            tracing::warn!(old = m.uidvalidity, new = uidvalidity, "IMAP UIDVALIDITY changed; reading the mailbox again (handled Message-IDs are skipped)");
            0
        }
        None => 0,
    };
    tracing::info!(mailbox = %imap.mailbox, last_uid = last, "IMAP mailbox selected");
    let max = bridge.mail().max_message_bytes;
    loop {
        let mut uids: Vec<u32> = session
            .uid_search(format!("UID {}:*", last + 1))
            .await?
            .into_iter()
            .filter(|u| *u > last)
            .collect();
        uids.sort_unstable();
        for uid in uids {
            if cancel.is_cancelled() {
                let _ = session.logout().await;
                return Ok(());
            }
            let fetched: Vec<_> = session
                .uid_fetch(uid.to_string(), format!("(UID BODY.PEEK[]<0.{}>)", max + 1))
                .await?
                .try_collect()
                .await?;
            if let Some(raw) = fetched
                .iter()
                .find(|f| f.uid == Some(uid))
                .and_then(|f| f.body())
            {
                let handled = bridge.handle(raw).await;
                if handled.decision == Outcome::Failed {
                    anyhow::bail!("mail state not writable; will read UID {uid} again");
                }
                if handled.quarantine {
                    session
                        .uid_mv(uid.to_string(), &imap.quarantine_mailbox)
                        .await
                        .with_context(|| {
                            format!("moving UID {uid} to {:?}", imap.quarantine_mailbox)
                        })?;
                } else {
                    let _: Vec<_> = session
                        .uid_store(uid.to_string(), "+FLAGS (\\Seen)")
                        .await?
                        .try_collect()
                        .await?;
                }
            }
            last = uid;
            bridge.store().update(|st| {
                st.imap = Some(ImapMark {
                    uidvalidity,
                    last_uid: last,
                })
            })?;
        }
        // New mail reported while we ran other commands sits in the
        // unsolicited queue (bounded: drain it); look again before idling.
        session.noop().await?;
        let mut news = false;
        while let Ok(r) = session.unsolicited_responses.try_recv() {
            news |= matches!(
                r,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        if news {
            continue;
        }
        let mut idle = session.idle();
        idle.init().await?;
        let stopped = {
            let (wait, _stop) = idle.wait_with_timeout(IDLE_FOR);
            tokio::select! {
                _ = cancel.cancelled() => true,
                r = wait => {
                    match r? {
                        IdleResponse::NewData(_) | IdleResponse::Timeout | IdleResponse::ManualInterrupt => false,
                    }
                }
            }
        };
        session = idle.done().await?;
        if stopped {
            let _ = session.logout().await;
            return Ok(());
        }
    }
}
