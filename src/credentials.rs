//! systemd credentials as agents' secrets. `secrets = { K =
//! "credential:NAME" }` names a credential the service manager hands the
//! daemon (`LoadCredential=NAME:PATH`, `SetCredentialEncrypted=` ...) in
//! `$CREDENTIALS_DIRECTORY`, which only the service can read. The launcher
//! reads secrets as the user, so the daemon copies each credential a
//! user's agents name to `RUNTIME_DIR/credentials/USER.NAME`: the user's
//! file, mode 0400, in a directory of the daemon's (0711: nobody else can
//! list or change it), on the runtime tmpfs under systemd. Copies are made
//! when the user's sessions are set up (daemon start, `new`).

use std::path::{Path, PathBuf};

use crate::names::Name;

pub use crate::config::{credential_name as name_of, valid_credential_name as valid_name};

/// Where `user`'s copy of credential `name` is, under `dir`
/// (`RUNTIME_DIR/credentials`).
pub fn copy_path(dir: &Path, user: &Name, name: &str) -> PathBuf {
    dir.join(format!("{user}.{name}"))
}

/// Copies credentials `names` for `user` (files owned by `owner`, uid and
/// gid) into `dir`; the first failure, naming what to do.
pub fn copy_for(dir: &Path, user: &Name, owner: (u32, u32), names: &[&str]) -> Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let Some(source) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Err(format!(
            "credential {} for {user}: $CREDENTIALS_DIRECTORY is not set; systemd hands credentials to the service it starts (LoadCredential={0}:PATH in tmuxd.service)",
            names[0]
        ));
    };
    crate::roots::ensure(dir, 0o711)?;
    for name in names {
        let from = Path::new(&source).join(name);
        let value = std::fs::read(&from).map_err(|e| {
            format!(
                "credential {name} for {user}: {}: {} (LoadCredential={name}:PATH in tmuxd.service)",
                from.display(),
                crate::config::io_reason(&e)
            )
        })?;
        let to = copy_path(dir, user, name);
        crate::roots::write_whole(&to, &value, 0o400, Some(owner))
            .map_err(|e| format!("{}: {}", to.display(), crate::config::io_reason(&e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(
            name_of(Path::new("credential:anthropic")),
            Some("anthropic")
        );
        assert_eq!(name_of(Path::new("/etc/k")), None);
        for ok in ["anthropic", "api.key", "a_b-1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "k\n"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let alice = Name::new("alice").unwrap();
        assert_eq!(
            copy_path(Path::new("/run/tmuxd/credentials"), &alice, "k"),
            Path::new("/run/tmuxd/credentials/alice.k")
        );
    }
}
