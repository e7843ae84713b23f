//! Terminal-generated replies in a viewer's input: xterm.js answers the
//! queries a program sends (device attributes, cursor position, focus
//! changes, colour queries) through the same channel as keystrokes. They go
//! to the program unchanged but are not recorded as what the user typed.

use std::sync::LazyLock;

use regex::bytes::Regex;

static REPLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\x1b\[[?>][0-9;]*c",                        // device attributes (DA1, DA2)
        r"|\x1b\[[0-9]+;[0-9]+R",                     // cursor position report
        r"|\x1b\[\?[0-9;]*\$y",                       // mode report (DECRPM)
        r"|\x1b\[[IO]",                               // focus in, focus out
        r"|\x1b\][0-9]+;[^\x07\x1b]*(?:\x07|\x1b\\)", // OSC reply (colours)
        r"|\x1bP[^\x1b]*\x1b\\",                      // DCS reply (XTVERSION, DECRQSS)
    ))
    .expect("reply pattern")
});

/// `bytes` without terminal-generated replies.
pub fn typed_part(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    REPLY.replace_all(bytes, &b""[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_not_typing() {
        for reply in [
            &b"\x1b[>0;276;0c"[..],
            b"\x1b[?1;2c",
            b"\x1b[12;40R",
            b"\x1b[I",
            b"\x1b[O",
            b"\x1b]11;rgb:0000/0000/0000\x1b\\",
            b"\x1b]10;rgb:ffff/ffff/ffff\x07",
            b"\x1bP>|xterm.js(5.5.0)\x1b\\",
        ] {
            assert!(typed_part(reply).is_empty(), "{reply:?}");
        }
        assert_eq!(&*typed_part(b"ls\x1b[I -l\r"), b"ls -l\r");
        // Keys that look alike stay: arrows, Escape, function keys.
        for key in [&b"\x1b[A"[..], b"\x1b", b"\x1bOP", b"\x1b[15~", b"c"] {
            assert_eq!(&*typed_part(key), key);
        }
    }
}
