//! The per-user sockets the supervisor serves while a user is configured:
//! the agent hook socket and the sandbox relay, each started before the
//! user's agents so nothing they send is missed.

use super::Supervisor;
use crate::session::UserServer;

impl Supervisor {
    /// Serves `server`'s agent hook socket (when hooks are on) until the
    /// user is removed or the daemon stops; before its agents start, so no
    /// report is missed.
    pub(super) fn serve_hooks(&self, server: &UserServer) {
        let (Some(rec), Some(path)) = (self.recorder(), server.hook_socket()) else {
            return;
        };
        let Some(cancel) = self.user_cancel(&server.user.name) else {
            return;
        };
        self.0.tracker.spawn(crate::hooks::serve_user(
            path.to_owned(),
            server.user.name.clone(),
            server.owner(),
            rec.clone(),
            cancel,
            self.0.tracker.clone(),
        ));
    }

    /// Serves `server`'s sandbox relay (for sandboxes with an allow-list,
    /// by the user's policies as the config has them now) until the user
    /// is removed or the daemon stops; before its agents start.
    pub(super) fn serve_sandbox_net(&self, server: &UserServer) {
        if !server.user.any_sandbox() {
            return;
        }
        let user = server.user.name.clone();
        let Some(cancel) = self.user_cancel(&user) else {
            return;
        };
        let this = self.clone();
        let u = user.clone();
        let policy: crate::sandbox::net::Lookup = std::sync::Arc::new(move |session| {
            Some(this.server(&u).ok()?.user.sandbox_of(session).clone())
        });
        self.0.tracker.spawn(crate::sandbox::net::serve_user(
            server.net_socket().to_owned(),
            user,
            server.owner(),
            policy,
            cancel,
            self.0.tracker.clone(),
        ));
    }
}
