//! `S3Store` against a real S3-compatible server (SeaweedFS, started per
//! test on free loopback ports; a missing `weed` fails the tests): the
//! generic conformance suite, create-only and compare-and-swap races, and
//! what the network and the server do to it through a fault-injecting
//! proxy: answers lost after the request was served, uploads cut in the
//! middle, the server killed mid-upload and restarted, a stalled server,
//! refused connections; wrong credentials and a missing bucket.
//!
//! `REPLICA_RACE_ROUNDS` scales the races; the ignored `torture_*` tests
//! (`make torture`) run many more rounds.

use libcore::replica::conformance::{self, Options};
use libcore::replica::{framed, ReplicaStore};
use libcore::OsVfs;
use libcore::StoreFault;
use s3store::config::{EnvSource, Secret};
use s3store::testsupport::{quick_limits, FaultProxy, Mode, SeaweedServer};
use s3store::{S3Config, S3Store};
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

fn rounds(default: usize) -> usize {
    std::env::var("REPLICA_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn server() -> SeaweedServer {
    SeaweedServer::start().unwrap_or_else(|e| panic!("SeaweedFS test server: {e}"))
}

fn store(cfg: S3Config) -> S3Store {
    S3Store::open(cfg).unwrap()
}

/// A store reaching `srv` through `proxy`, with short time limits.
fn via(srv: &SeaweedServer, proxy: &FaultProxy, prefix: &str) -> S3Store {
    store(srv.config_for(&proxy.endpoint(), prefix, quick_limits()))
}

/// Runs `f` on a thread and waits for it at most `limit`: a call that
/// hangs fails the test instead of hanging it.
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the call did not return within {limit:?}: it hangs"))
}

fn conformance_with(race_rounds: usize) {
    let srv = server();
    let scratch = tempfile::tempdir().unwrap();
    let main = store(srv.config("conf"));
    let handles: Vec<S3Store> = (0..8).map(|_| store(srv.config("conf"))).collect();
    let racers: Vec<&dyn ReplicaStore> = handles.iter().map(|h| h as &dyn ReplicaStore).collect();
    let opts = Options {
        big_bytes: 24 << 20,
        race_rounds,
    };
    conformance::run_all(&main, &racers, "run", scratch.path(), &opts);
    // The prefix confines the store: another prefix sees nothing of it.
    let other = store(srv.config("other"));
    assert!(other.list("").unwrap().is_empty());
    assert!(!main.list("").unwrap().is_empty());
}

#[test]
fn s3store_passes_the_conformance_suite_on_seaweedfs() {
    conformance_with(rounds(20));
}

#[test]
#[ignore]
fn torture_s3store_conformance_races() {
    conformance_with(rounds(200));
}

/// SeaweedFS issue 8800: before 4.17 or so, concurrent `If-None-Match: *`
/// PUTs of one key could all succeed, and every fencing scheme built on
/// create-only would admit two primaries. This checks the installed
/// server enforces it: many rounds of 16 creators, exactly one winner.
fn create_only_under_concurrency(race_rounds: usize) {
    let srv = server();
    let handles: Vec<S3Store> = (0..16).map(|_| store(srv.config("race"))).collect();
    let racers: Vec<&dyn ReplicaStore> = handles.iter().map(|h| h as &dyn ReplicaStore).collect();
    conformance::create_race(&racers, "create", race_rounds);
    conformance::replace_race(&racers, "replace", race_rounds);
}

#[test]
fn seaweedfs_enforces_create_only_and_cas_under_concurrency() {
    create_only_under_concurrency(rounds(10));
}

#[test]
#[ignore]
fn torture_seaweedfs_create_only_under_concurrency() {
    create_only_under_concurrency(rounds(300));
}

