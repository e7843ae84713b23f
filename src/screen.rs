//! The screen of one pane, as a terminal emulator keeps it: cells, cursor
//! motion, erase, the alternate screen and wide characters (the `vt100`
//! crate; README "Agents" has the measurement that chose it). Agent state
//! and questions are read off this screen, not off a line filter, because
//! TUI agents draw with cursor moves (`Do\e[5Gyou\e[9Gwant…`).
//!
//! A screen is fed every byte the pane prints, in order. After a daemon
//! restart it is rebuilt from what tmux shows ([`Captured`]), so a prompt
//! still on screen is seen again.

use std::num::NonZeroU16;

/// The size tmux creates detached sessions with (its `default-size`).
pub const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// One pane's screen.
pub struct Screen {
    parser: vt100::Parser,
}

/// A pane's screen as tmux shows it: its text, cursor and which screen is
/// active (`capture-pane` plus `display-message`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    pub cols: u16,
    pub rows: u16,
    pub cursor: (u16, u16),
    pub alternate: bool,
    pub lines: Vec<String>,
}

/// The `display-message` format [`Captured::parse`] reads.
pub const CAPTURE_FORMAT: &str =
    "#{pane_width} #{pane_height} #{cursor_x} #{cursor_y} #{alternate_on}";

impl Captured {
    /// Parses the output of `display-message -p CAPTURE_FORMAT` followed by
    /// `capture-pane -p -N`.
    pub fn parse(out: &str) -> Option<Captured> {
        let (head, rest) = out.split_once('\n').unwrap_or((out, ""));
        let f: Vec<u16> = head
            .split(' ')
            .map(|n| n.trim().parse().ok())
            .collect::<Option<_>>()?;
        let [cols, rows, x, y, alternate] = f[..] else {
            return None;
        };
        let mut lines: Vec<String> = rest.split('\n').map(str::to_owned).collect();
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines.truncate(rows as usize);
        Some(Captured {
            cols,
            rows,
            cursor: (x, y),
            alternate: alternate == 1,
            lines,
        })
    }
}

/// A terminal dimension vt100 accepts (1..=1000).
pub(crate) fn dim(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n.clamp(1, 1000)).unwrap_or(NonZeroU16::MIN)
}

impl Screen {
    pub fn new(cols: u16, rows: u16) -> Screen {
        Screen {
            parser: vt100::Parser::new(dim(rows), dim(cols), 0),
        }
    }

    /// A screen showing what tmux showed.
    pub fn from_captured(c: &Captured) -> Screen {
        let mut s = Screen::new(c.cols, c.rows);
        if c.alternate {
            s.feed(b"\x1b[?1049h");
        }
        s.feed(b"\x1b[H\x1b[2J");
        for (i, line) in c.lines.iter().enumerate() {
            s.feed(format!("\x1b[{};1H", i + 1).as_bytes());
            s.feed(line.trim_end().as_bytes());
        }
        s.feed(format!("\x1b[{};{}H", c.cursor.1 + 1, c.cursor.0 + 1).as_bytes());
        s
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
    }

    pub fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.parser.screen().size();
        (cols.get(), rows.get())
    }

    /// The pane was resized (the program redraws after its SIGWINCH).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        if self.size() != (cols, rows) {
            self.parser.set_size(dim(rows), dim(cols));
        }
    }

    /// The visible rows as text, trailing spaces removed.
    pub fn lines(&self) -> Vec<String> {
        let (cols, _) = self.size();
        self.parser
            .screen()
            .rows(0, cols)
            .map(|r| r.trim_end().to_owned())
            .collect()
    }

    /// The visible rows, one per line, with trailing blank rows removed.
    pub fn text(&self) -> String {
        let mut lines = self.lines();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_moves_keep_the_spaces() {
        let mut s = Screen::new(40, 5);
        // As Claude Code 2.1 draws it.
        s.feed(b" Do\x1b[5Gyou\x1b[9Gwant\x1b[14Gto\x1b[17Gproceed?\r\n");
        assert_eq!(s.lines()[0], " Do you want to proceed?");
    }

    #[test]
    fn erase_and_alternate_screen() {
        let mut s = Screen::new(20, 3);
        s.feed(b"shell$ \x1b[?1049h\x1b[Hdialog\x1b[2;1Hline");
        assert_eq!(s.text(), "dialog\nline");
        s.feed(b"\x1b[?1049l");
        assert_eq!(s.text(), "shell$");
        s.feed(b"\r\x1b[2K");
        assert_eq!(s.text(), "");
    }

    #[test]
    fn wide_characters_take_two_cells() {
        let mut s = Screen::new(10, 2);
        s.feed("日本x".as_bytes());
        assert_eq!(s.text(), "日本x");
        s.feed(b"\x1b[1;5HY");
        assert_eq!(s.text(), "日本Y");
    }

    #[test]
    fn rebuilt_from_what_tmux_shows() {
        let out = "30 4 2 3 0\n$ ls\nfile  \n\n> \n";
        let c = Captured::parse(out).expect("parses");
        assert_eq!(
            (c.cols, c.rows, c.cursor, c.alternate),
            (30, 4, (2, 3), false)
        );
        let mut s = Screen::from_captured(&c);
        assert_eq!(s.text(), "$ ls\nfile\n\n>");
        s.feed(b"y");
        assert_eq!(s.lines()[3], "> y");
        assert!(Captured::parse("junk\n").is_none());
        assert!(Captured::parse("1 2 3\n").is_none());
    }
}
