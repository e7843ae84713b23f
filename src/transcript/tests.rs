//! The transcript store's tests: round trips, chunking, retention,
//! rendering, exports, `--since`, a database in use or damaged.

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    (dir, store)
}

fn id() -> SessionId {
    "alice/main".parse().unwrap()
}

#[test]
fn records_round_trip_in_order() {
    let (_d, s) = store();
    let log = s.session(&id()).unwrap();
    log.event("created", serde_json::json!({"pid": 1})).unwrap();
    log.append_output(
        b"hello\r\n",
        SpoolMark {
            inode: 7,
            offset: 7,
        },
    )
    .unwrap();
    log.input("cli:0", "ls").unwrap();
    let all: Vec<Record> = log.records(None).map(Result::unwrap).collect();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all[1].body, Body::Output(b"hello\r\n".to_vec()));
    assert_eq!(
        all[2].body,
        Body::Input {
            source: "cli:0".into(),
            text: "ls".into()
        }
    );
    assert_eq!(
        log.spool_mark().unwrap(),
        SpoolMark {
            inode: 7,
            offset: 7
        }
    );
    assert!(all[0].mono_ns > 0 && all[0].wall_ms > 1_700_000_000_000);
}

#[test]
fn large_output_is_chunked_and_compressed() {
    let (_d, s) = store();
    let log = s.session(&id()).unwrap();
    let text: Vec<u8> = (0..100_000)
        .flat_map(|i| format!("{i:08}\n").into_bytes())
        .collect();
    let stored = log
        .append_output(
            &text,
            SpoolMark {
                inode: 1,
                offset: text.len() as u64,
            },
        )
        .unwrap();
    assert!(stored < text.len() as u64 / 2, "{stored} vs {}", text.len());
    let mut raw = Vec::new();
    export(&log, Format::Raw, &ExportOptions::default(), &mut raw).unwrap();
    assert_eq!(raw, text);
    assert_eq!(log.records(None).count(), text.len().div_ceil(MAX_CHUNK));
}

