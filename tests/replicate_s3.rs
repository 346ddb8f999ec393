//! `db_replicate` with `repl_store s3://bucket/prefix`, end to end against
//! a real S3 server (SeaweedFS, started by the tests; a missing `weed`
//! fails them): master, client, restore, `db_stat -r` and the digest
//! through the same code as a directory store; wrong credentials, a
//! missing bucket, objects deleted behind our back. Every output of every
//! command is checked for the credentials.

use crate::common::s3::{self, fails, ok, stat_r, wait_until, Aws, Daemon, Transcript, BUCKET};
use crate::hot_failover::{check_prefix, contents, Writer};
use libcore::replica::ReplicaStore;
use s3store::S3Store;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A primary, a standby and a spare home, all naming one S3 store.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub primary: PathBuf,
    pub standby: PathBuf,
    pub spare: PathBuf,
    pub url: String,
    pub prefix: String,
}

impl Site {
    pub fn new(name: &str, extra_config: &str) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("bdbtools-s3-")
            .tempdir()
            .unwrap();
        let prefix = s3::unique_prefix(name);
        let url = format!("s3://{BUCKET}/{prefix}");
        let homes: Vec<PathBuf> = ["primary", "standby", "spare home"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        for h in &homes {
            std::fs::create_dir(h).unwrap();
            std::fs::write(
                h.join("DB_CONFIG"),
                format!("repl_store {url}\n{extra_config}"),
            )
            .unwrap();
        }
        Site {
            primary: homes[0].clone(),
            standby: homes[1].clone(),
            spare: homes[2].clone(),
            dir,
            url,
            prefix,
        }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.out"))
    }
}

/// Waits until the master has made the store and shipped something (a
/// client given a store without its store record refuses it).
pub fn first_shipment(t: &Transcript, aws: &Aws, primary: &Path) {
    wait_until(Duration::from_secs(60), "a first shipment", || {
        s3::stat_r_opt(t, aws, primary, "Shipped LSN (end of the store's log)")
            .is_some_and(|s| s != "-")
    });
}

