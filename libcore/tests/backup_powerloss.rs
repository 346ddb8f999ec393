//! Power loss inside the backup directory (issue 10, defect 10).
//!
//! What broke: `db_hotbackup` put only the source under the power-loss
//! model. Cut at every point of a full backup over a complete one, a third
//! of the crash states left nothing usable (the old backup was deleted
//! before the new one was durable); a `-u` cut while it trimmed old log
//! files could leave stale ones with a gap among them, which `db_recover -c`
//! then refused. A failover runs `db_recover -c` on whatever the power
//! left, so every one of these states must recover.
//!
//! Here the target lives under a `CrashVfs` while the source (closed, so
//! the model of each backup is exact) is outside it. Each test cuts the
//! power after every mutating operation of the run in turn, then does what
//! a failover does, `db_recover -c` (`recover_env_on`, catastrophic), and
//! checks the result against the model: the previous backup or the new one
//! for a full backup, a committed prefix between them for an update, never
//! anything else; and that running the command again afterwards completes
//! it, leftovers and all. The recovery itself is cut at every point too,
//! on every third crash state and on every one that left a move half done.

use libcore::backup::{hot_backup, BackupOptions};
use libcore::testing::backup_target;
use libcore::testing::recover_env::{recover_env_on, RecoverEnvOptions};
use libcore::{scan, Env, EnvOptions};
use libcore::{OsVfs, SharedVfs};
use std::collections::BTreeMap;
use std::path::Path;
use testkit::CrashVfs;

type Contents = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn os() -> SharedVfs {
    OsVfs::shared()
}

/// The value the source's commit `i` wrote under `k{i}`.
fn value(i: u32) -> Vec<u8> {
    vec![i as u8; 50 + (i % 7) as usize * 40]
}

/// The source after its first `m` commits.
fn model(m: u32) -> Contents {
    let mut a = BTreeMap::new();
    for i in 0..m {
        a.insert(format!("k{i:05}").into_bytes(), value(i));
    }
    let mut b = BTreeMap::new();
    if m > 0 {
        b.insert(b"last".to_vec(), (m - 1).to_string().into_bytes());
    }
    Contents::from([("a.db".to_string(), a), ("b.db".to_string(), b)])
}

/// Commits `from..to` into the source (two databases, small log files, a
/// checkpoint in the middle), then closes it.
fn grow_source(home: &Path, from: u32, to: u32) {
    let mut o = EnvOptions::create();
    o.lg_max = Some(8 * 1024);
    o.page_size = Some(1024);
    let env = Env::open(home, o).unwrap();
    let (a, b) = match (env.open_db("a.db"), env.open_db("b.db")) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            let mut t = env.begin().unwrap();
            let a = t.create_db("a.db", None).unwrap();
            let b = t.create_db("b.db", None).unwrap();
            t.commit().unwrap();
            (a, b)
        }
    };
    for i in from..to {
        let mut t = env.begin().unwrap();
        t.put(&a, format!("k{i:05}").as_bytes(), &value(i)).unwrap();
        t.put(&b, b"last", i.to_string().as_bytes()).unwrap();
        t.commit().unwrap();
        if i == (from + to) / 2 {
            env.checkpoint().unwrap();
        }
    }
    env.close().unwrap();
}

fn contents(home: &Path) -> libcore::Result<Contents> {
    let env = Env::open(home, EnvOptions::read_only())?;
    let mut out = Contents::new();
    for name in env.db_names() {
        let db = env.open_db(&name)?;
        let mut m = BTreeMap::new();
        scan(&env, &db, |k, v| {
            m.insert(k.to_vec(), v.to_vec());
            Ok(())
        })?;
        out.insert(name, m);
    }
    Ok(out)
}

/// How many commits of the model `c` holds, if it is exactly a prefix.
fn prefix_of(c: &Contents) -> Option<u32> {
    let m = c.get("a.db")?.len() as u32;
    (*c == model(m)).then_some(m)
}

/// A byte copy of directory `from` (files and subdirectories) at `to`.
fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    copy_tree(from, to);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `db_recover -c` as a failover runs it.
fn recover(vfs: &SharedVfs, home: &Path) -> libcore::Result<()> {
    let opts = RecoverEnvOptions {
        catastrophic: true,
        ..Default::default()
    };
    recover_env_on(vfs, home, opts).map(|_| ())
}

/// Recovers `bk` after a power loss and returns how many commits it holds
/// (a committed prefix of the source, or the test fails naming the cut).
fn recovered_prefix(bk: &Path, what: &str) -> u32 {
    if let Err(e) = recover(&os(), bk) {
        panic!("{what}: db_recover -c failed: {e}");
    }
    let c = contents(bk).unwrap_or_else(|e| panic!("{what}: open after recovery: {e}"));
    prefix_of(&c).unwrap_or_else(|| panic!("{what}: not a committed prefix"))
}

/// Cuts the power at every point of `db_recover -c` on a copy of `state`
/// and checks that a second recovery gives `want` commits.
fn recovery_survives_power_loss(state: &Path, scratch: &Path, root: &Path, want: u32, what: &str) {
    let probe_dir = root.join("probe");
    copy_dir(state, &probe_dir);
    let probe = CrashVfs::new(root);
    let shared: SharedVfs = probe.clone();
    recover(&shared, &probe_dir).unwrap();
    let total = probe.mutations();
    std::fs::remove_dir_all(&probe_dir).unwrap();
    for n in 0..total {
        copy_dir(state, scratch);
        let vfs = CrashVfs::new(root);
        vfs.crash_after(n);
        let shared: SharedVfs = vfs.clone();
        assert!(
            recover(&shared, scratch).is_err(),
            "{what}: cut {n} of {total}"
        );
        drop(shared);
        vfs.power_loss(n).unwrap();
        let got = recovered_prefix(scratch, &format!("{what}, recovery cut at {n}"));
        assert_eq!(got, want, "{what}, recovery cut at {n}");
    }
}

