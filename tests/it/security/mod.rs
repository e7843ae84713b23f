//! Security: per-user isolation holds against the users it isolates (issue
//! 10). These run as root with real throwaway Unix users and try what an
//! attacker with a user's account or token would; each test is named after
//! the finding it pins.

mod limits;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::accounts::UnixUsers;
use crate::common::client::*;
use crate::common::{wait_for, Env};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// Two users with their own accounts; the test directory reachable by them.
fn isolated_env(users: &UnixUsers) -> Env {
    let (a, b) = (&users.0[0], &users.0[1]);
    let env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"/tmp/{a}-home\"\n[[users]]\nname = \"bob\"\nunix_user = \"{b}\"\nworkdir = \"/tmp/{b}-home\"\n"
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    env
}

/// The uids recorded in `proof`, one per line.
fn proofs(proof: &Path) -> Vec<u32> {
    std::fs::read_to_string(proof)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

fn wait_proofs(proof: &Path, n: usize, what: &str) -> Vec<u32> {
    wait_for(15, what, || {
        let p = proofs(proof);
        (p.len() >= n).then_some(p)
    })
}

fn attached_clients(env: &Env) -> usize {
    let out = env.tmux("alice", &["list-clients", "-F", "#{client_pid}"]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Finding 1: a viewer's `tmux attach` was a root client of the user's own
/// tmux server, and a server makes its clients run commands. Every trick
/// (lock-command, run-shell and detach-client -E from `C-b :`, detach-client
/// -E from the shell) must run as the user, for web viewers (read-write,
/// read-only, an admin viewing) and for `tmuxd attach` run as root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_1_tmux_clients_never_run_commands_as_root() {
    crate::common::require("script");
    let users = UnixUsers::create(2);
    let alice_uid = users.uid(0);
    let mut env = isolated_env(&users);
    let proof_dir = env.path().join("proof");
    std::fs::create_dir(&proof_dir).unwrap();
    std::fs::set_permissions(&proof_dir, PermissionsExt::from_mode(0o777)).unwrap();
    let proof = proof_dir.join("uids");
    let p = proof.display().to_string();
    let d = env.serve();
    let base = d.url();
    wait_for(10, "alice's agent", || {
        env.session("alice/main")?["agent_pid"].as_u64()
    });
    let rw = env.token("alice", "user");
    let ro = env.token("alice", "read-only");
    let admin = env.token("bob", "admin");
    let path = "/ws/sessions/alice/main";
    let mut viewers = Vec::new();
    for token in [&rw, &ro, &admin] {
        let mut ws = connect(&base, path, Some(token), None).await.unwrap();
        hello(&mut ws).await;
        viewers.push(ws);
    }
    let config = env.config.display().to_string();
    let mut cli = crate::common::in_terminal(
        &[],
        &format!("{} --config {config} attach alice", crate::common::BIN),
    );
    wait_for(15, "four clients attached", || {
        (attached_clients(&env) == 4).then_some(())
    });

    // C-b : run-shell (the server) and detach-client -E (the typing
    // client), typed by alice's read-write viewer.
    let rw_ws = &mut viewers[0];
    rw_ws
        .send(Message::Binary(b"\x02:".to_vec().into()))
        .await
        .unwrap();
    type_line(rw_ws, &format!("run-shell 'id -u >> {p}'")).await;
    wait_proofs(&proof, 1, "run-shell from the command prompt");
    rw_ws
        .send(Message::Binary(b"\x02:".to_vec().into()))
        .await
        .unwrap();
    type_line(rw_ws, &format!("detach-client -E 'id -u >> {p}'")).await;
    let prompt = wait_proofs(&proof, 2, "detach-client -E from the command prompt");
    assert_eq!(
        prompt, [alice_uid; 2],
        "commands from C-b : ran as these uids; alice is {alice_uid}"
    );
    wait_for(10, "three clients left", || {
        (attached_clients(&env) == 3).then_some(())
    });
    // lock-command runs in every client of the session (no keys are typed
    // from here on: a locked client does not pass them on).
    env.ok(&[
        "send",
        "alice",
        &format!("tmux set -g lock-command 'id -u >> {p}' && tmux lock-session -t =main"),
    ]);
    let after_lock = wait_proofs(&proof, 5, "lock-command in the 3 clients");
    assert_eq!(
        after_lock, [alice_uid; 5],
        "lock-command ran as these uids; alice is {alice_uid}"
    );
    // detach-client -E from the shell, for every remaining client.
    env.ok(&[
        "send",
        "alice",
        &format!("tmux detach-client -s =main -E 'id -u >> {p}'"),
    ]);
    let all = wait_proofs(&proof, 8, "detach-client -E in the other 3 clients");
    assert!(
        all.iter().all(|uid| *uid == alice_uid),
        "commands a user's tmux server made its clients run ran as {all:?}; alice is {alice_uid}"
    );
    // `tmuxd attach` ended with its detached client.
    let status = tokio::task::spawn_blocking(move || cli.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "tmuxd attach: {status}");
    drop(viewers);
}

/// Runs `script` with `sh -c` as Unix account `account`.
fn as_account(account: &str, script: &str) {
    let out = std::process::Command::new("runuser")
        .args(["-u", account, "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Output typed into bob's session reaches his transcript, and `/healthz`
/// answers: one user's spool never stalls the others.
fn others_still_recorded(env: &Env, base: &str, tag: &str) {
    let m = crate::common::marker();
    env.ok(&["send", "bob", &format!("echo bob-{tag}-$((6*7))-{m}")]);
    wait_for(10, &format!("bob recorded after {tag}"), || {
        env.ok(&["transcript", "bob"])
            .contains(&format!("bob-{tag}-42-{m}"))
            .then_some(())
    });
    let started = std::time::Instant::now();
    let (status, _) = call("GET", &format!("{base}/healthz"), None, None);
    assert_eq!(status, 200, "healthz after {tag}");
    assert!(
        started.elapsed().as_secs() < 5,
        "healthz took {:?}",
        started.elapsed()
    );
}

/// Findings 2 and 3: alice's account replaces her spool with a link to a
/// root-only file, a FIFO, a device, or a hard link to bob's spool (root
/// makes the last two, as a machine without protected links would let her).
/// The daemon must refuse each (recording the refusal), never read or
/// punch the target, and keep recording bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_2_and_3_a_spool_that_is_a_link_fifo_device_or_foreign_file_is_refused() {
    crate::common::require("runuser");
    let users = UnixUsers::create(2);
    let a = users.0[0].clone();
    let mut env = isolated_env(&users);
    let secret = env.path().join("secret");
    let secret_text = format!("SECRET-{}\n", crate::common::marker()).repeat(4096);
    std::fs::write(&secret, &secret_text).unwrap();
    std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o600)).unwrap();
    let secret_blocks =
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&secret).unwrap());
    let d = env.serve();
    let base = d.url();
    for user in ["alice", "bob"] {
        wait_for(10, "agents running", || {
            env.session(&format!("{user}/main"))?["agent_pid"].as_u64()
        });
    }
    let dir = env.path().join("run/spool/alice");
    let spool = dir.join("main.out").display().to_string();
    let tmp = dir.join("attack").display().to_string();
    let bob_spool = env.path().join("run/spool/bob/main.out");
    type Attack<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let attacks: [Attack; 4] = [
        (
            "symlink",
            Box::new(|| {
                as_account(
                    &a,
                    &format!("ln -s {} {tmp} && mv -f {tmp} {spool}", secret.display()),
                )
            }),
        ),
        (
            "fifo",
            Box::new(|| as_account(&a, &format!("mkfifo {tmp} && mv -f {tmp} {spool}"))),
        ),
        (
            "device",
            Box::new(|| {
                nix::sys::stat::mknod(
                    Path::new(&tmp),
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o600),
                    nix::sys::stat::makedev(1, 3),
                )
                .unwrap();
                nix::unistd::chown(Path::new(&tmp), Some(users.uid(0).into()), None).unwrap();
                std::fs::rename(&tmp, &spool).unwrap();
            }),
        ),
        (
            "foreign",
            Box::new(|| {
                std::fs::hard_link(&bob_spool, &tmp).unwrap();
                std::fs::rename(&tmp, &spool).unwrap();
            }),
        ),
    ];
    for (i, (tag, attack)) in attacks.iter().enumerate() {
        attack();
        others_still_recorded(&env, &base, tag);
        wait_for(10, &format!("the {tag} refusal recorded"), || {
            let text = env.ok(&["transcript", "alice"]);
            (text.matches("spool-refused").count() > i).then_some(())
        });
    }
    let alice = env.ok(&["transcript", "alice", "--format", "raw"]);
    assert!(
        !alice.contains("SECRET-"),
        "the root-only file reached alice's transcript"
    );
    assert!(
        !alice.contains("bob-"),
        "bob's spool reached alice's transcript"
    );
    let text = env.ok(&["transcript", "alice"]);
    for reason in ["symbolic link", "FIFO", "character device", "owned by uid"] {
        assert!(
            text.contains(reason),
            "no refusal naming {reason:?}:\n{text}"
        );
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), secret_text);
    assert_eq!(
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&secret).unwrap()),
        secret_blocks,
        "the root-only file was punched"
    );
    assert!(d.log().contains("spool refused"), "{}", d.log());
}

