//! A real tinyproxy (Debian package `tinyproxy`, installed by `.ci/run`) on a free loopback
//! port, in the foreground, killed on drop.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TINYPROXY: &str = "/usr/bin/tinyproxy";

pub struct Tinyproxy {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy; with `auth`, it demands basic auth with that user and password.
    /// `None` after printing `SKIP: tinyproxy not installed` when it is missing, unless
    /// `SMART_AGENT_REQUIRE_PROXY=1`, which makes a missing proxy a test failure.
    pub fn start(test: &str, auth: Option<(&str, &str)>) -> Option<Tinyproxy> {
        if !Path::new(TINYPROXY).exists() {
            if std::env::var("SMART_AGENT_REQUIRE_PROXY").as_deref() == Ok("1") {
                panic!("{test}: SMART_AGENT_REQUIRE_PROXY=1 but {TINYPROXY} is missing");
            }
            println!("SKIP: tinyproxy not installed ({test})");
            return None;
        }
        // The port is free when probed and taken by tinyproxy a moment later; retry on the
        // rare collision.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = super::dead_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let config = dir.path().join("tinyproxy.conf");
            let log = dir.path().join("tinyproxy.log");
            let mut text = format!(
                "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nLogLevel Info\n"
            );
            if let Some((user, password)) = auth {
                text.push_str(&format!("BasicAuth {user} {password}\n"));
            }
            fs::write(&config, text).expect("write tinyproxy.conf");
            let log_file = fs::File::create(&log).expect("tinyproxy log");
            let child = Command::new(TINYPROXY)
                .arg("-d")
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log handle"))
                .stderr(log_file)
                .spawn()
                .expect("spawn tinyproxy");
            let mut proxy = Tinyproxy {
                child: Some(child),
                port,
                dir,
            };
            if proxy.wait_listening() {
                return Some(proxy);
            }
            last_log = proxy.log();
        }
        panic!("{test}: tinyproxy did not start:\n{last_log}");
    }

    /// Polls until the port accepts connections; false if tinyproxy exited or 10 s passed.
    fn wait_listening(&mut self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if !matches!(child.try_wait(), Ok(None)) {
                    return false;
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What tinyproxy logged, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }

    /// Kills the process and waits for it: the port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        self.stop();
    }
}