/// A conditional write whose answer is lost was served all the same: its
/// retry meets its own object and gets 412. Reporting "exists" (or "lost
/// the race") there would make a master that won a lease believe it lost
/// it, and a test of exactly one winner see none. The writer nonce tells.
#[test]
fn lost_answers_of_conditional_writes_are_resolved_by_the_writer_nonce() {
    let srv = server();
    let proxy = FaultProxy::start(srv.s3_addr()).unwrap();
    let s = via(&srv, &proxy, "lost");
    let direct = store(srv.config("lost"));

    proxy.set_mode(Mode::CutResponses(1));
    assert!(
        s.create("lease", b"mine").unwrap(),
        "create with a lost answer"
    );
    assert!(proxy.cuts() >= 1, "the answer was not cut");
    assert_eq!(direct.get("lease").unwrap().unwrap().bytes, b"mine");

    let v = s.get("lease").unwrap().unwrap().version;
    proxy.set_mode(Mode::CutResponses(1));
    assert!(
        s.replace("lease", b"mine, renewed", &v).unwrap(),
        "replace with a lost answer"
    );
    assert_eq!(
        direct.get("lease").unwrap().unwrap().bytes,
        b"mine, renewed"
    );

    // Another writer's object stays another writer's: a create whose 412
    // answer is lost still reports that it did not create.
    assert!(direct.create("theirs", b"theirs").unwrap());
    proxy.set_mode(Mode::CutResponses(1));
    assert!(!s.create("theirs", b"mine").unwrap());
    assert_eq!(direct.get("theirs").unwrap().unwrap().bytes, b"theirs");
    let v = direct.get("theirs").unwrap().unwrap().version;
    assert!(direct.replace("theirs", b"theirs 2", &v).unwrap());
    proxy.set_mode(Mode::CutResponses(1));
    assert!(!s.replace("theirs", b"mine", &v).unwrap());
    assert_eq!(direct.get("theirs").unwrap().unwrap().bytes, b"theirs 2");
}

/// Uploads cut in the middle (single PUT and multipart) fail with a
/// transient error and leave the old object whole and listed as it was.
#[test]
fn uploads_cut_midway_are_never_visible() {
    let srv = server();
    let proxy = FaultProxy::start(srv.s3_addr()).unwrap();
    let s = via(&srv, &proxy, "cut");
    let direct = store(srv.config("cut"));
    let d = tempfile::tempdir().unwrap();
    let old = d.path().join("old");
    let old_sum = conformance::write_test_file(&old, 3 << 20, 1);
    direct.put_file("base/a.db", &OsVfs, &old).unwrap();

    for (size, cut_at) in [(6usize << 20, 1u64 << 20), (20 << 20, 11 << 20)] {
        let src = d.path().join("new");
        conformance::write_test_file(&src, size, size as u64);
        proxy.set_mode(Mode::CutUpstreamAfter(cut_at));
        let e = s
            .put_file("base/a.db", &OsVfs, &src)
            .expect_err("an upload through a cut connection succeeded");
        eprintln!("cut upload: {e}");
        assert_eq!(e.store_fault(), Some(StoreFault::Transient), "{e}");
        assert!(!e.to_string().contains('\n'));
        proxy.pass();
        let back = d.path().join("back");
        let got = s.get_to_file("base/a.db", &OsVfs, &back).unwrap().unwrap();
        assert_eq!(got, old_sum, "a {size}-byte upload cut at {cut_at} showed");
        let listed = s.list("base").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, old_sum.size);
    }
    // A new key cut midway does not appear at all.
    proxy.set_mode(Mode::CutUpstreamAfter(100));
    assert!(s.put("seg/1", &[7u8; 4096]).is_err());
    proxy.pass();
    assert_eq!(s.get("seg/1").unwrap(), None);
    assert!(s.list("seg").unwrap().is_empty());
}

