//! Transcripts against the real daemon and real tmux: lossless capture
//! through SIGKILLs, exports (asciinema plays the asciicast), agent state,
//! the HTTP endpoint and its isolation, and bad input.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{marker, wait_for, Env};
use nix::sys::signal::Signal;
use sha2::Digest;

/// Lines of the stream: `%09d\n`, 10 bytes each.
const LINES: usize = 5_000_000;

/// What the agent prints once echo is off, before it reads `go`.
const READY: &str = "ready-for-go";

fn expected_stream() -> Vec<u8> {
    let mut v = Vec::with_capacity(LINES * 10 + READY.len());
    v.extend_from_slice(READY.as_bytes());
    for i in 0..LINES {
        v.extend_from_slice(format!("{i:09}\n").as_bytes());
    }
    v
}

/// A small deterministic generator (xorshift), seeded and printed so a
/// failing run can be repeated.
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn raw_transcript(env: &Env, id: &str) -> Vec<u8> {
    let out = env.run(&["transcript", id, "--format", "raw"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn fifty_mb_through_twenty_sigkills_is_byte_identical() {
    // No echo and no output processing: the pane prints exactly the stream.
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\", \"-c\", \"stty -echo -opost; printf {READY}; read go; awk 'BEGIN {{ for (i = 0; i < {LINES}; i++) printf \\\"%09d\\\\n\\\", i }}'; exec sleep 100000\"]\n[[users]]\nname = \"alice\"\n"
    ));
    let expected = expected_stream();
    let expected_sum = sha2::Sha256::digest(&expected);
    let mut d = env.serve();
    // Only once echo is off: a `go` typed earlier would be echoed.
    env.wait_pane("alice", "main", READY);
    env.ok(&["send", "alice", "go"]);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("SIGKILL schedule seed: {seed}");
    let mut rng = Rng(seed);
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(20 + rng.next(250)));
        d.signal(Signal::SIGKILL);
        env.reap(d.pid);
        // Sometimes stay down a while: output keeps arriving meanwhile.
        if i % 4 == 0 {
            std::thread::sleep(Duration::from_millis(rng.next(400)));
        }
        d = env.serve();
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    let raw = loop {
        let raw = raw_transcript(&env, "alice");
        if raw.len() >= expected.len() || Instant::now() > deadline {
            break raw;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(raw.len(), expected.len(), "transcript length (seed {seed})");
    assert_eq!(
        sha2::Sha256::digest(&raw),
        expected_sum,
        "transcript differs from the stream (seed {seed})"
    );
    // Ingested spool data was reclaimed: the spool holds almost no blocks.
    use std::os::unix::fs::MetadataExt;
    let spool = env.path().join("run/spool/alice/main.out");
    wait_for(20, "spool space reclaimed", || {
        let m = std::fs::metadata(&spool).ok()?;
        (m.blocks() * 512 < 4 * 1024 * 1024).then_some(())
    });
    drop(d);
}

#[test]
fn asciicast_plays_in_asciinema_and_matches_the_text_export() {
    let have = Command::new("python3")
        .args(["-c", "import asciinema"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "asciinema (PyPI) is required for this test (.ci/run installs it)"
    );
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let _d = env.serve();
    let m = marker();
    env.ok(&[
        "send",
        "alice",
        &format!("printf '\\033[1;32mgreen-%s\\033[0m caf\\303\\251 \\342\\234\\223\\n' {m}"),
    ]);
    env.ok(&["send", "alice", "for i in 1 2 3; do echo line-$i; done"]);
    env.wait_pane("alice", "main", "line-3");
    wait_for(10, "ingested", || {
        let out = env.ok(&["transcript", "alice"]);
        out.contains("line-3\n").then_some(())
    });

    let cast = env.path().join("session.cast");
    let out = env.run(&["transcript", "alice", "--format", "asciicast"]);
    assert!(out.status.success());
    std::fs::write(&cast, &out.stdout).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);

    let played = Command::new("asciinema")
        .arg("cat")
        .arg(&cast)
        .output()
        .unwrap();
    assert!(
        played.status.success(),
        "asciinema cat: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    let played_text = tmuxd::transcript::to_text(&played.stdout);
    assert!(
        played_text.contains(&format!("green-{m} café ✓")),
        "{played_text}"
    );

    // The text export, without its marker lines, is the same text.
    let text = env.ok(&["transcript", "alice", "--format", "text"]);
    let output_lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("[tmuxd ")).collect();
    let played_lines: Vec<&str> = played_text.lines().collect();
    assert_eq!(output_lines, played_lines);
    // And the marker lines say who typed what.
    assert!(text.contains("input from cli:uid="), "{text}");
    assert!(text.contains(" created] {\"pid\":"), "{text}");
}

#[test]
fn agent_state_goes_running_idle_waiting_exited() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\", \"-c\", \"echo working; sleep 2; printf 'Do you want to proceed? (y/n) '; sleep 2; exit 3\"]\nrestart = \"never\"\nidle_after_s = 1\n[[users]]\nname = \"alice\"\n",
    );
    let token = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let api_state = || -> String {
        let mut r = ureq::get(&format!("{base}/api/sessions"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v[0]["agent_state"].as_str().unwrap_or("").to_owned()
    };
    let mut seen = vec![api_state()];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && seen.last().map(String::as_str) != Some("exited") {
        let s = api_state();
        if seen.last() != Some(&s) {
            seen.push(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen, ["running", "idle", "waiting", "exited"]);
    // The transitions are in the transcript too.
    let text = env.ok(&["transcript", "alice"]);
    let states: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("] state] ") || l.contains(" state] "))
        .filter_map(|l| l.split("\"state\":\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(states, ["idle", "waiting", "exited"], "{text}");
    assert!(text.contains("agent-exit] {\"at\""), "{text}");
}

#[test]
fn http_transcript_formats_and_isolation() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n",
    );
    let alice = env.token("alice", "user");
    let bob = env.token("bob", "user");
    let admin = env.token("bob", "admin");
    let d = env.serve();
    let base = d.url();
    let m = marker();
    env.ok(&["send", "alice", &format!("echo secret-$((1+1))-{m}")]);
    let needle = format!("secret-2-{m}");
    let get = |token: &str, query: &str| -> (u16, String, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .get(&format!("{base}/api/sessions/alice/main/transcript{query}"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let ctype = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            r.status().as_u16(),
            ctype,
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    wait_for(10, "output in the transcript", || {
        get(&alice, "").2.contains(&needle).then_some(())
    });
    let (status, ctype, body) = get(&alice, "?format=asciicast");
    assert_eq!((status, ctype.as_str()), (200, "application/x-asciicast"));
    assert!(body.starts_with("{") && body.contains(&needle));
    let (status, _, body) = get(&alice, &format!("?format=text&grep={needle}"));
    assert_eq!(status, 200);
    assert!(
        body.lines().all(|l| l.contains(&needle)) && !body.is_empty(),
        "{body}"
    );
    assert_eq!(get(&admin, "?format=raw").0, 200);
    // Another user's transcript: the same 404 as a missing one.
    let (status, _, body) = get(&bob, "");
    assert_eq!(status, 404);
    assert!(!body.contains(&needle));
    for (query, what) in [
        ("?format=mp4", "format"),
        ("?since=yesterday", "yesterday"),
        ("?format=raw&grep=x", "grep"),
    ] {
        let (status, _, body) = get(&alice, query);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(what), "{query}: {body}");
    }
}

#[test]
fn cli_transcript_bad_input_and_daemon_down() {
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let d = env.serve();
    let m = marker();
    env.ok(&["send", "alice", &format!("echo down-$((2+2))-{m}")]);
    wait_for(10, "ingested", || {
        env.ok(&["transcript", "alice"])
            .contains(&format!("down-4-{m}"))
            .then_some(())
    });
    for (args, message) in [
        (
            &["transcript", "alice", "--since", "last tuesday"][..],
            "invalid time \"last tuesday\"",
        ),
        (
            &["transcript", "alice", "--grep", "("][..],
            "invalid --grep pattern \"(\"",
        ),
        (
            &["transcript", "alice", "--format", "raw", "--grep", "x"][..],
            "--grep works with --format text only",
        ),
        (
            &["transcript", "alice/nope"][..],
            "no such session alice/nope",
        ),
        (&["transcript", "carol"][..], "no such user carol"),
    ] {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // With the daemon down, the CLI reads the database itself.
    d.signal(Signal::SIGTERM);
    assert!(env.reap(d.pid).success());
    let text = env.ok(&["transcript", "alice", "--since", "10m"]);
    assert!(text.contains(&format!("down-4-{m}")), "{text}");
    let out = env.run(&["transcript", "alice/nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn damaged_database_stops_the_daemon_with_its_path() {
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let d = env.serve();
    d.signal(Signal::SIGTERM);
    assert!(env.reap(d.pid).success());
    let db = env.path().join("state/transcripts");
    std::fs::write(db.join("conf"), b"\xff\xfe not a sled config").unwrap();
    let out = env.cmd(&["serve"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&db.display().to_string()) && err.contains("damaged"),
        "{err}"
    );
    assert!(db.join("conf").exists(), "nothing was discarded");
}
