//! `DirStore`, the replica store in a directory, against the promises of
//! `libcore::replica::store`: the generic conformance suite on the real
//! file system (races between separate handles, and a compare-and-swap
//! race between processes, which is what the store lock is for); a power
//! loss (`CrashVfs`) at every mutating file operation of put, put_file,
//! create, replace and delete, which must leave the key holding the old or
//! the new object whole, and the new one whenever the call returned
//! success; injected I/O errors (`FaultyVfs`), which must give one-line
//! store errors and leave the old object; leftovers of killed writers.
//!
//! `REPLICA_RACE_ROUNDS` scales the races; the ignored `torture_*` tests
//! (`make torture`) run many more rounds.

use libcore::replica::conformance::{self, Options};
use libcore::replica::{DirStore, ReplicaStore};
use libcore::StoreFault;
use libcore::{OsVfs, SharedVfs, Vfs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use testkit::{CrashVfs, FaultyVfs, Op};

fn rounds(default: usize) -> usize {
    std::env::var("REPLICA_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn os_store(root: &Path) -> DirStore {
    DirStore::open(OsVfs::shared(), root).unwrap()
}

fn conformance_with(race_rounds: usize) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let scratch = d.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let store = os_store(&root);
    let handles: Vec<DirStore> = (0..8).map(|_| os_store(&root)).collect();
    let racers: Vec<&dyn ReplicaStore> = handles.iter().map(|h| h as &dyn ReplicaStore).collect();
    let opts = Options {
        big_bytes: 24 << 20,
        race_rounds,
    };
    conformance::run_all(&store, &racers, "conf", &scratch, &opts);
    assert_no_leftovers(&root);
}

#[test]
fn dirstore_passes_the_conformance_suite() {
    conformance_with(rounds(25));
}

#[test]
#[ignore]
fn torture_dirstore_conformance_races() {
    conformance_with(rounds(1000));
}

/// Every name under `root` that is the store's own bookkeeping but the
/// lock file: temporary files left behind by a writer.
fn leftovers(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else if name.starts_with(".tmp-") {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

fn assert_no_leftovers(root: &Path) {
    assert_eq!(
        leftovers(root),
        Vec::<String>::new(),
        "temporary files left"
    );
}

// ---------------------------------------------------------------------------
// Power loss
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mutation {
    Put,
    PutFile,
    Create,
    CreateExisting,
    Replace,
    Delete,
}

const KEY: &str = "lease/current";
const OLD: &[u8] = b"the old object, durable before the power fails";

fn new_bytes() -> Vec<u8> {
    // Longer than a page, so a torn write can cut it.
    (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// Prepares `root` (through the plain file system): the old object, unless
/// the mutation creates a new key, and the source file of put_file.
fn prepare(root: &Path, src: &Path, m: Mutation) {
    let s = os_store(root);
    if m != Mutation::Create {
        s.put(KEY, OLD).unwrap();
    }
    std::fs::write(src, new_bytes()).unwrap();
}

/// Runs the mutation; `Ok(true)` means it reported that the new state is
/// in place (put done, created, replaced, deleted).
fn mutate(store: &DirStore, src: &Path, m: Mutation) -> libcore::Result<bool> {
    let new = new_bytes();
    match m {
        Mutation::Put => store.put(KEY, &new).map(|_| true),
        Mutation::PutFile => store.put_file(KEY, &OsVfs, src).map(|_| true),
        Mutation::Create | Mutation::CreateExisting => store.create(KEY, &new),
        Mutation::Replace => {
            let v = libcore::replica::dirstore::content_version(OLD);
            store.replace(KEY, &new, &v)
        }
        Mutation::Delete => store.delete(KEY).map(|_| true),
    }
}

/// What the key may hold after a power loss: before, and after the
/// mutation took effect.
fn outcomes(m: Mutation) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let old = Some(OLD.to_vec());
    match m {
        Mutation::Create => (None, Some(new_bytes())),
        Mutation::CreateExisting => (old.clone(), old),
        Mutation::Delete => (old, None),
        _ => (old, Some(new_bytes())),
    }
}

/// Mutating file operations the mutation makes from a prepared state.
fn count_mutations(m: Mutation) -> u64 {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let src = d.path().join("src");
    prepare(&root, &src, m);
    let crash = CrashVfs::new(&root);
    let store = DirStore::open(crash.clone(), &root).unwrap();
    let before = crash.mutations();
    assert!(mutate(&store, &src, m).unwrap() != (m == Mutation::CreateExisting));
    crash.mutations() - before
}

/// A power loss after each number of mutating operations of `m`, with
/// eight draws of what it tears each: the key holds the old or the new
/// object whole, the new one if the call reported success, no temporary
/// name is listed, and `sweep_leftovers` clears every one.
fn power_loss_everywhere(m: Mutation) -> usize {
    let total = count_mutations(m);
    assert!(total >= 2, "{m:?}: only {total} mutating operations");
    let (before, after) = outcomes(m);
    let mut cases = 0;
    for cut in 0..=total {
        for seed in 0..8u64 {
            let d = tempfile::tempdir().unwrap();
            let root = d.path().join("store");
            std::fs::create_dir(&root).unwrap();
            let src = d.path().join("src");
            prepare(&root, &src, m);
            let crash = CrashVfs::new(&root);
            let store = DirStore::open(crash.clone(), &root).unwrap();
            crash.crash_after(cut);
            let result = mutate(&store, &src, m);
            drop(store);
            let loss = crash
                .power_loss(seed * 7919 + cut)
                .unwrap_or_else(|e| panic!("{m:?} cut {cut}: power loss: {e}"));
            let store = os_store(&root);
            let got = store.get(KEY).unwrap().map(|o| o.bytes);
            let what = format!("{m:?}, cut after {cut} of {total}, seed {seed}, {loss:?}");
            assert!(
                got == before || got == after,
                "{what}: the key holds neither the old nor the new object ({:?} bytes)",
                got.as_ref().map(|g| g.len())
            );
            if matches!(result, Ok(true)) {
                assert!(got == after, "{what}: acknowledged, then lost");
            }
            let listed = store.list("").unwrap();
            assert!(
                listed.iter().all(|o| o.key == KEY),
                "{what}: listed {listed:?}"
            );
            assert_eq!(listed.len(), usize::from(got.is_some()), "{what}");
            store.sweep_leftovers(Duration::ZERO).unwrap();
            assert_no_leftovers(&root);
            assert_eq!(store.get(KEY).unwrap().map(|o| o.bytes), got, "{what}");
            cases += 1;
        }
    }
    eprintln!("{m:?}: {cases} power losses over {total} mutating operations");
    cases
}

#[test]
fn power_loss_during_put_leaves_the_old_or_the_new_object_whole() {
    power_loss_everywhere(Mutation::Put);
    power_loss_everywhere(Mutation::PutFile);
}

#[test]
fn power_loss_during_create_never_loses_a_created_object() {
    power_loss_everywhere(Mutation::Create);
    power_loss_everywhere(Mutation::CreateExisting);
}

#[test]
fn power_loss_during_replace_and_delete() {
    power_loss_everywhere(Mutation::Replace);
    power_loss_everywhere(Mutation::Delete);
}

/// The `CrashVfs` model of link(2): a second name for the inode, durable
/// only once its directory is synced; EEXIST on an existing name.
#[test]
fn crash_vfs_links_are_names_that_need_a_directory_sync() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let crash = CrashVfs::new(root);
    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    let f = crash.open(&a, libcore::OpenMode::CreateNew(0o600)).unwrap();
    f.write_at(b"data", 0).unwrap();
    f.sync().unwrap();
    drop(f);
    crash.sync_dir(root).unwrap();
    crash.hard_link(&a, &b).unwrap();
    // Linking the same file again is a no-op (a retransmitted NFS LINK);
    // another file onto an existing name is EEXIST.
    crash.hard_link(&a, &b).unwrap();
    let x = root.join("x");
    drop(crash.open(&x, libcore::OpenMode::CreateNew(0o600)).unwrap());
    let e = crash.hard_link(&x, &b).unwrap_err();
    assert!(
        matches!(&e, libcore::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
    crash.power_loss_untorn().unwrap();
    assert!(!b.exists(), "a link without a directory sync survived");
    crash.hard_link(&a, &c).unwrap();
    crash.sync_dir(root).unwrap();
    crash.power_loss_untorn().unwrap();
    assert_eq!(std::fs::read(&c).unwrap(), b"data");
}

// ---------------------------------------------------------------------------
// Injected I/O errors
// ---------------------------------------------------------------------------

/// An EIO at each kind of file operation a write makes: the call fails
/// with one `Transient` line naming the store and the key, the old object
/// stays, nothing half-written is listed or left behind, and the same call
/// succeeds once the fault is gone.
#[test]
fn io_errors_are_transient_store_errors_and_leave_the_old_object() {
    // FaultyVfs counts a hard link as a rename (both are name operations):
    // create links, put and replace rename.
    for op in [Op::Open, Op::Write, Op::Sync, Op::Rename, Op::SyncDir] {
        for m in [Mutation::Put, Mutation::Create, Mutation::Replace] {
            let d = tempfile::tempdir().unwrap();
            let root = d.path().join("store");
            std::fs::create_dir(&root).unwrap();
            let src = d.path().join("src");
            prepare(&root, &src, m);
            let faulty = FaultyVfs::os();
            let vfs: SharedVfs = faulty.clone();
            let store = DirStore::open(vfs, &root).unwrap();
            faulty.fail_nth(op, faulty.counts().get(op) + 1);
            let e = mutate(&store, &src, m).expect_err(&format!("{m:?} with {op:?} failing"));
            let msg = e.to_string();
            assert_eq!(e.store_fault(), Some(StoreFault::Transient), "{msg}");
            assert!(
                msg.starts_with(&format!("{}/{KEY}: ", root.display())) && !msg.contains('\n'),
                "{m:?}/{op:?}: {msg}"
            );
            let (before, after) = outcomes(m);
            let got = store.get(KEY).unwrap().map(|o| o.bytes);
            // A failed directory fsync comes after the rename or link: the
            // new object is visible, only its durability is in doubt.
            if op == Op::SyncDir {
                assert!(got == before || got == after, "{m:?}/{op:?}");
            } else {
                assert_eq!(got, before, "{m:?}/{op:?}: the old object changed");
            }
            assert_no_leftovers(&root);
            faulty.heal();
            if got == before {
                assert!(mutate(&store, &src, m).unwrap(), "{m:?} after healing");
            }
            assert_eq!(store.get(KEY).unwrap().map(|o| o.bytes), after);
        }
    }
}

// ---------------------------------------------------------------------------
// Leftovers, missing stores
// ---------------------------------------------------------------------------

#[test]
fn leftovers_of_killed_writers_are_never_listed_and_swept_when_old() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let store = os_store(root);
    store.put("seg/1", b"one").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // What a writer killed between its temporary file and the rename
    // leaves: an old one, and a young one (maybe still being written on
    // another host).
    std::fs::write(root.join("seg/.tmp-1000-00000000deadbeef"), b"half").unwrap();
    std::fs::write(root.join(format!(".tmp-{now}-00000000feedf00d")), b"new").unwrap();
    let keys: Vec<String> = store.list("").unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, vec!["seg/1"]);
    assert_eq!(store.sweep_leftovers(Duration::from_secs(3600)).unwrap(), 1);
    assert_eq!(leftovers(root).len(), 1, "the young leftover must stay");
    assert_eq!(store.sweep_leftovers(Duration::ZERO).unwrap(), 1);
    assert_no_leftovers(root);
    assert_eq!(store.get("seg/1").unwrap().unwrap().bytes, b"one");
}

#[test]
fn a_missing_store_directory_is_refused_not_created() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("not mounted");
    let e = DirStore::open(OsVfs::shared(), &missing).unwrap_err();
    assert_eq!(e.store_fault(), Some(StoreFault::Missing));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: replica store directory does not exist",
            missing.display()
        )
    );
    assert!(!missing.exists());
    let file = d.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let e = DirStore::open(OsVfs::shared(), &file).unwrap_err();
    assert_eq!(e.store_fault(), Some(StoreFault::Missing));
}

