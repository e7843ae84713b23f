//! Workspaces over HTTP (issue 15), as root with real throwaway Unix users:
//! uploads land as the user's files, downloads and archives never follow a
//! link out of the workdir, caps answer 413, another user's session 404.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::common::accounts::UnixUsers;
use crate::common::client::*;
use crate::common::Env;

/// Alice and Bob with their own accounts and homes as workdirs; small caps.
fn env_for(users: &UnixUsers) -> Env {
    let (a, b) = (&users.0[0], &users.0[1]);
    let env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\"]\n\
         [workspace]\nmax_upload_bytes = 100000\nmax_upload_files = 5\nmax_download_files = 50\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"/tmp/{a}-home\"\n\
         [[users]]\nname = \"bob\"\nunix_user = \"{b}\"\nworkdir = \"/tmp/{b}-home\"\n"
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    env
}

fn upload(url: &str, token: &str, body: &[u8]) -> (u16, String) {
    let mut r = http()
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send(body)
        .unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// (status, bytes, Content-Disposition) of a GET.
fn download(url: &str, token: &str) -> (u16, Vec<u8>, String) {
    let mut r = http()
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let disposition = r
        .headers()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (r.status().as_u16(), body, disposition)
}

/// `tar -tzv` of an archive: one line per entry.
fn tar_list(bytes: &[u8], dir: &Path) -> String {
    let file = dir.join("a.tar.gz");
    std::fs::write(&file, bytes).unwrap();
    crate::common::stdout_of(Command::new("tar").arg("-tzvf").arg(&file))
}

#[test]
fn uploads_are_the_users_files_and_downloads_never_follow_links_out() {
    crate::common::require("tar");
    let users = UnixUsers::create(2);
    let (a, b) = (users.0[0].clone(), users.0[1].clone());
    let mut env = env_for(&users);
    let alice = env.token("alice", "user");
    let d = env.serve();
    let files = format!("{}/api/sessions/alice/main/files", d.url());
    let home = format!("/tmp/{a}-home");

    // An upload lands in uploads/ as Alice's file, under a safe name; the
    // same name again is not overwritten.
    let (status, body) = upload(
        &format!("{files}?name=..%2F..%2Fnotes.txt"),
        &alice,
        b"first",
    );
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "uploads/notes.txt");
    let meta = std::fs::metadata(format!("{home}/uploads/notes.txt")).unwrap();
    assert_eq!(meta.uid(), users.uid(0), "the upload is not the user's");
    let (status, body) = upload(&format!("{files}?name=notes.txt"), &alice, b"second");
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("uploads/notes-1.txt"), "{body}");
    assert_eq!(
        std::fs::read(format!("{home}/uploads/notes.txt")).unwrap(),
        b"first"
    );

    // Over the byte cap: 413, declared or not, and nothing is kept.
    let big = vec![b'x'; 100_001];
    let (status, body) = upload(&format!("{files}?name=big.bin"), &alice, &big);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("max_upload_bytes"), "{body}");
    let mut r = http()
        .post(&format!("{files}?name=big.bin"))
        .header("Authorization", &format!("Bearer {alice}"))
        .send(ureq::SendBody::from_reader(&mut &big[..]))
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        413,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
    assert!(
        !Path::new(&format!("{home}/uploads/big.bin")).exists(),
        "an over-cap upload was kept"
    );
    // An upload whose sender goes away midway leaves nothing behind.
    {
        use std::io::Write as _;
        let addr = d.url().trim_start_matches("http://").to_owned();
        let mut sock = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            sock,
            "POST /api/sessions/alice/main/files?name=cut.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {alice}\r\nContent-Length: 50000\r\n\r\n"
        )
        .unwrap();
        sock.write_all(&[b'y'; 20_000]).unwrap();
        crate::common::wait_for(10, "the partial upload on disk", || {
            Path::new(&format!("{home}/uploads/cut.bin"))
                .exists()
                .then_some(())
        });
        drop(sock);
    }
    crate::common::wait_for(10, "the cut upload removed", || {
        (!Path::new(&format!("{home}/uploads/cut.bin")).exists()).then_some(())
    });

    // Over the file-count cap of the uploads directory: 413.
    for i in 0..3 {
        assert_eq!(upload(&format!("{files}?name=f{i}"), &alice, b"x").0, 201);
    }
    let (status, body) = upload(&format!("{files}?name=one-too-many"), &alice, b"x");
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("holds 5 files"), "{body}");

    // Links Alice plants toward Bob's world-readable file and a root-only
    // one: never downloaded, never archived as their targets' bytes.
    let secret = format!("/tmp/{b}-home/secret.txt");
    std::fs::write(&secret, "bob's secret").unwrap();
    std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o644)).unwrap();
    let project = format!("{home}/project");
    std::fs::create_dir_all(format!("{project}/src")).unwrap();
    std::fs::write(format!("{project}/src/main.rs"), "fn main() {}\n").unwrap();
    std::os::unix::fs::symlink(&secret, format!("{project}/bob-link")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", format!("{project}/shadow-link")).unwrap();
    std::os::unix::fs::symlink(format!("/tmp/{b}-home"), format!("{home}/bob-dir")).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "-h", &a, &project])
        .status()
        .unwrap();
    assert!(chown.success());
    for path in [
        "project/bob-link",
        "project/shadow-link",
        "bob-dir/secret.txt",
    ] {
        let (status, body, _) = download(&format!("{files}?path={path}"), &alice);
        assert_eq!(status, 400, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(
            String::from_utf8_lossy(&body).contains("symbolic link"),
            "{path}"
        );
    }
    for path in ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"] {
        let (status, body, _) = download(&format!("{files}?path={path}"), &alice);
        assert_eq!(status, 400, "{path}: {}", String::from_utf8_lossy(&body));
    }

    // A file, then the directory as an archive: the links are links.
    let (status, body, disposition) =
        download(&format!("{files}?path=project/src/main.rs"), &alice);
    assert_eq!((status, &body[..]), (200, &b"fn main() {}\n"[..]));
    assert!(
        disposition.contains("filename=\"main.rs\""),
        "{disposition}"
    );
    let (status, body, disposition) =
        download(&format!("{files}?path=project&format=tar.gz"), &alice);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(disposition.contains("main-project.tar.gz"), "{disposition}");
    let listing = tar_list(&body, env.path());
    assert!(listing.contains("project/src/main.rs"), "{listing}");
    assert!(
        listing.contains(&format!("project/bob-link -> {secret}")),
        "{listing}"
    );
    assert!(!String::from_utf8_lossy(&body).contains("bob's secret"));

    // The same as a zip, checked by Python's zipfile: every CRC, the file's
    // bytes, the link stored as a link (its mode), not its target's bytes.
    let (status, body, disposition) = download(&format!("{files}?path=project&format=zip"), &alice);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(disposition.contains("main-project.zip"), "{disposition}");
    let zip = env.path().join("a.zip");
    std::fs::write(&zip, &body).unwrap();
    let check = "import sys, zipfile, stat\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 assert z.testzip() is None\n\
                 print(z.read('project/src/main.rs').decode(), end='')\n\
                 link = z.getinfo('project/bob-link')\n\
                 print(stat.S_ISLNK(link.external_attr >> 16), z.read(link).decode())\n\
                 print(sorted(i.filename for i in z.infolist()))\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(check)
        .arg(&zip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("fn main() {}\n"), "{said}");
    assert!(said.contains(&format!("True {secret}")), "{said}");
    assert!(
        said.contains("'project/src/'") && !said.contains("bob's secret"),
        "{said}"
    );

    // The listing shows kinds; the whole workspace is over the file cap.
    let (status, body) = call(
        "GET",
        &format!("{files}?path=project&list=true"),
        Some(&alice),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<(String, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(kinds[0], ("src".into(), "dir".into()), "{kinds:?}");
    assert!(
        kinds.contains(&("bob-link".into(), "link".into())),
        "{kinds:?}"
    );
    for i in 0..60 {
        std::fs::write(format!("{project}/many-{i}"), "x").unwrap();
    }
    let (status, body, _) = download(&files, &alice);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));

    // Bob's session does not exist for Alice.
    let (status, _) = call(
        "GET",
        &format!("{}/api/sessions/bob/main/files?list=true", d.url()),
        Some(&alice),
        None,
    );
    assert_eq!(status, 404);
    let (status, _) = upload(
        &format!("{}/api/sessions/bob/main/files?name=x", d.url()),
        &alice,
        b"x",
    );
    assert_eq!(status, 404);

    // An uploads directory Alice swaps for a link to Bob's home: nothing is
    // written through it, and a file planted as a link is never overwritten.
    std::fs::remove_dir_all(format!("{home}/uploads")).unwrap();
    std::os::unix::fs::symlink(format!("/tmp/{b}-home"), format!("{home}/uploads")).unwrap();
    let before: Vec<_> = std::fs::read_dir(format!("/tmp/{b}-home"))
        .unwrap()
        .collect();
    let (status, body) = upload(&format!("{files}?name=planted.txt"), &alice, b"x");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("symbolic link"), "{body}");
    let after: Vec<_> = std::fs::read_dir(format!("/tmp/{b}-home"))
        .unwrap()
        .collect();
    assert_eq!(before.len(), after.len(), "an upload landed in Bob's home");

    // Each upload and download is in the transcript, with who did it.
    let text = env.ok(&["transcript", "alice/main"]);
    assert!(
        text.contains(r#"upload] {"by":"web:alice","bytes":5,"path":"uploads/notes.txt"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"download] {"by":"web:alice","bytes":13,"files":4,"format":"tar.gz","path":"project"}"#),
        "{text}"
    );
}

