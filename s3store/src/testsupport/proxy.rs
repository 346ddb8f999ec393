//! A fault-injecting TCP proxy between a client and a server, for tests of
//! what the network does to a store: pass bytes through, refuse and drop
//! connections, stall them, cut them after so many request bytes (a reset
//! mid-upload), or cut them when the answer starts (the request happened,
//! its answer is lost). The mode changes at run time and applies to open
//! connections as well as new ones. Plain std threads; loopback only.

use socket2::SockRef;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often blocked threads look at the mode.
const TICK: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Close new connections at once and cut open ones.
    Refuse,
    /// Forward nothing, in either direction, until the mode changes (the
    /// connections stay open: a server that stopped answering).
    Stall,
    /// Forward this many more request bytes (client to server, over all
    /// connections), then cut every connection that sends more.
    CutUpstreamAfter(u64),
    /// Forward this many more request bytes, then switch to `Stall` (to
    /// hold an upload at an exact point while the test acts).
    StallAfter(u64),
    /// Cut the connection of each of the next this-many answers as its
    /// first byte arrives from the server (the request was served, the
    /// client never hears so); then pass.
    CutResponses(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    mode: Mutex<Mode>,
    /// Request bytes forwarded since the mode was last set.
    up_since_mode: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    connections: AtomicU64,
    cuts: AtomicU64,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    /// Consumes one cut of `CutResponses`; true if this answer is cut.
    fn take_response_cut(&self) -> bool {
        let mut m = lock(&self.mode);
        match *m {
            Mode::CutResponses(n) if n > 0 => {
                *m = if n == 1 {
                    Mode::Pass
                } else {
                    Mode::CutResponses(n - 1)
                };
                true
            }
            _ => false,
        }
    }
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FaultProxy({} -> {})",
            self.addr,
            *lock(&self.shared.upstream)
        )
    }
}

/// Cuts both sides at once: no lingering data, readers wake up.
fn cut(a: &TcpStream, b: &TcpStream) {
    for s in [a, b] {
        let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
        let _ = s.shutdown(Shutdown::Both);
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            mode: Mutex::new(Mode::Pass),
            up_since_mode: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(listener, sh))?;
        Ok(FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for a store's endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        let mut m = lock(&self.shared.mode);
        self.shared.up_since_mode.store(0, Ordering::SeqCst);
        *m = mode;
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    pub fn pass(&self) {
        self.set_mode(Mode::Pass);
    }

    /// Forwards to another server from now on (open connections keep
    /// their server).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = upstream;
    }

    /// Request bytes forwarded so far.
    pub fn bytes_up(&self) -> u64 {
        self.shared.bytes_up.load(Ordering::SeqCst)
    }

    /// Answer bytes forwarded so far.
    pub fn bytes_down(&self) -> u64 {
        self.shared.bytes_down.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections cut so far (by any mode).
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    while !sh.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                sh.connections.fetch_add(1, Ordering::SeqCst);
                let sh = sh.clone();
                let _ = std::thread::Builder::new()
                    .name("fault-proxy-conn".into())
                    .spawn(move || serve(client, sh));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK / 4),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

fn serve(client: TcpStream, sh: Arc<Shared>) {
    let _ = client.set_nonblocking(false);
    if sh.mode() == Mode::Refuse {
        sh.cuts.fetch_add(1, Ordering::SeqCst);
        let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
        return;
    }
    let upstream = *lock(&sh.upstream);
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
        let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let sh2 = sh.clone();
    let down = std::thread::Builder::new()
        .name("fault-proxy-down".into())
        .spawn(move || pump(s2, c2, Dir::Down, sh2));
    pump(client, server, Dir::Up, sh);
    if let Ok(h) = down {
        let _ = h.join();
    }
}

/// Copies `src` to `dst` as the mode says, until either side closes or a
/// fault cuts the connection.
fn pump(mut src: TcpStream, mut dst: TcpStream, dir: Dir, sh: Arc<Shared>) {
    let _ = src.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            cut(&src, &dst);
            return;
        }
        match sh.mode() {
            Mode::Refuse => {
                sh.cuts.fetch_add(1, Ordering::SeqCst);
                cut(&src, &dst);
                return;
            }
            Mode::Stall => {
                std::thread::sleep(TICK);
                continue;
            }
            _ => {}
        }
        let n = match src.read(&mut buf) {
            Ok(0) => {
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                cut(&src, &dst);
                return;
            }
        };
        // Data read just as a stall began waits for the stall to end.
        while sh.mode() == Mode::Stall && !sh.stop.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
        }
        let (keep, then_cut) = fate(&sh, dir, n);
        if keep > 0 && dst.write_all(&buf[..keep]).is_err() {
            cut(&src, &dst);
            return;
        }
        let counter = match dir {
            Dir::Up => &sh.bytes_up,
            Dir::Down => &sh.bytes_down,
        };
        counter.fetch_add(keep as u64, Ordering::SeqCst);
        if then_cut {
            sh.cuts.fetch_add(1, Ordering::SeqCst);
            cut(&src, &dst);
            return;
        }
    }
}

