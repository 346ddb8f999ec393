//! What long operations tell a `Progress` (issue 14, part 3): each phase
//! in its order, a total that is the bytes there are to copy or replay,
//! advances that add up to the bytes actually copied or replayed, and
//! calls coarse enough to cost nothing (once per chunk or per MiB of log,
//! never per page or record). The tools draw their bars from exactly
//! these calls, so a total or an advance that is wrong here is a bar that
//! lies to an operator waiting on a backup.

use libcore::backup::{hot_backup, BackupOptions};
use libcore::copy::{copy_into, CopyOptions};
use libcore::load::{self, LoadOptions, OneSection};
use libcore::progress::{Phase, Progress, ProgressRead, STEP};
use libcore::recover::{recover_env, RecoverEnvOptions};
use libcore::replica::master::{Master, MasterOptions};
use libcore::replica::restore::{self, Target};
use libcore::replica::{DirStore, ReplicaStore};
use libcore::testing::progress::{Call, Recorder};
use libcore::{Env, EnvOptions, OsVfs, SharedVfs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn os() -> SharedVfs {
    OsVfs::shared()
}

/// Bytes copied per call at most (libcore's copy chunk).
const CHUNK: u64 = 1 << 20;

/// An environment at `home` with a.db and b.db of about 3 MiB between
/// them over many small log files, a checkpoint, then more commits after
/// it (so redo has log to replay); closed.
fn environment(home: &Path) {
    std::fs::create_dir_all(home).unwrap();
    let mut o = EnvOptions::create();
    o.lg_max = Some(256 * 1024);
    let env = Env::open(home, o).unwrap();
    let mut t = env.begin().unwrap();
    let a = t.create_db("a.db", None).unwrap();
    let b = t.create_db("b.db", Some(512)).unwrap();
    t.commit().unwrap();
    for round in 0..2u32 {
        for chunk in 0..20u32 {
            let mut t = env.begin().unwrap();
            for i in 0..100u32 {
                let k = format!("k{round}-{chunk:03}-{i:04}");
                t.put(&a, k.as_bytes(), &[b'a'; 600]).unwrap();
                t.put(&b, k.as_bytes(), &[b'b'; 150]).unwrap();
            }
            t.commit().unwrap();
        }
        if round == 0 {
            env.checkpoint().unwrap();
        }
    }
    env.close().unwrap();
}

/// The bytes of a log file's records (the newest file is preallocated:
/// zeros follow them).
fn log_bytes(p: &Path) -> u64 {
    u64::from(libcore::testing::log::records_end(&os(), p).unwrap())
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn files(dir: &Path, pick: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| pick(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    out.sort();
    out
}

fn is_log(name: &str) -> bool {
    name.starts_with("log.")
}

fn is_db(name: &str) -> bool {
    name.ends_with(".db")
}

fn names(phases: &[(Phase, Option<u64>, u64)]) -> Vec<Phase> {
    phases.iter().map(|p| p.0).collect()
}

/// Every phase with a total advanced by exactly that total: nothing
/// changed under the operation, so all there was is what it did.
fn each_phase_reaches_its_total(rec: &Recorder) {
    for (phase, total, done) in rec.phases() {
        if let Some(total) = total {
            assert_eq!(done, total, "{phase}: advances against the total");
        }
    }
}

fn ends_with_finish(rec: &Recorder) {
    assert_eq!(rec.calls().last(), Some(&Call::Finish), "{:?}", rec.calls());
}

/// How many advance calls `phase` made.
fn advances_in(rec: &Recorder, phase: Phase) -> usize {
    let mut current = None;
    let mut n = 0;
    for c in rec.calls() {
        match c {
            Call::Start(p, _) => current = Some(p),
            Call::Advance(_) if current == Some(phase) => n += 1,
            _ => {}
        }
    }
    n
}

#[test]
fn a_full_backup_reports_databases_logs_and_redo_in_full() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("env");
    let bk = d.path().join("bk");
    environment(&home);
    let rec = Arc::new(Recorder::default());
    let opts = BackupOptions {
        progress: Some(rec.clone() as Arc<dyn Progress>),
        ..Default::default()
    };
    let report = hot_backup(&os(), &home, &bk, &opts, &mut |_| {}).unwrap();

    let phases = rec.phases();
    assert_eq!(
        names(&phases),
        [Phase::CopyDatabases, Phase::CopyLogs, Phase::Redo]
    );
    let dbs: u64 = files(&home, is_db).iter().map(|p| size(p)).sum();
    assert_eq!(phases[0].1, Some(dbs), "the databases' sizes");
    // The logs from the checkpoint's file on, and redo over the log after
    // the checkpoint: both less than the whole log, more than nothing.
    let logs: u64 = files(&home, is_log).iter().map(|p| size(p)).sum();
    let copied_logs = phases[1].1.unwrap();
    assert!(
        copied_logs > 0 && copied_logs <= logs,
        "{copied_logs} of {logs}"
    );
    let redo = phases[2].1.unwrap();
    assert!(redo > 0 && redo < copied_logs, "{redo} of {copied_logs}");
    each_phase_reaches_its_total(&rec);
    assert_eq!(report.bytes_copied, dbs + copied_logs);
    ends_with_finish(&rec);
    // Coarse calls: at most a chunk each, and redo advances per MiB.
    assert!(rec.largest_advance() <= CHUNK);
    assert!(advances_in(&rec, Phase::Redo) as u64 <= redo / STEP + 1);
}

#[test]
fn an_update_reports_the_new_log_and_its_redo() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("env");
    let bk = d.path().join("bk");
    environment(&home);
    hot_backup(&os(), &home, &bk, &BackupOptions::default(), &mut |_| {}).unwrap();
    let logs_before: u64 = files(&home, is_log).iter().map(|p| log_bytes(p)).sum();
    {
        let env = Env::open(&home, EnvOptions::create()).unwrap();
        let a = env.open_db("a.db").unwrap();
        for i in 0..30u32 {
            let mut t = env.begin().unwrap();
            t.put(&a, format!("new{i:04}").as_bytes(), &[b'n'; 20_000])
                .unwrap();
            t.commit().unwrap();
        }
        env.close().unwrap();
    }
    let logs_after: u64 = files(&home, is_log).iter().map(|p| log_bytes(p)).sum();
    let rec = Arc::new(Recorder::default());
    let opts = BackupOptions {
        update: true,
        progress: Some(rec.clone() as Arc<dyn Progress>),
        ..Default::default()
    };
    let report = hot_backup(&os(), &home, &bk, &opts, &mut |_| {}).unwrap();
    let phases = rec.phases();
    assert_eq!(names(&phases), [Phase::CopyLogs, Phase::Redo]);
    // Exactly the log written since the full backup.
    assert_eq!(phases[0].1, Some(logs_after - logs_before));
    assert_eq!(report.bytes_copied, logs_after - logs_before);
    each_phase_reaches_its_total(&rec);
    ends_with_finish(&rec);
}

#[test]
fn recovery_reports_the_log_it_replays() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("env");
    environment(&home);
    let rec = Recorder::default();
    let opts = RecoverEnvOptions {
        catastrophic: true,
        progress: Some(&rec),
        ..Default::default()
    };
    recover_env(&home, opts).unwrap();
    let phases = rec.phases();
    assert_eq!(names(&phases), [Phase::Redo]);
    // Catastrophic: every log byte after the first file's header.
    let logs: u64 = files(&home, is_log).iter().map(|p| size(p)).sum();
    let total = phases[0].1.unwrap();
    assert!(total < logs && logs - total < 100, "{total} of {logs}");
    each_phase_reaches_its_total(&rec);
    ends_with_finish(&rec);
    assert!(advances_in(&rec, Phase::Redo) as u64 <= total / STEP + 1);
}

