//! Agent profiles: how each agent CLI shows on its screen that it is busy
//! or asks a question, and how the question and its options are read off
//! the screen. Built in: Claude Code, Codex CLI, Aider, Gemini CLI, plain
//! shells, and `generic` (any agent; a user's `waiting_pattern` makes a
//! profile of its own). The pure logic lives here; the recorder applies it
//! to each session's [`crate::screen::Screen`].

use regex::Regex;
use serde::Serialize;

/// How a profile's options are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Options {
    /// Lines `1. Yes`, `❯ 2. No` below the question; answered by its digit.
    Numbered,
    /// `(Y)es/(N)o` on the question line; answered by the letter and Enter.
    YesNo,
}

/// One agent's profile.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: &'static str,
    /// A line of the screen that asks a question.
    question: Option<Regex>,
    /// Shown while the agent works: it is not waiting then.
    busy: Option<Regex>,
    options: Options,
    /// The dialog's detail is below the question, above the options
    /// (Codex), not above it (Claude Code).
    detail_below: bool,
}

/// The built-in profiles, by name.
pub const PROFILES: &[&str] = &["claude", "codex", "aider", "gemini", "shell", "generic"];

/// The generic question: what Claude Code and many others ask.
const GENERIC_QUESTION: &str = r"(?i)do you want to (proceed|make this edit|create|run|allow)";

impl Profile {
    /// A built-in profile; `None` for an unknown name.
    pub fn builtin(name: &str) -> Option<Profile> {
        let (name, question, busy, options) = match name {
            "claude" => (
                "claude",
                Some(r"(?i)^\s*do you want to .+\?\s*$"),
                Some(r"(?i)esc to interrupt"),
                Options::Numbered,
            ),
            "codex" => (
                "codex",
                Some(r"(?i)^\s*(would you like to|allow|do you want to) .+\?\s*$"),
                Some(r"(?i)esc to interrupt"),
                Options::Numbered,
            ),
            "gemini" => (
                "gemini",
                Some(
                    r"(?i)^\s*[│|]?\s*(apply this change|allow execution|do you want to proceed).*\?",
                ),
                Some(r"(?i)esc to cancel, \d"),
                Options::Numbered,
            ),
            "aider" => (
                "aider",
                Some(r"\(Y\)es/\(N\)o.*\]:?\s*$"),
                None,
                Options::YesNo,
            ),
            "shell" => ("shell", None, None, Options::Numbered),
            "generic" => ("generic", Some(GENERIC_QUESTION), None, Options::Numbered),
            _ => return None,
        };
        Some(Profile {
            name,
            question: question.map(|q| Regex::new(q).expect("built-in pattern")),
            busy: busy.map(|b| Regex::new(b).expect("built-in pattern")),
            options,
            detail_below: name == "codex",
        })
    }

    /// The profile for an agent command: by the program's name, else
    /// `generic` (also for a shell running a script, `sh -c ...`).
    pub fn for_command(argv: &[String]) -> &'static str {
        let program = argv
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .unwrap_or("");
        match program {
            "claude" => "claude",
            "codex" => "codex",
            "aider" => "aider",
            "gemini" => "gemini",
            "sh" | "bash" | "zsh" | "fish" | "dash" | "ksh" if !argv.iter().any(|a| a == "-c") => {
                "shell"
            }
            _ => "generic",
        }
    }

    /// `base` asking with the user's own question pattern (already
    /// validated); an empty pattern never asks.
    pub fn with_question(mut self, pattern: &str) -> Result<Profile, regex::Error> {
        self.question = if pattern.is_empty() {
            None
        } else {
            Some(Regex::new(pattern)?)
        };
        Ok(self)
    }

    /// The question the screen shows, if the agent is waiting for an answer.
    pub fn read(&self, lines: &[String]) -> Option<Question> {
        let question = self.question.as_ref()?;
        if let Some(busy) = &self.busy {
            if lines.iter().any(|l| busy.is_match(l)) {
                return None;
            }
        }
        let at = lines.iter().rposition(|l| question.is_match(l))?;
        let options = match self.options {
            Options::Numbered => numbered(&lines[at + 1..]),
            Options::YesNo => vec![option("y", "Yes"), option("n", "No")],
        };
        let detail = if self.detail_below {
            detail_below(&lines[at + 1..])
        } else {
            detail(&lines[..at])
        };
        Some(Question {
            text: lines[at].trim().to_owned(),
            detail,
            options,
        })
    }

    /// What to type to choose `key`, and whether Enter follows.
    pub fn keys_for(&self, key: &str) -> (String, bool) {
        (key.to_owned(), self.options == Options::YesNo)
    }
}

