//! Replication in one process: a master shipping a live environment into
//! a directory store, a client following it, restores, and what they must
//! refuse. The end-to-end tests with the binaries, kills and failovers are
//! in tests/replicate.rs; the power-loss ones are here (`CrashVfs` under
//! the store, and under the standby).

use libcore::replica::client::{Client, ClientOptions, Step};
use libcore::replica::master::{Master, MasterOptions};
use libcore::replica::restore::{self, Target};
use libcore::replica::{digest, layout, segment, DirStore, ReplicaStore, StoreLayer};
use libcore::Db;
use libcore::Lsn;
use libcore::{Env, EnvOptions};
use libcore::{OsVfs, SharedVfs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Setup {
    _d: tempfile::TempDir,
    primary: PathBuf,
    standby: PathBuf,
    store_dir: PathBuf,
}

fn setup() -> Setup {
    let d = tempfile::tempdir().unwrap();
    let primary = d.path().join("primary");
    let standby = d.path().join("standby");
    let store_dir = d.path().join("store");
    for p in [&primary, &standby, &store_dir] {
        std::fs::create_dir(p).unwrap();
    }
    Setup {
        _d: d,
        primary,
        standby,
        store_dir,
    }
}

fn os() -> SharedVfs {
    OsVfs::shared()
}

fn store_at(dir: &Path) -> Arc<dyn ReplicaStore> {
    Arc::new(DirStore::open(os(), dir).unwrap())
}

fn quiet() -> impl FnMut(String) {
    |_| {}
}

fn open_primary(home: &Path) -> (Env, Db) {
    let mut o = EnvOptions::create();
    o.lg_max = Some(64 * 1024);
    let env = Env::open(home, o).unwrap();
    let db = match env.open_db("a.db") {
        Ok(db) => db,
        Err(_) => {
            let mut t = env.begin().unwrap();
            let db = t.create_db("a.db", Some(512)).unwrap();
            t.commit().unwrap();
            db
        }
    };
    (env, db)
}

fn commit_range(env: &Env, db: &Db, from: u32, to: u32) {
    for i in from..to {
        let mut t = env.begin().unwrap();
        t.put(
            db,
            format!("k{i:06}").as_bytes(),
            &vec![i as u8; 50 + (i % 200) as usize],
        )
        .unwrap();
        t.commit().unwrap();
    }
}

fn no_digests() -> MasterOptions {
    MasterOptions {
        digest_every: None,
        ..Default::default()
    }
}

/// Ticks the master until it has shipped everything the primary wrote and
/// its first base is complete.
fn ship_all(m: &mut Master, primary: &Path) {
    for _ in 0..2000 {
        m.tick(&mut quiet()).unwrap();
        let done = m.status().newest_base != 0;
        let end = logical_end(primary);
        if done && m.shipped() >= end {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the master did not catch up");
}

/// The end of the primary's last complete transaction.
fn logical_end(home: &Path) -> Lsn {
    let env = Env::open(home, EnvOptions::read_only()).unwrap();
    env.log_end()
}

fn follow_all(c: &mut Client) {
    for _ in 0..10000 {
        if c.step(&mut quiet()).unwrap() == Step::Idle {
            return;
        }
    }
    panic!("the client never caught up");
}

fn digest_of(home: &Path) -> (Lsn, [u8; 32]) {
    digest::of_home(home, &mut |_| {}).unwrap()
}

#[test]
fn a_client_follows_a_master_and_equals_the_primary() {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 300);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    // More commits, across several log files, with a checkpoint between.
    commit_range(&env, &db, 300, 1500);
    env.checkpoint().unwrap();
    commit_range(&env, &db, 1500, 2000);
    ship_all(&mut m, &s.primary);
    follow_all(&mut c);
    assert_eq!(c.consistent(), logical_end(&s.primary));
    assert_eq!(digest_of(&s.standby), digest_of(&s.primary));
    // Restart both (a kill: no finish): they resume where they were.
    drop(m);
    drop(c);
    commit_range(&env, &db, 2000, 2300);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    assert_eq!(digest_of(&s.standby), digest_of(&s.primary));
    m.finish(&mut quiet()).unwrap();
    env.close().unwrap();
}

#[test]
fn a_restore_gives_the_newest_state_from_the_store_alone() {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 800);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    commit_range(&env, &db, 800, 1200);
    env.close().unwrap();
    ship_all(&mut m, &s.primary);
    drop(m);
    let b = restore::choose(&*store, Target::Newest).unwrap().unwrap();
    let out = s.standby.join("restored");
    std::fs::create_dir(&out).unwrap();
    let r = restore::restore(&os(), &*store, &out, &b, Target::Newest, None, &mut quiet()).unwrap();
    restore::unmark(&os(), &out).unwrap();
    assert_eq!(r.outcome.end, logical_end(&s.primary));
    assert_eq!(digest_of(&out), digest_of(&s.primary));
}

#[test]
fn a_store_of_another_environment_is_refused() {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 10);
    let store = store_at(&s.store_dir);
    let m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    drop(m);
    let other = s.standby.join("other");
    std::fs::create_dir(&other).unwrap();
    let (env2, db2) = open_primary(&other);
    commit_range(&env2, &db2, 0, 10);
    let e = Master::open(&os(), &other, store.clone(), &no_digests(), &mut quiet())
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(msg.contains("another environment"), "{msg}");
    assert!(msg.starts_with(&s.store_dir.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'));
    // An empty store given to a client: one line, nothing created.
    let empty = s.standby.join("empty-store");
    std::fs::create_dir(&empty).unwrap();
    let sb = s.standby.join("sb");
    std::fs::create_dir(&sb).unwrap();
    let e = Client::open(
        &os(),
        &sb,
        store_at(&empty),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("not a replica store"), "{e}");
    assert_eq!(std::fs::read_dir(&sb).unwrap().count(), 0);
    env.close().unwrap();
    env2.close().unwrap();
}

/// Damages the last segment of the store in `how`, then checks that the
/// client refuses it with one line naming it and leaves its state.
fn damaged_segment_is_refused(how: &str) {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 200);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    commit_range(&env, &db, 200, 210);
    ship_all(&mut m, &s.primary);
    let (_, start, _, key) = segment::last(&*store, m.epoch()).unwrap().unwrap();
    let path = s.store_dir.join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    match how {
        "torn" => bytes.truncate(bytes.len() - 7),
        "flipped" => {
            let n = bytes.len() - 3;
            bytes[n] ^= 0x40;
        }
        "chain" => {
            // A valid segment whose chain field is wrong.
            let mut seg = segment::Segment::decode("x", &key, &bytes).unwrap();
            seg.prev_crc ^= 1;
            bytes = seg.encode().unwrap();
        }
        _ => unreachable!(),
    }
    std::fs::write(&path, bytes).unwrap();
    let applied = c.state().applied;
    assert_eq!(applied, start);
    let e = c.step(&mut quiet()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&key), "{how}: {msg}");
    assert!(!msg.contains('\n'));
    assert_eq!(c.state().applied, applied, "{how}: nothing applied");
    env.close().unwrap();
}

