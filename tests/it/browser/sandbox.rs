//! A sandboxed session on the page: its card says how it is sandboxed,
//! and its terminal works as any other, with the sandbox in force.

use super::*;

#[test]
fn the_page_shows_the_sandbox_and_its_terminal_works_inside_it() {
    crate::common::require("bwrap");
    let mut env = Env::new(
        "[agent]\ncommand = [\"bash\", \"--norc\", \"--noprofile\"]\n\
         [[users]]\nname = \"alice\"\n[users.sandbox]\nnetwork = \"none\"\n\
         [[users]]\nname = \"bob\"\n",
    );
    let token = env.token("alice", "user");
    let d = env.serve();
    let driver = Driver::start();
    let card = |b: &Browser, id: &str| {
        wait_for(10, &format!("{id}'s card"), || {
            let c = b.text(&format!("[data-session={id:?}]"));
            (!c.is_empty()).then_some(c)
        })
    };
    let b = driver.browser_sized(1280, 800);
    b.login(&d.url(), &token);
    let alice = card(&b, "alice/main");
    assert!(alice.contains("sandbox · network none"), "{alice}");
    let b2 = driver.browser_sized(1280, 800);
    b2.login(&d.url(), &env.token("bob", "user"));
    let bob = card(&b2, "bob/main");
    assert!(!bob.contains("sandbox"), "bob is not sandboxed: {bob}");

    // Typed on the page, run in the sandbox: the system is read-only
    // there, even for an agent that runs as root.
    b.click("[data-session=\"alice/main\"] button.primary");
    b.wait_connected();
    b.type_into(
        ".xterm-helper-textarea",
        &format!("touch /usr/tmuxdt-probe || echo RO$((40+2)){ENTER}"),
    );
    b.wait_screen("RO42");
    assert!(!std::path::Path::new("/usr/tmuxdt-probe").exists());
}
