//! The terminal page at a desktop's and a phone's size: who sizes the
//! session's window, and a terminal that says when it is not connected.

use super::*;

const SH: &str = r#"["sh"]"#;
const BASH: &str = r#"["bash", "--norc", "--noprofile"]"#;

/// Alice's `main` running `agent` (a TOML argv), open in a browser window
/// of `width`×`height`. Fields drop in order: the browser, its driver,
/// the daemon, the environment.
struct Open {
    b: Browser,
    driver: Driver,
    d: crate::common::Daemon,
    env: Env,
    token: String,
}

fn open(agent: &str, width: u32, height: u32) -> Open {
    let mut env = Env::new(&format!(
        "[agent]\ncommand = {agent}\n[[users]]\nname = \"alice\"\n"
    ));
    let token = env.token("alice", "user");
    let d = env.serve();
    let driver = Driver::start();
    let b = driver.browser_sized(width, height);
    b.login_and_open(&d.url(), &token, "alice/main");
    Open {
        b,
        driver,
        d,
        env,
        token,
    }
}

/// The session's window width in columns, as tmux has it.
fn window_cols(env: &Env) -> u64 {
    env.display("alice", "#{window_width}").parse().unwrap()
}

/// The page terminal's columns.
fn term_cols(b: &Browser) -> u64 {
    b.script("return window.tmuxdTerm.cols;").as_u64().unwrap()
}