#[test]
fn a_torn_segment_is_never_applied() {
    damaged_segment_is_refused("torn");
}

#[test]
fn a_damaged_segment_is_never_applied() {
    damaged_segment_is_refused("flipped");
}

#[test]
fn a_broken_chain_is_never_applied() {
    damaged_segment_is_refused("chain");
}

#[test]
fn segments_end_at_transaction_ends_and_never_span_files() {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 1500);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let segs = segment::list_from(&*store, 0).unwrap();
    assert!(segs.len() > 3, "{segs:?}");
    let mut prev: Option<(Lsn, u32)> = None;
    for (_, a, b, key) in &segs {
        assert_eq!(a.file, b.file);
        let seg = segment::Segment::get(&*store, key).unwrap().unwrap();
        if let Some((end, crc)) = prev {
            assert!(
                *a == end || *a == Lsn::new(end.file + 1, 0),
                "{a} after {end}"
            );
            assert_eq!(seg.prev_crc, crc);
        } else {
            assert!(seg.starts_chain() && a.offset == 0);
        }
        prev = Some((*b, seg.bytes_crc()));
    }
    assert!(layout::read_store_info(&*store).unwrap().is_some());
    env.close().unwrap();
}

/// Loads `n` pairs into the new database `name` in one bulk transaction
/// (built bottom-up, spilled to the file as it goes).
fn bulk_load(env: &Env, name: &str, n: u32) {
    let mut t = env.begin_bulk().unwrap();
    let db = t.create_db(name, Some(512)).unwrap();
    let mut b = t.bulk_builder(&db).unwrap().expect("a new database builds");
    for i in 0..n {
        t.build_push(&mut b, format!("b{i:08}").as_bytes(), &[3u8; 60])
            .unwrap();
    }
    t.build_finish(b).unwrap();
    t.commit().unwrap();
}

fn markers(home: &Path) -> Vec<Lsn> {
    let vfs = os();
    let l = libcore::Layout::resolve(&vfs, home).unwrap();
    let first = l.log_files(&vfs).unwrap()[0];
    libcore::replica::base::bulk_markers(&vfs, &l, Lsn::new(first, 0), Lsn::new(u32::MAX, 0))
        .unwrap()
}