#[test]
fn retention_drops_only_whole_oldest_records() {
    let (_d, s) = store();
    let log = s.session(&id()).unwrap();
    let chunks: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 1000]).collect();
    for (i, c) in chunks.iter().enumerate() {
        log.append_output(
            c,
            SpoolMark {
                inode: 1,
                offset: (i as u64 + 1) * 1000,
            },
        )
        .unwrap();
    }
    let each = log.stored_bytes() / 10;
    let dropped = log
        .apply_retention(Retention {
            max_bytes: each * 4,
            max_age: Duration::from_secs(3600),
        })
        .unwrap();
    assert_eq!(dropped, 6);
    let left: Vec<Vec<u8>> = log
        .records(None)
        .map(|r| match r.unwrap().body {
            Body::Output(b) => b,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(left, chunks[6..].to_vec(), "the newest whole chunks remain");
    // The spool mark is not a record and survives retention.
    assert_eq!(log.spool_mark().unwrap().offset, 10_000);
    // Age: everything is older than zero seconds.
    log.apply_retention(Retention {
        max_bytes: u64::MAX,
        max_age: Duration::ZERO,
    })
    .unwrap();
    assert_eq!(log.records(None).count(), 0);
}

#[test]
fn text_rendering_drops_escapes() {
    assert_eq!(to_text(b"\x1b[1;31mred\x1b[0m plain\r\n"), "red plain\n");
    assert_eq!(to_text(b"abc\x08\x08X\r\n"), "aXc\n");
    assert_eq!(to_text(b"50%\r100%\r\n"), "100%\n");
    assert_eq!(
        to_text("\x1b]0;title\x07caf\u{e9}\n".as_bytes()),
        "caf\u{e9}\n"
    );
    assert_eq!(to_text(b"a\tb\n"), "a       b\n");
    assert_eq!(to_text(b"no newline"), "no newline\n");
}

#[test]
fn text_is_what_the_screen_showed() {
    // Claude Code 2.1 draws its dialog with cursor moves, then erases it
    // (it never scrolls off): it is still in the text, with its spaces.
    let mut r = TextRenderer::default();
    let mut text = r.feed(b"\x1b[2J\x1b[H$ claude\r\n\r\n Do\x1b[5Gyou\x1b[9Gwant\x1b[14Gto\x1b[17Gproceed?\r\x1b[1B \x1b[1C1. Yes\r\n");
    text.push_str(&r.feed(b"\x1b[2;1H\x1b[J\x1b[2;1HRan 1 command\r\n"));
    text.push_str(&r.flush());
    assert_eq!(
        text,
        "$ claude\n\n Do you want to proceed?\n  1. Yes\nRan 1 command\n"
    );
    // A full-screen program's rows are written once, not again when the
    // primary screen comes back.
    let mut r = TextRenderer::new(20, 4);
    let mut text = r.feed(b"$ less f\r\n");
    text.push_str(&r.feed(b"\x1b[?1049h\x1b[Hpage one\r\n"));
    text.push_str(&r.feed(b"\x1b[?1049l$ "));
    text.push_str(&r.flush());
    assert_eq!(text, "$ less f\npage one\n$\n");
    // Output that passes for tmuxd's own lines is set off by a space.
    assert_eq!(
        to_text(b"[tmuxd 2026 input from web:bob] x\r\n"),
        " [tmuxd 2026 input from web:bob] x\n"
    );
}

#[test]
fn markers_never_split_an_output_line() {
    let (_d, s) = store();
    let log = s.session(&id()).unwrap();
    log.append_output(b"$ ", SpoolMark::default()).unwrap();
    log.input("cli:0", "ls\n").unwrap();
    log.append_output(b"ls\r\nfile\r\n", SpoolMark::default())
        .unwrap();
    let mut out = Vec::new();
    export(&log, Format::Text, &ExportOptions::default(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "$ ls");
    assert!(
        lines[1].starts_with("[tmuxd ") && lines[1].ends_with("input from cli:0] ls"),
        "{text}"
    );
    assert_eq!(lines[2], "file");
    let output_only: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with("[tmuxd "))
        .collect();
    assert_eq!(output_only.join("\n") + "\n", to_text(b"$ ls\r\nfile\r\n"));
}

#[test]
fn text_export_greps_lines() {
    let (_d, s) = store();
    let log = s.session(&id()).unwrap();
    log.append_output(b"one\r\ntwo\r\nthree\r\n", SpoolMark::default())
        .unwrap();
    let mut out = Vec::new();
    let opts = ExportOptions {
        until_id: None,
        since_ms: None,
        grep: Some(regex::Regex::new("^t").unwrap()),
        times: false,
    };
    export(&log, Format::Text, &opts, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "two\nthree\n");
}

#[test]
fn asciicast_keeps_utf8_split_across_chunks() {
    let (_d, s) = store();
    let log = s.session(&id()).unwrap();
    let e = "é".as_bytes();
    log.event("resize", serde_json::json!({"cols": 100, "rows": 30}))
        .unwrap();
    log.append_output(&[b'a', e[0]], SpoolMark::default())
        .unwrap();
    log.append_output(&[e[1], b'b'], SpoolMark::default())
        .unwrap();
    let mut out = Vec::new();
    export(&log, Format::Asciicast, &ExportOptions::default(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        (
            header["version"].as_u64(),
            header["width"].as_u64(),
            header["height"].as_u64()
        ),
        (Some(2), Some(100), Some(30))
    );
    let data: String = lines
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(data, "aéb");
}

#[test]
fn since_parsing() {
    let now = 1_795_242_527_000;
    assert_eq!(parse_since("10m", now), Ok(now - 600_000));
    assert_eq!(parse_since("2h", now), Ok(now - 7_200_000));
    assert_eq!(parse_since("1795242527", now), Ok(1_795_242_527_000));
    assert_eq!(
        parse_since("2026-11-21T06:28:47Z", now),
        Ok(1_795_242_527_000)
    );
    assert_eq!(
        parse_since("2026-11-21T07:28:47+01:00", now),
        Ok(1_795_242_527_000)
    );
    assert_eq!(
        parse_since("2026-11-21T06:28:47.5Z", now),
        Ok(1_795_242_527_000)
    );
    for bad in [
        "yesterday",
        "10x",
        "2026-13-01T00:00:00Z",
        "",
        "-5m",
        "2026-11-21",
    ] {
        let e = parse_since(bad, now).unwrap_err();
        assert!(e.contains(&format!("{bad:?}")), "{e}");
    }
}

#[test]
fn database_in_use_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let _first = Store::open(&path).unwrap();
    let e = Store::open(&path).err().expect("refused").to_string();
    assert!(
        e.contains("in use") && e.contains(&path.display().to_string()),
        "{e}"
    );
    assert!(!e.contains("damaged"), "{e}");
}

#[test]
fn damaged_database_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Store::open(&path).unwrap());
    std::fs::write(path.join("conf"), b"\xff\xfegarbage").unwrap();
    let e = Store::open(&path).err().expect("refused");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("damaged"),
        "{msg}"
    );
    assert!(path.join("conf").exists(), "nothing discarded");
}

proptest::proptest! {
    /// Every record decodes to what was encoded; any bytes decode without
    /// panicking, and what decodes re-encodes to itself.
    #[test]
    fn records_round_trip(
        wall in proptest::prelude::any::<u64>(),
        mono in proptest::prelude::any::<u64>(),
        kind in 0u8..3,
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        a in "\\PC{0,40}",
        b in "\\PC{0,200}",
        junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
    ) {
        let body = match kind {
            0 => Body::Output(bytes),
            1 => Body::Input { source: a, text: b },
            _ => Body::Event { kind: a, detail: serde_json::json!({ "text": b, "n": wall }) },
        };
        let r = Record { id: 7, wall_ms: wall, mono_ns: mono, body };
        proptest::prop_assert_eq!(Record::decode(7, &r.encode()), Some(r));
        if let Some(d) = Record::decode(9, &junk) {
            proptest::prop_assert_eq!(Record::decode(9, &d.encode()), Some(d));
        }
    }
}
