//! Who sent a message, and proof of it: `Authentication-Results` checks,
//! per-user secret addresses and single-use confirmation tokens.
//!
//! Fail closed. Only the topmost `Authentication-Results` header carrying
//! our configured authserv-id counts (RFC 8601: the receiving MTA prepends
//! its own and must strip forged ones with its id; any others are the
//! sender's word). It must show `dmarc=pass` for the From domain, or
//! `dkim=pass` with a signing domain aligned with it.
//!
//! A user's secret address is `LOCAL+TAG@DOMAIN`, where TAG is an HMAC of
//! the user's name under a key kept in `STATE_DIR/mail/key` (0600):
//! stable, unguessable, and renewable by deleting the key. Confirmation
//! tokens are 128 random bits; only their SHA-256 is stored.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Prefix of a confirmation tag: `LOCAL+c-TOKEN@DOMAIN`.
pub const CONFIRM_PREFIX: &str = "c-";

/// RFC 4648 base32, lowercased: safe in a local part that MTAs may fold.
fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

/// A new confirmation token (128 random bits, 26 characters).
pub fn new_token() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(base32(&b))
}

/// What is stored for a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    crate::auth::hex(&Sha256::digest(token.to_ascii_lowercase().as_bytes()))
}

/// The key behind the users' secret addresses.
pub struct AddressKey([u8; 32]);