#[test]
fn a_phone_watching_never_resizes_the_desktop_and_fit_takes_the_size_back() {
    let Open {
        b: desk,
        driver,
        d,
        env,
        token,
    } = &mut open(SH, 1280, 800);
    let base = d.url();
    let desk_cols = term_cols(desk);
    wait_for(10, "the window at the desktop's width", || {
        (window_cols(env) == desk_cols).then_some(())
    });

    // The phone opens the same session and only watches.
    let phone = driver.browser_sized(390, 844);
    phone.login_and_open(&base, token, "alice/main");
    let phone_cols = term_cols(&phone);
    assert!(phone_cols < desk_cols / 2, "{phone_cols} vs {desk_cols}");
    let m = marker();
    desk.type_into(
        ".xterm-helper-textarea",
        &format!("echo seen-$((6*7))-{m}{ENTER}"),
    );
    phone.wait_screen(&format!("seen-42-{m}"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        window_cols(env),
        desk_cols,
        "a watching phone resized the window"
    );
    assert_eq!(term_cols(desk), desk_cols);

    // The phone types: the window follows the last typist.
    phone.type_into(".xterm-helper-textarea", " ");
    wait_for(10, "the window at the phone's width", || {
        (window_cols(env) == phone_cols).then_some(())
    });
    // The desktop's Fit button takes it back.
    desk.click("#fit");
    wait_for(10, "the window at the desktop's width again", || {
        (window_cols(env) == desk_cols).then_some(())
    });

    // The daemon goes away: the terminal looks stale, and keys typed then
    // are not sent silently.
    env.kill_daemons();
    wait_for(20, "the page notices the lost connection", || {
        (desk.text("#conn") != "connected").then_some(())
    });
    assert!(
        desk.script("return document.getElementById('terminal').classList.contains('stale');")
            .as_bool()
            .unwrap_or(false),
        "the terminal does not look stale while disconnected"
    );
    desk.type_into(".xterm-helper-textarea", "x");
    wait_for(10, "a notice that keys are not sent", || {
        desk.text(".banner").contains("not sent").then_some(())
    });
}

/// Pixel facts about a box of a screenshot (CSS pixels; headless Chromium
/// draws at one device pixel per CSS pixel): lit pixels, lit pixels in the
/// box's lower 40%, and distinct colours.
const PIXELS: &str = r#"
const [url, x, y, w, h, done] = arguments;
const img = new Image();
img.onload = () => {
  const c = document.createElement('canvas');
  c.width = img.width; c.height = img.height;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(x, y, w, h).data;
  let lit = 0, low = 0; const colours = new Set();
  for (let i = 0; i < d.length; i += 4) {
    const row = Math.floor(i / 4 / w);
    colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    if (0.3 * d[i] + 0.59 * d[i + 1] + 0.11 * d[i + 2] > 100) { lit++; if (row >= h * 0.6) low++; }
  }
  done({ lit, low, colours: colours.size });
};
img.src = url;
"#;

/// The terminal's cell box of buffer line `line`, column `col`, in CSS
/// pixels of the window: [x, y, width, height].
fn cell_box(b: &Browser, line: &str, col: u32) -> [f64; 4] {
    let v = b.script(&format!(
        "const t = window.tmuxdTerm, buf = t.buffer.active;
         let row = -1;
         for (let y = buf.viewportY; y < buf.viewportY + t.rows; y++) {{
           const l = buf.getLine(y); if (l && l.translateToString(true).startsWith({line:?})) row = y - buf.viewportY;
         }}
         const r = document.querySelector('#terminal .xterm-screen').getBoundingClientRect();
         const w = r.width / t.cols, h = r.height / t.rows;
         return row < 0 ? null : [r.left + {col} * w, r.top + row * h, w, h];"
    ));
    let a: Vec<f64> =
        serde_json::from_value(v).unwrap_or_else(|_| panic!("{line:?} not on screen"));
    [a[0], a[1], a[2], a[3]]
}

fn pixels(b: &Browser, [x, y, w, h]: [f64; 4]) -> Value {
    let shot = b.screenshot();
    b.script_async(
        PIXELS,
        json!([
            shot,
            x.round(),
            y.round(),
            w.round().max(1.0),
            h.round().max(1.0)
        ]),
    )
}

#[test]
fn the_terminal_draws_underscores_and_truecolor() {
    let Open { b, .. } = &open(BASH, 1280, 800);

    // snake_case: the underscore's cell has lit pixels, on its baseline.
    b.type_into(
        ".xterm-helper-textarea",
        &format!("clear; echo a_b_$((6*7)){ENTER}"),
    );
    b.wait_screen("a_b_42");
    let p = pixels(b, cell_box(b, "a_b_42", 1));
    assert!(
        p["lit"].as_u64().unwrap() > 0,
        "the underscore's cell is blank: {p}"
    );
    assert!(
        p["low"].as_u64().unwrap() > 0,
        "nothing lit low in the underscore's cell: {p}"
    );
    // The cell of a space beside it stays dark (the check can fail).
    let blank = pixels(b, cell_box(b, "a_b_42", 8));
    assert_eq!(blank["lit"], 0, "a blank cell is lit: {blank}");

    // A 24-bit gradient over 256 cells keeps its colours (tmux passes RGB).
    b.type_into(
        ".xterm-helper-textarea",
        &format!("clear; for i in $(seq 0 255); do printf '\\033[48;2;%d;%d;%dm ' $i $((255-i)) $((i/2)); done; printf '\\033[0m\\n'; echo grad-$((6*7)){ENTER}"),
    );
    b.wait_screen("grad-42");
    let [x, y, w, h] = cell_box(b, "grad-42", 0);
    let cols = b.script("return window.tmuxdTerm.cols;").as_f64().unwrap();
    // The rows above the marker: the gradient's 256 cells.
    let rows = (256.0 / cols).ceil();
    let p = pixels(b, [x, y - rows * h, w * cols, rows * h]);
    assert!(
        p["colours"].as_u64().unwrap() > 200,
        "the gradient lost its colours: {p}"
    );
}

#[test]
fn the_wheel_scrolls_back_through_history_and_never_types() {
    let Open { b, env, .. } = &open(BASH, 1280, 800);

    // Output that scrolled off long ago, a command in bash's history, and
    // a half-typed line.
    b.type_into(
        ".xterm-helper-textarea",
        &format!("for i in $(seq 1 400); do echo old-$i; done{ENTER}"),
    );
    b.wait_screen("old-400");
    b.type_into(".xterm-helper-textarea", "echo half");
    b.wait_screen("echo half");

    // The wheel over the terminal: the history opens; no key reaches bash.
    let el = b.find("#terminal .xterm-screen");
    post(
        &format!("{}/actions", b.url),
        json!({"actions": [{"type": "wheel", "id": "wheel", "actions": [
            {"type": "scroll", "x": 0, "y": 0, "deltaX": 0, "deltaY": -600,
             "origin": {ELEMENT: el}}
        ]}]}),
    );
    wait_for(10, "the history view", || {
        b.visible("#history").then_some(())
    });
    // It holds the early output, which the live screen no longer shows.
    let has_old = b.script(
        "const t = window.tmuxdHistory, buf = t.buffer.active; let found = false;
         for (let y = 0; y < buf.length; y++) if (buf.getLine(y).translateToString(true) === 'old-5') found = true;
         return found;",
    );
    assert_eq!(has_old, true, "old-5 not in the history view");
    assert!(
        !b.screen().contains("old-5\n"),
        "the live screen still shows old-5"
    );
    // The input line is untouched: no Up arrow recalled history.
    std::thread::sleep(Duration::from_millis(500));
    let pane = env.display("alice", "#{cursor_y}");
    let line = String::from_utf8_lossy(
        &env.tmux(
            "alice",
            &[
                "capture-pane",
                "-p",
                "-t",
                "=main:",
                "-S",
                &pane,
                "-E",
                &pane,
            ],
        )
        .stdout,
    )
    .trim_end()
    .to_owned();
    assert!(
        line.ends_with("# echo half"),
        "the input line changed: {line:?}"
    );

    // Back to live.
    b.click("#live");
    wait_for(10, "the history view closed", || {
        (!b.visible("#history")).then_some(())
    });
    b.type_into(".xterm-helper-textarea", &format!("-$((6*7)){ENTER}"));
    b.wait_screen("half-42");
}

#[test]
fn a_phone_has_quick_keys_and_a_composer_and_no_page_scrolls_sideways() {
    let Open {
        b,
        driver,
        d,
        token,
        ..
    } = &open(BASH, 390, 844);
    let base = d.url();
    assert!(b.visible("#keys"), "no quick keys on a phone");

    // The quick keys reach the program as the bytes a keyboard sends: a raw
    // reader prints what it got.
    b.type_into(
        ".xterm-helper-textarea",
        &format!("stty raw -echo; dd bs=1 count=6 2>/dev/null | od -An -tx1; stty sane; echo read-$((6*7)){ENTER}"),
    );
    std::thread::sleep(Duration::from_millis(700));
    for key in ["Esc", "^C", "↑", "⏎"] {
        b.click(&format!("[data-key={key:?}]"));
    }
    b.wait_screen("read-42");
    assert!(b.screen().contains("1b 03 1b 5b 41 0d"), "{}", b.screen());

    // The composer: two lines sent as one paste, then Enter.
    b.click("[data-key=\"compose\"]");
    b.type_into("#composer-text", "echo one-$((1+1))\necho two-$((2+2))");
    b.click("#composer-send");
    b.wait_screen("one-2");
    b.wait_screen("two-4");

    // At 360 px no page scrolls sideways.
    let narrow = driver.browser_sized(360, 740);
    narrow.login_and_open(&base, token, "alice/main");
    for hash in ["#/", "#/s/alice/main", "#/t/alice/main", "#/m"] {
        narrow.go(&format!("{base}/{hash}"));
        std::thread::sleep(Duration::from_millis(800));
        let v = narrow.script(
            "return [document.documentElement.scrollWidth, window.innerWidth, location.hash];",
        );
        // A phone widens its layout viewport to fit wider content.
        assert!(
            v[0].as_u64() <= Some(360) && v[1].as_u64() <= Some(360),
            "{hash} is wider than the phone: {v}"
        );
    }
}

#[test]
fn the_page_installs_as_an_app() {
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let d = env.serve();
    let driver = Driver::start();
    let b = driver.browser_sized(390, 844);
    b.go(&format!("{}/", d.url()));
    // The manifest the page links, as the browser fetches it, with an icon
    // that loads.
    let m = b.script_async(
        "const done = arguments[0];
         const link = document.querySelector('link[rel=manifest]');
         fetch(link.href).then(r => r.json()).then(m => {
           const img = new Image();
           img.onload = () => done({name: m.name, display: m.display, start: m.start_url, icon: img.naturalWidth > 0});
           img.onerror = () => done({error: 'icon did not load'});
           img.src = new URL(m.icons[0].src, location.href).href;
         }).catch(e => done({error: String(e)}));",
        json!([]),
    );
    assert_eq!(
        m,
        json!({"name": "tmuxd", "display": "standalone", "start": "/", "icon": true})
    );
}

#[test]
fn the_replay_fits_the_window_and_search_hits_play_from_their_moment() {
    let Open { b, d, .. } = &open(SH, 1280, 800);
    b.type_into(
        ".xterm-helper-textarea",
        &format!("echo early-$((6*7)){ENTER}"),
    );
    b.wait_screen("early-42");
    // A pause longer than the replay's idle limit (2 s).
    std::thread::sleep(Duration::from_secs(4));
    b.type_into(
        ".xterm-helper-textarea",
        &format!("echo late-$((6*7)){ENTER}"),
    );
    b.wait_screen("late-42");

    b.go(&format!("{}/#/t/alice/main", d.url()));
    // The player's controls are in the window.
    let bar = wait_for(20, "the player's control bar", || {
        let v = b.script(
            "const c = document.querySelector('.ap-control-bar');
             return c ? [c.getBoundingClientRect().bottom, window.innerHeight] : null;",
        );
        (!v.is_null()).then_some(v)
    });
    assert!(
        bar[0].as_f64() <= bar[1].as_f64(),
        "the controls are below the fold: {bar}"
    );

    // Both hits, with their times in the replay: the pause is cut to 2 s.
    b.type_into("#search", "(early|late)-4[2]");
    b.click("#search + button");
    let times: Vec<f64> = wait_for(20, "two search hits", || {
        let v = b.script(
            "return [...document.querySelectorAll('#results .hit')].map(a => Number(a.dataset.t));",
        );
        let t: Vec<f64> = serde_json::from_value(v).ok()?;
        (t.len() == 2).then_some(t)
    });
    let gap = times[1] - times[0];
    assert!(
        (1.5..3.5).contains(&gap),
        "hits {times:?}: the 4 s pause should replay as about 2 s"
    );

    // A click plays the replay from the hit's moment.
    b.click("#results .hit:nth-child(2)");
    let now = wait_for(10, "the player at the hit", || {
        let t = b
            .script("return window.tmuxdPlayer.getCurrentTime();")
            .as_f64()?;
        (t >= times[1] - 0.5).then_some(t)
    });
    assert!(
        now < times[1] + 2.0,
        "the player is at {now}, the hit at {}",
        times[1]
    );
}