/// The server dies (SIGKILL) in the middle of a multipart upload that
/// replaces an object, and comes back: the upload failed, the old object
/// is there whole, and the upload goes through when tried again.
#[test]
fn server_killed_mid_upload_and_restarted() {
    let mut srv = server();
    let proxy = FaultProxy::start(srv.s3_addr()).unwrap();
    let d = tempfile::tempdir().unwrap();
    let old = d.path().join("old");
    let old_sum = conformance::write_test_file(&old, 1 << 20, 2);
    store(srv.config("kill"))
        .put_file("base/a.db", &OsVfs, &old)
        .unwrap();
    let src = d.path().join("new");
    let new_sum = conformance::write_test_file(&src, 40 << 20, 3);

    let s = std::sync::Arc::new(via(&srv, &proxy, "kill"));
    let (s2, src2) = (s.clone(), src.clone());
    // The proxy holds the upload after 12 MiB; the server dies there.
    proxy.set_mode(Mode::StallAfter(12 << 20));
    let upload = std::thread::spawn(move || s2.put_file("base/a.db", &OsVfs, &src2));
    while proxy.mode() != Mode::Stall && !upload.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
    }
    srv.kill();
    proxy.pass();
    let r = upload.join().unwrap();
    let e = r.expect_err("the upload survived the server's death");
    assert_eq!(e.store_fault(), Some(StoreFault::Transient), "{e}");
    srv.restart().unwrap();

    // A caller retries transient errors (a server just back may still be
    // loading its volumes); anything else is a failure.
    let back = d.path().join("back");
    let mut tries = 0;
    let got = loop {
        match s.get_to_file("base/a.db", &OsVfs, &back) {
            Err(e) if e.is_transient() && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            r => break r.unwrap().unwrap(),
        }
    };
    assert_eq!(
        got, old_sum,
        "after the restart the object is not the old one"
    );
    assert_eq!(s.put_file("base/a.db", &OsVfs, &src).unwrap(), new_sum);
    let got = s.get_to_file("base/a.db", &OsVfs, &back).unwrap().unwrap();
    assert_eq!(got, new_sum);
}

