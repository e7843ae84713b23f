//! The terminal page at a desktop's and a phone's size: who sizes the
//! session's window, and a terminal that says when it is not connected.

use super::*;

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
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let token = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let driver = Driver::start();

    let desk = driver.browser_sized(1280, 800);
    desk.login_and_open(&base, &token, "alice/main");
    let desk_cols = term_cols(&desk);
    wait_for(10, "the window at the desktop's width", || {
        (window_cols(&env) == desk_cols).then_some(())
    });

    // The phone opens the same session and only watches.
    let phone = driver.browser_sized(390, 844);
    phone.login_and_open(&base, &token, "alice/main");
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
        window_cols(&env),
        desk_cols,
        "a watching phone resized the window"
    );
    assert_eq!(term_cols(&desk), desk_cols);

    // The phone types: the window follows the last typist.
    phone.type_into(".xterm-helper-textarea", " ");
    wait_for(10, "the window at the phone's width", || {
        (window_cols(&env) == phone_cols).then_some(())
    });
    // The desktop's Fit button takes it back.
    desk.click("#fit");
    wait_for(10, "the window at the desktop's width again", || {
        (window_cols(&env) == desk_cols).then_some(())
    });

    // The daemon goes away: the terminal looks stale, and keys typed then
    // are not sent silently.
    drop(d);
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
