//! Property tests: every fuzz target of `src/fuzz.rs` (each parser of
//! untrusted input with the properties it must keep) driven by proptest,
//! from inputs built out of the tokens that matter to that parser mixed
//! with arbitrary text. A bounded run on every `cargo test`
//! (`PROPTEST_CASES`, default 2000 per target); the coverage-guided long
//! runs are `scripts/fuzz.sh` (libFuzzer, `fuzz/`).

use proptest::prelude::*;

/// Text made of `tokens` and arbitrary snippets, in any order.
fn built_from(tokens: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => proptest::sample::select(tokens).prop_map(str::to_owned),
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat().into_bytes())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

const MAIL: &[&str] = &[
    "From: alice@example.test\n",
    "To: agent+x@example.test\n",
    "Message-ID: <",
    ">\n",
    "Subject: [docs] hi\n",
    "Content-Type: multipart/mixed; boundary=b\n",
    "\n--b\n",
    "--b--\n",
    "Content-Type: text/html\n",
    "Content-Transfer-Encoding: base64\n",
    "=?utf-8?B?",
    "?=",
    "Authentication-Results: mx.example.test; dmarc=pass header.from=example.test\n",
    "Auto-Submitted: auto-replied\n",
    "\n\n",
    "> quoted\n",
    "-- \n",
    "charset=iso-8859-1",
];
const AUTH: &[&str] = &[
    "mx.example.test",
    ";",
    " ",
    "\"",
    "(",
    ")",
    "\\",
    "dmarc=pass",
    "dkim=pass",
    "dmarc=fail",
    "header.from=example.test",
    "header.d=example.test",
    "header.i=@example.test",
    "=",
    "1",
];
const COMMAND: &[&str] = &[
    "status",
    "new ",
    "interrupt",
    "transcript ",
    "yes",
    "help",
    "rm -rf ~",
    "sudo ",
    "|b''ash",
    "\\",
    "$(",
    "`",
    "\u{202e}",
    "\u{200b}",
    "\u{e0041}",
    "\u{ad}",
    "\u{3164}",
    "\x1b[",
    "\t",
    " ",
];
const CONTROL: &[&str] = &[
    "{",
    "}",
    "\"type\"",
    ":",
    "\"resize\"",
    ",",
    "\"cols\"",
    "\"rows\"",
    "80",
    "24",
    "0",
    "99999999999",
    "-1",
    "1e3",
    "null",
    "[",
    "]",
];
const NAMES: &[&str] = &[
    "alice", "/", "main", "-", "_", ".", "A", "0", "#{", "}", "=", ";",
];
const CONFIG: &[&str] = &[
    "[daemon]\n",
    "[agent]\n",
    "[web]\n",
    "[[users]]\n",
    "[mail]\n",
    "[transcript]\n",
    "name = \"a\"\n",
    "command = [\"sh\"]\n",
    "listen = \"127.0.0.1:0\"\n",
    "max_bytes = 0\n",
    "state_dir = \"/x\"\n",
    "runtime_dir = \"rel\"\n",
    "unix_user = \"root\"\n",
    "=",
    "\"",
    "max_viewers_per_session = 0\n",
    "header_timeout_s = 1\n",
    "origins = [\"x\"]\n",
];
/// Pieces of what TUI agents print: cursor moves, erases, the alternate
/// screen, wide characters, numbered options, tmuxd-looking lines.
const SCREEN: &[&str] = &[
    "\x1b[",
    "H",
    "2J",
    "K",
    "5G",
    "1B",
    "A",
    "?1049h",
    "?1049l",
    ";",
    "1",
    "9",
    "\r",
    "\n",
    " ",
    "Do you want to proceed?",
    "❯ 1. Yes",
    "2. No",
    "  3. x",
    "日本",
    "\x1b]0;t\x07",
    "[tmuxd ",
    "(Y)es/(N)o [Yes]:",
    "esc to interrupt",
    "\x1bP",
    "\x1b\\",
    "\x08",
    "\t",
    "80 24 0 0 0\n",
];
const ARGV: &[&str] = &[
    ";", "\\", "\\;", "-t", "=x", "--", "#{", "#(", "'", "\"", " ", "\n",
];

macro_rules! properties {
    ($($name:ident: $tokens:expr;)*) => {$(
        #[test]
        fn $name() {
            let config = ProptestConfig {
                cases: cases(),
                failure_persistence: None,
                ..ProptestConfig::default()
            };
            proptest!(config, |(data in built_from($tokens))| {
                tmuxd::fuzz::$name(&data);
            });
        }
    )*};
}

properties! {
    mail_message: MAIL;
    auth_results: AUTH;
    mail_command: COMMAND;
    ws_control: CONTROL;
    names: NAMES;
    config: CONFIG;
    tmux_argv: ARGV;
    agent_screen: SCREEN;
}

/// Every target of src/fuzz.rs has a property test here (and a libFuzzer
/// target in fuzz/).
#[test]
fn every_target_is_driven() {
    let here = include_str!("fuzz.rs");
    let fuzz_toml = include_str!("../../fuzz/Cargo.toml");
    for (name, _) in tmuxd::fuzz::TARGETS {
        assert!(
            here.contains(&format!("    {name}: ")),
            "no property test for {name}"
        );
        assert!(
            fuzz_toml.contains(&format!("name = \"{name}\"")),
            "no libFuzzer target {name}"
        );
    }
}
