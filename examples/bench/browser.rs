//! `scripts/bench.sh browser`: the terminal as a browser sees it. Real
//! headless Chromium (through chromedriver) runs the page, xterm.js and
//! all; timings are taken inside the page (`performance.now()`): a key
//! typed through xterm.js until its echo is in xterm.js's buffer (parsed;
//! paint follows at the next frame), and a 50 MB flood until the marker is
//! in every viewer's buffer, for 1 and 10 browsers. The reference is the
//! same `tmux attach` in a local PTY as in the terminal benchmark.

use super::*;
use serde_json::{json, Value};

const BROWSER_KEYS: usize = 500;

/// chromedriver, killed on drop.
struct Driver(Child, String);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wd(method: &str, url: &str, body: Option<Value>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut r = match body {
        Some(b) => agent.post(url).send_json(b),
        None if method == "DELETE" => agent.delete(url).call(),
        None => agent.get(url).call(),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or_default()
}

/// A browser window: its WebDriver session URL.
struct Page(String);

impl Drop for Page {
    fn drop(&mut self) {
        let _ = wd("DELETE", &self.0, None);
    }
}

impl Page {
    fn new(driver: &Driver, profiles: &Path) -> Page {
        let profile = tempfile::tempdir_in(profiles).unwrap().keep();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--window-size=1200,800",
                format!("--user-data-dir={}", profile.display())]}}}});
        let v = wd("POST", &format!("{}/session", driver.1), Some(caps));
        let id = v["value"]["sessionId"].as_str().expect("a browser");
        let page = Page(format!("{}/session/{id}", driver.1));
        wd(
            "POST",
            &format!("{}/timeouts", page.0),
            Some(json!({"script": 600_000})),
        );
        page
    }

    fn js(&self, script: &str, args: Value) -> Value {
        let body = json!({"script": script, "args": args});
        wd("POST", &format!("{}/execute/sync", self.0), Some(body))["value"].clone()
    }

    /// Runs `script`, which calls its last argument with the result.
    fn js_async(&self, script: &str, args: Value) -> Value {
        let body = json!({"script": script, "args": args});
        wd("POST", &format!("{}/execute/async", self.0), Some(body))["value"].clone()
    }

    fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.js(script, json!([])) != json!(true) {
            assert!(Instant::now() < deadline, "page: {what} not in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Signs in with `token` and opens bench/main's terminal.
    fn open(&self, base: &str, token: &str) {
        wd(
            "POST",
            &format!("{}/url", self.0),
            Some(json!({"url": format!("{base}/")})),
        );
        self.until(
            "the login form",
            "return !!document.querySelector('#token')",
        );
        self.js(
            "document.querySelector('#token').value = arguments[0];\
             document.querySelector('#login-submit').click();",
            json!([token]),
        );
        self.until(
            "the dashboard",
            "return !!document.querySelector('[data-session]')",
        );
        self.js("location.hash = '#/s/bench/main';", json!([]));
        self.until(
            "the terminal connected",
            "const c = document.querySelector('#conn');\
             return !!window.tmuxdTerm && !!c && c.textContent === 'connected';",
        );
    }
}

/// Keys typed through xterm.js, each once the previous echo is parsed;
/// milliseconds each.
const ECHO: &str = r#"
const [n, done] = [arguments[0], arguments[arguments.length - 1]];
const term = window.tmuxdTerm, samples = [];
const line = () => { const b = term.buffer.active;
  return b.getLine(b.baseY + b.cursorY).translateToString(true); };
let i = 0;
const next = () => {
  if (i === n) { term.input('\x15', true); return done(samples); }
  const before = line(), t0 = performance.now();
  const sub = term.onWriteParsed(() => {
    if (line() === before) return;
    sub.dispose(); samples.push(performance.now() - t0); i++; setTimeout(next, 20);
  });
  term.input(String.fromCharCode(97 + i % 26), true);
};
setTimeout(next, 500);
"#;

/// Arms a watcher for `marker` in the buffer's last lines.
const ARM: &str = r#"
const marker = arguments[0], term = window.tmuxdTerm;
window.benchSeen = new Promise(resolve => {
  const sub = term.onWriteParsed(() => {
    const b = term.buffer.active, end = b.baseY + b.cursorY;
    for (let y = Math.max(0, end - 3); y <= end; y++) {
      const l = b.getLine(y);
      if (l && l.translateToString(true).includes(marker)) { sub.dispose(); resolve(); return; }
    }
  });
});
"#;

fn ms(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn browser_bench() {
    let d = start_daemon(true);
    let config = d._dir.path().join("c.toml");
    let home = d._dir.path().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (scripts/deps.sh installs it)");
    let driver = Driver(child, format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while ureq::get(&format!("{}/status", driver.1)).call().is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let profiles = tempfile::tempdir().unwrap();
    row(&["figure", "Chromium (xterm.js)", "reference (PTY)", "ratio"]);
    row(&["---", "---", "---", "---"]);

    let mut pty = Viewer::pty(&d.socket);
    let mut r = echo_latency(&mut pty, BROWSER_KEYS).await;
    r.sort();
    pty.close().await;
    let first = Page::new(&driver, profiles.path());
    first.open(&d.url, &d.token);
    let mut w: Vec<f64> =
        serde_json::from_value(first.js_async(ECHO, json!([BROWSER_KEYS]))).expect("echo samples");
    for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        let (a, b) = (ms(&mut w, p), percentile(&r, p).as_secs_f64() * 1000.0);
        row(&[
            &format!("keystroke to echo in the buffer {name} ({BROWSER_KEYS} keys)"),
            &format!("{a:.3} ms"),
            &format!("{b:.3} ms"),
            &format!("{:.2}×", a / b.max(1e-9)),
        ]);
    }

    let mut pages = vec![first];
    for n in [1usize, 10] {
        let tr = reference_flood(&d.socket, n).await;
        while pages.len() < n {
            let p = Page::new(&driver, profiles.path());
            p.open(&d.url, &d.token);
            pages.push(p);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let marker = format!("flood-b{n}-");
        let seen = format!("{marker}42");
        for p in &pages {
            p.js(ARM, json!([seen]));
        }
        let c0 = cpu_ms(d.child.id());
        let t0 = Instant::now();
        tmuxd(
            &config,
            &home,
            &[
                "send",
                "bench/main",
                &format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {FLOOD_BYTES}; echo {marker}$((40+2))"),
            ],
        );
        std::thread::scope(|s| {
            for p in &pages {
                s.spawn(|| p.js_async("window.benchSeen.then(() => arguments[0]())", json!([])));
            }
        });
        let tw = t0.elapsed();
        let cpu = cpu_ms(d.child.id()) - c0;
        let viewers = format!("{n} browser{}", if n == 1 { "" } else { "s" });
        row(&[
            &format!("50 MB flood to end marker, {viewers}"),
            &format!("{:.2} s", tw.as_secs_f64()),
            &format!("{:.2} s", tr.as_secs_f64()),
            &format!("{:.2}×", ratio(tw, tr)),
        ]);
        row(&[
            &format!("daemon CPU per viewer-MB, {viewers}"),
            &format!("{:.2} ms", cpu as f64 / ((n * FLOOD_BYTES) as f64 / 1e6)),
            "",
            "",
        ]);
    }
}