/// Objects written through a `DirStore` are plain files: an operator can
/// read them with `cat`, and put_file stores the file's bytes exactly.
#[test]
fn objects_are_plain_files() {
    let d = tempfile::tempdir().unwrap();
    let store = os_store(d.path());
    store
        .put("base/1/manifest", b"bdbtools-backup 1\n")
        .unwrap();
    assert_eq!(
        std::fs::read(d.path().join("base/1/manifest")).unwrap(),
        b"bdbtools-backup 1\n"
    );
}

// ---------------------------------------------------------------------------
// Between processes
// ---------------------------------------------------------------------------

const CHILD_ENV: &str = "REPLICA_CAS_CHILD";

/// In a child process: one replace of the race, its outcome as exit code
/// (0 won, 1 lost, 2 error).
fn cas_child(spec: &str) -> ! {
    let parts: Vec<&str> = spec.splitn(4, '\t').collect();
    let (root, key, version, me) = (parts[0], parts[1], parts[2], parts[3]);
    let store = os_store(Path::new(root));
    let go = Path::new(root).join("go");
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let v = libcore::replica::Version::new(version);
    let code = match store.replace(key, format!("racer {me}").as_bytes(), &v) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("{e}");
            2
        }
    };
    std::process::exit(code)
}

fn cas_race_between_processes(rounds: usize) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let store = os_store(root);
    let exe = std::env::current_exe().unwrap();
    for round in 0..rounds {
        let key = format!("lease/{round}");
        store.put(&key, b"base").unwrap();
        let v = store.get(&key).unwrap().unwrap().version;
        let _ = std::fs::remove_file(root.join("go"));
        let children: Vec<_> = (0..4)
            .map(|i| {
                std::process::Command::new(&exe)
                    .args(["--exact", "cas_race_child_entry", "--nocapture"])
                    .env(
                        CHILD_ENV,
                        format!("{}\t{key}\t{}\t{i}", root.display(), v.as_str()),
                    )
                    .spawn()
                    .unwrap()
            })
            .collect();
        std::fs::write(root.join("go"), b"").unwrap();
        let codes: Vec<i32> = children
            .into_iter()
            .map(|mut c| c.wait().unwrap().code().unwrap_or(-1))
            .collect();
        assert!(
            codes.iter().all(|&c| c == 0 || c == 1),
            "round {round}: {codes:?}"
        );
        let winners: Vec<usize> = (0..4).filter(|&i| codes[i] == 0).collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(
            store.get(&key).unwrap().unwrap().bytes,
            format!("racer {}", winners[0]).into_bytes()
        );
    }
}

/// The body of a racing child process (does nothing in a normal run).
#[test]
fn cas_race_child_entry() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        cas_child(&spec);
    }
}

/// Replacers in four processes, each with its own lock file descriptor,
/// holding the same version: exactly one wins each round. Threads of one
/// process cannot show this (they are serialised by a mutex too).
#[test]
fn replace_races_between_processes_have_one_winner() {
    cas_race_between_processes(rounds(10));
}

#[test]
#[ignore]
fn torture_replace_races_between_processes() {
    cas_race_between_processes(rounds(300));
}

#[test]
fn describe_names_the_directory_and_errors_are_one_line() {
    let d = tempfile::tempdir().unwrap();
    let store = os_store(d.path());
    assert_eq!(store.describe(), d.path().display().to_string());
    let e = store.get("a/../b").unwrap_err();
    assert!(!e.to_string().contains('\n'));
    let _unused: Arc<dyn ReplicaStore> = Arc::new(os_store(d.path()));
}
