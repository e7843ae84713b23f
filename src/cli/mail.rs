//! The mail verbs: `mail-ingest` (one message from the MTA, through the
//! daemon), `mail-log`, `mail-address`.

use super::*;
use std::path::Path;

pub(super) fn mail_config(config: &Config) -> Result<&crate::config::MailConfig, CliError> {
    config.mail.as_ref().ok_or_else(|| {
        CliError::BadInput(format!(
            "{}: mail: the email bridge is not configured (add a [mail] section)",
            config.origin
        ))
    })
}

/// The largest message the bridge takes (`[mail] max_message_bytes` may
/// only be smaller): without the config, read up to this.
pub(super) const MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// `mail-ingest` with the config: the mail socket when `[mail]
/// ingest_group` is set, else the control socket (root and the daemon's
/// account only).
pub(super) async fn mail_ingest(config: &Config) -> Result<(), CliError> {
    let mail = mail_config(config)?;
    match mail.ingest_group {
        Some(_) => ingest_to(&config.mail_socket(), mail.max_message_bytes, false).await,
        None => ingest_to(&config.control_socket(), mail.max_message_bytes, true).await,
    }
}

/// Reads one message from stdin (up to `cap` bytes, one more to let the
/// bridge refuse it by size) and hands it to the daemon at `socket`. The
/// exit status is what an MTA needs: 0 taken, 75 try later (no daemon), 77
/// never (this account may not deliver: bounce).
pub(super) async fn ingest_to(socket: &Path, cap: usize, control: bool) -> Result<(), CliError> {
    use base64::Engine;
    use std::io::Read;
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| CliError::TempFail(format!("reading the message from stdin: {e}")))?;
    // Drain the rest so the MTA's pipe does not fail.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    if raw.is_empty() {
        return Err(CliError::BadInput("no message on stdin".into()));
    }
    let request = Request::MailIngest {
        message: base64::engine::general_purpose::STANDARD.encode(&raw),
    };
    match control::request(socket, &request).await {
        Ok(Some(r)) if r.ok => {
            println!("{}", r.message);
            Ok(())
        }
        Ok(Some(r)) if r.bad_input => Err(CliError::BadInput(r.message)),
        Ok(Some(r)) => Err(CliError::TempFail(r.message)),
        Ok(None) => Err(CliError::TempFail(format!(
            "the tmuxd daemon is not running (nothing answers on {}); try again later (the message stays with the MTA)",
            socket.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(CliError::NoPermission(not_allowed(socket, control)))
        }
        // The control socket closes on callers other than root and the
        // daemon's account without a word.
        Err(e) if control && e.kind() == std::io::ErrorKind::InvalidData => {
            Err(CliError::NoPermission(not_allowed(socket, control)))
        }
        Err(e) => Err(CliError::TempFail(format!("talking to the daemon at {}: {e}", socket.display()))),
    }
}

/// Why this account may not hand mail to `socket`, and the fix.
fn not_allowed(socket: &Path, control: bool) -> String {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| nix::unistd::geteuid().to_string());
    if control {
        return format!(
            "{me} may not deliver mail to {}: the control socket answers root and the daemon's account only; set [mail] ingest_group to a group of {me}'s and deliver with `tmuxd mail-ingest --socket RUNTIME_DIR/mail.sock` (README: Email, delivery from the MTA)",
            socket.display()
        );
    }
    let group = std::fs::metadata(socket)
        .ok()
        .and_then(|m| nix::unistd::Group::from_gid(m.gid().into()).ok().flatten())
        .map(|g| g.name)
        .unwrap_or_else(|| "[mail] ingest_group".into());
    format!(
        "{me} may not deliver mail to {}, which is for group {group}: add {me} to it (`usermod -aG {group} {me}`), or run the MTA's pipe as a member",
        socket.display()
    )
}

pub(super) fn mail_log(
    config: &Config,
    user: Option<Name>,
    limit: usize,
    json: bool,
) -> Result<(), CliError> {
    mail_config(config)?;
    if let Some(u) = user.as_ref().filter(|u| config.user(u).is_none()) {
        return Err(super::verbs::no_such_user(config, u));
    }
    let dir = crate::mail::state::mail_dir(&config.state_dir);
    let entries = crate::mail::state::read_audit(&dir, limit.max(1), |e| {
        user.as_ref()
            .is_none_or(|u| e.user.as_deref() == Some(u.as_str()))
    })
    .map_err(|e| CliError::Failed(e.into()))?;
    if entries.is_empty() && !json {
        eprintln!("tmuxd: no mail in the audit log yet");
    }
    for e in entries {
        if json {
            println!(
                "{}",
                serde_json::to_string(&e).map_err(|e| CliError::Failed(e.into()))?
            );
            continue;
        }
        let target = match (&e.user, &e.session) {
            (Some(u), Some(s)) => format!("{u}/{s}"),
            (Some(u), None) => u.clone(),
            _ => "-".into(),
        };
        let mut line = format!(
            "{}  {:<10} {:<14} {:<28} {}",
            iso8601(e.ts_ms / 1000),
            e.decision,
            target,
            e.from.as_deref().unwrap_or("-"),
            e.reason
        );
        if let Some(c) = &e.command {
            line.push_str(&format!("  [{}]", c.chars().take(60).collect::<String>()));
        }
        if !e.flags.is_empty() {
            line.push_str(&format!("  flags: {}", e.flags.join(",")));
        }
        println!("{line}");
    }
    Ok(())
}

pub(super) fn mail_address(config: &Config, user: &Name) -> Result<(), CliError> {
    let mail = mail_config(config)?;
    if config.user(user).is_none() {
        return Err(super::verbs::no_such_user(config, user));
    }
    let dir = crate::mail::state::mail_dir(&config.state_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("{}: {e}", dir.display())))?;
    let key = crate::mail::sender::AddressKey::load_or_create(&dir)
        .map_err(|e| CliError::Failed(e.into()))?;
    println!(
        "{}",
        crate::mail::bridge::address_with_tag(&mail.address, &key.user_tag(user.as_str()))
    );
    Ok(())
}