#[test]
fn a_copy_of_several_files_reports_their_sum() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("env");
    let to = d.path().join("to");
    environment(&home);
    std::fs::create_dir(&to).unwrap();
    let mut sources = files(&home, is_db);
    sources.extend(files(&home, is_log));
    let rec = Recorder::default();
    let opts = CopyOptions {
        progress: Some(&rec),
        ..Default::default()
    };
    let reports = copy_into(&os(), &sources, &to, true, opts, |_| {}).unwrap();
    let phases = rec.phases();
    assert_eq!(names(&phases), [Phase::Copy]);
    let sizes: u64 = sources.iter().map(|p| size(p)).sum();
    assert_eq!(phases[0].1, Some(sizes));
    assert_eq!(reports.iter().map(|r| r.bytes).sum::<u64>(), sizes);
    each_phase_reaches_its_total(&rec);
    ends_with_finish(&rec);
    assert!(rec.largest_advance() <= CHUNK);
}

#[test]
fn a_load_reports_its_input_then_its_commit() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("dump.txt");
    let mut text = String::from("VERSION=3\nformat=print\ntype=btree\nHEADER=END\n");
    for i in 0..20_000u32 {
        text.push_str(&format!(" key{i:06}\n value-{i:06}-{}\n", "v".repeat(40)));
    }
    text.push_str("DATA=END\n");
    std::fs::write(&input, &text).unwrap();
    let home = d.path().join("env");
    std::fs::create_dir(&home).unwrap();

    let rec = Recorder::default();
    // As db_load does: the input's phase is the reader's.
    rec.start(Phase::Load, Some(size(&input)));
    let f = std::fs::File::open(&input).unwrap();
    let reader = std::io::BufReader::with_capacity(1 << 16, ProgressRead::new(f, &rec));
    let (_, mut section) = OneSection::open(reader, "dump.txt").unwrap();
    let opts = LoadOptions {
        input_name: "dump.txt".into(),
        progress: Some(&rec),
        ..Default::default()
    };
    let report = load::load(&home, "a.db", &mut section, opts).unwrap();
    assert_eq!(report.loaded, 20_000);
    let phases = rec.phases();
    assert_eq!(names(&phases), [Phase::Load, Phase::Commit]);
    assert_eq!(phases[1], (Phase::Commit, None, 0));
    each_phase_reaches_its_total(&rec);
    ends_with_finish(&rec);
    // One advance per buffer refill, not per line.
    assert!(advances_in(&rec, Phase::Load) as u64 <= size(&input) / (1 << 16) + 2);
}

