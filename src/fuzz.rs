//! Fuzz targets: every parser of untrusted input, each driven with
//! arbitrary bytes and checked against the properties it must keep.
//!
//! One function per parser, shared by two drivers: the property tests in
//! `tests/it/fuzz.rs` (proptest, a bounded run on every `cargo test`) and the
//! coverage-guided libFuzzer targets in `fuzz/` (`cargo fuzz run TARGET`,
//! for long runs). A target panics when a property fails; it must never
//! panic otherwise, whatever the input.

use crate::names::{Name, SessionId, MAX_NAME_LEN};

/// A fuzz target: takes any bytes, panics only when a property fails.
pub type Target = fn(&[u8]);

/// Every target, by name (the libFuzzer targets use the same names).
pub const TARGETS: &[(&str, Target)] = &[
    ("mail_message", mail_message),
    ("auth_results", auth_results),
    ("mail_command", mail_command),
    ("ws_control", ws_control),
    ("names", names),
    ("config", config),
    ("tmux_argv", tmux_argv),
    ("agent_screen", agent_screen),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// A mail as the MTA hands it over: parsing never panics, stays within its
/// caps, and what it keeps is bounded.
pub fn mail_message(data: &[u8]) {
    let caps = crate::mail::message::Caps::default();
    let id = crate::mail::message::message_id_of(data);
    assert!(id.len() <= 200 || id.starts_with("sha256:"), "{id:?}");
    if let Ok(m) = crate::mail::message::parse(data, caps) {
        assert!(data.len() <= caps.max_bytes);
        assert!(m.message_id.len() <= 200 || m.message_id.starts_with("sha256:"));
        assert!(m.from.iter().all(|f| f == &f.to_ascii_lowercase()));
    }
}

/// Authentication-Results: never panics; a passing header stays failing
/// whatever is put inside a quoted value or a comment of it.
pub fn auth_results(data: &[u8]) {
    use crate::mail::sender::check_authentication;
    let s = text(data);
    let _ = check_authentication(&[s.to_string()], "mx.example.test", "example.test");
    let inner: String = s
        .chars()
        .filter(|c| !matches!(c, '"' | '\\' | '(' | ')'))
        .collect();
    for hidden in [
        format!("mx.example.test; dkim=fail header.d=\"{inner}\""),
        format!("mx.example.test; dkim=fail (x{inner}) header.d=x"),
        format!("mx.example.test; spf=pass smtp.mailfrom=\"{inner}\"; dmarc=fail header.from=example.test"),
    ] {
        assert!(
            check_authentication(
                std::slice::from_ref(&hidden),
                "mx.example.test",
                "example.test"
            )
            .is_err(),
            "a result was injected: {hidden:?}"
        );
    }
}

/// The mail command grammar: never panics; what it would type shows every
/// character and is short enough.
pub fn mail_command(data: &[u8]) {
    use crate::mail::bridge::{parse_command, Command};
    use crate::mail::state::Action;
    let s = text(data);
    let line = s.lines().next().unwrap_or("");
    if let Ok(Command::Act(Action::Prompt { text, .. })) = parse_command(line) {
        assert!(text.chars().count() <= 4000);
        assert!(
            crate::session::check_typed_text(&text).is_ok(),
            "would type a control character: {text:?}"
        );
        assert!(text.chars().all(|c| !crate::mail::bridge::forbidden(c)));
        let _ = crate::risk::flags(&text);
    }
}

/// WebSocket control messages: never panic; sizes come out as numbers the
/// PTY can take or are refused.
pub fn ws_control(data: &[u8]) {
    let s = text(data);
    if let Ok(crate::web::terminal::Control::Resize(c, r)) = crate::web::terminal::control(&s) {
        if let Some((cols, rows)) = crate::relay::valid_size(c, r) {
            assert!((1..=crate::relay::MAX_COLS).contains(&cols));
            assert!((1..=crate::relay::MAX_ROWS).contains(&rows));
        }
    }
}

/// Names and session ids: accepted only when on the allow-list, and they
/// round-trip; `sanitize` always gives a valid name.
pub fn names(data: &[u8]) {
    let s = text(data);
    if let Ok(n) = Name::new(&s) {
        let b = n.as_str().as_bytes();
        assert!(!b.is_empty() && b.len() <= MAX_NAME_LEN);
        assert!(matches!(b[0], b'a'..=b'z' | b'0'..=b'9'));
        assert!(b
            .iter()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')));
    }
    assert!(Name::new(Name::sanitize(&s).as_str()).is_ok());
    if let Ok(id) = s.parse::<SessionId>() {
        let again: SessionId = id.to_string().parse().expect("a session id round-trips");
        assert_eq!(again, id);
    }
}

/// The config: never panics on any text, and what it accepts is valid.
pub fn config(data: &[u8]) {
    let s = text(data);
    let host = crate::config::HostDefaults {
        state_dir: "/var/lib/tmuxd".into(),
        agent: vec!["/bin/sh".into()],
        home: "/home/fuzz".into(),
        login: "fuzz".into(),
        spool_dir: None,
    };
    if let Ok(c) = crate::config::Config::parse(&s, "fuzz", &host) {
        assert!(!c.users.is_empty());
        assert!(c.users.iter().all(|u| !u.command.is_empty()));
        assert!(c.state_dir.is_absolute() && c.runtime_dir.is_absolute());
    }
}

/// tmux argv escaping: typed text is one positional argument after `--`,
/// tmux reads it back exactly, and it can never end the command.
pub fn tmux_argv(data: &[u8]) {
    use crate::tmux::{invocation_args, Command, PaneId, SpecialKey};
    let s = text(data);
    let pane = PaneId::parse("%1").expect("pane id");
    let argv = invocation_args(&[
        Command::send_text(&pane, &s),
        Command::send_key(&pane, SpecialKey::Enter),
    ]);
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // send-keys -l -t %1 -- TEXT ; send-keys -t %1 -- Enter
    assert_eq!(argv.len(), 12, "{argv:?}");
    assert_eq!(&argv[..5], ["send-keys", "-l", "-t", "%1", "--"]);
    assert_eq!(argv[6], ";");
    // tmux's own rule: an argument ending in `;` ends the command unless
    // the `;` is escaped; `\;` reads back as `;`.
    let typed = &argv[5];
    let read_back = match typed.strip_suffix("\\;") {
        Some(head) => format!("{head};"),
        None => {
            assert!(!typed.ends_with(';'), "{typed:?} would end the command");
            typed.clone()
        }
    };
    assert_eq!(read_back, s);
}

/// What an agent prints (the users' own bytes): the screen, every
/// profile's question reader, tmux's captured screen and the text export
/// never panic; a question's options are numbered from 1 in order; the text
/// export never yields a line that passes for tmuxd's own.
pub fn agent_screen(data: &[u8]) {
    use crate::agent::{Profile, PROFILES};
    let (size, bytes) = data.split_at(data.len().min(2));
    let cols = 1 + u16::from(size.first().copied().unwrap_or(80)) % 200;
    let rows = 1 + u16::from(size.get(1).copied().unwrap_or(24)) % 60;
    let mut screen = crate::screen::Screen::new(cols, rows);
    screen.feed(bytes);
    let lines = screen.lines();
    assert_eq!(lines.len(), rows as usize);
    static BUILT: std::sync::OnceLock<Vec<Profile>> = std::sync::OnceLock::new();
    let profiles = BUILT.get_or_init(|| {
        PROFILES
            .iter()
            .map(|n| Profile::builtin(n).expect("built-in profile"))
            .collect()
    });
    for profile in profiles {
        let name = &profile.name;
        if let Some(q) = profile.read(&lines) {
            for (i, o) in q.options.iter().enumerate() {
                if name != &"aider" {
                    assert_eq!(o.key, (i + 1).to_string(), "{q:?}");
                }
            }
        }
    }
    if let Some(c) = crate::screen::Captured::parse(&text(bytes)) {
        let _ = crate::screen::Screen::from_captured(&c).lines();
    }
    let out = crate::transcript::to_text(bytes);
    assert!(
        out.lines().all(|l| !l.starts_with("[tmuxd")),
        "output passes for a tmuxd line: {out:?}"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_target_takes_the_empty_input_and_some_bytes() {
        for (name, target) in super::TARGETS {
            for input in [&b""[..], b"\xff\xfe;\"(", b"alice/main", b"\x1b[31m"] {
                let r = std::panic::catch_unwind(|| target(input));
                assert!(r.is_ok(), "{name} panicked on {input:?}");
            }
        }
    }
}