/// A bulk load writes its pages straight to the data file and only a
/// marker to the log, so a standby following the log could never have
/// them. While a master holds its lease the engine logs the load in full
/// (no marker, every page an image), and the standby follows it.
#[test]
fn a_bulk_load_while_a_master_runs_is_logged_in_full_and_followed() {
    let s = setup();
    let mut o = EnvOptions::create();
    o.lg_max = Some(256 * 1024);
    o.cache_size = Some(256 * 1024);
    let env = Env::open(&s.primary, o).unwrap();
    // Without a lease: a marker (the mode the test relies on exists).
    bulk_load(&env, "before.db", 3000);
    assert_eq!(markers(&s.primary).len(), 1);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    bulk_load(&env, "during.db", 20000);
    assert_eq!(
        markers(&s.primary).len(),
        1,
        "no marker while the lease is held"
    );
    ship_all(&mut m, &s.primary);
    follow_all(&mut c);
    assert_eq!(
        c.state().base,
        layout::base_number(1, 1),
        "followed, not restored again"
    );
    assert_eq!(digest_of(&s.standby), digest_of(&s.primary));
    env.close().unwrap();
}

/// A store whose per-file listings lag: segments from `hidden_from` on
/// are missing from listings of one log file's directory, but present in
/// a listing of every segment, as when the master ships between a
/// client's two listings.
struct LaggingListings {
    inner: Arc<dyn ReplicaStore>,
    hidden_from: std::sync::Mutex<Option<Lsn>>,
    /// Hide only in the next per-file listing of the hidden position's
    /// file, then show everything.
    once: bool,
}

impl StoreLayer for LaggingListings {
    fn lower(&self) -> &dyn ReplicaStore {
        &*self.inner
    }

    fn list(&self, prefix: &str) -> libcore::Result<Vec<libcore::replica::ObjectMeta>> {
        let all = self.inner.list(prefix)?;
        let per_file = prefix.starts_with("segments/") && prefix.matches('/').count() == 2;
        let mut guard = self.hidden_from.lock().unwrap();
        let hidden = *guard;
        let file_of_hidden = hidden.is_some_and(|h| prefix.ends_with(&format!("/{:08x}", h.file)));
        if self.once && per_file && file_of_hidden {
            *guard = None;
        }
        drop(guard);
        Ok(match hidden {
            Some(h) if per_file => all
                .into_iter()
                .filter(|m| layout::parse_segment_key(&m.key).is_none_or(|(_, s, _)| s < h))
                .collect(),
            _ => all,
        })
    }
}

/// Regression: a client that found nothing at its position, then listed
/// every segment to look for a gap, took segments shipped between the two
/// listings for a gap ("the store's log goes on at Q but holds nothing at
/// P") and stopped, though the store's log was whole. Under a master
/// shipping continuously (most visible on an S3 store, where a listing
/// takes a while) a standby could stop at any time.
#[test]
fn segments_shipped_between_two_listings_are_no_gap() {
    let s = setup();
    let store = store_at(&s.store_dir);
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 100);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let lagging = Arc::new(LaggingListings {
        inner: store.clone(),
        hidden_from: std::sync::Mutex::new(None),
        once: false,
    });
    let mut c = Client::open(
        &os(),
        &s.standby,
        lagging.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    let at = c.state().applied;
    // Two more shipments, which the client's next per-file listing misses.
    commit_range(&env, &db, 100, 110);
    m.tick(&mut quiet()).unwrap();
    commit_range(&env, &db, 110, 120);
    m.tick(&mut quiet()).unwrap();
    *lagging.hidden_from.lock().unwrap() = Some(at);
    assert_eq!(c.step(&mut quiet()).unwrap(), Step::Idle);
    *lagging.hidden_from.lock().unwrap() = None;
    follow_all(&mut c);
    assert!(c.state().applied > at);
    assert_eq!(c.state().last_error, "");
    assert_eq!(digest_of(&s.standby).1, digest_of(&s.primary).1);
    m.finish(&mut quiet()).unwrap();
    env.close().unwrap();
}

/// Two masters started at once against one store, many rounds: exactly
/// one wins the lease, the other is refused with a `Fenced` error naming
/// the holder, before it writes anything of its own.
#[test]
fn two_masters_racing_for_one_store_exactly_one_wins() {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 30);
    let rounds: usize = std::env::var("REPLICA_RACE_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(25);
    for round in 0..rounds {
        let dir = s.store_dir.join(format!("round {round}"));
        std::fs::create_dir(&dir).unwrap();
        let store = store_at(&dir);
        let gate = Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (gate, store, home) = (gate.clone(), store.clone(), s.primary.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    Master::open(&os(), &home, store, &no_digests(), &mut quiet())
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {} winners", winners);
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e.store_fault(), Some(libcore::StoreFault::Fenced), "{e}");
                assert!(e.to_string().contains("another master"), "{e}");
            }
        }
    }
    env.close().unwrap();
}

