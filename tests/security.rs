//! Security: per-user isolation holds against the users it isolates (issue
//! 10). These run as root with real throwaway Unix users and try what an
//! attacker with a user's account or token would; each test is named after
//! the finding it pins.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::accounts::UnixUsers;
use common::client::*;
use common::{wait_for, Env};
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
    common::require("script");
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
    let mut cli = common::in_terminal(
        &[],
        &format!("{} --config {config} attach alice", common::BIN),
    );
    wait_for(15, "four clients attached", || {
        (attached_clients(&env) == 4).then_some(())
    });

    // lock-command runs in every client of the session.
    env.ok(&[
        "send",
        "alice",
        &format!("tmux set -g lock-command 'id -u >> {p}' && tmux lock-session -t =main"),
    ]);
    let after_lock = wait_proofs(&proof, 4, "lock-command in 4 clients");
    assert_eq!(
        after_lock, [alice_uid; 4],
        "lock-command ran as these uids; alice is {alice_uid}"
    );
    // C-b : run-shell (the server) and detach-client -E (the typing client).
    let rw_ws = &mut viewers[0];
    rw_ws
        .send(Message::Binary(b"\x02:".to_vec().into()))
        .await
        .unwrap();
    type_line(rw_ws, &format!("run-shell 'id -u >> {p}'")).await;
    wait_proofs(&proof, 5, "run-shell from the command prompt");
    rw_ws
        .send(Message::Binary(b"\x02:".to_vec().into()))
        .await
        .unwrap();
    type_line(rw_ws, &format!("detach-client -E 'id -u >> {p}'")).await;
    wait_proofs(&proof, 6, "detach-client -E from the command prompt");
    wait_for(10, "three clients left", || {
        (attached_clients(&env) == 3).then_some(())
    });
    // detach-client -E from the shell, for every remaining client.
    env.ok(&[
        "send",
        "alice",
        &format!("tmux detach-client -s =main -E 'id -u >> {p}'"),
    ]);
    let all = wait_proofs(&proof, 9, "detach-client -E in the other 3 clients");
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
