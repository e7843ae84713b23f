//! `[[users]]`: each user's agent, account, mail addresses, limits and
//! answering rules, over what `[agent]` gives everyone.

use super::parse::{check_argv, check_pattern, check_profile, AgentDefaults};
use super::*;

pub(super) fn parse_users(
    p: &mut Problems,
    raw: Vec<RawUser>,
    agent: &AgentDefaults,
    sandbox: &crate::sandbox::Policy,
    host: &HostDefaults,
) -> Vec<UserConfig> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut users = Vec::with_capacity(raw.len());
    for (i, u) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("users[{i}].{k}");
        if let Some(first) = seen.insert(u.name.clone(), i) {
            p.add(
                key("name"),
                format!("duplicate user {:?} (also users[{first}])", u.name),
            );
        }
        let name = p.check(&key("name"), Name::new(&u.name).map_err(|e| e.to_string()));
        let command = match u.command {
            Some(c) => {
                p.check(&key("command"), check_argv(&c));
                c
            }
            None => agent.command.clone(),
        };
        let workdir = u.workdir.unwrap_or(host.home.clone());
        parse::absolute(p, &key("workdir"), &workdir);
        if let Some(unix_user) = &u.unix_user {
            if unix_user.is_empty() || unix_user.contains(['\0', ':', '/']) {
                p.add(
                    key("unix_user"),
                    format!("{unix_user:?} is not a Unix user name"),
                );
            }
        }
        for (j, email) in u.emails.iter().enumerate() {
            if !is_plausible_email(email) {
                p.add(
                    format!("users[{i}].emails[{j}]"),
                    format!("{email:?} is not an email address"),
                );
            }
        }
        let emails = u.emails.iter().map(|e| e.to_ascii_lowercase()).collect();
        for (j, m) in u.matrix_ids.iter().enumerate() {
            if !is_matrix_id(m) {
                p.add(
                    format!("users[{i}].matrix_ids[{j}]"),
                    format!("{m:?} is not a Matrix user id like @alice:example.org"),
                );
            }
        }
        let waiting_pattern = match u.waiting_pattern {
            Some(w) => p
                .check(&key("waiting_pattern"), check_pattern(&w))
                .map(|()| w),
            None => agent.waiting_pattern.clone(),
        };
        let profile = p
            .check(&key("profile"), check_profile(u.profile))
            .flatten()
            .or_else(|| agent.profile.clone())
            .unwrap_or_else(|| crate::agent::Profile::for_command(&command).to_owned());
        for (k, v) in [
            ("max_processes", u.max_processes),
            ("max_open_files", u.max_open_files),
        ] {
            parse::at_least_one(p, &key(k), v, 1);
        }
        for (j, flag) in u.block.iter().enumerate() {
            if !crate::risk::is_flag(flag) {
                let known: Vec<&str> = crate::risk::FLAGS.iter().map(|f| f.0).collect();
                p.add(
                    format!("users[{i}].block[{j}]"),
                    format!(
                        "unknown risk flag {flag:?}; the flags are {}",
                        known.join(", ")
                    ),
                );
            }
        }
        let answer_from = match u.answer_from {
            Some(list) => {
                if let Some(bad) = list.iter().find(|c| !ANSWER_CHANNELS.contains(&c.as_str())) {
                    p.add(
                        key("answer_from"),
                        format!(
                            "unknown channel {bad:?}; the channels are {}",
                            ANSWER_CHANNELS.join(", ")
                        ),
                    );
                }
                list
            }
            None => ANSWER_CHANNELS.map(String::from).to_vec(),
        };
        let env = agent_env::layer(p, &agent.env, &format!("users[{i}]"), u.env, u.secrets);
        let user_sandbox = super::sandbox::layer(p, sandbox, &key("sandbox"), u.sandbox);
        let mut session_env = std::collections::BTreeMap::new();
        let mut session_sandbox = std::collections::BTreeMap::new();
        for (session, s) in u.sessions.unwrap_or_default() {
            let at = format!("users[{i}].sessions.{session}");
            let Some(session) = p.check(&at, Name::new(&session).map_err(|e| e.to_string())) else {
                continue;
            };
            if s.sandbox.is_some() {
                let policy =
                    super::sandbox::layer(p, &user_sandbox, &format!("{at}.sandbox"), s.sandbox);
                session_sandbox.insert(session.clone(), policy);
            }
            if s.env.is_some() || s.secrets.is_some() {
                session_env.insert(session, agent_env::layer(p, &env, &at, s.env, s.secrets));
            }
        }
        let Some(name) = name else { continue };
        users.push(UserConfig {
            name,
            index: i,
            command,
            env,
            session_env,
            sandbox: user_sandbox,
            session_sandbox,
            workdir,
            unix_user: u.unix_user,
            emails,
            matrix_ids: u.matrix_ids,
            limits: Limits {
                max_processes: u.max_processes,
                max_open_files: u.max_open_files,
                memory_max_mb: u.memory_max_mb,
                cpu_quota_percent: u.cpu_quota_percent,
            },
            profile,
            hooks: u.hooks.or(agent.hooks).unwrap_or(true),
            waiting_pattern,
            confirm: u.confirm,
            block: u.block,
            notify_waiting: u.notify_waiting,
            answer_from,
            risky_answers_need_page: u.risky_answers_need_page.unwrap_or(true),
        });
    }
    users
}

/// `@localpart:server`.
pub(super) fn is_matrix_id(s: &str) -> bool {
    s.strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(local, server)| {
            !local.is_empty()
                && !server.is_empty()
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        })
}