/// A promotion fences a running master: its next renewal or confirmation
/// fails, it stops with one `Fenced` error, and it ships nothing into the
/// new epoch; the old primary cannot start a master again; a client
/// follows the epoch chain onto the promoted standby.
#[test]
fn a_promotion_fences_the_old_master_and_clients_follow_the_new_epoch() {
    let s = setup();
    let store = store_at(&s.store_dir);
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 200);
    // A long lease: the old master learns of the promotion only when it
    // confirms its lease before its next status, after it shipped.
    let opts = no_digests();
    let mut m = Master::open(&os(), &s.primary, store.clone(), &opts, &mut quiet()).unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    drop(c);
    let spare = s.store_dir.parent().unwrap().join("spare");
    std::fs::create_dir(&spare).unwrap();
    let mut c2 = Client::open(
        &os(),
        &spare,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c2);
    let x = c2.state().applied;

    // The standby is promoted while the old master still runs.
    let mut p = Master::open(&os(), &s.standby, store.clone(), &opts, &mut quiet()).unwrap();
    assert_eq!(p.epoch(), 2);
    let rec = libcore::replica::epoch::read_one(&*store, 2)
        .unwrap()
        .unwrap();
    assert_eq!(rec.begins, x, "the new epoch begins where the standby was");
    // The old primary commits on; its master is stopped at its next round.
    commit_range(&env, &db, 200, 220);
    let mut stopped = None;
    for _ in 0..200 {
        match m.tick(&mut quiet()) {
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    let e = stopped.expect("the old master was not fenced");
    assert_eq!(e.store_fault(), Some(libcore::StoreFault::Fenced), "{e}");
    let late = segment::list_from(&*store, 0)
        .unwrap()
        .into_iter()
        .filter(|s| s.0 == 1 && s.1 >= x)
        .count();
    assert!(
        late > 0,
        "the old master shipped nothing past the promotion"
    );
    for k in store.list("segments/0000000000000002").unwrap() {
        let seg = segment::Segment::get(&*store, &k.key).unwrap().unwrap();
        assert_eq!(seg.epoch, 2);
    }
    drop(m);
    // The old primary, back: its master is refused.
    let e = Master::open(&os(), &s.primary, store.clone(), &opts, &mut quiet())
        .err()
        .unwrap();
    assert_eq!(e.store_fault(), Some(libcore::StoreFault::Fenced), "{e}");
    assert!(e.to_string().contains("old primary"), "{e}");
    env.close().unwrap();

    // The application writes on the new primary; the client follows.
    let (env2, db2) = open_primary(&s.standby);
    commit_range(&env2, &db2, 5000, 5100);
    ship_all(&mut p, &s.standby);
    for _ in 0..100 {
        follow_all(&mut c2);
        if c2.state().applied == p.shipped() {
            break;
        }
    }
    assert_eq!(c2.state().applied, p.shipped());
    assert_eq!(c2.state().epoch, 2);
    // The old master shipped past X before it learned: never applied (and
    // reported as rejected, if the client met it before it knew epoch 2).
    let err = &c2.state().last_error;
    assert!(err.is_empty() || err.contains("rejected"), "{err}");
    let spare_env = Env::open(&spare, EnvOptions::read_only()).unwrap();
    let a = spare_env.open_db("a.db").unwrap();
    for i in 200..220 {
        let k = format!("k{i:06}");
        assert_eq!(spare_env.get(&a, k.as_bytes()).unwrap(), None, "{k}");
    }
    drop(spare_env);
    assert_eq!(digest_of(&spare).1, digest_of(&s.standby).1);
    p.finish(&mut quiet()).unwrap();
    env2.close().unwrap();
}

/// Regression: a follower that found nothing more in its log file's
/// listing took the first segment of the next file, though the end of its
/// own file had been shipped after that listing was made (the master went
/// on into the next file between the two listings): its chain did not
/// hold ("chain broken") and the client stopped. Now a next-file segment
/// that does not chain sends it back to its own file, listed again.
#[test]
fn the_end_of_a_file_listed_late_is_not_skipped() {
    let s = setup();
    let store = store_at(&s.store_dir);
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 50);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let lagging = Arc::new(LaggingListings {
        inner: store.clone(),
        hidden_from: std::sync::Mutex::new(None),
        once: true,
    });
    let mut c = Client::open(
        &os(),
        &s.standby,
        lagging.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    let at = c.state().applied;
    // Ship the rest of this log file and the start of the next one.
    let mut i = 1000;
    while segment::list_file(&*store, m.epoch(), at.file + 1)
        .unwrap()
        .is_empty()
    {
        commit_range(&env, &db, i, i + 20);
        m.tick(&mut quiet()).unwrap();
        i += 20;
    }
    *lagging.hidden_from.lock().unwrap() = Some(at);
    follow_all(&mut c);
    assert!(c.state().applied.file > at.file, "{}", c.state().applied);
    assert_eq!(c.state().last_error, "");
    assert_eq!(digest_of(&s.standby).1, digest_of(&s.primary).1);
    m.finish(&mut quiet()).unwrap();
    env.close().unwrap();
}

/// What broke: a directory store makes a segment visible (its link) a
/// moment before it is durable (the directory fsync). A client that read
/// it then, on a host whose power did not fail, kept it; the store lost
/// its name at the power loss, and the restarted master shipped the same
/// log again cut in other places. The client then stopped for good: the
/// next segment's chain checksum named a segment it never applied ("chain
/// broken"), or nothing started at its applied end ("holds nothing at").
/// Found by the store-side power-loss test (replicate_powerloss.rs). Now
/// the client goes on through the new pieces when their bytes up to its
/// applied end are its own log's.
#[test]
fn a_store_that_lost_applied_segments_is_followed_after_it_ships_them_again() {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 100);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    // Two segments the client applies, which the store then loses.
    let mut lost = Vec::new();
    for range in [100..103, 103..106] {
        commit_range(&env, &db, range.start, range.end);
        ship_all(&mut m, &s.primary);
        follow_all(&mut c);
        lost.push(last_segment(&*store));
    }
    drop(m);
    for (_, _, key) in &lost {
        std::fs::remove_file(s.store_dir.join(key)).unwrap();
    }
    // Shipped again as one segment ending where the client is: the next
    // one's chain goes through it.
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let (a, b, _) = last_segment(&*store);
    assert_eq!((a, b), (lost[0].0, lost[1].1), "shipped again in one piece");
    commit_range(&env, &db, 106, 110);
    ship_all(&mut m, &s.primary);
    follow_all(&mut c);
    assert_eq!(c.consistent(), logical_end(&s.primary));
    assert_eq!(digest_of(&s.standby), digest_of(&s.primary));
    // Lost again, and shipped again past the client's end: a segment
    // over its applied end, nothing starting there.
    let applied = c.state().applied;
    drop(m);
    let (a, _, key) = last_segment(&*store);
    std::fs::remove_file(s.store_dir.join(key)).unwrap();
    commit_range(&env, &db, 110, 115);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let (a2, b2, _) = last_segment(&*store);
    assert!(a2 == a && b2 > applied, "one segment over {applied}");
    follow_all(&mut c);
    assert_eq!(c.consistent(), logical_end(&s.primary));
    assert_eq!(digest_of(&s.standby), digest_of(&s.primary));
    // A standby whose log is not the store's is refused, naming the
    // segment: its bytes before the applied end differ.
    let applied = c.state().applied;
    drop(m);
    let (a, _, key) = last_segment(&*store);
    std::fs::remove_file(s.store_dir.join(&key)).unwrap();
    let log = s.standby.join(format!("log.{:010}", applied.file));
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[a.offset as usize + 30] ^= 1;
    std::fs::write(&log, bytes).unwrap();
    commit_range(&env, &db, 115, 118);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let (_, _, over) = last_segment(&*store);
    let e = c.step(&mut quiet()).unwrap_err().to_string();
    assert!(e.contains(&over) && e.contains("does not hold"), "{e}");
    assert!(!e.contains('\n'));
    assert_eq!(c.state().applied, applied, "nothing applied");
    m.finish(&mut quiet()).unwrap();
    env.close().unwrap();
}

