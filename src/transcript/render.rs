//! Terminal output as text: a VT parser (vte) that keeps what is
//! printed and drops escape sequences.

/// Renders terminal output as plain text through a VT parser: printable
/// characters and line breaks are kept, escape sequences dropped, backspace
/// and carriage returns applied to the current line.
#[derive(Default)]
pub struct TextRenderer {
    parser: vte::Parser,
    sink: TextSink,
}

#[derive(Default)]
pub(super) struct TextSink {
    line: Vec<char>,
    col: usize,
    done: String,
}

impl TextRenderer {
    /// Feeds bytes; returns the lines completed so far.
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        self.parser.advance(&mut self.sink, bytes);
        std::mem::take(&mut self.sink.done)
    }

    /// The line being written (not yet ended), e.g. a prompt.
    pub fn current_line(&self) -> String {
        self.sink.line.iter().collect()
    }

    /// Ends the current line (if any) and returns what is pending.
    pub fn flush(&mut self) -> String {
        if !self.sink.line.is_empty() {
            self.sink.newline();
        }
        std::mem::take(&mut self.sink.done)
    }
}

/// Renders a whole byte string as text.
pub fn to_text(bytes: &[u8]) -> String {
    let mut r = TextRenderer::default();
    let mut s = r.feed(bytes);
    s.push_str(&r.flush());
    s
}

impl TextSink {
    pub(super) fn newline(&mut self) {
        let line: String = self.line.iter().collect();
        self.done.push_str(line.trim_end());
        self.done.push('\n');
        self.line.clear();
        self.col = 0;
    }
}

impl vte::Perform for TextSink {
    fn print(&mut self, c: char) {
        if self.col < self.line.len() {
            self.line[self.col] = c;
        } else {
            self.line.push(c);
        }
        self.col += 1;
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => self.newline(),
            b'\r' => self.col = 0,
            b'\t' => {
                let next = (self.col / 8 + 1) * 8;
                while self.line.len() < next {
                    self.line.push(' ');
                }
                self.col = next;
            }
            0x08 => self.col = self.col.saturating_sub(1),
            _ => {}
        }
    }
}