impl AddressKey {
    /// Reads `dir/key`, creating it (0600) the first time.
    pub fn load_or_create(dir: &Path) -> std::io::Result<AddressKey> {
        let path = dir.join("key");
        for _ in 0..2 {
            match std::fs::read(&path) {
                Ok(bytes) if bytes.len() == 32 => {
                    let mut k = [0u8; 32];
                    k.copy_from_slice(&bytes);
                    return Ok(AddressKey(k));
                }
                Ok(_) => {
                    return Err(std::io::Error::other(format!(
                        "{} is damaged (not 32 bytes); delete it to issue new secret addresses",
                        path.display()
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(&k)?;
                    f.sync_all()?;
                    return Ok(AddressKey(k));
                }
                // Someone else created it first: read theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "cannot create {}",
            path.display()
        )))
    }

    #[cfg(test)]
    pub fn fixed(k: [u8; 32]) -> AddressKey {
        AddressKey(k)
    }

    /// The secret tag of `user`'s address (80 bits, 16 characters).
    pub fn user_tag(&self, user: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("any key size");
        mac.update(b"tmuxd user address\0");
        mac.update(user.as_bytes());
        base32(&mac.finalize().into_bytes()[..10])
    }
}

/// `local+tag@domain` -> `(local, Some(tag), domain)`, lowercased.
pub fn split_address(addr: &str) -> Option<(String, Option<String>, String)> {
    let (local, domain) = addr.rsplit_once('@')?;
    let (base, tag) = match local.split_once('+') {
        Some((b, t)) => (b, Some(t.to_ascii_lowercase())),
        None => (local, None),
    };
    Some((base.to_ascii_lowercase(), tag, domain.to_ascii_lowercase()))
}

/// The domain of an address, lowercased.
pub fn domain_of(addr: &str) -> Option<String> {
    addr.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())
}

/// Whether signing domain `d` is aligned (relaxed) with From domain `from`:
/// equal, or one a subdomain of the other, never a bare top-level domain.
fn aligned(d: &str, from: &str) -> bool {
    let (d, from) = (d.trim_end_matches('.'), from.trim_end_matches('.'));
    if d.eq_ignore_ascii_case(from) {
        return true;
    }
    let (short, long) = if d.len() < from.len() {
        (d, from)
    } else {
        (from, d)
    };
    short.contains('.')
        && long.len() > short.len()
        && long
            .to_ascii_lowercase()
            .ends_with(&format!(".{}", short.to_ascii_lowercase()))
}

/// Removes RFC 5322 comments (`(...)`, nested) from a header value.
fn strip_comments(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in v.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The authserv-id of an `Authentication-Results` value.
fn authserv_id(value: &str) -> String {
    let v = strip_comments(value);
    let parts = split_unquoted(&v, |c| c == ';');
    let first = parts.first().map(String::as_str).unwrap_or("");
    // "id [version]"
    split_unquoted(first, char::is_whitespace)
        .first()
        .map(|id| unquote(id).to_ascii_lowercase())
        .unwrap_or_default()
}

/// Splits `v` (comments already stripped) at characters `sep` accepts,
/// outside quoted strings (RFC 8601 values may be quoted, and a `;` or a
/// space inside one is data, not a separator). Empty pieces are dropped.
fn split_unquoted(v: &str, sep: impl Fn(char) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in v.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if quoted => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if !quoted && sep(c) => {
                let piece = std::mem::take(&mut cur);
                if !piece.trim().is_empty() {
                    out.push(piece.trim().to_owned());
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// A value without its quotes and escapes (`"a\"b"` -> `a"b`).
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// Checks the sender's From domain against the trusted
/// `Authentication-Results`. Ok: the method that passed; Err: why not.
pub fn check_authentication(
    auth_results: &[String],
    our_id: &str,
    from_domain: &str,
) -> Result<&'static str, String> {
    let Some(ours) = auth_results
        .iter()
        .find(|v| authserv_id(v) == our_id.to_ascii_lowercase())
    else {
        return Err(format!("no Authentication-Results from {our_id}"));
    };
    let v = strip_comments(ours);
    let mut seen = Vec::new();
    for res in split_unquoted(&v, |c| c == ';').iter().skip(1) {
        let words = split_unquoted(res, char::is_whitespace);
        let mut words = words.iter();
        let Some((method, result)) = words.next().and_then(|w| w.split_once('=')) else {
            continue;
        };
        let method = method.to_ascii_lowercase();
        let result = unquote(result).to_ascii_lowercase();
        let props: Vec<(String, String)> = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), unquote(v).to_ascii_lowercase()))
            .collect();
        let prop = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        seen.push(format!("{method}={result}"));
        if result != "pass" {
            continue;
        }
        match method.as_str() {
            "dmarc" if prop("header.from").is_some_and(|d| d.eq_ignore_ascii_case(from_domain)) => {
                return Ok("dmarc")
            }
            "dkim" => {
                let d = prop("header.d")
                    .map(str::to_owned)
                    .or_else(|| prop("header.i").and_then(|i| domain_of(i).or(Some(i.to_owned()))));
                if d.is_some_and(|d| aligned(&d, from_domain)) {
                    return Ok("dkim");
                }
            }
            _ => {}
        }
    }
    Err(if seen.is_empty() {
        format!("Authentication-Results from {our_id} has no results")
    } else {
        format!(
            "no dmarc or aligned dkim pass for {from_domain} ({})",
            seen.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(headers: &[&str]) -> Result<&'static str, String> {
        let v: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        check_authentication(&v, "mx.example.test", "example.org")
    }

    #[test]
    fn dmarc_or_aligned_dkim_passes() {
        assert_eq!(
            check(&["mx.example.test; dmarc=pass (p=none) header.from=example.org"]),
            Ok("dmarc")
        );
        assert_eq!(
            check(&["MX.Example.Test 1; spf=fail; dkim=pass header.d=mail.example.org"]),
            Ok("dkim")
        );
        assert_eq!(
            check(&["mx.example.test; dkim=pass header.i=@example.org"]),
            Ok("dkim")
        );
    }

    #[test]
    fn failures_and_misalignment_fail() {
        assert!(check(&["mx.example.test; dmarc=fail header.from=example.org"]).is_err());
        assert!(check(&["mx.example.test; dkim=pass header.d=evil.example"]).is_err());
        assert!(check(&["mx.example.test; dkim=pass header.d=org"]).is_err());
        assert!(check(&["mx.example.test; dmarc=pass header.from=other.org"]).is_err());
        assert!(check(&["mx.example.test; spf=pass smtp.mailfrom=example.org"]).is_err());
        assert!(check(&["mx.example.test; none"]).is_err());
        assert!(check(&[]).is_err());
    }

    #[test]
    fn only_our_topmost_header_counts() {
        // A forged header with another id is ignored.
        let e = check(&["evil.example; dmarc=pass header.from=example.org"]).unwrap_err();
        assert!(
            e.contains("no Authentication-Results from mx.example.test"),
            "{e}"
        );
        // A forged pass below ours does not override our fail.
        assert!(check(&[
            "mx.example.test; dmarc=fail header.from=example.org",
            "mx.example.test; dmarc=pass header.from=example.org",
        ])
        .is_err());
        // A comment cannot smuggle in a result.
        assert!(check(&["mx.example.test; dmarc=fail (dmarc=pass header.from=example.org) header.from=example.org"]).is_err());
        assert!(check(&["mx.example.test(;x); dmarc=pass header.from=example.org"]).is_ok());
    }

    #[test]
    fn quoted_strings_cannot_inject_results() {
        // Issue 10: a `;` inside a quoted value (RFC 8601 allows them)
        // must not start a result of its own.
        for v in [
            r#"mx.example.test; dkim=fail header.d="x; dmarc=pass header.from=example.test""#,
            r#"mx.example.test; dkim=fail header.b="a\"; dmarc=pass header.from=example.test""#,
            r#"mx.example.test; spf=pass smtp.mailfrom="; dmarc=pass header.from=example.test""#,
        ] {
            assert!(
                check_authentication(&[v.to_owned()], "mx.example.test", "example.test").is_err(),
                "{v}"
            );
        }
        // Quoted values themselves are understood.
        let v = r#""mx.example.test" 1; dmarc="pass" header.from="example.test""#;
        assert_eq!(
            check_authentication(&[v.to_owned()], "mx.example.test", "example.test"),
            Ok("dmarc")
        );
    }

    #[test]
    fn addresses_and_tokens() {
        assert_eq!(
            split_address("Agent+C-AbC@Example.Test"),
            Some(("agent".into(), Some("c-abc".into()), "example.test".into()))
        );
        assert_eq!(split_address("nobody"), None);
        let k = AddressKey::fixed([7; 32]);
        let t = k.user_tag("alice");
        assert_eq!(t.len(), 16);
        assert_eq!(t, k.user_tag("alice"));
        assert_ne!(t, k.user_tag("bob"));
        assert_ne!(t, AddressKey::fixed([8; 32]).user_tag("alice"));
        let tok = new_token().unwrap();
        assert_eq!(tok.len(), 26);
        assert!(tok
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_ne!(tok, new_token().unwrap());
        assert_eq!(token_hash(&tok), token_hash(&tok.to_ascii_uppercase()));
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = AddressKey::load_or_create(dir.path()).unwrap();
        let b = AddressKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.user_tag("x"), b.user_tag("x"));
        let mode = std::fs::metadata(dir.path().join("key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join("key"), b"short").unwrap();
        assert!(AddressKey::load_or_create(dir.path()).is_err());
    }
}