/// The log files of `home`, by number.
fn log_files(home: &Path) -> Vec<u32> {
    let vfs = os();
    let l = libcore::Layout::resolve(&vfs, home).unwrap();
    l.log_files(&vfs).unwrap()
}

/// Every segment of the store continues the one before it (contiguous,
/// chained) or starts a new chain; returns the chain starts after the
/// first.
fn check_chains(store: &dyn ReplicaStore) -> Vec<Lsn> {
    let mut prev: Option<(Lsn, u32)> = None;
    let mut starts = Vec::new();
    for (_, a, _, key) in segment::list_from(store, 0).unwrap() {
        let seg = segment::Segment::get(store, &key).unwrap().unwrap();
        match prev {
            Some((end, crc)) if !seg.starts_chain() => {
                assert!(
                    a == end || a == Lsn::new(end.file + 1, 0),
                    "{key} after {end}"
                );
                assert_eq!(seg.prev_crc, crc, "{key}: chained");
            }
            Some(_) => starts.push(a),
            None => assert!(seg.starts_chain(), "{key}: the first starts a chain"),
        }
        prev = Some((seg.end, seg.bytes_crc()));
    }
    starts
}

/// A log file the master still needs is removed by hand (`rm`, where
/// `db_archive -d` keeps it for the master's lease): the oldest one it
/// needs (`which` 0) or one after it (1). The master names it in one line,
/// ships nothing across the gap, and starts a new chain with a new base
/// after it; the standby restores from that base and ends equal to the
/// primary.
fn log_removed_by_hand(which: u32) {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 200);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    // The master falls behind by several log files (its store was
    // away), and a checkpoint leaves them unused by the primary.
    let needed = m.shipped().file;
    commit_range(&env, &db, 200, 1500);
    env.checkpoint().unwrap();
    assert!(log_files(&s.primary).last().unwrap() > &(needed + 2));
    let removed = libcore::archive::remove_unused(
        &os(),
        &libcore::Layout::resolve(&os(), &s.primary).unwrap(),
    )
    .unwrap();
    assert!(
        log_files(&s.primary).contains(&needed),
        "db_archive -d keeps what the master's lease holds: removed {removed:?}"
    );
    let before_gap = m.shipped();
    let gone = s.primary.join(format!("log.{:010}", needed + which));
    std::fs::remove_file(&gone).unwrap();
    let mut said = Vec::new();
    m.tick(&mut |l| said.push(l)).unwrap();
    let named: Vec<&String> = said
        .iter()
        .filter(|l| l.contains(&gone.display().to_string()))
        .collect();
    assert_eq!(named.len(), 1, "{said:?}");
    assert!(!named[0].contains('\n'));
    assert!(m.status().last_error.contains(&gone.display().to_string()));
    ship_all(&mut m, &s.primary);
    for _ in 0..2000 {
        if m.status().newest_base >= layout::base_number(1, 2) {
            break;
        }
        m.tick(&mut quiet()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        m.status().newest_base,
        layout::base_number(1, 2),
        "a new base after the gap"
    );
    let starts = check_chains(&*store);
    assert_eq!(starts.len(), 1, "one new chain: {starts:?}");
    assert!(
        starts[0].file > needed,
        "nothing of {needed} or before it after the gap"
    );
    for (_, a, b, key) in segment::list_from(&*store, 0).unwrap() {
        assert!(
            a >= starts[0] || b <= before_gap,
            "{key} ships across the gap"
        );
    }
    // The standby restores from the new base and follows.
    follow_all(&mut c);
    assert_eq!(c.state().base, layout::base_number(1, 2));
    assert_eq!(c.consistent(), logical_end(&s.primary));
    assert_eq!(digest_of(&s.standby), digest_of(&s.primary));
    m.finish(&mut quiet()).unwrap();
    env.close().unwrap();
}