/// A question an agent shows, as read off its screen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Question {
    /// The question line ("Do you want to proceed?").
    pub text: String,
    /// What it is about: the lines of its dialog above the question (the
    /// tool, the command or file).
    pub detail: Vec<String>,
    pub options: Vec<AnswerOption>,
}

/// One answer a question offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnswerOption {
    /// What is typed to choose it ("1", "y").
    pub key: String,
    pub label: String,
}

fn option(key: &str, label: &str) -> AnswerOption {
    AnswerOption {
        key: key.to_owned(),
        label: label.to_owned(),
    }
}

/// Lines `1. Yes` (optionally behind a selection mark) numbered from 1;
/// an indented line continues the option above it.
fn numbered(lines: &[String]) -> Vec<AnswerOption> {
    let re = &*OPTION;
    let mut options: Vec<AnswerOption> = Vec::new();
    for line in lines {
        let line = line
            .trim_start_matches(['│', '|'])
            .trim_end_matches(['│', '|']);
        match re.captures(line) {
            Some(c) if c[1] == (options.len() + 1).to_string() => {
                options.push(option(&c[1], &c[2]))
            }
            _ if line.trim().is_empty() || options.is_empty() => {
                if !options.is_empty() {
                    break;
                }
            }
            _ if line.starts_with("   ") => {
                let last = options.last_mut().expect("an option");
                last.label.push(' ');
                last.label.push_str(line.trim());
            }
            _ => break,
        }
    }
    options
}

/// An option line: `1. Yes`, optionally behind a selection mark.
static OPTION: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(r"^\s*(?:[❯›>▶●•*]\s*)?(\d{1,2})[.)]\s+(\S.*?)\s*$").expect("pattern")
});

/// The dialog below a question, up to its first option: at most 12
/// non-empty lines.
fn detail_below(below: &[String]) -> Vec<String> {
    below
        .iter()
        .take_while(|l| !OPTION.is_match(l))
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .take(12)
        .map(str::to_owned)
        .collect()
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.chars().count() >= 3 && t.chars().all(|c| "─━╌┄-═_╭╮╰╯┌┐└┘".contains(c))
}

/// The dialog above a question: up to the screen's last full rule (the
/// line that opens the dialog), at most 12 lines, rules left out.
fn detail(above: &[String]) -> Vec<String> {
    let start = above
        .iter()
        .rposition(|l| is_rule(l) && !l.contains('╌'))
        .map_or(0, |i| i + 1)
        .max(above.len().saturating_sub(12));
    above[start..]
        .iter()
        .map(|l| l.trim().trim_matches(['│', '|']).trim())
        .filter(|l| !l.is_empty() && !is_rule(l))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_owned).collect()
    }

    /// Claude Code 2.1.332's permission dialog, as its screen shows it.
    const CLAUDE: &str = "❯ make a marker file
● Creating marker
  ⎿  $ touch /tmp/explore/ran
────────────────────────────────────────
 Bash command
 Create marker
╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌
 touch /tmp/explore/ran
╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌
 Do you want to proceed?
 ❯ 1. Yes
   2. Yes, and always allow access to /tmp/explore from
      this project
   3. No
 Esc to cancel · Tab to amend";

    #[test]
    fn claude_permission_dialog() {
        let p = Profile::builtin("claude").unwrap();
        let q = p.read(&lines(CLAUDE)).expect("a question");
        assert_eq!(q.text, "Do you want to proceed?");
        assert_eq!(
            q.detail,
            ["Bash command", "Create marker", "touch /tmp/explore/ran"]
        );
        let labels: Vec<&str> = q.options.iter().map(|o| o.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Yes",
                "Yes, and always allow access to /tmp/explore from this project",
                "No"
            ]
        );
        assert_eq!(q.options[2].key, "3");
        assert_eq!(p.keys_for("1"), ("1".to_owned(), false));
        // Working again: not waiting.
        let busy = format!("{CLAUDE}\n✻ Thinking… (esc to interrupt)");
        assert!(p.read(&lines(&busy)).is_none());
        assert!(p
            .read(&lines("❯ make a marker file\n● All done."))
            .is_none());
    }

    /// Codex CLI 0.171.0's approval dialog, as its screen shows it.
    const CODEX: &str = "› run the marker

• Running echo RAN-MARKER >> /tmp/cx/ran.log

  Would you like to run the following command?

  Environment: local

  Reason: Record the marker?

  $ echo RAN-MARKER >> /tmp/cx/ran.log

› 1. Yes, proceed (y)
  2. Yes, and don't ask again for commands that start with `echo RAN-MARKER >> /tmp/cx/ran.log` (p)
  3. No, and tell Codex what to do differently (esc)

  Press enter to confirm or esc to cancel";

    #[test]
    fn codex_approval_dialog() {
        let p = Profile::builtin("codex").unwrap();
        let q = p.read(&lines(CODEX)).expect("a question");
        assert_eq!(q.text, "Would you like to run the following command?");
        assert_eq!(
            q.detail,
            [
                "Environment: local",
                "Reason: Record the marker?",
                "$ echo RAN-MARKER >> /tmp/cx/ran.log"
            ]
        );
        let labels: Vec<&str> = q.options.iter().map(|o| o.label.as_str()).collect();
        assert_eq!(labels.len(), 3, "{labels:?}");
        assert_eq!(labels[0], "Yes, proceed (y)");
        assert!(labels[2].starts_with("No, and tell Codex"), "{labels:?}");
        let busy = format!("{CODEX}\n• Working (3s • esc to interrupt)");
        assert!(p.read(&lines(&busy)).is_none());
    }

    #[test]
    fn aider_yes_no() {
        let p = Profile::builtin("aider").unwrap();
        let q = p
            .read(&lines("Add file.py to the chat? (Y)es/(N)o [Yes]:"))
            .expect("a question");
        assert_eq!(q.options.len(), 2);
        assert_eq!(p.keys_for("y"), ("y".to_owned(), true));
    }

    #[test]
    fn profiles_by_command_and_own_pattern() {
        for name in PROFILES {
            assert!(Profile::builtin(name).is_some(), "{name}");
        }
        assert!(Profile::builtin("nope").is_none());
        assert_eq!(Profile::for_command(&["/usr/bin/claude".into()]), "claude");
        assert_eq!(Profile::for_command(&["bash".into()]), "shell");
        let script = ["sh".into(), "-c".into(), "my-agent".into()];
        assert_eq!(Profile::for_command(&script), "generic");
        assert_eq!(Profile::for_command(&["python3".into()]), "generic");
        assert!(Profile::builtin("shell")
            .unwrap()
            .read(&lines("$ "))
            .is_none());
        let own = Profile::builtin("generic")
            .unwrap()
            .with_question(r"proceed\? \(y/n\)")
            .unwrap();
        let q = own.read(&lines("Really proceed? (y/n) ")).expect("asks");
        assert!(q.options.is_empty());
        let never = Profile::builtin("claude")
            .unwrap()
            .with_question("")
            .unwrap();
        assert!(never.read(&lines(CLAUDE)).is_none());
    }
}
