//! The integration tests, one binary: real tmux, the real `tmuxd` binary,
//! real mail servers, Chromium and Claude Code, on loopback. Shared helpers
//! are in `common`; each module is one area.

mod common;

mod agent;
mod browser;
mod codex;
mod fuzz;
mod mail;
mod mail_testbed;
mod matrix;
mod ops;
mod sandbox;
mod security;
mod sessions;
mod snapshots;
mod transcript;
mod web;
mod webhooks;
mod workspace;
mod worktrees;
