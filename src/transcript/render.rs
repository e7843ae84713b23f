//! Terminal output as text, rendered by the same screen model the agent's
//! state is read from (`vt100`): what a person saw, in order. Rows are
//! written when they scroll off the top, and at each look at the screen
//! (after each output chunk, before each marker) the rows that changed
//! since they were last written, top to bottom, runs of blank rows as one.
//! A line still being written (the cursor's row, with nothing below it)
//! waits for the cursor to leave it, and so do markers that arrive
//! meanwhile: an input is written after the line that shows it, before
//! the output it caused. Rows of the alternate screen are compared with
//! the alternate screen only.

use crate::screen::dim;

/// Renders terminal output as text (see the module doc).
pub struct TextRenderer {
    parser: vt100::Parser<Sink>,
}

/// What the screen hands out while it processes output.
#[derive(Default)]
struct Sink {
    /// Per screen (primary, alternate), per visible row: what was last
    /// written for it.
    written: [Vec<Option<String>>; 2],
    /// Markers waiting for the line on this primary row to be complete.
    pending: Vec<String>,
    pending_row: Option<usize>,
    done: String,
}

impl Default for TextRenderer {
    fn default() -> Self {
        let (cols, rows) = crate::screen::DEFAULT_SIZE;
        TextRenderer::new(cols, rows)
    }
}

impl TextRenderer {
    pub fn new(cols: u16, rows: u16) -> TextRenderer {
        let sink = Sink {
            written: [vec![None; rows as usize], vec![None; rows as usize]],
            ..Sink::default()
        };
        TextRenderer {
            parser: vt100::Parser::new_with_callbacks(dim(rows), dim(cols), 0, sink),
        }
    }

    /// Feeds output; returns the text completed by it.
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        self.parser.process(bytes);
        let _ = self.look();
        std::mem::take(&mut self.parser.callbacks_mut().done)
    }

    /// The terminal was resized; returns the rows it pushed off the top.
    pub fn resize(&mut self, cols: u16, rows: u16) -> String {
        self.parser.set_size(dim(rows), dim(cols));
        let sink = self.parser.callbacks_mut();
        for w in &mut sink.written {
            w.resize(rows as usize, None);
        }
        std::mem::take(&mut sink.done)
    }

    /// A marker line (an input, an event): written now, or after the line
    /// being written once it is complete. Returns what is ready.
    pub fn marker(&mut self, line: String) -> String {
        let writing = self.look();
        let sink = self.parser.callbacks_mut();
        if sink.pending_row.is_some() || writing.is_some() {
            if sink.pending_row.is_none() {
                sink.pending_row = writing;
            }
            sink.pending.push(line);
        } else {
            sink.done.push_str(&line);
        }
        std::mem::take(&mut sink.done)
    }

    /// Writes every row still unwritten, a line being written too, and
    /// the markers still waiting; returns what is pending.
    pub fn flush(&mut self) -> String {
        self.write_rows(true);
        let sink = self.parser.callbacks_mut();
        sink.done.extend(sink.pending.drain(..));
        sink.pending_row = None;
        std::mem::take(&mut sink.done)
    }

    /// Writes the rows that changed since last written, except a line
    /// still being written, whose row it returns.
    fn look(&mut self) -> Option<usize> {
        self.write_rows(false)
    }

    fn write_rows(&mut self, all: bool) -> Option<usize> {
        let (screen, sink) = self.parser.screen_and_callbacks_mut();
        let alt = screen.alternate_screen() as usize;
        let (cursor, _) = screen.cursor_position();
        let lines: Vec<String> = screen
            .rows(0, screen.size().1.get())
            .map(|l| l.trim_end().to_owned())
            .collect();
        // Trailing blank rows are no lines (yet).
        let mut end = lines
            .iter()
            .rposition(|l| !l.is_empty())
            .map_or(0, |i| i + 1);
        let writing = (!all && end == cursor as usize + 1).then_some(cursor as usize);
        if writing.is_some() {
            end -= 1;
        }
        let mut blank = false;
        for (i, line) in lines.into_iter().enumerate().take(end) {
            if sink.written[alt][i].as_deref() != Some(line.as_str()) {
                if !(blank && line.is_empty()) {
                    sink.push_line(&line);
                }
                blank = line.is_empty();
                sink.written[alt][i] = Some(line);
            } else if !line.is_empty() {
                blank = false;
            }
            // The line the markers waited for is complete.
            if sink.pending_row == Some(i) {
                sink.pending_row = None;
                sink.done.extend(sink.pending.drain(..));
            }
        }
        writing
    }
}

impl Sink {
    /// An output line. One that looks like tmuxd's own `[tmuxd ...]` lines
    /// gets a leading space: in the text export only tmuxd's lines start
    /// with `[tmuxd`, so what a program prints cannot pass for an input or
    /// an event.
    fn push_line(&mut self, line: &str) {
        if line.starts_with("[tmuxd") {
            self.done.push(' ');
        }
        self.done.push_str(line);
        self.done.push('\n');
    }
}

impl vt100::Callbacks for Sink {
    fn on_scroll(&mut self, contents: vt100::capture::RowContents<'_>, alternate: bool) {
        if alternate {
            let w = &mut self.written[1];
            if !w.is_empty() {
                w.remove(0);
                w.push(None);
            }
            return;
        }
        let mut formatted = String::new();
        let mut state = vt100::capture::BasicFormattedCaptureState::new();
        let _ = contents.write_formatted_basic(&mut formatted, &mut state);
        let line: String = vt100::capture::basic_formatted_to_plain(&formatted).collect();
        let line = line.trim_end().to_owned();
        let w = &mut self.written[0];
        let before = if w.is_empty() { None } else { w.remove(0) };
        w.push(None);
        if before.as_deref() != Some(line.as_str()) {
            self.push_line(&line);
        }
        match self.pending_row {
            Some(0) => {
                self.pending_row = None;
                self.done.extend(self.pending.drain(..));
            }
            Some(r) => self.pending_row = Some(r - 1),
            None => {}
        }
    }
}

/// Renders a whole byte string as text.
pub fn to_text(bytes: &[u8]) -> String {
    let mut r = TextRenderer::default();
    let mut s = r.feed(bytes);
    s.push_str(&r.flush());
    s
}
