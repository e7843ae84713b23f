//! Real Unix accounts for tests that run as root: unique names, created
//! and removed (with their homes and processes) by the test.

use std::process::{Command, Stdio};

/// Unix users made for a test, removed (with their homes) on drop.
pub struct UnixUsers(pub Vec<String>);

/// useradd and userdel rewrite /etc/passwd; tests run in parallel.
static ACCOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl UnixUsers {
    pub fn create(count: usize) -> UnixUsers {
        UnixUsers::create_in(count, "/tmp")
    }

    /// Users whose homes are `BASE/NAME` (`/home` for homes where other
    /// users' homes usually are; `/tmp` for throwaway ones).
    pub fn create_in(count: usize, base: &str) -> UnixUsers {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates Unix users: run it as root (CI does)"
        );
        super::require("useradd");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = std::process::id() % 100_000;
        let call = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let names: Vec<String> = (0..count)
            .map(|i| format!("tmuxdt{tag}x{call}{}", (b'a' + i as u8) as char))
            .collect();
        let _lock = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        for name in &names {
            let home = if base == "/tmp" {
                format!("/tmp/{name}-home")
            } else {
                format!("{base}/{name}")
            };
            let st = Command::new("useradd")
                .args(["-m", "-d", &home, "-s", "/bin/sh", name])
                .status()
                .unwrap();
            assert!(st.success(), "useradd {name}");
        }
        UnixUsers(names)
    }

    pub fn home(&self, i: usize) -> std::path::PathBuf {
        nix::unistd::User::from_name(&self.0[i])
            .unwrap()
            .unwrap()
            .dir
    }

    pub fn uid(&self, i: usize) -> u32 {
        nix::unistd::User::from_name(&self.0[i])
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    }
}

impl Drop for UnixUsers {
    fn drop(&mut self) {
        let _lock = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        for name in &self.0 {
            // Only processes of the users this test made.
            let _ = Command::new("pkill").args(["-KILL", "-u", name]).status();
            let _ = Command::new("userdel")
                .args(["-f", "-r", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}
