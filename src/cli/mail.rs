//! The mail verbs: `mail-ingest` (one message from the MTA, through the
//! daemon), `mail-log`, `mail-address`.

use super::*;

pub(super) fn mail_config(config: &Config) -> Result<&crate::config::MailConfig, CliError> {
    config.mail.as_ref().ok_or_else(|| {
        CliError::BadInput(format!(
            "{}: mail: the email bridge is not configured (add a [mail] section)",
            config.origin
        ))
    })
}

pub(super) async fn mail_ingest(config: &Config) -> Result<(), CliError> {
    use base64::Engine;
    use std::io::Read;
    let mail = mail_config(config)?;
    // One byte over the cap is enough for the bridge to refuse it by size.
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .take(mail.max_message_bytes as u64 + 1)
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
    match control::request(&config.control_socket(), &request).await {
        Ok(Some(r)) if r.ok => {
            println!("{}", r.message);
            Ok(())
        }
        Ok(Some(r)) if r.bad_input => Err(CliError::BadInput(r.message)),
        Ok(Some(r)) => Err(CliError::TempFail(r.message)),
        Ok(None) => Err(CliError::TempFail(
            "the tmuxd daemon is not running; try again later (the message stays with the MTA)"
                .into(),
        )),
        Err(e) => Err(CliError::TempFail(format!("talking to the daemon: {e}"))),
    }
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
