//! The installed tmux's version, checked against the oldest we support.

/// Oldest tmux we support (Debian 12 ships 3.3a).
pub const MIN_VERSION: (u32, u32) = (3, 2);

/// The installed tmux's version, checked against [`MIN_VERSION`].
pub fn check_version() -> Result<(u32, u32), String> {
    let out = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .map_err(|e| {
            format!(
                "cannot run tmux ({e}); install tmux {}.{} or newer",
                MIN_VERSION.0, MIN_VERSION.1
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_version(&text)
        .ok_or_else(|| format!("cannot read the tmux version from {:?}", text.trim()))?;
    if version < MIN_VERSION {
        return Err(format!(
            "tmux {}.{} is too old; tmuxd needs {}.{} or newer",
            version.0, version.1, MIN_VERSION.0, MIN_VERSION.1
        ));
    }
    Ok(version)
}

/// `tmux 3.3a` -> (3, 3); `tmux next-3.4` -> (3, 4).
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s.trim().strip_prefix("tmux ")?;
    let v = v.strip_prefix("next-").unwrap_or(v);
    let (major, rest) = v.split_once('.')?;
    let minor: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("tmux 3.3a\n"), Some((3, 3)));
        assert_eq!(parse_version("tmux next-3.6"), Some((3, 6)));
        assert_eq!(parse_version("tmux 3.10"), Some((3, 10)));
        assert_eq!(parse_version("screen"), None);
    }
}
