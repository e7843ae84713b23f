//! The dashboard in the browser: pushed by the daemon, grouped and
//! filtered for an admin; and the README's screenshots, taken here.

use super::*;

#[test]
fn the_dashboard_follows_the_daemon_without_polling() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\"]\nrestart_delay_ms = 60000\n[[users]]\nname = \"alice\"\n",
    );
    let token = env.token("alice", "user");
    let d = env.serve();
    let driver = Driver::start();
    let b = driver.browser_sized(1280, 800);
    b.go(&format!("{}/", d.url()));
    b.type_into("#token", &token);
    b.click("#login-submit");
    b.find("[data-session=\"alice/main\"]");
    let requests = || {
        b.script("return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/')).map(e => e.name);")
    };
    let before = requests();

    // A session created elsewhere shows up within a second, pushed.
    env.ok(&["new", "alice/extra"]);
    wait_for(1, "the new session on the dashboard", || {
        b.visible("[data-session=\"alice/extra\"]").then_some(())
    });
    // Each card names its agent and labels its states.
    let card = b.text("[data-session=\"alice/extra\"]");
    assert!(
        card.contains("sh") && card.contains("session running"),
        "{card}"
    );
    // Then nothing asks the daemon anything while nothing changes (the
    // event stream was opened before: it is not a new request).
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(requests(), before, "the dashboard sent requests while idle");

    // A viewer joins (another browser), within a second.
    let viewer = driver.browser_sized(1280, 800);
    viewer.login_and_open(&d.url(), &token, "alice/extra");
    let card = || b.text("[data-session=\"alice/extra\"]");
    wait_for(1, "the viewer on the card", || {
        card().contains("1 viewer").then_some(())
    });
    // Its agent exits: the card says so, pushed, and offers to restart it
    // now rather than in a minute; that restarts it. (How fast is the
    // daemon's to measure, not a timed test's: under a loaded CI machine
    // the exit path's tmux calls take longer.)
    viewer.type_into(".xterm-helper-textarea", &format!("exit 3{ENTER}"));
    wait_for(10, "the exit on the card", || {
        let c = card();
        (c.contains("last exit: status 3") && c.contains("Restart now")).then_some(())
    });
    b.click("[data-session=\"alice/extra\"] button.restart");
    wait_for(5, "the agent restarted", || {
        let c = card();
        (c.contains("1 restart") && !c.contains("Restart now")).then_some(())
    });

    // Email is off here: no link to it, and its view says how to turn it on.
    assert!(!b.visible("#mail-link"), "an Email link with mail off");
    b.go(&format!("{}/#/m", d.url()));
    wait_for(10, "the email-off notice", || {
        b.text("#mail-off").contains("[mail]").then_some(())
    });
}

/// An admin sees every user's sessions grouped by user, each group saying
/// what needs a look, and a filter; the same run writes the README's
/// screenshots (dashboard, terminal, phone) to `target/screenshots/`.
#[test]
fn an_admin_sees_sessions_grouped_by_user_and_filters_them() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"bash\", \"--norc\", \"--noprofile\"]\n\
         [[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n",
    );
    let admin = env.token("bob", "admin");
    let d = env.serve();
    env.ok(&["new", "alice/build"]);
    env.ok(&["new", "bob/review"]);
    let driver = Driver::start();
    let b = driver.browser_sized(1280, 800);
    b.go(&format!("{}/", d.url()));
    b.type_into("#token", &admin);
    b.click("#login-submit");
    b.find("[data-session=\"bob/review\"]");

    // One group per user, in which each card sits, headed by its count.
    let groups = wait_for(10, "a group per user", || {
        let v = b.script(
            "return [...document.querySelectorAll('#sessions .group')].map(g =>
               [g.dataset.user, g.querySelector('h3').innerText,
                [...g.querySelectorAll('[data-session]')].map(c => c.dataset.session)]);",
        );
        (v.as_array()?.len() == 2).then_some(v)
    });
    assert_eq!(groups[0][0], "alice", "{groups}");
    assert!(
        groups[0][1].as_str().unwrap().contains("2 sessions"),
        "{groups}"
    );
    // `main` first, then by name.
    assert_eq!(groups[0][2], json!(["alice/main", "alice/build"]));
    assert_eq!(groups[1][2], json!(["bob/main", "bob/review"]));

    // The filter narrows by any part of the id, agent or state.
    b.type_into("#filter", "review");
    let shown = || {
        b.script("return [...document.querySelectorAll('#sessions [data-session]')].map(c => c.dataset.session);")
    };
    assert_eq!(shown(), json!(["bob/review"]));
    b.script("const f = document.getElementById('filter'); f.value = 'nothing-like-it'; f.dispatchEvent(new Event('input'));");
    assert!(b.text("#sessions").contains("No session matches"));
    // Cleared, and a pushed change keeps what the filter says.
    b.script("const f = document.getElementById('filter'); f.value = 'alice/'; f.dispatchEvent(new Event('input'));");
    env.ok(&["new", "alice/docs"]);
    wait_for(2, "the pushed session, filtered", || {
        (shown() == json!(["alice/main", "alice/build", "alice/docs"])).then_some(())
    });
    b.script("const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'));");
    save_screenshot(&b, "dashboard", 1280);

    // The terminal, with some colour in it, and the same at a phone's size.
    b.click("[data-session=\"alice/main\"] button.primary");
    b.wait_connected();
    b.type_into(
        ".xterm-helper-textarea",
        "clear; printf '\\e[1;32m%s\\e[0m ready, \\e[38;2;255;160;0mtruecolor\\e[0m, snake_case\\n' tmuxd\n",
    );
    b.wait_screen("snake_case");
    save_screenshot(&b, "terminal", 1280);
    let phone = driver.browser_sized(390, 844);
    phone.login_and_open(&d.url(), &admin, "alice/main");
    phone.wait_screen("snake_case");
    save_screenshot(&phone, "phone", 390);
}
