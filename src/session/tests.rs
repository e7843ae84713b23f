//! Session tests: typed text, the listing parser.

use super::listing::parse_listing;
use super::*;

#[test]
fn typed_text_refuses_control_characters() {
    assert!(check_typed_text("echo hi\tthere\nnext").is_ok());
    for bad in ["\x1b[31m", "a\x03", "\r", "\u{7f}", "x\u{9b}y"] {
        let e = check_typed_text(bad).unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains("control character"));
    }
}

#[test]
fn listing_parses_states() {
    let user = Name::new("alice").unwrap();
    let out = "S\tmain\t100\t1\t%0\t\t101\tstatus 1 at 90\t2\t150\t\t\n\
               S\tdocs\t200\t0\t%1\tgo-1\t201\t\t\t250\t/w/docs\t{\"network\":\"none\",\"writable\":[\"/w/docs\"]}\n\
               S\tdead\t300\t0\t%2\t\t301\t\t\t350\t\t\n\
               S\tmine\t400\t0\t\t\t\t\t\t450\t\t\n\
               P\t%0\t42\t0\t\t\t\t1\n\
               P\t%1\t43\t0\t\t\t\t0\n\
               P\t%2\t44\t1\t127\t\t305\t0\n";
    let l = parse_listing(out, &user, Path::new("/s"));
    let ids: Vec<String> = l.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, ["alice/main", "alice/dead", "alice/docs"]);
    assert_eq!(
        (l[0].state, l[0].launcher_pid, l[0].restarts),
        (State::Running, Some(42), 2)
    );
    assert_eq!(l[0].last_exit.unwrap().status, Some(1));
    assert_eq!(l[0].last_activity, Some(150));
    assert!(l[0].piped && !l[2].piped);
    assert_eq!((l[1].state, l[1].launcher_pid), (State::Exited, None));
    assert_eq!(l[1].last_exit.unwrap().status, Some(127));
    assert_eq!(l[2].state, State::Starting);
    assert_eq!(l[0].sandbox, None);
    assert_eq!(l[2].sandbox.as_ref().unwrap().network, "none");
}

#[test]
fn users_are_told_fixed_text_for_internal_errors() {
    let internal = SessionError::Tmux(crate::tmux::TmuxError::Failed {
        command: "send-keys".into(),
        stderr: "error connecting to /run/tmuxd/alice/tmux (Permission denied)".into(),
    });
    let told = internal.for_users();
    assert!(
        !told.contains("/run/tmuxd") && !told.contains("Permission"),
        "{told}"
    );
    let io = SessionError::Io("cannot chown /var/lib/x: EPERM".into());
    assert!(!io.for_users().contains("/var/lib"));
    // What the user asked about is theirs to see.
    let id: SessionId = "alice/docs".parse().unwrap();
    assert_eq!(
        SessionError::NoSuchSession(id).for_users(),
        "no such session alice/docs"
    );
}

proptest::proptest! {
    /// The listing parser keeps tmuxd's sessions (valid names, a pane id)
    /// with their fields, `main` first and the rest by name, and ignores
    /// everything else on the socket.
    #[test]
    fn listings_parse_back(
        sessions in proptest::collection::btree_map(
            "main|[a-z][a-z0-9_-]{0,12}",
            (0u32..2_000_000_000, 0u8..9, proptest::prelude::any::<bool>(), 2u32..4_000_000, 0u32..500),
            0..12,
        ),
        junk in proptest::collection::vec("[ -~\t]{0,40}", 0..6),
    ) {
        let user = Name::new("alice").unwrap();
        let mut out = String::new();
        for (i, (name, (created, clients, dead, pid, restarts))) in sessions.iter().enumerate() {
            out += &format!("S\t{name}\t{created}\t{clients}\t%{i}\t\t\t\t{restarts}\t{created}\t\t\n");
            out += &format!("P\t%{i}\t{pid}\t{}\t\t\t\t1\n", u8::from(*dead));
            out += &format!("S\tBad Name\t1\t0\t%{i}\t\t\t\t0\t1\t\t\n");
        }
        for j in &junk {
            // Never a valid `S` or `P` line by chance.
            out += "# ";
            out += j;
            out.push('\n');
        }
        let list = parse_listing(&out, &user, Path::new("/s"));
        let mut want: Vec<&String> = sessions.keys().collect();
        want.sort_by_key(|n| (n.as_str() != "main", n.as_str()));
        let got: Vec<String> = list.iter().map(|s| s.id.session.to_string()).collect();
        proptest::prop_assert_eq!(got.iter().collect::<Vec<_>>(), want);
        for s in &list {
            let (created, clients, dead, pid, restarts) = sessions[s.id.session.as_str()];
            proptest::prop_assert_eq!(s.id.user.as_str(), "alice");
            proptest::prop_assert_eq!(s.created, Some(u64::from(created)));
            proptest::prop_assert_eq!(s.attached_clients, u32::from(clients));
            proptest::prop_assert_eq!(s.restarts, restarts);
            proptest::prop_assert_eq!(s.state, if dead { State::Exited } else { State::Running });
            proptest::prop_assert_eq!(s.launcher_pid, (!dead).then_some(pid));
        }
    }
}