struct Setup {
    _d: tempfile::TempDir,
    src: std::path::PathBuf,
    /// The previous backup, pristine (outside the model).
    base: std::path::PathBuf,
    /// Under the `CrashVfs`.
    root: std::path::PathBuf,
    old: u32,
    new: u32,
}

/// A source with `old` commits backed up into `base`, then grown to `new`.
fn setup(old: u32, new: u32) -> Setup {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let base = d.path().join("base");
    let root = d.path().join("root");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&root).unwrap();
    grow_source(&src, 0, old);
    hot_backup(&os(), &src, &base, &BackupOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(prefix_of(&contents(&base).unwrap()), Some(old));
    grow_source(&src, old, new);
    assert_eq!(prefix_of(&contents(&src).unwrap()), Some(new));
    Setup {
        _d: d,
        src,
        base,
        root,
        old,
        new,
    }
}

/// Runs `opts` from `s.src` into a fresh copy of the previous backup at
/// `root/bk` once per mutating operation, cut there; returns the cut
/// states' outcomes (commits after recovery) and whether each left the
/// commit record of a half-finished move.
fn cut_everywhere(s: &Setup, opts: &BackupOptions, check_rerun: bool) -> Vec<(u32, bool)> {
    let bk = s.root.join("bk");
    copy_dir(&s.base, &bk);
    let probe = CrashVfs::new(&s.root);
    let shared: SharedVfs = probe.clone();
    hot_backup(&shared, &s.src, &bk, opts, &mut |_| {}).unwrap();
    let total = probe.mutations();
    assert!(total > 20, "the run mutates the target ({total})");
    let mut out = Vec::new();
    for n in 0..total {
        copy_dir(&s.base, &bk);
        let vfs = CrashVfs::new(&s.root);
        vfs.crash_after(n);
        let shared: SharedVfs = vfs.clone();
        let r = hot_backup(&shared, &s.src, &bk, opts, &mut |_| {});
        // The last operation of an update is giving back its lease in the
        // source's region (best effort: a lease that cannot be given back
        // goes with its process): a cut there stops nothing of the target.
        assert!(
            r.is_err() || n + 1 == total,
            "cut {n} of {total} stops the run"
        );
        drop(shared);
        vfs.power_loss(n).unwrap();
        // Every reader of the log (db_printlog, db_archive, recovery)
        // refuses a gap: whatever a trim left must be contiguous.
        let logs = libcore::testing::log::list_log_files(&os(), &bk).unwrap();
        assert!(
            logs.windows(2).all(|w| w[1] == w[0] + 1),
            "cut {n}: log files with a gap: {logs:?}"
        );
        let moving = matches!(
            backup_target::survey(&os(), &bk, &[]).unwrap().holds,
            backup_target::Holds::Moving
        );
        if moving || n % 3 == 0 {
            // The state as found, for the recovery-under-power-loss check.
            let st = s.root.join("state");
            copy_dir(&bk, &st);
            let want = {
                let tmp = s.root.join("tmp");
                copy_dir(&st, &tmp);
                let w = recovered_prefix(&tmp, &format!("cut {n}"));
                std::fs::remove_dir_all(&tmp).unwrap();
                w
            };
            let scratch = s.root.join("scratch");
            let what = format!("cut {n}");
            recovery_survives_power_loss(&st, &scratch, &s.root, want, &what);
        }
        let got = recovered_prefix(&bk, &format!("cut {n} of {total}"));
        out.push((got, moving));
        if check_rerun {
            // The next run is never refused because of what this one left.
            hot_backup(&os(), &s.src, &bk, opts, &mut |_| {})
                .unwrap_or_else(|e| panic!("cut {n}: the next run: {e}"));
            assert_eq!(prefix_of(&contents(&bk).unwrap()), Some(s.new), "cut {n}");
            assert!(!backup_target::staging(&bk).exists(), "cut {n}: leftovers");
        }
    }
    out
}

#[test]
fn a_full_backup_over_a_complete_one_recovers_to_the_old_or_the_new_at_every_cut() {
    let s = setup(60, 140);
    let outcomes = cut_everywhere(&s, &BackupOptions::default(), true);
    for (n, &(got, _)) in outcomes.iter().enumerate() {
        assert!(
            got == s.old || got == s.new,
            "cut {n}: recovered to {got} commits, neither the previous backup ({}) nor the new one ({})",
            s.old,
            s.new
        );
    }
    // The cuts reach every phase: before the move (the old backup), inside
    // it (a commit record) and after it (the new one).
    assert!(outcomes.iter().any(|o| o.0 == s.old));
    assert!(outcomes.iter().any(|o| o.1));
    assert!(outcomes.iter().any(|o| o.0 == s.new && !o.1));
}

#[test]
fn an_update_recovers_to_a_prefix_between_the_old_and_the_new_at_every_cut() {
    let s = setup(60, 220);
    let opts = BackupOptions {
        update: true,
        ..Default::default()
    };
    let outcomes = cut_everywhere(&s, &opts, true);
    for (n, &(got, moving)) in outcomes.iter().enumerate() {
        assert!(!moving, "cut {n}: an update moves nothing into place");
        assert!(
            (s.old..=s.new).contains(&got),
            "cut {n}: recovered to {got} commits, outside {}..={}",
            s.old,
            s.new
        );
    }
    assert!(outcomes.iter().any(|o| o.0 == s.new));
}
