//! The fleet's real servers, started by the drill on loopback ports: Debian's nginx
//! serving the TUF repository as static files, and Mosquitto as the report broker (with
//! persistence, so retained reports survive its restart as they would in production).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn wait_port(port: u16, what: &str) -> Result<(), String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{what} did not listen on 127.0.0.1:{port} within 10 s"
    ))
}

fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// A server process the drill owns (stopped on drop).
#[derive(Debug)]
pub struct Server {
    pub name: &'static str,
    pub port: u16,
    exe: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let c = Command::new(&self.exe)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {} ({}): {e}", self.name, self.exe.display()))?;
        self.child = Some(c);
        wait_port(self.port, self.name)
    }

    /// Stops it: SIGTERM (nginx's master then ends its workers at once; a SIGKILL would
    /// leave them serving), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            // The port is free again before anyone counts on it being down.
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5)
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts it again on the same port.
    pub fn start(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// nginx serving `root` on a free port (access log kept: it shows what agents fetched).
pub fn nginx(dir: &Path, root: &Path) -> Result<Server, String> {
    let exe = find(&["/usr/sbin/nginx", "/usr/bin/nginx"])
        .ok_or("nginx is not installed (fleet/drill/run.sh installs Debian's nginx-light)")?;
    let port = free_port()?;
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).map_err(|e| e.to_string())?;
    let conf = prefix.join("nginx.conf");
    let text = format!(
        "worker_processes 1;\nerror_log {p}/logs/error.log;\npid {p}/nginx.pid;\nevents {{ worker_connections 512; }}\nhttp {{\n  access_log {p}/logs/access.log;\n  client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n  fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n  scgi_temp_path {p}/tmp;\n  types {{ application/json json; application/octet-stream fsc; }}\n  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    location ~ /\\. {{ deny all; }}\n  }}\n}}\n",
        p = prefix.display(),
        root = root.display()
    );
    std::fs::write(&conf, text).map_err(|e| e.to_string())?;
    let mut s = Server {
        name: "nginx",
        port,
        exe,
        args: vec![
            "-p".into(),
            prefix.display().to_string(),
            "-c".into(),
            conf.display().to_string(),
            "-g".into(),
            "daemon off;".into(),
        ],
        log: prefix.join("logs/stdout.log"),
        child: None,
    };
    s.spawn()?;
    Ok(s)
}

/// Mosquitto on a free port, anonymous (loopback only), persistent.
pub fn mosquitto(dir: &Path) -> Result<Server, String> {
    let exe = find(&["/usr/sbin/mosquitto", "/usr/bin/mosquitto"])
        .ok_or("mosquitto is not installed (fleet/drill/run.sh installs Debian's mosquitto)")?;
    let port = free_port()?;
    let d = dir.join("mosquitto");
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    let conf = d.join("mosquitto.conf");
    // As root, mosquitto would switch to the `mosquitto` user, who cannot write here.
    let user = if is_root() { "user root\n" } else { "" };
    let text = format!(
        "{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 10000\n",
        d.display()
    );
    std::fs::write(&conf, text).map_err(|e| e.to_string())?;
    let mut s = Server {
        name: "mosquitto",
        port,
        exe,
        args: vec!["-c".into(), conf.display().to_string()],
        log: d.join("log"),
        child: None,
    };
    s.spawn()?;
    Ok(s)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