#[test]
fn a_base_and_its_restore_report_their_bytes() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("env");
    environment(&home);
    let store_dir = d.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store: Arc<dyn ReplicaStore> = Arc::new(DirStore::open(os(), &store_dir).unwrap());
    let dbs: u64 = files(&home, is_db).iter().map(|p| size(p)).sum();

    let written = Arc::new(Recorder::default());
    let opts = MasterOptions {
        digest_every: None,
        progress: Some(written.clone() as Arc<dyn Progress>),
        ..Default::default()
    };
    let mut m = Master::open(&os(), &home, store.clone(), &opts, &mut |_| {}).unwrap();
    for _ in 0..2000 {
        m.tick(&mut |_| {}).unwrap();
        if m.status().newest_base != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_ne!(m.status().newest_base, 0, "no base was written");
    drop(m);
    let phases = written.phases();
    assert_eq!(names(&phases), [Phase::WriteBase]);
    assert_eq!(phases[0].1, Some(dbs));
    each_phase_reaches_its_total(&written);
    ends_with_finish(&written);

    let fetched = Arc::new(Recorder::default());
    let out = d.path().join("restored");
    std::fs::create_dir(&out).unwrap();
    let b = restore::choose(&*store, Target::Newest).unwrap().unwrap();
    let progress = Some(fetched.clone() as Arc<dyn Progress>);
    restore::restore(
        &os(),
        &*store,
        &out,
        &b,
        Target::Newest,
        progress,
        &mut |_| {},
    )
    .unwrap();
    let phases = fetched.phases();
    assert_eq!(
        names(&phases),
        [Phase::FetchBase, Phase::FetchLog, Phase::Redo]
    );
    assert_eq!(phases[0].1, Some(dbs));
    // The log fetched is the log the restore holds (from the base's start
    // file on).
    let logs: u64 = files(&out, is_log).iter().map(|p| size(p)).sum();
    assert_eq!(phases[1], (Phase::FetchLog, None, logs));
    each_phase_reaches_its_total(&fetched);
    ends_with_finish(&fetched);
}