/// Finding 3: a sparse 50 GB spool must not stall everyone's recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_3_a_sparse_50gb_spool_does_not_stall_other_users() {
    crate::common::require("runuser");
    let users = UnixUsers::create(2);
    let mut env = isolated_env(&users);
    let d = env.serve();
    let base = d.url();
    for user in ["alice", "bob"] {
        wait_for(10, "agents running", || {
            env.session(&format!("{user}/main"))?["agent_pid"].as_u64()
        });
    }
    let dir = env.path().join("run/spool/alice");
    as_account(
        &users.0[0],
        &format!(
            "cd {} && truncate -s 50G attack && printf 'after-the-hole\\n' >> attack && mv -f attack main.out",
            dir.display()
        ),
    );
    others_still_recorded(&env, &base, "sparse");
    wait_for(10, "alice's data after the hole", || {
        env.ok(&["transcript", "alice"])
            .contains("after-the-hole")
            .then_some(())
    });
    assert!(
        env.ok(&["transcript", "alice"])
            .contains("spool-hole-skipped"),
        "the skipped hole is recorded"
    );
}

/// POST /api/login with `token`: the status and Retry-After.
fn login(base: &str, token: &str) -> (u16, Option<String>) {
    let r = http()
        .post(&format!("{base}/api/login"))
        .send_json(serde_json::json!({ "token": token }))
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry)
}

