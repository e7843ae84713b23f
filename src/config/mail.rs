//! The `[mail]` section: the email bridge's settings, validated.

use super::*;

pub(super) fn parse_mail(p: &mut Problems, m: RawMail) -> MailConfig {
    if !is_plausible_email(&m.address) || m.address.contains('+') {
        p.add(
            "mail.address",
            format!(
                "{:?} is not an address like agent@example.org (without a +tag)",
                m.address
            ),
        );
    }
    if m.authserv_id.trim().is_empty() || m.authserv_id.contains([';', ' ']) {
        p.add(
            "mail.authserv_id",
            "must name your MTA's authserv-id, as in its Authentication-Results header (e.g. mx.example.org)",
        );
    }
    let mut positive = |k: &str, v: Option<u64>, default: u64| {
        parse::at_least_one(p, &format!("mail.{k}"), v, default)
    };
    let confirm_ttl = Duration::from_secs(positive("confirm_ttl_s", m.confirm_ttl_s, 600));
    let result_timeout = Duration::from_secs(positive("result_timeout_s", m.result_timeout_s, 300));
    let max_message_bytes = positive(
        "max_message_bytes",
        m.max_message_bytes.map(|v| v as u64),
        256 * 1024,
    ) as usize;
    let max_mime_depth = positive("max_mime_depth", m.max_mime_depth.map(|v| v as u64), 8) as usize;
    let sender_per_hour = positive("sender_per_hour", m.sender_per_hour.map(u64::from), 30) as u32;
    let user_per_hour = positive("user_per_hour", m.user_per_hour.map(u64::from), 60) as u32;
    if max_message_bytes > 2 * 1024 * 1024 {
        p.add("mail.max_message_bytes", "must be at most 2097152 (2 MiB)");
    }
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
            p.add(
                format!("mail.attachment_types[{i}]"),
                format!("{t:?} is not a MIME type like \"image/png\" or \"image/*\""),
            );
        }
    }
    if let Some(url) = &m.web_url {
        if !is_origin(url.trim_end_matches('/'))
            && !url.starts_with("https://")
            && !url.starts_with("http://")
        {
            p.add(
                "mail.web_url",
                format!("{url:?} is not a URL like https://tmuxd.example.org"),
            );
        }
    }
    if let Some(g) = &m.ingest_group {
        if g.is_empty() || g.contains(['\0', ':', '/', '\n']) {
            p.add(
                "mail.ingest_group",
                format!("{g:?} is not a Unix group name"),
            );
        }
    }
    let smtp = server(p, "mail.smtp", m.smtp, [465, 587, 25]);
    let imap = m.imap.map(|i| {
        if i.server.username.is_none() {
            p.add(
                "mail.imap.username",
                "is required: the bridge logs in to read its mailbox",
            );
        }
        ImapConfig {
            server: server(p, "mail.imap", i.server, [993, 143, 143]),
            mailbox: i.mailbox.unwrap_or_else(|| "INBOX".into()),
            quarantine_mailbox: i
                .quarantine_mailbox
                .unwrap_or_else(|| "tmuxd-quarantine".into()),
        }
    });
    MailConfig {
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
        ingest_group: m.ingest_group,
        imap,
        smtp,
    }
}

/// An IMAP or SMTP server at `k`; `default_ports` for tls, starttls, plain.
fn server(p: &mut Problems, k: &str, s: RawServer, default_ports: [u16; 3]) -> MailServer {
    if s.host.trim().is_empty() {
        p.add(format!("{k}.host"), "must not be empty");
    }
    let loopback = s.host == "localhost"
        || s.host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if s.security == MailSecurity::Plain && !loopback {
        p.add(
            format!("{k}.security"),
            format!("\"plain\" sends passwords and mail unencrypted; it is only allowed to a loopback host, not {:?}: use \"tls\" or \"starttls\"", s.host),
        );
    }
    match (&s.username, &s.password_file) {
        (Some(_), None) => p.add(format!("{k}.password_file"), "is required with a username"),
        (None, Some(_)) => p.add(format!("{k}.username"), "is required with a password_file"),
        (_, Some(f)) if !f.is_absolute() => {
            p.add(format!("{k}.password_file"), "must be an absolute path")
        }
        _ => {}
    }
    let port = s.port.unwrap_or(match s.security {
        MailSecurity::Tls => default_ports[0],
        MailSecurity::Starttls => default_ports[1],
        MailSecurity::Plain => default_ports[2],
    });
    MailServer {
        host: s.host,
        port,
        security: s.security,
        username: s.username,
        password_file: s.password_file,
    }
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
