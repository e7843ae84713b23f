//! The workspace in the terminal view (issue 15): upload by the file
//! picker at a desktop's and a phone's size, the path typed into the
//! prompt, a folder downloaded through the page's own link.

use super::*;

/// Alice's `main` running bash in `{dir}/work`, open at `width`×`height`.
fn open_in_workdir(width: u32, height: u32) -> (Driver, Browser, crate::common::Daemon, Env) {
    let mut env = Env::new(
        "[agent]\ncommand = [\"bash\", \"--norc\", \"--noprofile\"]\n\
         [[users]]\nname = \"alice\"\nworkdir = \"{dir}/work\"\n",
    );
    std::fs::create_dir_all(env.path().join("work")).unwrap();
    let token = env.token("alice", "user");
    let d = env.serve();
    let driver = Driver::start();
    let b = driver.browser_sized(width, height);
    b.login_and_open(&d.url(), &token, "alice/main");
    (driver, b, d, env)
}

/// Uploads `name` with `content` through the Files panel's picker.
fn upload(b: &Browser, env: &Env, name: &str, content: &str) {
    let src = env.path().join("from-the-desktop");
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join(name);
    std::fs::write(&file, content).unwrap();
    b.click("#files-open");
    b.find("#files-list");
    b.type_into("#upload-input", file.to_str().unwrap());
    wait_for(20, "the upload's confirmation", || {
        b.text("#uploaded")
            .contains(&format!("uploads/{name}"))
            .then_some(())
    });
}

#[test]
fn upload_from_the_desktop_insert_its_path_and_download_the_folder() {
    let (_driver, b, _d, env) = open_in_workdir(1280, 800);
    upload(&b, &env, "notes.txt", "from the desktop\n");
    save_screenshot(&b, "files", 1280);
    let stored = env.path().join("work/uploads/notes.txt");
    assert_eq!(
        std::fs::read_to_string(&stored).unwrap(),
        "from the desktop\n"
    );

    // The path goes into the prompt, typed, not run.
    b.click("#insert-path");
    b.type_into(".xterm-helper-textarea", "\u{1}cat \u{5}\n");
    b.wait_screen("from the desktop");

    // The folder, downloaded through the panel's own link (the page's
    // cookie, no token): a gzip'd tar holding the file.
    b.click("#files-open");
    b.click("[data-name=\"uploads\"]");
    wait_for(10, "the uploads folder", || {
        b.text("#files-where").contains("/uploads").then_some(())
    });
    let got = b.script_async(
        "const done = arguments[0];
         const href = document.getElementById('files-archive').href;
         fetch(href).then(r => r.arrayBuffer()).then(buf => {
           let s = ''; new Uint8Array(buf).forEach(c => s += String.fromCharCode(c));
           done({b64: btoa(s), href});
         }).catch(e => done({error: String(e)}));",
        json!([]),
    );
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(got["b64"].as_str().unwrap_or_else(|| panic!("{got}")))
        .unwrap();
    let archive = env.path().join("uploads.tar.gz");
    std::fs::write(&archive, &bytes).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "uploads/notes.txt",
        "{got}"
    );
    // A file's own link downloads its bytes.
    let text = b.script_async(
        "const done = arguments[0];
         fetch(document.querySelector('#files-list [data-name=\"notes.txt\"]').href)
           .then(r => r.text()).then(done).catch(e => done(String(e)));",
        json!([]),
    );
    assert_eq!(text, "from the desktop\n");
}

#[test]
fn upload_from_a_phone_by_picker_drop_and_paste_and_the_panel_fits() {
    let (_driver, b, _d, env) = open_in_workdir(390, 844);
    upload(&b, &env, "photo.jpg", "not really a jpeg");
    assert!(env.path().join("work/uploads/photo.jpg").exists());
    // A file dropped on the terminal, and one pasted (a screenshot), are
    // uploaded too (the events a browser makes, with real File objects).
    b.script(
        "const dt = new DataTransfer(); dt.items.add(new File(['dropped bytes'], 'dropped.txt'));
         document.querySelector('.term-view').dispatchEvent(
           new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));",
    );
    wait_for(10, "the dropped file", || {
        b.text("#uploaded")
            .contains("uploads/dropped.txt")
            .then_some(())
    });
    b.script(
        "const dt = new DataTransfer(); dt.items.add(new File(['png bytes'], 'image.png', {type: 'image/png'}));
         document.querySelector('.xterm-helper-textarea').dispatchEvent(
           new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));",
    );
    wait_for(10, "the pasted file", || {
        b.text("#uploaded")
            .contains("uploads/image.png")
            .then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(env.path().join("work/uploads/dropped.txt")).unwrap(),
        "dropped bytes"
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("work/uploads/image.png")).unwrap(),
        "png bytes"
    );
    // On a touch screen the camera is offered; nothing scrolls sideways.
    assert!(b.visible("#files-camera"), "no camera button on a phone");
    let v = b.script(
        "const f = document.getElementById('files');
         return [f.scrollWidth, f.clientWidth, document.documentElement.scrollWidth];",
    );
    assert!(
        v[0].as_u64() <= v[1].as_u64() && v[2].as_u64() <= Some(390),
        "the files panel is wider than the phone: {v}"
    );
}

#[test]
fn the_changes_view_shows_each_files_patch_and_snapshots_roll_back() {
    crate::common::require("git");
    let mut env = Env::new(
        "[agent]\ncommand = [\"bash\", \"--norc\", \"--noprofile\"]\n\
         [[users]]\nname = \"alice\"\nworkdir = \"{dir}/work\"\n",
    );
    let work = env.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let git = |args: &[&str]| {
        let st = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.test", "-C"])
            .arg(&work)
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(work.join("a.txt"), "one\ntwo\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "first"]);
    let token = env.token("alice", "user");
    let d = env.serve();
    let driver = Driver::start();
    let b = driver.browser_sized(1280, 800);
    b.login_and_open(&d.url(), &token, "alice/main");

    // The agent changes a file and adds one.
    b.type_into(
        ".xterm-helper-textarea",
        &format!("echo three >> a.txt; echo fresh > b.txt; echo ok-$((6*7)){ENTER}"),
    );
    b.wait_screen("ok-42");
    b.click("#files-open");
    b.click("#tab-changes");
    wait_for(10, "both files in the changes", || {
        let t = b.text("#changes");
        (t.contains("a.txt") && t.contains("b.txt")).then_some(())
    });
    b.click("[data-path=\"a.txt\"] summary");
    let added = b.text("[data-path=\"a.txt\"] .patch .add");
    assert_eq!(added, "+three", "{}", b.text("#changes"));
    assert!(b.text("[data-path=\"b.txt\"] summary").contains("added"));
    save_screenshot(&b, "changes", 1280);

    // A snapshot from the page, then the change undone by rolling back to
    // it after the file is removed.
    b.click("#tab-snapshots");
    b.click("#snapshot-take");
    let id = wait_for(10, "the snapshot listed", || {
        let v = b.script("const s = document.querySelector('[data-snapshot]'); return s ? s.dataset.snapshot : null;");
        v.as_str().map(str::to_owned)
    });
    std::fs::remove_file(work.join("b.txt")).unwrap();
    b.script("window.confirm = () => true;");
    b.click(&format!("[data-snapshot=\"{id}\"] button.danger"));
    wait_for(10, "b.txt back", || {
        work.join("b.txt").exists().then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(work.join("b.txt")).unwrap(),
        "fresh\n"
    );
    wait_for(10, "the rollback said", || {
        b.text("#files-status")
            .contains(&format!("Back at {id}"))
            .then_some(())
    });
}
