//! The S3 side of the replication tests: a SeaweedFS server shared by the
//! tests of this binary (started on first use, stopped when the last test
//! holding it is done; a test that kills its server starts its own), the
//! AWS variables that point our tools at it, and a transcript of every
//! output of every command a test ran, which is checked for the secret
//! key and the key id at the end of the test.

use s3store::testsupport::SeaweedServer;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub use s3store::testsupport::BUCKET;

/// The server shared by every test of the binary that does not stop it.
pub fn shared_server() -> Arc<SeaweedServer> {
    static SERVER: Mutex<Weak<SeaweedServer>> = Mutex::new(Weak::new());
    let mut held = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = held.upgrade() {
        return s;
    }
    let s = Arc::new(own_server());
    *held = Arc::downgrade(&s);
    s
}

/// A server of the test's own (one it may kill and restart).
pub fn own_server() -> SeaweedServer {
    SeaweedServer::start().unwrap_or_else(|e| panic!("SeaweedFS test server: {e}"))
}

/// A prefix no other test (or earlier run) of this server uses.
pub fn unique_prefix(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Where the tools reach the server, and with which keys.
#[derive(Clone)]
pub struct Aws {
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

impl Aws {
    pub fn of(srv: &SeaweedServer) -> Aws {
        let (k, s) = srv.keys();
        Aws {
            endpoint: srv.endpoint(),
            key_id: k.to_string(),
            secret: s.to_string(),
        }
    }

    /// The same server through another endpoint (a fault proxy).
    pub fn via(&self, endpoint: String) -> Aws {
        Aws {
            endpoint,
            ..self.clone()
        }
    }

    /// Sets the AWS variables of `cmd` (and nothing of the developer's
    /// own AWS setup leaks in).
    pub fn apply(&self, cmd: &mut Command) {
        for v in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3",
            "AWS_S3_ADDRESSING_STYLE",
            "AWS_ALLOW_HTTP",
            "AWS_DEFAULT_REGION",
            "DB_HOME",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            .env("AWS_CONFIG_FILE", "/nonexistent/config")
            .env("LC_ALL", "C")
            .env("TZ", "UTC");
    }
}

/// Every output a test's commands printed, to check for credentials.
#[derive(Default, Clone)]
pub struct Transcript {
    text: Arc<Mutex<String>>,
    files: Arc<Mutex<Vec<PathBuf>>>,
}

impl Transcript {
    pub fn add(&self, what: &str, out: &[u8]) {
        let mut t = self.text.lock().unwrap();
        t.push_str(what);
        t.push('\n');
        t.push_str(&String::from_utf8_lossy(out));
    }

    /// A file a daemon writes its output to, read at `check`.
    pub fn file(&self, path: PathBuf) {
        self.files.lock().unwrap().push(path);
    }

    /// Fails if any output holds the secret key or the key id.
    pub fn check(&self, aws: &Aws) {
        let mut all = self.text.lock().unwrap().clone();
        for f in self.files.lock().unwrap().iter() {
            all.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
        assert!(!all.is_empty(), "no output was recorded");
        for s in [&aws.secret, &aws.key_id] {
            assert!(
                !all.contains(s.as_str()),
                "a credential was printed:\n{all}"
            );
        }
    }
}

/// One of our binaries with the AWS variables set.
pub fn tool(name: &str, aws: &Aws) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin(name));
    aws.apply(&mut c);
    c
}

/// Runs a tool to its end, recording its output.
pub fn run(t: &Transcript, aws: &Aws, name: &str, args: &[&str], home: &Path) -> Output {
    let out = tool(name, aws)
        .args(args)
        .arg("-h")
        .arg(home)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    t.add(&format!("{name} {args:?}"), &out.stdout);
    t.add(&format!("{name} {args:?} (stderr)"), &out.stderr);
    out
}

/// Runs a tool that must succeed; its stdout.
pub fn ok(t: &Transcript, aws: &Aws, name: &str, args: &[&str], home: &Path) -> String {
    let out = run(t, aws, name, args, home);
    assert!(
        out.status.success(),
        "{name} {args:?} -h {}: {}",
        home.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a tool that must fail with exit 1 and one line on stderr; that
/// line.
pub fn fails(t: &Transcript, aws: &Aws, name: &str, args: &[&str], home: &Path) -> String {
    let out = run(t, aws, name, args, home);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{name} {args:?}: {err}");
    assert_eq!(
        err.lines().count(),
        1,
        "{name} {args:?}: not one line: {err}"
    );
    err
}

/// A `db_replicate` daemon (`-v`), its output going to `log`.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(t: &Transcript, aws: &Aws, home: &Path, args: &[&str], log: PathBuf) -> Daemon {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = tool("db_replicate", aws)
            .arg("-v")
            .args(args)
            .arg("-h")
            .arg(home)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("run db_replicate");
        t.file(log.clone());
        Daemon {
            child: Some(child),
            log,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Waits (at most `limit`) for it to exit by itself; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        let c = self.child.as_mut().expect("a running daemon");
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                self.child = None;
                return s.code();
            }
            assert!(
                start.elapsed() < limit,
                "db_replicate did not exit within {limit:?}; its output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT (a clean stop), then waits for it.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            let pid = c.id().to_string();
            let st = Command::new("kill").args(["-INT", &pid]).status().unwrap();
            assert!(st.success());
            let out = c.wait_with_output().unwrap();
            assert!(!out.status.success(), "stopped by SIGINT");
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of the `db_stat -r` line labelled `label`.
pub fn stat_r(t: &Transcript, aws: &Aws, home: &Path, label: &str) -> String {
    stat_r_opt(t, aws, home, label).unwrap_or_else(|| panic!("no {label} line"))
}

/// The value of the `db_stat -r` line labelled `label`, if there is one
/// (a standby's lines appear once its first restore is done).
pub fn stat_r_opt(t: &Transcript, aws: &Aws, home: &Path, label: &str) -> Option<String> {
    let out = ok(t, aws, "db_stat", &["-r"], home);
    out.lines()
        .find_map(|l| l.strip_suffix(&format!("\t{label}")).map(str::to_owned))
}

/// Waits until `cond` holds, at most `limit`, naming `what` on failure.
pub fn wait_until(limit: Duration, what: &str, cond: impl FnMut() -> bool) {
    wait_or(limit, what, cond, String::new)
}

/// `wait_until`, with `more` telling what to show when it times out.
pub fn wait_or(
    limit: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
    more: impl Fn() -> String,
) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}\n{}",
            more()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
