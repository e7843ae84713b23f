//! The `[mail]` section: the email bridge's settings, validated.

use super::*;

pub(super) fn parse_mail(m: RawMail) -> Result<MailConfig, (String, String)> {
    let bad = |k: &str, r: String| (format!("mail.{k}"), r);
    if !is_plausible_email(&m.address) || m.address.contains('+') {
        return Err(bad(
            "address",
            format!(
                "{:?} is not an address like agent@example.org (without a +tag)",
                m.address
            ),
        ));
    }
    if m.authserv_id.trim().is_empty() || m.authserv_id.contains([';', ' ']) {
        return Err(bad(
            "authserv_id",
            "must name your MTA's authserv-id, as in its Authentication-Results header (e.g. mx.example.org)".into(),
        ));
    }
    let positive = |k: &str, v: Option<u64>, default: u64| -> Result<u64, (String, String)> {
        match v {
            Some(0) => Err(bad(k, "must be at least 1".into())),
            Some(v) => Ok(v),
            None => Ok(default),
        }
    };
    let confirm_ttl = Duration::from_secs(positive("confirm_ttl_s", m.confirm_ttl_s, 600)?);
    let result_timeout =
        Duration::from_secs(positive("result_timeout_s", m.result_timeout_s, 300)?);
    let max_message_bytes = positive(
        "max_message_bytes",
        m.max_message_bytes.map(|v| v as u64),
        256 * 1024,
    )? as usize;
    if max_message_bytes > 2 * 1024 * 1024 {
        return Err(bad(
            "max_message_bytes",
            "must be at most 2097152 (2 MiB)".into(),
        ));
    }
    let max_mime_depth =
        positive("max_mime_depth", m.max_mime_depth.map(|v| v as u64), 8)? as usize;
    let attachment_types = m.attachment_types.unwrap_or_else(|| {
        ["image/*", "text/*", "application/pdf"]
            .map(String::from)
            .to_vec()
    });
    for (i, t) in attachment_types.iter().enumerate() {
        let ok = t.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && !a.contains('*') && (b == "*" || !b.contains('*'))
        });
        if !ok {
            return Err(bad(
                &format!("attachment_types[{i}]"),
                format!("{t:?} is not a MIME type like \"image/png\" or \"image/*\""),
            ));
        }
    }
    let sender_per_hour = positive("sender_per_hour", m.sender_per_hour.map(u64::from), 30)? as u32;
    let user_per_hour = positive("user_per_hour", m.user_per_hour.map(u64::from), 60)? as u32;
    if let Some(url) = &m.web_url {
        if !is_origin(url.trim_end_matches('/'))
            && !url.starts_with("https://")
            && !url.starts_with("http://")
        {
            return Err(bad(
                "web_url",
                format!("{url:?} is not a URL like https://tmuxd.example.org"),
            ));
        }
    }
    let server = |k: &str,
                  s: RawServer,
                  default_ports: [u16; 3]|
     -> Result<MailServer, (String, String)> {
        if s.host.trim().is_empty() {
            return Err(bad(&format!("{k}.host"), "must not be empty".into()));
        }
        let loopback = s.host == "localhost"
            || s.host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if s.security == MailSecurity::Plain && !loopback {
            return Err(bad(
                &format!("{k}.security"),
                format!("\"plain\" sends passwords and mail unencrypted; it is only allowed to a loopback host, not {:?}: use \"tls\" or \"starttls\"", s.host),
            ));
        }
        match (&s.username, &s.password_file) {
            (Some(_), None) => {
                return Err(bad(
                    &format!("{k}.password_file"),
                    "is required with a username".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    &format!("{k}.username"),
                    "is required with a password_file".into(),
                ))
            }
            (_, Some(p)) if !p.is_absolute() => {
                return Err(bad(
                    &format!("{k}.password_file"),
                    "must be an absolute path".into(),
                ))
            }
            _ => {}
        }
        let port = s.port.unwrap_or(match s.security {
            MailSecurity::Tls => default_ports[0],
            MailSecurity::Starttls => default_ports[1],
            MailSecurity::Plain => default_ports[2],
        });
        Ok(MailServer {
            host: s.host,
            port,
            security: s.security,
            username: s.username,
            password_file: s.password_file,
        })
    };
    let smtp = server("smtp", m.smtp, [465, 587, 25])?;
    let imap = match m.imap {
        Some(i) => {
            if i.server.username.is_none() {
                return Err(bad(
                    "imap.username",
                    "is required: the bridge logs in to read its mailbox".into(),
                ));
            }
            Some(ImapConfig {
                server: server("imap", i.server, [993, 143, 143])?,
                mailbox: i.mailbox.unwrap_or_else(|| "INBOX".into()),
                quarantine_mailbox: i
                    .quarantine_mailbox
                    .unwrap_or_else(|| "tmuxd-quarantine".into()),
            })
        }
        None => None,
    };
    Ok(MailConfig {
        address: m.address.to_ascii_lowercase(),
        authserv_id: m.authserv_id.to_ascii_lowercase(),
        confirm_ttl,
        result_timeout,
        max_message_bytes,
        max_mime_depth,
        attachment_types,
        sender_per_hour,
        user_per_hour,
        web_url: m.web_url.map(|u| u.trim_end_matches('/').to_owned()),
        imap,
        smtp,
    })
}

pub(super) fn is_plausible_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                && !s.contains(['<', '>', ',', ';'])
        }
        None => false,
    }
}
