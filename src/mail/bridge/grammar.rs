//! The mail command grammar: the first line of a mail as a verb, an
//! action or a prompt, refusing what would not show; the session named in
//! the subject.

use super::*;

/// Longest command typed from mail.
pub(super) const MAX_COMMAND_CHARS: usize = 4000;

/// Lines `transcript` sends by default, and at most.
pub(super) const TRANSCRIPT_LINES: (usize, usize) = (40, 500);

/// The session named in the subject (`[docs]`), else `main`.
pub fn session_from_subject(subject: &str) -> Result<Name, String> {
    let Some(start) = subject.find('[') else {
        return Ok(Name::main());
    };
    let rest = &subject[start + 1..];
    let Some(end) = rest.find(']') else {
        return Ok(Name::main());
    };
    let name = rest[..end].trim();
    Name::new(name).map_err(|e| format!("the subject names session [{name}]: {e}"))
}

/// A control verb answered at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Help,
    Status,
    Sessions,
    Transcript(usize),
    /// The session's workspace snapshots.
    Snapshots,
}

impl Verb {
    pub(super) fn name(self) -> &'static str {
        match self {
            Verb::Help => "help",
            Verb::Status => "status",
            Verb::Sessions => "sessions",
            Verb::Transcript(_) => "transcript",
            Verb::Snapshots => "snapshots",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Verb(Verb),
    Act(Action),
    /// `new NAME`: create USER/NAME.
    New(Name),
}

/// Reads the first line of a mailed command.
pub fn parse_command(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let verb = words
        .first()
        .map(|w| w.to_ascii_lowercase())
        .unwrap_or_default();
    match (verb.as_str(), words.len()) {
        ("help", 1) => return Ok(Command::Verb(Verb::Help)),
        ("status", 1) => return Ok(Command::Verb(Verb::Status)),
        ("sessions", 1) => return Ok(Command::Verb(Verb::Sessions)),
        ("interrupt", 1) => return Ok(Command::Act(Action::Interrupt)),
        ("snapshots", 1) => return Ok(Command::Verb(Verb::Snapshots)),
        ("rollback", 2) => {
            crate::workspace::snapshot::check_id(words[1])?;
            return Ok(Command::Act(Action::Rollback {
                snapshot: words[1].to_ascii_lowercase(),
            }));
        }
        ("new", 2) => {
            let name = Name::new(words[1]).map_err(|e| format!("`new NAME`: {e}"))?;
            return Ok(Command::New(name));
        }
        ("transcript", 1) => return Ok(Command::Verb(Verb::Transcript(TRANSCRIPT_LINES.0))),
        ("transcript", 2) => {
            let n: usize = words[1]
                .parse()
                .map_err(|_| format!("`transcript N` needs a number of lines, not {:?}", words[1]))?;
            return Ok(Command::Verb(Verb::Transcript(n.clamp(1, TRANSCRIPT_LINES.1))));
        }
        ("yes" | "y" | "confirm", 1) => {
            return Err("a YES without a confirmation token: reply to the confirmation mail itself (its reply address carries the token)".into())
        }
        _ => {}
    }
    if let Some((i, c)) = line.char_indices().find(|(_, c)| forbidden(*c)) {
        return Err(format!(
            "the command contains the control or formatting character U+{:04X} at byte {i}; escape sequences and invisible characters are never typed",
            c as u32
        ));
    }
    if line.chars().count() > MAX_COMMAND_CHARS {
        return Err(format!(
            "the command is longer than {MAX_COMMAND_CHARS} characters"
        ));
    }
    Ok(Command::Act(Action::Prompt {
        text: line.to_owned(),
        files: Vec::new(),
    }))
}

/// Characters never typed from mail, by Unicode category rather than by a
/// list: controls (Cc: escape sequences, tabs), format characters (Cf:
/// bidirectional and zero-width marks, soft hyphens, the TAG block),
/// private use (Co), unassigned code points (Cn), line and paragraph
/// separators; plus the letters and marks that render as nothing (Hangul
/// fillers, the blank Braille pattern, the combining grapheme joiner,
/// variation selectors, Khmer inherent vowels). A confirmation must show
/// everything that would be typed.
pub(crate) fn forbidden(c: char) -> bool {
    static INVISIBLE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = INVISIBLE.get_or_init(|| {
        regex::Regex::new(
            r"[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}\x{115F}\x{1160}\x{3164}\x{FFA0}\x{2800}\x{034F}\x{17B4}\x{17B5}\x{180B}-\x{180F}\x{FE00}-\x{FE0F}\x{E0100}-\x{E01EF}]",
        )
        .expect("invisible character class compiles")
    });
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

/// Most files one mailed prompt may carry.
const MAX_FILES: usize = 10;

/// `action` with the message's attachments: only a prompt takes them, and
/// only of the `allowed` MIME types (`image/*` matches any image).
pub(crate) fn with_files(
    action: Action,
    files: &[crate::mail::message::MailFile],
    allowed: &[String],
) -> Result<Action, String> {
    if files.is_empty() {
        return Ok(action);
    }
    let Action::Prompt { text, .. } = action else {
        return Err(format!(
            "attachments go with a prompt to type; {} takes none: mail it without them",
            action.describe()
        ));
    };
    if files.len() > MAX_FILES {
        return Err(format!(
            "{} attachments; at most {MAX_FILES} go with one prompt",
            files.len()
        ));
    }
    let fits = |t: &str| {
        allowed.iter().any(|a| match a.strip_suffix("/*") {
            Some(major) => t.split('/').next() == Some(major),
            None => a == t,
        })
    };
    for f in files {
        if !fits(&f.content_type) {
            let list = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            };
            return Err(format!(
                "the attachment {:?} is {}; attachments may be: {list} ([mail] attachment_types)",
                f.name, f.content_type
            ));
        }
    }
    let files = files
        .iter()
        .map(|f| crate::mail::state::Attachment::new(&f.name, &f.content_type, &f.bytes))
        .collect();
    Ok(Action::Prompt { text, files })
}
