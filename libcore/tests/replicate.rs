//! Replication in one process: a master shipping a live environment into
//! a directory store, a client following it, restores, and what they must
//! refuse. The end-to-end tests with the binaries, kills and failovers are
//! in tests/replicate.rs; the power-loss ones are here (`CrashVfs` under
//! the store, and under the standby).

use libcore::replica::client::{Client, ClientOptions, Step};
use libcore::replica::master::{Master, MasterOptions};
use libcore::replica::restore::{self, Target};
use libcore::replica::{digest, layout, segment, DirStore, ReplicaStore};
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
    let r = restore::restore(&os(), &*store, &out, &b, Target::Newest, &mut quiet()).unwrap();
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

impl ReplicaStore for LaggingListings {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn get(&self, key: &str) -> libcore::Result<Option<libcore::replica::Object>> {
        self.inner.get(key)
    }
    fn get_to_file(
        &self,
        key: &str,
        vfs: &dyn libcore::Vfs,
        path: &Path,
    ) -> libcore::Result<Option<libcore::replica::FileSum>> {
        self.inner.get_to_file(key, vfs, path)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> libcore::Result<()> {
        self.inner.put(key, bytes)
    }
    fn put_file(
        &self,
        key: &str,
        vfs: &dyn libcore::Vfs,
        path: &Path,
    ) -> libcore::Result<libcore::replica::FileSum> {
        self.inner.put_file(key, vfs, path)
    }
    fn create(&self, key: &str, bytes: &[u8]) -> libcore::Result<bool> {
        self.inner.create(key, bytes)
    }
    fn replace(
        &self,
        key: &str,
        bytes: &[u8],
        expected: &libcore::replica::Version,
    ) -> libcore::Result<bool> {
        self.inner.replace(key, bytes, expected)
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
    fn delete(&self, key: &str) -> libcore::Result<()> {
        self.inner.delete(key)
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