/// How many of `n` bytes read in direction `dir` go through, and whether
/// the connection is cut after them.
fn fate(sh: &Shared, dir: Dir, n: usize) -> (usize, bool) {
    match (sh.mode(), dir) {
        (Mode::Refuse, _) => (0, true),
        (Mode::CutUpstreamAfter(limit), Dir::Up) => {
            let before = sh.up_since_mode.fetch_add(n as u64, Ordering::SeqCst);
            if before + n as u64 <= limit {
                (n, false)
            } else {
                (limit.saturating_sub(before).min(n as u64) as usize, true)
            }
        }
        (Mode::StallAfter(limit), Dir::Up) => {
            let before = sh.up_since_mode.fetch_add(n as u64, Ordering::SeqCst);
            if before + n as u64 >= limit {
                let mut m = lock(&sh.mode);
                if *m == Mode::StallAfter(limit) {
                    *m = Mode::Stall;
                }
            }
            (n, false)
        }
        (Mode::CutResponses(_), Dir::Down) if sh.take_response_cut() => (0, true),
        _ => (n, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that answers each chunk it reads.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        a
    }

    fn roundtrip(p: &FaultProxy, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut c = TcpStream::connect(p.addr())?;
        c.set_read_timeout(Some(Duration::from_millis(500)))?;
        c.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got)?;
        Ok(got)
    }

    #[test]
    fn modes_pass_refuse_stall_and_cut() {
        let p = FaultProxy::start(echo()).unwrap();
        assert_eq!(roundtrip(&p, b"hello").unwrap(), b"hello");
        p.set_mode(Mode::Refuse);
        assert!(roundtrip(&p, b"x").is_err());
        p.set_mode(Mode::Stall);
        let down = p.bytes_down();
        assert!(roundtrip(&p, b"x").is_err(), "a stalled proxy answered");
        // The stalled connection still holds its request: let it drain
        // first, or its answer could take the one cut meant for the next.
        p.pass();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while p.bytes_down() == down && std::time::Instant::now() < deadline {
            std::thread::sleep(TICK);
        }
        assert_eq!(p.bytes_down(), down + 1, "the held request went through");
        p.set_mode(Mode::CutResponses(1));
        assert!(roundtrip(&p, b"lost answer").is_err());
        assert_eq!(p.mode(), Mode::Pass, "one cut, then pass");
        assert_eq!(roundtrip(&p, b"again").unwrap(), b"again");
        p.set_mode(Mode::CutUpstreamAfter(3));
        assert!(roundtrip(&p, b"too long").is_err());
        p.set_mode(Mode::StallAfter(2));
        assert!(roundtrip(&p, b"held").is_err());
        assert_eq!(p.mode(), Mode::Stall);
        p.pass();
        assert_eq!(roundtrip(&p, b"ok").unwrap(), b"ok");
        assert!(p.cuts() >= 3 && p.connections() >= 6);
    }
}
