//! Real nginx and HAProxy in the foreground for tests: a config of their
//! own in a test directory (nginx's temp paths there, no access log),
//! stopped with SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::wait_for;

/// nginx serving `http` (the inside of its `http {}`), on `port`; stopped
/// on drop.
pub struct Nginx(Child);

impl Drop for Nginx {
    /// SIGTERM: the master stops its workers too (SIGKILL would orphan
    /// them).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Starts nginx in `dir` with `http` in its `http {}`, and waits until
    /// `port` (where `http` listens) answers.
    pub fn start(dir: &Path, port: u16, http: &str) -> Nginx {
        super::require("nginx");
        let d = dir.display();
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join("tmp").join(sub)).unwrap();
        }
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n\
                   client_body_temp_path {d}/tmp/client_body;\n  proxy_temp_path {d}/tmp/proxy;\n\
                   fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
                 {http}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let n = Nginx(child);
        wait_for(20, "nginx listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        n
    }
}

/// HAProxy with `config` (after a `global` section of its own), its
/// frontend on `port`; stopped on drop.
pub struct Haproxy(Nginx);

impl Haproxy {
    pub fn start(dir: &Path, port: u16, config: &str) -> Haproxy {
        super::require("haproxy");
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, format!("global\n    maxconn 256\n\n{config}")).unwrap();
        // The file is valid first (haproxy -c names what is wrong).
        super::stdout_of(Command::new("haproxy").arg("-c").arg("-f").arg(&file));
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let h = Haproxy(Nginx(child));
        wait_for(20, "haproxy listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        h
    }
}
