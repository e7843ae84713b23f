//! The bridge's pure parts: the command grammar, subjects, the limiter.

use super::*;

#[test]
fn commands_and_verbs() {
    assert_eq!(parse_command("status"), Ok(Command::Verb(Verb::Status)));
    assert_eq!(
        parse_command("Transcript 5"),
        Ok(Command::Verb(Verb::Transcript(5)))
    );
    assert_eq!(
        parse_command("transcript 99999"),
        Ok(Command::Verb(Verb::Transcript(500)))
    );
    assert!(parse_command("transcript x").is_err());
    assert_eq!(
        parse_command("interrupt"),
        Ok(Command::Act(Action::Interrupt))
    );
    assert_eq!(
        parse_command("status of the build?"),
        Ok(Command::Act(Action::Prompt {
            text: "status of the build?".into(),
            files: Vec::new(),
        }))
    );
    assert_eq!(
        parse_command("snapshots"),
        Ok(Command::Verb(Verb::Snapshots))
    );
    assert_eq!(
        parse_command("rollback 19C777FA"),
        Ok(Command::Act(Action::Rollback {
            snapshot: "19c777fa".into()
        }))
    );
    assert!(parse_command("rollback latest")
        .unwrap_err()
        .contains("not a snapshot id"));
    assert!(parse_command("YES")
        .unwrap_err()
        .contains("without a confirmation token"));
    for bad in [
        "ls \u{1b}[31m",
        "a\tb",
        "x\u{7f}",
        "\u{9b}31m",
        "evil\u{202e}txt",
        "zero\u{200b}width",
        // Found passing the old list (issue 10).
        "tag\u{E0041}block",
        "soft\u{AD}hyphen",
        "arabic\u{61C}mark",
        "mongolian\u{180E}space",
        "emoji\u{FE0F}selector",
        "hangul\u{3164}filler",
        "choseong\u{115F}filler",
        "braille\u{2800}blank",
        "grapheme\u{34F}joiner",
        "musical\u{1D173}begin",
        "private\u{E000}use",
        "unassigned\u{378}point",
    ] {
        let e = parse_command(bad).unwrap_err();
        assert!(e.contains("never typed"), "{bad:?}: {e}");
    }
    assert!(parse_command(&"x".repeat(4001)).is_err());
    assert!(parse_command("café ünïcode is fine").is_ok());
}

#[test]
fn sessions_from_subjects() {
    assert_eq!(session_from_subject("hello").unwrap().as_str(), "main");
    assert_eq!(
        session_from_subject("Re: [docs] x").unwrap().as_str(),
        "docs"
    );
    assert!(session_from_subject("[Bad Name]")
        .unwrap_err()
        .contains("[Bad Name]"));
    assert_eq!(
        address_with_tag("agent@x.org", "c-abc"),
        "agent+c-abc@x.org"
    );
}

#[test]
fn limiter_counts_per_key_and_forgets() {
    let mut l = Limiter::default();
    let t0 = Instant::now();
    let keys = |s: &str| vec![(format!("s:{s}"), 2), ("u:alice".to_string(), 3)];
    assert!(l.allow(&keys("a"), t0));
    assert!(l.allow(&keys("a"), t0));
    assert!(!l.allow(&keys("a"), t0), "sender limit");
    assert!(l.allow(&keys("b"), t0));
    assert!(!l.allow(&keys("c"), t0), "user limit");
    assert!(l.allow(&keys("c"), t0 + Duration::from_secs(3601)));
}

#[test]
fn attachments_go_with_prompts_of_allowed_types() {
    use crate::mail::message::MailFile;
    let allowed = ["image/*".to_owned(), "application/pdf".to_owned()];
    let file = |name: &str, t: &str| MailFile {
        name: name.into(),
        content_type: t.into(),
        bytes: b"x".to_vec(),
    };
    let prompt = || Action::Prompt {
        text: "look at this".into(),
        files: Vec::new(),
    };
    let Ok(Action::Prompt { files, .. }) = with_files(
        prompt(),
        &[file("a.png", "image/png"), file("b.pdf", "application/pdf")],
        &allowed,
    ) else {
        panic!("allowed files refused");
    };
    assert_eq!(files.len(), 2);
    assert_eq!(files[1].bytes(), b"x");
    assert_eq!(files[1].size(), 1);
    let why = with_files(prompt(), &[file("run.sh", "application/x-sh")], &allowed).unwrap_err();
    assert!(
        why.contains("run.sh") && why.contains("attachment_types"),
        "{why}"
    );
    let why = with_files(Action::Interrupt, &[file("a.png", "image/png")], &allowed).unwrap_err();
    assert!(why.contains("prompt"), "{why}");
    assert_eq!(
        with_files(Action::Interrupt, &[], &allowed),
        Ok(Action::Interrupt)
    );
    let many: Vec<MailFile> = (0..11)
        .map(|i| file(&format!("{i}.png"), "image/png"))
        .collect();
    assert!(with_files(prompt(), &many, &allowed).is_err());
}
