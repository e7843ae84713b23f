//! The recorder's own tests: spools replaced or shrunk, space reclaimed,
//! agent states.

use super::*;
use crate::recorder::typing::TYPING_PAUSE;
use crate::transcript::{export, ExportOptions, Format};
use std::path::Path;

fn recorder(dir: &Path, waiting: Option<&str>, idle_ms: u64) -> Recorder {
    let store = Store::open(&dir.join("db")).unwrap();
    let mut profiles = HashMap::new();
    if let Some(p) = waiting {
        let profile = Profile::builtin("generic")
            .unwrap()
            .with_question(p)
            .unwrap();
        profiles.insert("alice".to_owned(), Arc::new(profile));
    }
    Recorder::new(
        store,
        dir.join("spool"),
        Retention {
            max_bytes: u64::MAX,
            max_age: Duration::from_secs(86_400),
        },
        ActivityConfig {
            idle_after: Duration::from_millis(idle_ms),
            profiles,
        },
    )
    .unwrap()
}

fn raw(rec: &Recorder, id: &SessionId) -> Vec<u8> {
    let mut out = Vec::new();
    export(
        &rec.log(id).unwrap(),
        Format::Raw,
        &ExportOptions::default(),
        &mut out,
    )
    .unwrap();
    out
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[tokio::test]
async fn spool_shrunk_or_replaced_is_detected_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recorder(dir.path(), None, 60_000);
    let id: SessionId = "alice/main".parse().unwrap();
    rec.track(&id).unwrap();
    let spool = rec.spool_path(&id);
    append(&spool, b"one\n");
    rec.catch_up().await;
    append(&spool, b"two\n");
    rec.catch_up().await;
    assert_eq!(raw(&rec, &id), b"one\ntwo\n");
    // Shrunk: truncated, then new output.
    std::fs::write(&spool, b"3\n").unwrap();
    rec.catch_up().await;
    assert_eq!(raw(&rec, &id), b"one\ntwo\n3\n");
    // Replaced: a new file renamed over it.
    let other = dir.path().join("new.out");
    std::fs::write(&other, b"four\nfive\n").unwrap();
    std::fs::rename(&other, &spool).unwrap();
    rec.catch_up().await;
    assert_eq!(raw(&rec, &id), b"one\ntwo\n3\nfour\nfive\n");
    // Nothing new: nothing added.
    rec.catch_up().await;
    assert_eq!(raw(&rec, &id), b"one\ntwo\n3\nfour\nfive\n");
    let mut text = Vec::new();
    export(
        &rec.log(&id).unwrap(),
        Format::Text,
        &ExportOptions::default(),
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("spool-shrank") && text.contains("spool-replaced"),
        "{text}"
    );
}

#[tokio::test]
async fn ingested_spool_space_is_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recorder(dir.path(), None, 60_000);
    let id: SessionId = "alice/main".parse().unwrap();
    rec.track(&id).unwrap();
    let spool = rec.spool_path(&id);
    let data: Vec<u8> = (0..400_000)
        .flat_map(|i| format!("{i:07}\n").into_bytes())
        .collect();
    append(&spool, &data);
    for _ in 0..4 {
        rec.catch_up().await;
    }
    assert_eq!(raw(&rec, &id), data);
    let meta = std::fs::metadata(&spool).unwrap();
    assert_eq!(meta.len(), data.len() as u64, "offsets stay valid");
    assert!(
        meta.blocks() * 512 < 64 * 1024,
        "{} bytes still allocated",
        meta.blocks() * 512
    );
}

#[tokio::test(start_paused = true)]
async fn states_running_idle_waiting_exited() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recorder(dir.path(), Some(r"Do you want to proceed\?"), 1000);
    let id: SessionId = "alice/main".parse().unwrap();
    rec.track(&id).unwrap();
    let mut changes = rec.subscribe();
    rec.observe_output(&id, b"\x1b[1mworking...\x1b[0m\r\n");
    assert_eq!(rec.state(&id), Some(AgentState::Running));
    tokio::time::advance(Duration::from_millis(1100)).await;
    rec.idle_transitions();
    assert_eq!(rec.state(&id), Some(AgentState::Idle));
    rec.observe_output(&id, b"\x1b[33mDo you want\x1b[0m to proceed? (y/n) ");
    assert_eq!(rec.state(&id), Some(AgentState::Waiting));
    // Quiet while waiting: still waiting, not idle.
    tokio::time::advance(Duration::from_millis(1100)).await;
    rec.idle_transitions();
    assert_eq!(rec.state(&id), Some(AgentState::Waiting));
    rec.agent_exited(
        &id,
        &ExitInfo {
            status: Some(1),
            signal: None,
            at: None,
        },
    );
    assert_eq!(
        rec.state(&id),
        Some(AgentState::Exited {
            status: Some(1),
            signal: None
        })
    );
    let seen: Vec<&str> = std::iter::from_fn(|| changes.try_recv().ok())
        .map(|c| c.state.name())
        .collect();
    assert_eq!(seen, ["idle", "waiting", "exited"]);
}

/// What was typed into `id`, record by record.
fn inputs(rec: &Recorder, id: &SessionId) -> Vec<String> {
    rec.log(id)
        .unwrap()
        .records(None)
        .filter_map(|r| match r.unwrap().body {
            crate::transcript::Body::Input { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_running_loop_records_typing_once_it_pauses_and_keys_extend_the_pause() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recorder(dir.path(), None, 60_000);
    let id: SessionId = "alice/main".parse().unwrap();
    rec.track(&id).unwrap();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(rec.clone().run(cancel.clone()));
    // The loop has caught up and waits (with no deadline) when typing starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let source = source_web("alice");
    rec.keystrokes(&id, &source, b"l");
    // A key before the first pause ends moves the end later: at the first
    // one's end nothing is recorded yet.
    tokio::time::sleep(TYPING_PAUSE * 6 / 10).await;
    rec.keystrokes(&id, &source, b"s");
    tokio::time::sleep(TYPING_PAUSE * 6 / 10).await;
    assert!(inputs(&rec, &id).is_empty(), "recorded before the pause");
    // The loop, which last heard of the first key, records both after the
    // second one's pause, as one record.
    let deadline = Instant::now() + TYPING_PAUSE * 5;
    while inputs(&rec, &id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the pause never ended the record"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(inputs(&rec, &id), ["ls"]);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
}
