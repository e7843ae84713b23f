//! The channels beyond mail: `[[webhooks]]` (where agents' notifications
//! are POSTed: ntfy, Gotify, Slack, Discord, Apprise, or any receiver of
//! our signed JSON) and `[matrix]` (the bot's homeserver and account).

use super::*;

/// One receiver of notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `https://...` (or `http://` to a loopback host).
    pub url: String,
    pub target: HttpUrl,
    pub format: WebhookFormat,
    /// `full`: the question, its options and the screen's last lines;
    /// `minimal`: "alice/main needs you" and the page's link only.
    pub content: WebhookContent,
    /// The HMAC-SHA256 key of `X-Tmuxd-Signature`, read at start.
    pub secret_file: Option<PathBuf>,
    /// Whose sessions (empty: everyone's).
    pub users: Vec<Name>,
    /// Which of `waiting`, `done`, `exited`.
    pub events: Vec<String>,
    /// The page's public URL, for links (`URL/#/s/USER/SESSION`).
    pub page_url: Option<String>,
}

/// The body a receiver expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookFormat {
    /// Ours: `{"event", "session", "user", "text", ...}`.
    Json,
    /// Slack incoming webhooks: `{"text"}`.
    Slack,
    /// Discord webhooks: `{"content"}`.
    Discord,
    /// ntfy: the text as the body, a `Title` header.
    Ntfy,
    /// Gotify: `{"title", "message"}`.
    Gotify,
    /// Apprise API: `{"title", "body"}`.
    Apprise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookContent {
    Full,
    Minimal,
}

/// Notifications a webhook can get.
pub const WEBHOOK_EVENTS: [&str; 3] = ["waiting", "done", "exited"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    url: String,
    format: Option<WebhookFormat>,
    content: Option<WebhookContent>,
    secret_file: Option<PathBuf>,
    users: Option<Vec<String>>,
    events: Option<Vec<String>>,
    page_url: Option<String>,
}

pub(super) fn parse_webhooks(p: &mut Problems, raw: Vec<RawWebhook>) -> Vec<WebhookConfig> {
    let mut hooks = Vec::with_capacity(raw.len());
    for (i, w) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("webhooks[{i}].{k}");
        if let Err(why) = check_url(&w.url) {
            p.add(key("url"), why);
        }
        let target = HttpUrl::parse(&w.url).unwrap_or(HttpUrl {
            tls: true,
            host: "invalid".into(),
            port: 443,
            path: "/".into(),
        });
        if let Some(f) = &w.secret_file {
            parse::absolute(p, &key("secret_file"), f);
        }
        let mut users = Vec::new();
        for (j, u) in w.users.unwrap_or_default().iter().enumerate() {
            match Name::new(u) {
                Ok(n) => users.push(n),
                Err(e) => p.add(format!("webhooks[{i}].users[{j}]"), e.to_string()),
            }
        }
        let events = w
            .events
            .unwrap_or_else(|| WEBHOOK_EVENTS.map(String::from).to_vec());
        if let Some(bad) = events
            .iter()
            .find(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
        {
            p.add(
                key("events"),
                format!(
                    "unknown event {bad:?}; the events are {}",
                    WEBHOOK_EVENTS.join(", ")
                ),
            );
        }
        if let Some(u) = &w.page_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                p.add(
                    key("page_url"),
                    format!("{u:?} is not a URL like https://tmuxd.example.com"),
                );
            }
        }
        hooks.push(WebhookConfig {
            url: w.url,
            target,
            format: w.format.unwrap_or(WebhookFormat::Json),
            content: w.content.unwrap_or(WebhookContent::Full),
            secret_file: w.secret_file,
            users,
            events,
            page_url: w.page_url.map(|u| u.trim_end_matches('/').to_owned()),
        });
    }
    hooks
}

/// `https://HOST[:PORT]/PATH`, or `http://` to a loopback host (plain
/// HTTP elsewhere would carry the notification and its signature in the
/// clear).
fn check_url(url: &str) -> Result<(), String> {
    let parsed = HttpUrl::parse(url)
        .ok_or_else(|| format!("{url:?} is not a URL like https://ntfy.example.com/topic"))?;
    if !parsed.tls && !parsed.is_loopback() {
        return Err(format!(
            "{url:?} is plain HTTP to another host: use https://, or http:// to a loopback host only"
        ));
    }
    Ok(())
}

/// An `http(s)://` URL taken apart (webhooks, OpenID Connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// From the first `/`, query included (`/` when empty).
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Option<HttpUrl> {
        let (tls, rest) = match url.split_once("://")? {
            ("https", rest) => (true, rest),
            ("http", rest) => (false, rest),
            _ => return None,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c));
        valid.then(|| HttpUrl {
            tls,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

pub(super) fn parse_matrix(p: &mut Problems, raw: RawMatrix) -> MatrixConfig {
    let homeserver = match HttpUrl::parse(raw.homeserver.trim_end_matches('/')) {
        Some(u) if u.tls || u.is_loopback() => u,
        _ => {
            p.add(
                "matrix.homeserver",
                format!(
                    "{:?} is not an https:// URL (http:// only to a loopback host)",
                    raw.homeserver
                ),
            );
            HttpUrl::parse("https://invalid").expect("a valid URL")
        }
    };
    if !super::users::is_matrix_id(&raw.user_id) {
        p.add(
            "matrix.user_id",
            format!(
                "{:?} is not a Matrix user id like @tmuxd:example.org",
                raw.user_id
            ),
        );
    }
    parse::absolute(p, "matrix.access_token_file", &raw.access_token_file);
    MatrixConfig {
        homeserver,
        user_id: raw.user_id,
        access_token_file: raw.access_token_file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart_and_plain_http_stays_local() {
        let t = HttpUrl::parse("https://ntfy.sh/my-topic?x=1").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "ntfy.sh", 443, "/my-topic?x=1")
        );
        let t = HttpUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.port, t.path.as_str()), (8080, "/"));
        assert!(t.is_loopback());
        assert!(HttpUrl::parse("http://[::1]:9/h").unwrap().is_loopback());
        for bad in [
            "ftp://x/",
            "https://",
            "https://u:p@h/",
            "https://h/a b",
            "h/x",
        ] {
            assert!(HttpUrl::parse(bad).is_none(), "{bad}");
        }
        assert!(check_url("http://hooks.example.com/x")
            .unwrap_err()
            .contains("plain HTTP"));
        assert!(check_url("http://localhost:9/x").is_ok());
    }
}
