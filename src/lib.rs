//! tmuxd keeps one persistent tmux session per user running an AI agent CLI,
//! reachable from a browser terminal, with `tmux attach` and the `tmuxd` CLI.
//!
//! Modules, one concern each:
//! - [`names`]: the allow-list for user and session names, and session ids;
//! - [`clock`]: Unix time and ISO 8601;
//! - [`exit`]: how an agent ended;
//! - [`config`]: the TOML file, its validation, the embedded default, and
//!   the live config web and mail read (a reload is one send);
//! - [`credentials`]: systemd credentials copied where an agent's user can
//!   read them, as secrets;
//! - [`tls`]: TLS for connections out (IMAP, webhooks);
//! - [`httpc`]: the HTTP client of webhooks and OpenID Connect;
//! - [`tmux`]: a typed layer over the `tmux` command line (exact targets,
//!   argv only, no shell strings);
//! - [`session`]: what a managed session is: creating, adopting, listing,
//!   typing into, killing;
//! - [`pidfd`]: waiting for a process that is not our child to exit;
//! - [`supervisor`]: the daemon's per-session watchers that restart agents;
//! - [`transcript`]: transcripts in sled (the only sled user) and export;
//! - [`spool`]: spool files: paths, the pipe-pane command, hole punching;
//! - [`recorder`]: spool files into transcripts, and agent state;
//! - [`userfs`]: opening files in directories a user controls;
//! - [`roots`]: the daemon's own directories, safe from other users;
//! - [`control`]: the daemon's control socket and the CLI's client for it;
//! - [`auth`]: login tokens, roles and the failed-login limiter;
//! - [`logins`]: browser logins, the login cookie's server side;
//! - [`relay`]: one viewer's PTY running `tmux attach`;
//! - [`attach`]: `tmuxd attach` into another account's server, relayed;
//! - [`oidc`]: sign-in at an OpenID Connect provider (code flow, PKCE, ID
//!   tokens verified);
//! - [`passkeys`]: sign-in with passkeys (WebAuthn, ES256);
//! - [`matrix`]: the Matrix channel: a room per user for questions,
//!   answers and confirmed commands;
//! - [`web`]: the browser terminal and HTTP API (axum);
//! - [`webhooks`]: agents' notifications POSTed to ntfy, Slack and the like;
//! - [`daemon`]: `tmuxd serve`: start-up, adoption, signals, shutdown;
//! - [`mail`]: the email bridge (IMAP in, confirmations, SMTP out);
//! - [`metrics`]: counters for `/metrics` and readiness for `/healthz`;
//! - [`notify`]: systemd's readiness and watchdog notifications;
//! - [`doctor`]: `tmuxd doctor`, checks with fixes;
//! - [`cli`]: the command-line verbs;
//! - [`fuzz`]: fuzz targets for every parser of untrusted input.
//!
//! **One byte, from the pane to the browser and to the store.** The agent
//! writes to its tmux pane (the pane runs the launcher that [`session`]
//! started, as the user's account: [`tmux`]'s identity). tmux sends it to
//! every attached client: a browser's client is the `tmux attach` that
//! [`relay::ViewerPty`] runs on a PTY as the server's owner, and
//! [`web`]'s terminal task reads the PTY master and sends the bytes as a
//! binary WebSocket frame. tmux also pipes it (`pipe-pane`, a `cat` of the
//! server's) into the session's spool file ([`spool`]); the [`recorder`]
//! wakes on inotify, opens the spool only as [`userfs`] allows, and its
//! ingest thread appends the bytes with the new offset in one sled batch
//! ([`transcript`]), flushes, and punches the stored range out of the spool.
//!
//! **One mailed command, from IMAP to the pane.** [`mail::imap`] (or
//! `tmuxd mail-ingest` through [`control`]) hands the message to
//! [`mail::bridge`]: parsed within caps ([`mail::message`]), the sender
//! authenticated ([`mail::sender`]), the first line read by the command
//! grammar, a confirmation queued in the mail state ([`mail::state`]) and
//! mailed by [`mail::outbox`]. The confirming YES queues a job;
//! [`mail::exec`] waits until the agent is not mid-answer, marks the job
//! typing, types it through the [`supervisor`] ([`session`] builds `send-keys
//! -l` + Enter, run as the user), records the input, waits for the agent to
//! go idle or ask, and queues the result mail.

pub mod agent;
pub mod answer;
pub mod attach;
pub mod auth;
pub mod bounded;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod credentials;
pub mod daemon;
pub mod deadline;
pub mod doctor;
pub mod exit;
pub mod fuzz;
pub mod hooks;
pub mod httpc;
pub mod logins;
pub mod mail;
pub mod matrix;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod oidc;
pub mod passkeys;
pub mod pidfd;
pub mod recorder;
pub mod relay;
pub mod risk;
pub mod roots;
pub mod sandbox;
pub mod screen;
pub mod session;
pub mod spool;
pub mod supervisor;
pub mod tls;
pub mod tmux;
pub mod transcript;
pub mod userfs;
pub mod usersock;
pub mod web;
pub mod webhooks;
pub mod workspace;