#[test]
fn put_and_get_from_the_cli() {
    let users = UnixUsers::create(2);
    let a = users.0[0].clone();
    let mut env = env_for(&users);
    let home = format!("/tmp/{a}-home");
    let src = env.path().join("report.txt");
    std::fs::write(&src, "the report\n").unwrap();
    let src = src.to_str().unwrap().to_owned();

    // Without the daemon: it says what to do.
    let out = env.run(&["put", "alice/main", &src]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tmuxd serve"));

    let _d = env.serve();
    let out = env.ok(&["put", "alice/main", &src]);
    assert_eq!(
        out.trim(),
        "stored uploads/report.txt (11 bytes) in alice/main"
    );
    let meta = std::fs::metadata(format!("{home}/uploads/report.txt")).unwrap();
    assert_eq!(meta.uid(), users.uid(0));
    let out = env.run_with_stdin(
        &["put", "alice/main", "-", "--name", "from-stdin.txt"],
        b"piped",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(format!("{home}/uploads/from-stdin.txt")).unwrap(),
        b"piped"
    );
    // Over the cap: exit 2, the cap named, nothing kept.
    let big = env.path().join("big.bin");
    std::fs::write(&big, vec![0u8; 100_001]).unwrap();
    let out = env.run(&["put", "alice/main", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_upload_bytes"));
    assert!(!Path::new(&format!("{home}/uploads/big.bin")).exists());

    // Back out: a file, and the uploads directory as an archive.
    let got = env.path().join("got.txt");
    env.ok(&[
        "get",
        "alice/main",
        "uploads/report.txt",
        "-o",
        got.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "the report\n");
    // Never over an existing file.
    let out = env.run(&[
        "get",
        "alice/main",
        "uploads/report.txt",
        "-o",
        got.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let tgz = env.path().join("uploads.tar.gz");
    env.ok(&["get", "alice/main", "uploads", "-o", tgz.to_str().unwrap()]);
    let listing = tar_list(&std::fs::read(&tgz).unwrap(), env.path());
    assert!(
        listing.contains("uploads/report.txt") && listing.contains("uploads/from-stdin.txt"),
        "{listing}"
    );
    // Refusals are bad input, named.
    std::os::unix::fs::symlink("/etc/passwd", format!("{home}/passwd-link")).unwrap();
    for (path, says) in [
        ("passwd-link", "symbolic link"),
        ("../x", "\"..\""),
        ("nothing-here", "no such file"),
    ] {
        let out = env.run(&["get", "alice/main", path, "-o", "-"]);
        assert_eq!(out.status.code(), Some(2), "{path}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = env.ok(&["transcript", "alice/main"]);
    assert!(
        text.contains(r#"upload] {"by":"cli:uid=0","bytes":11,"path":"uploads/report.txt"}"#),
        "{text}"
    );

    // The archive with the session's transcript inside, as text and as
    // asciicast, under .tmuxd/.
    let with = env.path().join("with-transcript.tar.gz");
    env.ok(&[
        "get",
        "alice/main",
        "uploads",
        "--transcript",
        "-o",
        with.to_str().unwrap(),
    ]);
    let listing = tar_list(&std::fs::read(&with).unwrap(), env.path());
    assert!(
        listing.contains("uploads/.tmuxd/transcript.txt")
            && listing.contains("uploads/.tmuxd/transcript.cast"),
        "{listing}"
    );
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(&with)
        .arg("uploads/.tmuxd/transcript.txt")
        .output()
        .unwrap();
    let inside = String::from_utf8_lossy(&out.stdout);
    assert!(inside.contains("upload] {\"by\":\"cli:uid=0\""), "{inside}");
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(&with)
        .arg("uploads/.tmuxd/transcript.cast")
        .output()
        .unwrap();
    let cast = String::from_utf8_lossy(&out.stdout);
    assert!(
        cast.lines().next().unwrap_or("").contains("\"version\":2"),
        "{cast}"
    );
    // A single file has no archive to put it in.
    let out = env.run(&[
        "get",
        "alice/main",
        "uploads/report.txt",
        "--transcript",
        "-o",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("directory's archive"));
}

/// A message with `files` (name, MIME type, bytes) attached to `text`.
fn mail_with(to: &str, id: &str, text: &str, files: &[(&str, &str, &[u8])]) -> String {
    use base64::Engine as _;
    let mut m = format!(
        "Authentication-Results: mx.example.test; dmarc=pass header.from=example.test\r\nFrom: alice@example.test\r\nTo: {to}\r\nSubject: main\r\nMessage-ID: <{id}@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    );
    for (name, t, bytes) in files {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        m.push_str(&format!(
            "--b1\r\nContent-Type: {t}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        ));
    }
    m.push_str("--b1--\r\n");
    m
}

#[test]
fn mailed_attachments_are_saved_as_the_users_files_once_confirmed() {
    let users = UnixUsers::create(1);
    let a = users.0[0].clone();
    let home = format!("/tmp/{a}-home");
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\"]\n\
         [mail]\naddress = \"agent@example.test\"\nauthserv_id = \"mx.example.test\"\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = 9\nsecurity = \"plain\"\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{home}\"\nemails = [\"alice@example.test\"]\n"
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let token = env.token("alice", "user");
    let to = env.ok(&["mail-address", "alice"]).trim().to_owned();
    let d = env.serve();

    // A type the config does not allow: refused, naming the file and the key.
    let raw = mail_with(
        &to,
        "m1",
        "run it",
        &[("run.sh", "application/x-sh", b"rm -rf ~")],
    );
    let out = env.run_with_stdin(&["mail-ingest"], raw.as_bytes());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("run.sh") && said.contains("attachment_types"),
        "{said}"
    );
    assert!(!Path::new(&format!("{home}/uploads")).exists());

    // An allowed one: named in the confirmation, saved only once confirmed.
    let m = crate::common::marker();
    let raw = mail_with(
        &to,
        "m2",
        &format!("cat uploads/note.txt; echo seen-{m}"),
        &[("note.txt", "text/plain", b"the attached note\n")],
    );
    let out = env.run_with_stdin(&["mail-ingest"], raw.as_bytes());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("pending:"),
        "{out:?}"
    );
    assert!(
        !Path::new(&format!("{home}/uploads/note.txt")).exists(),
        "saved before the confirmation"
    );
    let pending = confirm_pending(&d.url(), &token);
    let command = pending["command"].as_str().unwrap();
    assert!(command.contains("note.txt (18 bytes)"), "{command}");
    env.wait_pane("alice", "main", &format!("seen-{m}"));
    assert!(env.pane_text("alice", "main").contains("the attached note"));
    let meta = std::fs::metadata(format!("{home}/uploads/note.txt")).unwrap();
    assert_eq!(
        meta.uid(),
        users.uid(0),
        "the attachment is not the user's file"
    );
    let text = env.ok(&["transcript", "alice/main"]);
    assert!(
        text.contains(r#"upload] {"by":"email:"#) && text.contains("uploads/note.txt"),
        "{text}"
    );
}