/// An LSN as `db_stat` prints it (`[file][offset]`), comparable.
pub fn lsn(s: &str) -> (u32, u32) {
    let mut n = s
        .trim_matches(|c| c == '[' || c == ']')
        .split("][")
        .map(|n| n.parse().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

/// Waits until the standby has applied at least what the master had
/// shipped when this was called (with a writer still running).
pub fn reaches_shipped(t: &Transcript, aws: &Aws, primary: &Path, standby: &Path) {
    let shipped = lsn(&stat_r(
        t,
        aws,
        primary,
        "Shipped LSN (end of the store's log)",
    ));
    s3::wait_or(
        Duration::from_secs(60),
        "the standby to catch up",
        || s3::stat_r_opt(t, aws, standby, "Next LSN expected").is_some_and(|a| lsn(&a) >= shipped),
        || {
            format!(
                "shipped {shipped:?}; the standby:\n{}",
                ok(t, aws, "db_stat", &["-r"], standby)
            )
        },
    );
}

/// Waits until the standby has applied everything the master shipped and
/// the master has shipped everything durable (no writer running).
pub fn caught_up(t: &Transcript, aws: &Aws, primary: &Path, standby: &Path) {
    s3::wait_or(
        Duration::from_secs(60),
        "the standby to catch up",
        || {
            let durable = stat_r(t, aws, primary, "Primary's durable LSN");
            let shipped = stat_r(t, aws, primary, "Shipped LSN (end of the store's log)");
            let applied = s3::stat_r_opt(t, aws, standby, "Next LSN expected");
            durable == shipped && Some(shipped) == applied
        },
        || {
            let p = ok(t, aws, "db_stat", &["-r"], primary);
            let s = ok(t, aws, "db_stat", &["-r"], standby);
            let logs: Vec<String> = ["master", "client"]
                .iter()
                .map(|n| {
                    let f = primary.parent().unwrap().join(format!("{n}.out"));
                    format!("{n}: {}", std::fs::read_to_string(f).unwrap_or_default())
                })
                .collect();
            format!("primary:\n{p}\nstandby:\n{s}\n{}", logs.join("\n"))
        },
    );
}

fn digest(t: &Transcript, aws: &Aws, home: &Path) -> String {
    ok(t, aws, "db_replicate", &["-D"], home)
}

#[test]
fn master_client_restore_stat_and_digest_on_s3() {
    let srv = s3::shared_server();
    let aws = Aws::of(&srv);
    let t = Transcript::default();
    let site = Site::new("happy", "");
    let writer = Writer::start(
        &site.primary,
        &["-n", "400", "-i", "1", "-c", "150", "--lg-max", "65536"],
    );
    writer.wait_for(30);
    let mut master = Daemon::start(&t, &aws, &site.primary, &["-M"], site.log("master"));
    first_shipment(&t, &aws, &site.primary);
    let mut client = Daemon::start(&t, &aws, &site.standby, &[], site.log("client"));
    writer.wait_for(400);
    caught_up(&t, &aws, &site.primary, &site.standby);

    let r = ok(&t, &aws, "db_stat", &["-r"], &site.primary);
    assert!(
        r.starts_with("Environment configured as a replication master\n"),
        "{r}"
    );
    assert!(r.contains(&format!("{}\tReplica store\n", site.url)), "{r}");
    let r = ok(&t, &aws, "db_stat", &["-r"], &site.standby);
    assert!(
        r.starts_with("Environment configured as a replication client\n"),
        "{r}"
    );
    assert_eq!(stat_r(&t, &aws, &site.standby, "Last error"), "-");
    client.stop();
    master.stop();
    assert!(master
        .output()
        .contains(&format!("shipping to {}", site.url)));

    // At rest the standby equals the primary, by digest and record.
    assert_eq!(
        digest(&t, &aws, &site.standby),
        digest(&t, &aws, &site.primary)
    );
    assert_eq!(contents(&site.standby), contents(&site.primary));
    assert_eq!(check_prefix(&site.standby), 400);

    // A restore from the store alone gives the same.
    ok(&t, &aws, "db_replicate", &["-R"], &site.spare);
    assert_eq!(contents(&site.spare), contents(&site.primary));
    t.check(&aws);
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_one_line_naming_the_store() {
    let srv = s3::shared_server();
    let aws = Aws::of(&srv);
    let t = Transcript::default();
    let site = Site::new("refused", "");
    let w = Writer::start(&site.primary, &["-n", "5"]);
    w.wait_for(5);
    drop(w);

    let wrong = Aws {
        secret: format!("{}-wrong", aws.secret),
        ..aws.clone()
    };
    for (args, home) in [
        (&["-M"][..], &site.primary),
        (&[][..], &site.standby),
        (&["-R"][..], &site.spare),
    ] {
        let e = fails(&t, &wrong, "db_replicate", args, home);
        assert!(e.contains(&site.url), "{e}");
    }
    let e = fails(&t, &wrong, "db_stat", &["-r"], &site.primary);
    assert!(e.contains(&site.url), "{e}");
    t.check(&wrong);

    let missing = "s3://no-such-bucket-here/x";
    std::fs::write(
        site.primary.join("DB_CONFIG"),
        format!("repl_store {missing}\n"),
    )
    .unwrap();
    let e = fails(&t, &aws, "db_replicate", &["-M"], &site.primary);
    assert!(e.contains(missing) && e.contains("bucket"), "{e}");
    // Nothing was made: the bucket is still missing, the home unchanged.
    let e = fails(&t, &aws, "db_stat", &["-r"], &site.primary);
    assert!(e.contains(missing), "{e}");
    t.check(&aws);
}

/// A store handle of the test's own, to look at and damage the store.
pub fn direct(srv: &s3store::testsupport::SeaweedServer, prefix: &str) -> S3Store {
    S3Store::open(srv.config(prefix)).unwrap()
}

#[test]
fn objects_deleted_behind_our_back_are_found_and_named() {
    let srv = s3::shared_server();
    let aws = Aws::of(&srv);
    let t = Transcript::default();
    let site = Site::new("deleted", "");
    let store = direct(&srv, &site.prefix);
    let writer = Writer::start(&site.primary, &["-i", "2", "-c", "100"]);
    writer.wait_for(20);
    let mut master = Daemon::start(&t, &aws, &site.primary, &["-M"], site.log("master"));
    first_shipment(&t, &aws, &site.primary);
    let mut client = Daemon::start(&t, &aws, &site.standby, &[], site.log("client"));
    reaches_shipped(&t, &aws, &site.primary, &site.standby);
    client.stop();
    let applied = stat_r(&t, &aws, &site.standby, "Next LSN expected");
    // More log is shipped while the standby is stopped.
    let n = writer.acked();
    writer.wait_for(n + 50);
    drop(writer);
    wait_until(Duration::from_secs(30), "the master to ship", || {
        stat_r(
            &t,
            &aws,
            &site.primary,
            "Shipped LSN (end of the store's log)",
        ) != applied
    });
    master.stop();

    // The segment the standby needs next goes (a lifecycle rule, a hand).
    let segments: Vec<String> = store
        .list("segments")
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    let next = segments
        .iter()
        .find(|k| segment_starts_at(k, &applied))
        .unwrap_or_else(|| panic!("no segment starts at {applied}: {segments:?}"))
        .clone();
    store.delete(&next).unwrap();
    let before = contents(&site.standby);
    let e = fails(&t, &aws, "db_replicate", &[], &site.standby);
    assert!(e.contains(&site.url) && e.contains("nothing at"), "{e}");
    assert_eq!(contents(&site.standby), before, "nothing partial applied");

    // A base file deleted: a restore names it and leaves no environment.
    let base_file = store
        .list("bases")
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .find(|k| k.contains("/file-"))
        .expect("a base file");
    store.delete(&base_file).unwrap();
    let e = fails(&t, &aws, "db_replicate", &["-R"], &site.spare);
    assert!(e.contains(&base_file), "{e}");
    t.check(&aws);
}

/// Whether the segment key starts at the LSN `db_stat` printed as
/// `[file][offset]`.
fn segment_starts_at(key: &str, at: &str) -> bool {
    let (file, offset) = lsn(at);
    let at = format!("{:016x}-", (u64::from(file) << 32) | u64::from(offset));
    key.rsplit('/').next().is_some_and(|n| n.starts_with(&at))
}

/// The network between the master and the store drops connections,
/// stalls, resets uploads midway and loses answers of requests the server
/// served: the master retries, keeps its lease, never stops; at rest the
/// standby equals the primary and holds every acknowledged commit.
#[test]
fn a_faulty_network_between_master_and_store_loses_nothing() {
    use s3store::testsupport::{FaultProxy, Mode};
    let srv = s3::shared_server();
    let aws = Aws::of(&srv);
    let proxy = FaultProxy::start(srv.s3_addr()).unwrap();
    let through = aws.via(proxy.endpoint());
    let t = Transcript::default();
    let site = Site::new("faults", "");
    let writer = Writer::start(&site.primary, &["-i", "2", "-c", "100"]);
    writer.wait_for(20);
    let mut master = Daemon::start(&t, &through, &site.primary, &["-M"], site.log("master"));
    first_shipment(&t, &aws, &site.primary);
    let mut client = Daemon::start(&t, &aws, &site.standby, &[], site.log("client"));
    for (mode, ms) in [
        (Mode::Refuse, 1500),
        (Mode::Pass, 800),
        (Mode::Stall, 2000),
        (Mode::Pass, 800),
        (Mode::CutUpstreamAfter(3000), 1500),
        (Mode::Pass, 800),
        (Mode::CutResponses(4), 1500),
        (Mode::Pass, 0),
    ] {
        proxy.set_mode(mode);
        std::thread::sleep(Duration::from_millis(ms));
        assert!(master.running(), "under {mode:?}: {}", master.output());
    }
    assert!(proxy.cuts() > 0, "the proxy cut nothing");
    let acked = writer.kill();
    caught_up(&t, &aws, &site.primary, &site.standby);
    client.stop();
    master.stop();
    // The master's retries are reported (db_stat -r's last error), and
    // none of them stopped it.
    assert!(master.output().contains("retrying"), "{}", master.output());
    assert_eq!(contents(&site.standby), contents(&site.primary));
    assert!(check_prefix(&site.standby) >= acked);
    t.check(&aws);
}

/// A master whose store is out of reach for longer than its lease stops
/// with one line once the lease runs out (another master may take the
/// store then); started again when the store is back, it takes the lease
/// over from its dead self and ships on.
#[test]
fn a_master_that_cannot_renew_its_lease_stops_with_one_line() {
    use s3store::testsupport::{FaultProxy, Mode};
    let srv = s3::shared_server();
    let aws = Aws::of(&srv);
    let proxy = FaultProxy::start(srv.s3_addr()).unwrap();
    let through = aws.via(proxy.endpoint());
    let t = Transcript::default();
    let site = Site::new("lapse", "repl_lease_secs 2\n");
    let writer = Writer::start(&site.primary, &["-i", "5", "-c", "100"]);
    writer.wait_for(10);
    let mut master = Daemon::start(&t, &through, &site.primary, &["-M"], site.log("master"));
    first_shipment(&t, &aws, &site.primary);
    proxy.set_mode(Mode::Refuse);
    let code = master.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(1));
    let out = master.output();
    let last = out.lines().last().unwrap_or("");
    assert!(last.contains("could not renew the lease"), "{out}");
    proxy.set_mode(Mode::Pass);
    let shipped = lsn(&stat_r(
        &t,
        &aws,
        &site.primary,
        "Shipped LSN (end of the store's log)",
    ));
    let mut again = Daemon::start(&t, &through, &site.primary, &["-M"], site.log("again"));
    wait_until(Duration::from_secs(30), "the master to ship again", || {
        lsn(&stat_r(
            &t,
            &aws,
            &site.primary,
            "Shipped LSN (end of the store's log)",
        )) > shipped
    });
    assert!(again.running());
    again.stop();
    drop(writer);
    t.check(&aws);
}

/// The server is killed (SIGKILL) while the master ships and the client
/// follows, and started again on its data: both ride it out, and at rest
/// the standby equals the primary with every acknowledged commit.
#[test]
fn the_server_killed_mid_upload_and_restarted() {
    let mut srv = s3::own_server();
    let aws = Aws::of(&srv);
    let t = Transcript::default();
    let site = Site::new("restart", "");
    let writer = Writer::start(&site.primary, &["-i", "2", "-c", "100"]);
    writer.wait_for(20);
    let mut master = Daemon::start(&t, &aws, &site.primary, &["-M"], site.log("master"));
    first_shipment(&t, &aws, &site.primary);
    let mut client = Daemon::start(&t, &aws, &site.standby, &[], site.log("client"));
    reaches_shipped(&t, &aws, &site.primary, &site.standby);
    srv.kill();
    std::thread::sleep(Duration::from_millis(1500));
    srv.restart().unwrap();
    assert!(master.running(), "{}", master.output());
    assert!(client.running(), "{}", client.output());
    let acked = writer.kill();
    caught_up(&t, &aws, &site.primary, &site.standby);
    client.stop();
    master.stop();
    assert_eq!(contents(&site.standby), contents(&site.primary));
    assert!(check_prefix(&site.standby) >= acked);
    t.check(&aws);
}