#[test]
fn the_oldest_log_the_master_needs_removed_by_hand_is_named_and_never_shipped_across() {
    log_removed_by_hand(0);
}

#[test]
fn a_later_log_the_master_needs_removed_by_hand_is_named_and_never_shipped_across() {
    log_removed_by_hand(1);
}

/// A bulk load committed with no lease held (after the store's base, while
/// no master ran) leaves only a marker in the log. The restarted master
/// sees it as it ships and writes a new base; the client never applies
/// the segment holding it (the pages are not in it): it waits for a base
/// copied after the load, restores from it, and ends equal to the primary.
#[test]
fn a_bulk_load_between_masters_brings_a_new_base_the_standby_restores() {
    let s = setup();
    let mut o = EnvOptions::create();
    o.lg_max = Some(256 * 1024);
    o.cache_size = Some(256 * 1024);
    let env = Env::open(&s.primary, o).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", Some(512)).unwrap();
    t.commit().unwrap();
    commit_range(&env, &db, 0, 200);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store.clone(),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    m.finish(&mut quiet()).unwrap();
    bulk_load(&env, "late.db", 5000);
    assert_eq!(markers(&s.primary).len(), 1, "no lease: a marker");
    commit_range(&env, &db, 200, 250);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    let mut said = Vec::new();
    let mut restored = false;
    for _ in 0..4000 {
        m.tick(&mut |l| said.push(l)).unwrap();
        match c.step(&mut quiet()).unwrap() {
            Step::Restored(_) => restored = true,
            Step::Idle if restored && m.shipped() >= logical_end(&s.primary) => break,
            _ => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(restored, "the standby restored from a new base: {said:?}");
    assert!(said.iter().any(|l| l.contains("bulk load")), "{said:?}");
    assert_eq!(c.state().base, layout::base_number(1, 2));
    follow_all(&mut c);
    assert_eq!(c.consistent(), logical_end(&s.primary));
    assert_eq!(digest_of(&s.standby), digest_of(&s.primary));
    m.finish(&mut quiet()).unwrap();
    env.close().unwrap();
}

/// The store fills up or fails (ENOSPC, then EIO) while the master ships:
/// every tick reports and retries, never an error that stops it; the
/// primary's commits go on; `db_archive -d` keeps the log not shipped
/// (the lease); when the store is back the master catches up and the
/// standby ends equal to the primary.
fn store_fails_while_shipping(errno: i32) {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 100);
    let faulty = Arc::new(testkit::FaultyVfs::new(os()));
    let store: Arc<dyn ReplicaStore> =
        Arc::new(DirStore::open(faulty.clone(), &s.store_dir).unwrap());
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    let mut c = Client::open(
        &os(),
        &s.standby,
        store_at(&s.store_dir),
        &ClientOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    follow_all(&mut c);
    let shipped = m.shipped();
    match errno {
        testkit::ENOSPC => faulty.enospc_after(faulty.counts().bytes_written + 100),
        _ => faulty.fail_from(testkit::Op::Write, faulty.counts().writes + 1),
    }
    let mut said = Vec::new();
    for i in 0..20 {
        commit_range(&env, &db, 100 + i * 40, 140 + i * 40);
        m.tick(&mut |l| said.push(l))
            .unwrap_or_else(|e| panic!("the master stopped: {e}"));
    }
    env.checkpoint().unwrap();
    let layout = libcore::Layout::resolve(&os(), &s.primary).unwrap();
    libcore::archive::remove_unused(&os(), &layout).unwrap();
    assert!(log_files(&s.primary).contains(&shipped.file), "leased");
    let err = &m.status().last_error;
    assert!(err.contains(&s.store_dir.display().to_string()), "{err}");
    assert!(!err.contains('\n'));
    assert!(said.iter().any(|l| l.ends_with("; retrying")), "{said:?}");
    assert!(m.shipped() < logical_end(&s.primary), "nothing shipped");
    faulty.heal();
    ship_all(&mut m, &s.primary);
    follow_all(&mut c);
    assert_eq!(c.consistent(), logical_end(&s.primary));
    assert_eq!(digest_of(&s.standby), digest_of(&s.primary));
    m.finish(&mut quiet()).unwrap();
    env.close().unwrap();
}

#[test]
fn a_full_store_is_reported_and_retried_and_the_primary_goes_on() {
    store_fails_while_shipping(testkit::ENOSPC);
}

#[test]
fn a_failing_store_is_reported_and_retried_and_the_primary_goes_on() {
    store_fails_while_shipping(testkit::EIO);
}

/// What broke: the master looked for new log again at once after every
/// tick that shipped anything, so under a busy primary it put a stream of
/// tiny segments (a commit or two each), each with its fsyncs in the
/// store and its redo in every standby: standbys fell seconds behind at
/// 1,000 commits/s and the primary's commits slowed by a third (the bench
/// rows of section 9). Now a tick that shipped less than a full segment
/// is followed by a pause until the next tick: at most one round of
/// segments per tick, a segment per log file at most.
#[test]
fn a_busy_primary_is_shipped_once_a_tick_not_in_tiny_segments() {
    let s = setup();
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 100);
    let store = store_at(&s.store_dir);
    let opts = MasterOptions {
        digest_every: None,
        lag_bound: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let tick = opts.lag_bound / 20;
    let stop = opts.stop.clone();
    let (home, st) = (s.primary.clone(), store.clone());
    let master = std::thread::spawn(move || {
        libcore::replica::master::run(&os(), &home, st, &opts, &mut |_| {})
    });
    // Until the first base is shipped, then a second of commits.
    while segment::list_from(&*store, 0).unwrap().is_empty() {
        std::thread::sleep(tick);
    }
    let before = segment::list_from(&*store, 0).unwrap().len();
    let files_before = log_files(&s.primary).len();
    let began = std::time::Instant::now();
    let mut i = 100;
    while began.elapsed() < std::time::Duration::from_secs(1) {
        commit_range(&env, &db, i, i + 1);
        i += 1;
    }
    let ticks = (began.elapsed().as_millis() / tick.as_millis()) as usize + 1;
    std::thread::sleep(tick * 4);
    stop.store(2, std::sync::atomic::Ordering::SeqCst);
    master.join().unwrap().unwrap();
    let segments = segment::list_from(&*store, 0).unwrap().len() - before;
    let files = log_files(&s.primary).len() - files_before + 1;
    assert!(
        segments <= 2 * (ticks + files) + 4,
        "{segments} segments for {} commits in {ticks} ticks over {files} log files",
        i - 100
    );
    env.close().unwrap();
}

/// The newest segment of the store (of its newest epoch): start, end, key.
fn last_segment(store: &dyn ReplicaStore) -> (Lsn, Lsn, String) {
    let (_, start, end, key) = segment::list_from(store, 0).unwrap().pop().unwrap();
    (start, end, key)
}

/// A segment as listed: start, end, key.
type SegmentAt = (Lsn, Lsn, String);

/// A primary shipped in many small segments (a tick per few commits), as
/// a store fills while a master follows a live primary: what a restore
/// fetches ahead. Returns the store and the segments from the newest
/// base's start.
fn many_small_segments(s: &Setup) -> (Arc<dyn ReplicaStore>, Vec<SegmentAt>) {
    let (env, db) = open_primary(&s.primary);
    commit_range(&env, &db, 0, 100);
    let store = store_at(&s.store_dir);
    let mut m = Master::open(
        &os(),
        &s.primary,
        store.clone(),
        &no_digests(),
        &mut quiet(),
    )
    .unwrap();
    ship_all(&mut m, &s.primary);
    for i in 0..60 {
        commit_range(&env, &db, 100 + i * 5, 105 + i * 5);
        m.tick(&mut quiet()).unwrap();
    }
    env.close().unwrap();
    ship_all(&mut m, &s.primary);
    drop(m);
    let b = restore::choose(&*store, Target::Newest).unwrap().unwrap();
    let segs: Vec<SegmentAt> = segment::list_from(&*store, b.start.file)
        .unwrap()
        .into_iter()
        .filter(|l| l.1 >= b.start)
        .map(|l| (l.1, l.2, l.3))
        .collect();
    assert!(segs.len() >= 40, "only {} segments", segs.len());
    (store, segs)
}

/// A directory store whose `get` of one key stalls and of another fails
/// once: a network that holds one request and drops another.
struct Unreliable {
    inner: Arc<dyn ReplicaStore>,
    stall: String,
    fail_once: String,
    failed: std::sync::atomic::AtomicBool,
    stalls: std::sync::atomic::AtomicUsize,
}

impl StoreLayer for Unreliable {
    fn lower(&self) -> &dyn ReplicaStore {
        &*self.inner
    }

    fn get(&self, key: &str) -> libcore::Result<Option<libcore::replica::Object>> {
        use std::sync::atomic::Ordering::SeqCst;
        if key == self.stall {
            self.stalls.fetch_add(1, SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
        if key == self.fail_once && !self.failed.swap(true, SeqCst) {
            return Err(libcore::Error::store(
                self.inner.describe(),
                key,
                libcore::StoreFault::Transient,
                "connection reset",
            ));
        }
        self.inner.get(key)
    }
}

/// A restore fetches segments ahead of applying them, on several threads.
/// One fetch that stalls must only be waited for, and one that fails must
/// be done again by the walk itself (a failed prefetch is never taken as
/// the segment, nor as its absence, which would end the restored log
/// early): the restore equals the primary.
#[test]
fn a_restore_waits_for_a_stalled_prefetch_and_refetches_a_failed_one() {
    let s = setup();
    let (store, segs) = many_small_segments(&s);
    let flaky = Unreliable {
        inner: store.clone(),
        stall: segs[5].2.clone(),
        fail_once: segs[9].2.clone(),
        failed: Default::default(),
        stalls: Default::default(),
    };
    let b = restore::choose(&flaky, Target::Newest).unwrap().unwrap();
    let out = s.standby.join("restored");
    std::fs::create_dir(&out).unwrap();
    let r = restore::restore(&os(), &flaky, &out, &b, Target::Newest, None, &mut quiet()).unwrap();
    restore::unmark(&os(), &out).unwrap();
    assert!(flaky.failed.load(std::sync::atomic::Ordering::SeqCst));
    assert!(flaky.stalls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(r.outcome.end, logical_end(&s.primary));
    assert_eq!(r.applied, segs.last().unwrap().1);
    assert_eq!(digest_of(&out), digest_of(&s.primary));
}

/// A damaged segment among those fetched ahead is named by the restore,
/// and nothing after it reaches the restored log: segments fetched ahead
/// are applied only in order, each after its own check.
#[test]
fn a_damaged_segment_among_prefetched_ones_is_named_and_nothing_after_it_applied() {
    let s = setup();
    let (store, segs) = many_small_segments(&s);
    let (start, _, key) = segs[segs.len() / 2].clone();
    let path = s.store_dir.join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len() - 3;
    bytes[n] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let b = restore::choose(&*store, Target::Newest).unwrap().unwrap();
    let out = s.standby.join("restored");
    std::fs::create_dir(&out).unwrap();
    let e =
        restore::restore(&os(), &*store, &out, &b, Target::Newest, None, &mut quiet()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&key), "{msg}");
    assert!(!msg.contains('\n'));
    for f in log_files(&out) {
        let layout = libcore::Layout::resolve(&os(), &out).unwrap();
        let len = std::fs::metadata(layout.log_path(f)).unwrap().len();
        assert!(f <= start.file, "log file {f} is past the damaged segment");
        if f == start.file {
            assert!(
                len <= u64::from(start.offset),
                "log file {f} holds {len} bytes, past the damaged segment at {start}"
            );
        }
    }
    assert!(out.join(restore::MARK_FILE).exists());
}