/// Finding 6: the failed-login limiter ran before verification, keyed by the
/// claimed user and the address: 5 junk tokens named `alice.` locked alice
/// out, 20 from loopback locked out everyone. Now 5 and 25 junk logins
/// never refuse a valid token; junk beyond the per-address limit gets 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_6_junk_logins_never_refuse_a_valid_token() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n",
    );
    let alice = env.token("alice", "user");
    let bob = env.token("bob", "user");
    let d = env.serve();
    let base = d.url();
    let junk = |i: usize| format!("alice.{:A>43}", i);
    for i in 0..5 {
        assert_eq!(login(&base, &junk(i)).0, 401);
    }
    assert_eq!(
        login(&base, &alice).0,
        204,
        "5 junk tokens named alice locked her out"
    );
    let mut refused = 0;
    for i in 5..25 {
        match login(&base, &junk(i)) {
            (401, _) => {}
            (429, Some(retry)) => {
                assert!(retry.parse::<u64>().unwrap() <= 60, "{retry}");
                refused += 1;
            }
            other => panic!("junk login answered {other:?}"),
        }
    }
    assert_eq!(refused, 5, "20 failures a minute per address, then 429");
    assert_eq!(
        login(&base, &alice).0,
        204,
        "25 junk logins locked alice out"
    );
    assert_eq!(login(&base, &bob).0, 204, "25 junk logins locked bob out");
    // A valid bearer token works too, on the API.
    let (status, _) = call("GET", &format!("{base}/api/me"), Some(&alice), None);
    assert_eq!(status, 200);
}

/// Finding 9 (logout): the cookie was the raw 30-day token, so logging out
/// revoked nothing. Now the cookie is a login of its own: logout ends it
/// (the token keeps working), and revoking the token ends its logins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_9_logout_revokes_the_login_and_the_cookie_is_not_the_token() {
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let log_in = || {
        let r = http()
            .post(&format!("{base}/api/login"))
            .send_json(serde_json::json!({ "token": alice }))
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let set = r.headers().get("set-cookie").unwrap().to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    };
    let me = |cookie: &str| {
        http()
            .get(&format!("{base}/api/me"))
            .header("Cookie", cookie)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    let first = log_in();
    let second = log_in();
    assert!(
        !first.contains(alice.split('.').nth(1).unwrap()),
        "the cookie carries the token"
    );
    assert_eq!((me(&first), me(&second)), (200, 200));
    let out = http()
        .post(&format!("{base}/api/logout"))
        .header("Cookie", &first)
        .header("Origin", &base)
        .send_empty()
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    assert_eq!(me(&first), 401, "a logged-out cookie still works");
    assert_eq!(me(&second), 200, "logout ended another login");
    assert_eq!(
        call("GET", &format!("{base}/api/me"), Some(&alice), None).0,
        200
    );
    // Logins survive a daemon restart; revoking the token ends them.
    drop(d);
    env.kill_daemons();
    let d = env.serve();
    let base = d.url();
    let me = |cookie: &str| {
        http()
            .get(&format!("{base}/api/me"))
            .header("Cookie", cookie)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(me(&second), 200);
    let id = env.ok(&["token", "--list"]);
    // Under the header line.
    let id = id
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    env.ok(&["token", "--revoke", id]);
    assert_eq!(
        me(&second),
        401,
        "revoking the token left its login working"
    );
}
