//! `[web]`: the listener, origins, proxies, bounds, and the sign-in ways
//! besides tokens (an authenticating proxy, OpenID Connect).

use super::parse::{absolute, at_least_one, DEFAULT_LISTEN};
use super::*;

pub(super) fn parse_web(p: &mut Problems, raw: RawWeb) -> WebConfig {
    let text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let default: SocketAddr = DEFAULT_LISTEN.parse().expect("valid default address");
    let listen = match text.parse::<SocketAddr>() {
        Ok(a) if !a.ip().is_loopback() && !raw.tls_proxy => {
            p.add("web.listen", format!(
                "{a} is not a loopback address, and tmuxd serves plain HTTP: put a TLS-terminating proxy in front and set web.tls_proxy = true, or listen on 127.0.0.1"
            ));
            a
        }
        Ok(a) => a,
        Err(_) => {
            p.add(
                "web.listen",
                format!("{text:?} is not an address like 127.0.0.1:7681"),
            );
            default
        }
    };
    for (i, origin) in raw.origins.iter().enumerate() {
        if !is_origin(origin) {
            p.add(
                format!("web.origins[{i}]"),
                format!("{origin:?} is not an origin like https://tmuxd.example.com"),
            );
        }
    }
    let mut trusted_proxies = Vec::new();
    for (i, text) in raw.trusted_proxies.iter().enumerate() {
        match text.parse() {
            Ok(ip) => trusted_proxies.push(ip),
            Err(_) => p.add(
                format!("web.trusted_proxies[{i}]"),
                format!("{text:?} is not an IP address like 192.0.2.10"),
            ),
        }
    }
    let d = WebBounds::default();
    let mut secs = |key: &str, v: Option<u64>, default: Duration| {
        Duration::from_secs(at_least_one(p, key, v, default.as_secs()))
    };
    let header_timeout = secs(
        "web.header_timeout_s",
        raw.header_timeout_s,
        d.header_timeout,
    );
    let request_timeout = secs(
        "web.request_timeout_s",
        raw.request_timeout_s,
        d.request_timeout,
    );
    let bounds = WebBounds {
        header_timeout,
        request_timeout,
        max_connections_per_address: at_least_one(
            p,
            "web.max_connections_per_address",
            raw.max_connections_per_address,
            d.max_connections_per_address,
        ),
        max_viewers_per_session: at_least_one(
            p,
            "web.max_viewers_per_session",
            raw.max_viewers_per_session,
            d.max_viewers_per_session,
        ),
        max_viewers_per_user: at_least_one(
            p,
            "web.max_viewers_per_user",
            raw.max_viewers_per_user,
            d.max_viewers_per_user,
        ),
    };
    WebConfig {
        listen,
        tls_proxy: raw.tls_proxy,
        origins: raw.origins,
        trusted_proxies,
        proxy_auth: raw.proxy_auth.map(|a| parse_proxy_auth(p, a)),
        oidc: raw.oidc.map(|o| parse_oidc(p, o)),
        passkeys: raw.passkeys.map(|k| parse_passkeys(p, k)),
        bounds,
    }
}

fn parse_oidc(p: &mut Problems, raw: RawOidc) -> OidcConfig {
    let issuer = raw.issuer.trim_end_matches('/').to_owned();
    let issuer_url = match HttpUrl::parse(&issuer) {
        Some(u) if u.tls || u.is_loopback() => u,
        _ => {
            p.add(
                "web.oidc.issuer",
                format!("{issuer:?} is not an https:// URL (http:// only to a loopback host)"),
            );
            HttpUrl::parse("https://invalid").expect("a valid URL")
        }
    };
    if raw.client_id.trim().is_empty() {
        p.add(
            "web.oidc.client_id",
            "must name this client, as registered at the provider",
        );
    }
    if let Some(f) = &raw.client_secret_file {
        absolute(p, "web.oidc.client_secret_file", f);
    }
    let callback = HttpUrl::parse(&raw.redirect_url);
    if callback.is_none_or(|u| u.path != crate::config::OIDC_CALLBACK) {
        p.add(
            "web.oidc.redirect_url",
            format!(
                "{:?} must be this server's URL ending in {}, e.g. https://tmuxd.example.com{}",
                raw.redirect_url,
                crate::config::OIDC_CALLBACK,
                crate::config::OIDC_CALLBACK
            ),
        );
    }
    let scopes = raw
        .scopes
        .unwrap_or_else(|| ["openid", "profile", "email"].map(String::from).to_vec());
    if !scopes.iter().any(|s| s == "openid") {
        p.add("web.oidc.scopes", "must include \"openid\"");
    }
    OidcConfig {
        issuer,
        issuer_url,
        client_id: raw.client_id,
        client_secret_file: raw.client_secret_file,
        redirect_url: raw.redirect_url,
        claim: raw.claim.unwrap_or_else(|| "preferred_username".into()),
        scopes,
    }
}

fn parse_proxy_auth(p: &mut Problems, raw: RawProxyAuth) -> ProxyAuthConfig {
    let mut header_name = |key: &str, name: &str| {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            p.add(
                key,
                format!("{name:?} is not a header name like X-Remote-User"),
            );
        }
    };
    header_name("web.proxy_auth.header", &raw.header);
    let secret_header = raw
        .secret_header
        .unwrap_or_else(|| "X-Tmuxd-Proxy-Secret".into());
    header_name("web.proxy_auth.secret_header", &secret_header);
    absolute(p, "web.proxy_auth.secret_file", &raw.secret_file);
    let mut from = Vec::new();
    for (i, text) in raw.from.iter().enumerate() {
        match text.parse() {
            Ok(ip) => from.push(ip),
            Err(_) => p.add(
                format!("web.proxy_auth.from[{i}]"),
                format!("{text:?} is not an IP address like 127.0.0.1"),
            ),
        }
    }
    if raw.from.is_empty() {
        p.add(
            "web.proxy_auth.from",
            "name the proxy's address (e.g. [\"127.0.0.1\"]): the header is honoured from it only",
        );
    }
    ProxyAuthConfig {
        header: raw.header,
        secret_header,
        secret_file: raw.secret_file,
        from,
    }
}

fn parse_passkeys(p: &mut Problems, raw: RawPasskeys) -> PasskeyConfig {
    let domain = !raw.rp_id.is_empty()
        && raw.rp_id.parse::<std::net::IpAddr>().is_err()
        && raw
            .rp_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !domain {
        p.add(
            "web.passkeys.rp_id",
            format!(
                "{:?} is not a host name like tmuxd.example.com (browsers refuse IP addresses)",
                raw.rp_id
            ),
        );
    }
    let host = raw
        .origin
        .split_once("://")
        .map(|(_, rest)| rest.split(':').next().unwrap_or(""));
    let within = host.is_some_and(|h| h == raw.rp_id || h.ends_with(&format!(".{}", raw.rp_id)));
    if !is_origin(&raw.origin) || !within {
        p.add(
            "web.passkeys.origin",
            format!("{:?} must be the page's origin (https://HOST[:PORT]) on rp_id {:?} or a name under it", raw.origin, raw.rp_id),
        );
    }
    PasskeyConfig {
        rp_id: raw.rp_id,
        origin: raw.origin,
        reauth_risky: raw.reauth_risky,
    }
}
