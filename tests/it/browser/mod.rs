//! The page in a real headless browser: Debian's chromium driven through
//! chromedriver (W3C WebDriver over HTTP), against the real daemon.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::anthropic::claude;
use crate::common::{marker, wait_for, wait_for_or, Env};
use serde_json::{json, Value};

mod cluster;
mod dashboard;
mod files;
mod oidc;
mod page;
mod passkeys;
mod quickstart;
mod sandbox;

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    base: String,
    _profiles: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        crate::common::require("chromium");
        crate::common::require("chromedriver");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        wait_for(20, "chromedriver ready", || {
            let mut r = http().get(&format!("{base}/status")).call().ok()?;
            let v: Value = serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
            (v["value"]["ready"] == true).then_some(())
        });
        Driver {
            child,
            base,
            _profiles: tempfile::tempdir().unwrap(),
        }
    }

    /// A new browser window with its own profile.
    fn browser(&self) -> Browser {
        self.browser_sized(1200, 800)
    }

    /// A new browser window of `width`×`height` CSS pixels; under 600
    /// pixels wide, a phone (Chromium's device emulation, touch included:
    /// its windows are never narrower than 500 pixels).
    fn browser_sized(&self, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir_in(self._profiles.path()).unwrap().keep();
        let mut caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        if width < 600 {
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "touch": true}
            });
        }
        let v = post(&format!("{}/session", self.base), caps);
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Browser {
            url: format!("{}/session/{id}", self.base),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser {
    url: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http().delete(&self.url).call();
    }
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn post(url: &str, body: Value) -> Value {
    let mut r = http()
        .post(url)
        .send_json(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

impl Browser {
    fn go(&self, url: &str) {
        post(&format!("{}/url", self.url), json!({ "url": url }));
    }

    /// Sets a cookie of the page's origin (HttpOnly, as the server would).
    fn add_cookie(&self, name: &str, value: &str, path: &str) {
        post(
            &format!("{}/cookie", self.url),
            json!({"cookie": {"name": name, "value": value, "path": path, "httpOnly": true}}),
        );
    }

    fn refresh(&self) {
        post(&format!("{}/refresh", self.url), json!({}));
    }

    fn script(&self, script: &str) -> Value {
        post(
            &format!("{}/execute/sync", self.url),
            json!({"script": script, "args": []}),
        )["value"]
            .clone()
    }

    /// Runs `script` with `args`; it ends by calling its last argument
    /// with the result.
    fn script_async(&self, script: &str, args: Value) -> Value {
        post(
            &format!("{}/execute/async", self.url),
            json!({"script": script, "args": args}),
        )["value"]
            .clone()
    }

    /// A screenshot of the window, as a `data:image/png` URL.
    fn screenshot(&self) -> String {
        let mut r = http()
            .get(&format!("{}/screenshot", self.url))
            .call()
            .unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        format!(
            "data:image/png;base64,{}",
            v["value"].as_str().expect("screenshot")
        )
    }

    /// Waits for an element and returns its WebDriver id.
    fn find(&self, css: &str) -> String {
        wait_for(20, &format!("element {css}"), || {
            let v = post(
                &format!("{}/element", self.url),
                json!({"using": "css selector", "value": css}),
            );
            v["value"][ELEMENT].as_str().map(str::to_owned)
        })
    }

    /// Clicks the element; found again if the page replaced it meanwhile.
    fn click(&self, css: &str) {
        for _ in 0..5 {
            let id = self.find(css);
            let v = post(&format!("{}/element/{id}/click", self.url), json!({}));
            match v["value"].get("error").and_then(Value::as_str) {
                None => return,
                Some("stale element reference") => continue,
                Some(_) => panic!("click on {css}: {v}"),
            }
        }
        panic!("click on {css}: the element kept being replaced");
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        post(
            &format!("{}/element/{id}/value", self.url),
            json!({ "text": text }),
        );
    }

    fn text(&self, css: &str) -> String {
        let v = self.script(&format!(
            "const e = document.querySelector({css:?}); return e ? e.innerText : '';"
        ));
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Whether the element is shown (present, not hidden, laid out).
    fn visible(&self, css: &str) -> bool {
        self.script(&format!(
            "const e = document.querySelector({css:?}); return !!e && !e.hidden && e.offsetParent !== null;"
        ))
        .as_bool()
        .unwrap_or(false)
    }

    /// What the terminal renders on screen (the DOM renderer's rows).
    fn screen(&self) -> String {
        self.text(".xterm-rows")
    }

    fn wait_screen(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never rendered; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_connected(&self) {
        wait_for(20, "connection indicator says connected", || {
            (self.text("#conn") == "connected").then_some(())
        });
    }

    fn login(&self, base: &str, token: &str) {
        self.go(&format!("{base}/"));
        self.type_into("#token", token);
        self.click("#login-submit");
    }

    fn login_and_open(&self, base: &str, token: &str, session: &str) {
        self.login(base, token);
        self.click(&format!("[data-session={session:?}] button.primary"));
        self.wait_connected();
    }
}

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Enter, as WebDriver spells it.
const ENTER: &str = "\u{E007}";

#[test]
fn log_in_type_reload_and_read_only_in_a_real_browser() {
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let token = env.token("alice", "user");
    let ro_token = env.token("alice", "read-only");
    let d = env.serve();
    let base = d.url();
    let driver = Driver::start();

    // Log in, open alice/main, type, see it rendered.
    let b = driver.browser();
    b.login_and_open(&base, &token, "alice/main");
    let m = marker();
    b.type_into(
        ".xterm-helper-textarea",
        &format!("echo hello-$((6*7))-{m}{ENTER}"),
    );
    b.wait_screen(&format!("hello-42-{m}"));
    assert!(!b.visible("#read-only"), "no read-only badge for a writer");
    // A program asks the terminal who it is; xterm.js answers through the
    // same channel as keystrokes (the reply is read away in raw mode).
    b.type_into(
        ".xterm-helper-textarea",
        &format!("stty raw -echo; printf '\\033[c'; dd bs=1 count=7 of=/dev/null 2>/dev/null; stty sane; echo da-{m}{ENTER}"),
    );
    b.wait_screen(&format!("\nda-{m}"));
    // Typed key by key, each command is one input record; the terminal's
    // reply is none.
    let text = wait_for(10, "the typed commands recorded", || {
        let t = env.ok(&["transcript", "alice", "--format", "text"]);
        t.contains(&format!("echo da-{m}")).then_some(t)
    });
    let typed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("[tmuxd ") && l.contains(" input from web:alice] "))
        .map(|l| l.split(" input from web:alice] ").nth(1).unwrap())
        .collect();
    assert_eq!(
        typed,
        [
            format!("echo hello-$((6*7))-{m}"),
            format!("stty raw -echo; printf '\\033[c'; dd bs=1 count=7 of=/dev/null 2>/dev/null; stty sane; echo da-{m}")
        ],
        "{text}"
    );

    // Reload: the screen comes back (tmux repaints on attach).
    b.refresh();
    b.wait_connected();
    b.wait_screen(&format!("hello-42-{m}"));

    // A read-only viewer sees the badge, and its keystrokes change nothing.
    let ro = driver.browser();
    ro.login_and_open(&base, &ro_token, "alice/main");
    wait_for(10, "the read-only badge", || {
        ro.visible("#read-only").then_some(())
    });
    assert_eq!(ro.text("#read-only"), "READ-ONLY");
    ro.type_into(
        ".xterm-helper-textarea",
        &format!("echo ro-typed-{m}{ENTER}"),
    );
    env.ok(&["send", "alice", &format!("echo after-$((1+1))-{m}")]);
    ro.wait_screen(&format!("after-2-{m}"));
    b.wait_screen(&format!("after-2-{m}"));
    let pane = env.pane_text("alice", "main");
    assert!(pane.contains(&format!("after-2-{m}")), "{pane}");
    assert!(
        !pane.contains(&format!("ro-typed-{m}")),
        "read-only keystrokes were typed:\n{pane}"
    );

    // The dashboard shows the session and its live viewer count.
    b.go(&format!("{base}/#/"));
    let card = b.find("[data-session=\"alice/main\"]");
    assert!(!card.is_empty());
    wait_for(20, "dashboard shows the session running", || {
        let text = b.text("[data-session=\"alice/main\"]");
        (text.contains("running") && text.contains("1 viewer")).then_some(())
    });

    // The transcript view: the player loads the recording, search finds
    // what was typed, downloads are offered.
    b.go(&format!("{base}/#/t/alice/main"));
    b.find(".ap-player");
    b.type_into("#search", &format!("hello-42-{m}{ENTER}"));
    wait_for(20, "search results", || {
        let r = b.text("#results");
        r.contains(&format!("hello-42-{m}")).then_some(r)
    });
    let links = b.script("return Array.from(document.querySelectorAll('a[download]')).map(a => a.getAttribute('href'))");
    let links = links.to_string();
    for format in ["asciicast", "text", "raw"] {
        assert!(links.contains(&format!("format={format}")), "{links}");
    }
    // The recording loaded (its lifecycle markers are on the progress bar)
    // and replays what the terminal showed.
    wait_for(20, "transcript markers in the player", || {
        let n = b
            .script("return document.querySelectorAll('.ap-marker').length")
            .as_u64()?;
        (n > 0).then_some(())
    });
    b.click(".ap-play-button");
    wait_for(30, "the replay shows the typed command's output", || {
        b.text(".ap-term-text")
            .contains(&format!("hello-42-{m}"))
            .then_some(())
    });
}

/// The email page: the link in a confirmation mail opens the pending
/// command; Confirm types it; the audit log lists the decisions; a command
/// mailed while the page is open shows by itself and Cancel drops it.
#[test]
fn email_page_confirms_a_pending_command() {
    // No IMAP (mail arrives by mail-ingest); replies go nowhere (the
    // outbox keeps retrying, which is fine here).
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\", \"-c\", \"while IFS= read -r l; do echo \\\"got: $l\\\"; done\"]\nidle_after_s = 1\n\
         [mail]\naddress = \"agent@example.test\"\nauthserv_id = \"mx.example.test\"\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = 9\nsecurity = \"plain\"\n\
         [[users]]\nname = \"alice\"\nemails = [\"alice@example.test\"]\n",
    );
    let token = env.token("alice", "user");
    let to = env.ok(&["mail-address", "alice"]).trim().to_owned();
    let d = env.serve();
    let m = marker();
    let raw = format!(
        "Authentication-Results: mx.example.test; dmarc=pass header.from=example.test\r\nFrom: alice@example.test\r\nTo: {to}\r\nSubject: web\r\nMessage-ID: <w1@example.test>\r\n\r\nweb {m}\r\n"
    );
    let out = env.run_with_stdin(&["mail-ingest"], raw.as_bytes());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pending:"));

    let base = d.url();
    let driver = Driver::start();
    let b = driver.browser();
    b.go(&format!("{base}/"));
    b.type_into("#token", &token);
    b.click("#login-submit");
    b.click("#mail-link");
    wait_for(20, "the pending command", || {
        b.text("#pending")
            .contains(&format!("web {m}"))
            .then_some(())
    });
    assert!(b.text("#audit").contains("pending"));
    b.click("#pending button.primary");
    env.wait_pane("alice", "main", &format!("got: web {m}"));
    wait_for(20, "the audit log shows the confirmation", || {
        let t = b.text("#audit");
        (t.contains("confirmed") && t.contains("web page")).then_some(())
    });
    assert!(b.text("#pending").contains("Nothing is waiting"));

    // A second command, cancelled on the page: nothing is typed.
    let m2 = marker();
    let raw = format!(
        "Authentication-Results: mx.example.test; dmarc=pass header.from=example.test\r\nFrom: alice@example.test\r\nTo: {to}\r\nSubject: web\r\nMessage-ID: <w2@example.test>\r\n\r\nweb {m2}\r\n"
    );
    let out = env.run_with_stdin(&["mail-ingest"], raw.as_bytes());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pending:"));
    // The page is live: the new command shows without a reload or a click.
    wait_for(2, "the second pending command, pushed", || {
        b.text("#pending")
            .contains(&format!("web {m2}"))
            .then_some(())
    });
    b.click("#pending button.cancel");
    wait_for(20, "the audit log shows the cancellation", || {
        let t = b.text("#audit");
        (t.contains("cancelled") && t.contains("cancelled on the web page")).then_some(())
    });
    assert!(b.text("#pending").contains("Nothing is waiting"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !env.pane_text("alice", "main")
            .contains(&format!("web {m2}")),
        "a cancelled command was typed"
    );
    // The header says who is signed in.
    assert!(b.text("header").contains("alice") && b.visible("#logout"));
}

/// The real Claude Code asks before running a command: the question shows
/// beside the terminal and on the dashboard, and a click answers it; the
/// tool runs once per answer.
#[test]
fn claude_question_answered_on_the_page() {
    claude_on_page(true);
}

/// The same with Claude Code's hooks off: the screen alone.
#[test]
fn claude_question_answered_on_the_page_without_hooks() {
    claude_on_page(false);
}

fn claude_on_page(hooks: bool) {
    let (ran, api, mut env) = claude(hooks);
    let d = env.serve();
    let base = d.url();
    let token = env.token("alice", "user");
    env.wait_pane("alice", "main", "shortcuts");
    let driver = Driver::start();
    let b = driver.browser();
    b.login_and_open(&base, &token, "alice/main");

    // Asked through the terminal, key by key, as a person types: the
    // words, and Enter once they show (Claude Code takes keys that come
    // in one burst with Enter as a paste, and Enter then as a new line).
    // What the agent, the daemon and the page showed, when a wait fails.
    let seen = || {
        format!(
            "pane:\n{}\nsession: {:?}\ntool uses: {}\npage question: {}",
            env.pane_text("alice", "main"),
            env.session("alice/main"),
            api.tool_calls(),
            b.text("#question"),
        )
    };
    let ask = |prompt: &str| {
        b.type_into(".xterm-helper-textarea", prompt);
        env.wait_pane("alice", "main", prompt);
        b.type_into(".xterm-helper-textarea", ENTER);
    };
    ask("make a marker file");
    wait_for_or(
        30,
        "the question beside the terminal",
        || b.visible("#question .question").then_some(()),
        seen,
    );
    let shown = b.text("#question");
    assert!(shown.contains("Do you want to proceed?"), "{shown}");
    assert!(
        shown.contains(&ran.command()),
        "the command is shown: {shown}"
    );
    let keys = b.script(
        "return Array.from(document.querySelectorAll('#question button.option')).map(b => b.getAttribute('data-key'))",
    );
    assert_eq!(keys, json!(["1", "2", "3", "4"]));
    b.click("#question button.option[data-key=\"1\"]");
    wait_for(20, "the command to run", || {
        (ran.count() == 1).then_some(())
    });
    wait_for(20, "the question to leave the page", || {
        (!b.visible("#question .question")).then_some(())
    });

    // Asked again; answered from the dashboard's card this time.
    ask("make another marker file");
    wait_for_or(
        30,
        "the second question beside the terminal",
        || b.visible("#question .question").then_some(()),
        seen,
    );
    b.go(&format!("{base}/#/"));
    let card = "[data-session=\"alice/main\"] .question";
    wait_for(20, "the question on the dashboard", || {
        b.visible(card).then_some(())
    });
    assert!(b.text(card).contains("Do you want to proceed?"));
    b.click(&format!("{card} button.option[data-key=\"1\"]"));
    wait_for(20, "the second command to run", || {
        (ran.count() == 2).then_some(())
    });
    wait_for(20, "the card without a question", || {
        (!b.visible(card)).then_some(())
    });
    assert_eq!(ran.count(), 2);
    assert_eq!(api.tool_calls(), 2);
}

/// Writes the window's screenshot to `target/screenshots/NAME.png` and
/// checks it is a PNG `width` pixels wide.
fn save_screenshot(b: &Browser, name: &str, width: u32) {
    use base64::Engine as _;
    let url = b.screenshot();
    let png = base64::engine::general_purpose::STANDARD
        .decode(url.trim_start_matches("data:image/png;base64,"))
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}: not a PNG");
    // IHDR: the width is the big-endian u32 at byte 16.
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(w, width, "{name}: {w} pixels wide");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}
