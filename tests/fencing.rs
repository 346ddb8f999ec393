//! Fencing end to end, with the binaries on an S3 store (SeaweedFS):
//! two masters racing for one store, round after round (exactly one
//! ships, the other exits with one line); a standby promoted while the
//! old primary's master still runs (the old master exits with one line,
//! nothing it reported shipped is lost, a second standby follows the new
//! epoch and equals the new primary); the old primary back from the dead
//! (its master refuses in one line and writes nothing into the store).

use crate::common::s3::{self, fails, ok, stat_r, wait_until, Aws, Daemon, Transcript};
use crate::hot_failover::{contents, Writer};
use crate::replicate_s3::{direct, first_shipment, lsn, reaches_shipped, Site};
use libcore::replica::{epoch, ReplicaStore};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const LEASE: &str = "repl_lease_secs 3\n";

fn rounds(default: usize) -> usize {
    std::env::var("REPLICA_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Every object of the store with its bytes.
fn snapshot(store: &dyn ReplicaStore) -> BTreeMap<String, Vec<u8>> {
    store
        .list("")
        .unwrap()
        .into_iter()
        .map(|m| {
            let b = store
                .get(&m.key)
                .unwrap()
                .map(|o| o.bytes)
                .unwrap_or_default();
            (m.key, b)
        })
        .collect()
}

#[test]
fn two_masters_racing_for_one_store_exactly_one_wins() {
    let srv = s3::shared_server();
    let aws = Aws::of(&srv);
    let t = Transcript::default();
    let site = Site::new("race", LEASE);
    let w = Writer::start(&site.primary, &["-n", "30"]);
    w.wait_for(30);
    drop(w);
    for round in 0..rounds(4) {
        let prefix = s3::unique_prefix("race-round");
        std::fs::write(
            site.primary.join("DB_CONFIG"),
            format!("repl_store s3://{}/{prefix}\n{LEASE}", s3::BUCKET),
        )
        .unwrap();
        let mut masters: Vec<Daemon> = (0..2)
            .map(|i| {
                Daemon::start(
                    &t,
                    &aws,
                    &site.primary,
                    &["-M"],
                    site.log(&format!("race-{round}-{i}")),
                )
            })
            .collect();
        // The loser exits at once; the winner ships.
        let start = Instant::now();
        let loser = loop {
            if let Some(i) = masters.iter_mut().position(|m| !m.running()) {
                break i;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "round {round}: both masters still run"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let code = masters[loser].wait_exit(Duration::from_secs(1));
        assert_eq!(code, Some(1), "round {round}");
        let out = masters[loser].output();
        let errs: Vec<&str> = out
            .lines()
            .filter(|l| !l.starts_with("db_replicate: master of") && !l.contains("epoch 1 begins"))
            .collect();
        assert_eq!(errs.len(), 1, "round {round}: {out}");
        assert!(errs[0].contains("another master"), "round {round}: {out}");
        let winner = 1 - loser;
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            masters[winner].running(),
            "round {round}: the winner stopped"
        );
        masters[winner].stop();
    }
    t.check(&aws);
}

#[test]
fn promotion_while_the_old_master_runs_and_the_old_primary_back() {
    let srv = s3::shared_server();
    let aws = Aws::of(&srv);
    let t = Transcript::default();
    let site = Site::new("promote", LEASE);
    let store = direct(&srv, &site.prefix);
    let writer = Writer::start(&site.primary, &["-i", "2", "-c", "100"]);
    writer.wait_for(20);
    let mut old = Daemon::start(&t, &aws, &site.primary, &["-M"], site.log("old master"));
    first_shipment(&t, &aws, &site.primary);
    let mut client = Daemon::start(&t, &aws, &site.standby, &[], site.log("client"));
    let mut follower = Daemon::start(&t, &aws, &site.spare, &[], site.log("follower"));
    reaches_shipped(&t, &aws, &site.primary, &site.standby);
    reaches_shipped(&t, &aws, &site.primary, &site.spare);

    // Failover while the old primary and its master go on: stop the
    // client, recover, promote.
    client.stop();
    ok(&t, &aws, "db_recover", &["-c"], &site.standby);
    let shipped_before = lsn(&stat_r(
        &t,
        &aws,
        &site.primary,
        "Shipped LSN (end of the store's log)",
    ));
    let mut new = Daemon::start(&t, &aws, &site.standby, &["-M"], site.log("new master"));
    // The old master learns at its next renewal or status, and stops.
    let code = old.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1));
    let out = old.output();
    let last = out.lines().last().unwrap_or("");
    assert!(
        last.contains("lease") && last.contains("epoch 2"),
        "the old master's last line: {out}"
    );
    let acked_on_old = writer.kill();
    assert!(acked_on_old > 20);
    wait_until(Duration::from_secs(30), "the promotion", || {
        new.output().contains("promoted")
    });

    let rec = epoch::read_one(&store, 2).unwrap().expect("epoch 2 began");
    let x = (rec.begins.file, rec.begins.offset);
    assert!(
        x >= shipped_before,
        "epoch 2 begins at {x:?}, before what the old master had reported shipped ({shipped_before:?})"
    );
    assert!(new.running(), "the new master: {}", new.output());
    assert!(new.output().contains("promoted"), "{}", new.output());
    // The promotion is marked in the new primary's log.
    let log = ok(&t, &aws, "db_printlog", &[], &site.standby);
    let mark = log
        .split("\n\n")
        .find(|e| e.contains("__rep_epoch"))
        .unwrap_or_else(|| panic!("no epoch record in the log"));
    assert!(mark.contains("epoch: 2"), "{mark}");
    assert!(mark.contains("continues: 1"), "{mark}");

    // The application opens the new primary and commits.
    {
        let env = libcore::Env::open(&site.standby, libcore::EnvOptions::default()).unwrap();
        let db = env.open_db("a.db").unwrap();
        let mut txn = env.begin().unwrap();
        txn.put(&db, b"after promotion", b"epoch 2").unwrap();
        txn.commit().unwrap();
        env.close().unwrap();
    }
    // The second standby follows the epoch chain onto the new primary.
    reaches_shipped(&t, &aws, &site.standby, &site.spare);
    wait_until(
        Duration::from_secs(30),
        "the follower to equal the new primary",
        || contents(&site.spare) == contents(&site.standby),
    );
    follower.stop();
    assert_eq!(
        contents(&site.spare)["a.db"][&b"after promotion"[..]],
        b"epoch 2"
    );

    // The old primary, back from the dead: its master refuses at once and
    // writes nothing into the store.
    let before = snapshot(&store);
    let e = fails(&t, &aws, "db_replicate", &["-M"], &site.primary);
    assert!(e.contains("old primary") && e.contains("epoch 2"), "{e}");
    // The new master posts its status meanwhile: compare without it.
    let mut after = snapshot(&store);
    let mut before = before;
    for s in [&mut before, &mut after] {
        s.remove("status/master");
        s.retain(|k, _| !k.starts_with("segments/0000000000000002") && k != "lease");
    }
    assert_eq!(
        before, after,
        "the old primary's master wrote into the store"
    );
    new.stop();
    t.check(&aws);
}