/// A server that stops answering costs bounded time: every operation
/// returns a one-line transient error (no hang), and works again once the
/// server answers.
#[test]
fn a_stalled_server_gives_errors_in_bounded_time() {
    let srv = server();
    let proxy = std::sync::Arc::new(FaultProxy::start(srv.s3_addr()).unwrap());
    let s = std::sync::Arc::new(via(&srv, &proxy, "stall"));
    s.put("k", b"v").unwrap();
    let v = s.get("k").unwrap().unwrap().version;
    proxy.set_mode(Mode::Stall);
    type Op = fn(&S3Store, &libcore::replica::Version) -> libcore::Result<()>;
    let ops: [(&str, Op); 5] = [
        ("get", |s, _| s.get("k").map(|_| ())),
        ("put", |s, _| s.put("k", b"w")),
        ("list", |s, _| s.list("").map(|_| ())),
        ("create", |s, _| s.create("new", b"x").map(|_| ())),
        ("replace", |s, v| s.replace("k", b"x", v).map(|_| ())),
    ];
    for (name, op) in ops {
        let (s2, v2) = (s.clone(), v.clone());
        let r = bounded(Duration::from_secs(120), move || op(&s2, &v2));
        let e = r.expect_err(&format!("{name} through a stalled server succeeded"));
        assert_eq!(e.store_fault(), Some(StoreFault::Transient), "{name}: {e}");
        let msg = e.to_string();
        eprintln!("stalled {name}: {msg}");
        assert!(msg.starts_with("s3://replica-test/stall"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    proxy.pass();
    assert!(s.get("k").unwrap().is_some());
}

/// Refused and dropped connections are transient errors naming the
/// endpoint; a port where nothing listens too.
#[test]
fn refused_connections_are_transient_errors() {
    let srv = server();
    let proxy = FaultProxy::start(srv.s3_addr()).unwrap();
    let s = via(&srv, &proxy, "refuse");
    s.put("k", b"v").unwrap();
    proxy.set_mode(Mode::Refuse);
    let e = s.get("k").unwrap_err();
    assert_eq!(e.store_fault(), Some(StoreFault::Transient), "{e}");
    assert!(e.to_string().contains(&proxy.endpoint()), "{e}");
    proxy.pass();
    assert_eq!(s.get("k").unwrap().unwrap().bytes, b"v");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = store(srv.config_for(&format!("http://127.0.0.1:{port}"), "x", quick_limits()));
    let e = nowhere.put("k", b"v").unwrap_err();
    eprintln!("nothing listening: {e}");
    assert_eq!(e.store_fault(), Some(StoreFault::Transient), "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

/// Wrong keys are refused as `Denied`, in one line that shows neither the
/// secret nor the key id; `Debug` and `describe` never show them either.
#[test]
fn wrong_credentials_are_denied_without_showing_them() {
    let srv = server();
    let (id, _) = srv.keys();
    let wrong_secret = "wrong-secret-never-to-be-printed";
    let mut cfg = srv.config("creds");
    cfg.credentials.secret_access_key = Secret::new(wrong_secret);
    let s = store(cfg.clone());
    let mut errors = vec![
        s.get("k").unwrap_err(),
        s.put("k", b"v").unwrap_err(),
        s.list("").unwrap_err(),
        s.create("k", b"v").unwrap_err(),
        s.check().unwrap_err(),
    ];
    let mut cfg2 = srv.config("creds");
    cfg2.credentials.access_key_id = Secret::new("NOSUCHKEYID");
    errors.push(store(cfg2).put("k", b"v").unwrap_err());
    for e in &errors {
        let msg = e.to_string();
        eprintln!("wrong keys: {msg}");
        assert_eq!(e.store_fault(), Some(StoreFault::Denied), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        for secret in [wrong_secret, id, srv.keys().1] {
            assert!(!msg.contains(secret), "{msg}");
            assert!(!format!("{e:?}").contains(secret));
        }
    }
    for shown in [s.describe(), format!("{s:?}"), format!("{cfg:?}")] {
        assert!(
            !shown.contains(wrong_secret) && !shown.contains(id),
            "{shown}"
        );
    }
}

/// A bucket that does not exist is named as such by every operation.
#[test]
fn a_missing_bucket_is_named() {
    let srv = server();
    let mut cfg = srv.config("p");
    cfg.bucket = "no-such-bucket".into();
    let s = store(cfg);
    let errors = [
        s.check().unwrap_err(),
        s.list("").unwrap_err(),
        s.put("k", b"v").unwrap_err(),
        s.get("k").unwrap_err(),
        s.create("k", b"v").unwrap_err(),
    ];
    for e in errors {
        eprintln!("missing bucket: {e}");
        assert_eq!(e.store_fault(), Some(StoreFault::Missing), "{e}");
        assert!(e.to_string().starts_with("s3://no-such-bucket/p"), "{e}");
        assert!(e.to_string().contains("no such bucket"), "{e}");
    }
}

/// The AWS environment variables reach a real server (path style and
/// plain http chosen for a loopback endpoint), and the AWS files too.
#[test]
fn the_aws_environment_configures_a_working_store() {
    let srv = server();
    let (id, secret) = srv.keys();
    let vars: HashMap<String, String> = [
        ("AWS_ACCESS_KEY_ID", id.to_string()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
        ("AWS_ENDPOINT_URL", srv.endpoint()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let env = move |k: &str| vars.get(k).cloned();
    let cfg = S3Config::from_source("s3://replica-test/env/a", &EnvSource { env: &env }).unwrap();
    let s = store(cfg);
    s.check().unwrap();
    framed::put_framed(&s, "x", framed::Kind(*b"TEST"), b"hello").unwrap();
    assert_eq!(s.list("").unwrap()[0].key, "x");

    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        format!("[replica]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        format!("[profile replica]\nendpoint_url = {}\n", srv.endpoint()),
    )
    .unwrap();
    let h = home.path().to_str().unwrap().to_string();
    let env = move |k: &str| match k {
        "HOME" => Some(h.clone()),
        "AWS_PROFILE" => Some("replica".to_string()),
        _ => None,
    };
    let cfg = S3Config::from_source("s3://replica-test/env", &EnvSource { env: &env }).unwrap();
    let s = store(cfg);
    assert_eq!(s.list("a").unwrap()[0].key, "a/x");
}
