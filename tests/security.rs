//! The security rules: whatever a log record names, recovery creates,
//! removes and renames files only inside the environment's data
//! directory; a symbolic link planted in a copy target is never written
//! through; a private (0600) database stays private in every copy.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use libcore::testing::log::{Log, LogCursor, Record};
use libcore::OsVfs;
use libcore::{FileId, Lsn, TxnId};

use crate::common;
use crate::hostile::{assert_refused, assert_same, clean_env, crashed_env, run, snapshot};

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

/// Appends one committed transaction holding `recs` to the log of the
/// (closed or crashed) environment `home`; returns the LSN of its first
/// record.
fn append(home: &Path, recs: &[Record]) -> Lsn {
    let vfs = OsVfs::shared();
    let mut cur = LogCursor::open(vfs.clone(), home).unwrap();
    let end = cur.end().unwrap();
    let env_id = cur.env_id().unwrap();
    let log = Log::open_at(vfs, home, env_id, 1 << 20, end, Lsn::ZERO).unwrap();
    let commit = Record::Commit { timestamp: 1 };
    let mut all: Vec<(TxnId, &Record)> = recs.iter().map(|r| (TxnId(7777), r)).collect();
    all.push((TxnId(7777), &commit));
    let lsns = log.lock().append(&all).unwrap();
    log.flush(log.end()).unwrap();
    lsns[0]
}

/// The file id a.db carries in its meta page (what rename records name).
fn a_db_id(home: &Path) -> FileId {
    let bytes = fs::read(home.join("a.db")).unwrap();
    let ps = libcore::testing::page::Meta::probe(&bytes).unwrap() as usize;
    libcore::testing::page::Meta::decode(&bytes[..ps])
        .unwrap()
        .file_id
}

/// Each hostile name, in a create and in a rename record: db_recover and
/// db_recover -c refuse naming the log file and the record's offset, and
/// nothing outside the environment appears, changes or disappears.
#[test]
fn recovery_never_touches_a_file_outside_the_environment() {
    let root = common::home();
    let victim = root.path().join("victim.db");
    let abs = root.path().join("abs.db");
    let names: Vec<Vec<u8>> = vec![
        b"../victim.db".to_vec(),
        b"../escaped.db".to_vec(),
        abs.to_string_lossy().into_owned().into_bytes(),
        b"sub/dir.db".to_vec(),
        b"..".to_vec(),
        b"log.0000000001".to_vec(),
        b"__db.lock".to_vec(),
    ];
    for (i, name) in names.iter().enumerate() {
        for rename in [false, true] {
            let home = root.path().join(format!("env-{i}-{rename}"));
            crashed_env(&home);
            fs::create_dir_all(home.join("sub")).unwrap();
            fs::write(&victim, b"not yours").unwrap();
            let rec = if rename {
                Record::FileRename {
                    file_id: a_db_id(&home),
                    old: b"a.db".to_vec(),
                    new: name.clone(),
                }
            } else {
                Record::FileCreate {
                    file_id: FileId(50),
                    page_size: 4096,
                    name: name.clone(),
                }
            };
            let at = append(&home, &[rec]);
            let outside = snapshot(root.path());
            for args in [&["-c"][..], &[][..]] {
                let mut a: Vec<&std::ffi::OsStr> = args.iter().map(os).collect();
                a.extend([os("-h"), home.as_os_str()]);
                let r = run("db_recover", &a);
                assert_refused(
                    "db_recover",
                    &r,
                    &[
                        &libcore::testing::log::log_name(at.file),
                        &format!("offset {}", at.offset),
                        "not a plain name",
                    ],
                );
                // Nothing outside the environment (nor in it, but for the
                // lock and region) changed.
                assert_same(&outside, &snapshot(root.path()), &r.stderr);
            }
            assert_eq!(fs::read(&victim).unwrap(), b"not yours");
            assert!(!root.path().join("escaped.db").exists());
            assert!(!abs.exists());
            assert!(home.join("a.db").exists());
        }
    }
}

/// A symbolic link planted in a copy target under a database's or a log's
/// name is never written through: db_hotbackup refuses the directory,
/// db_copy replaces the link by the copy (rename of its temporary file),
/// and the file the link points at is unchanged.
#[test]
fn symlinks_in_a_target_are_never_followed_for_writing() {
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    let secret = root.path().join("secret");
    fs::write(&secret, b"keep me").unwrap();
    for name in ["a.db", "log.0000000008"] {
        let bk = root.path().join(format!("bk-{name}"));
        fs::create_dir(&bk).unwrap();
        std::os::unix::fs::symlink(&secret, bk.join(name)).unwrap();
        let r = run(
            "db_hotbackup",
            &[os("-h"), home.as_os_str(), os("-b"), bk.as_os_str()],
        );
        assert_refused("db_hotbackup", &r, &[name, "belongs to no environment"]);
        assert!(fs::symlink_metadata(bk.join(name))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&secret).unwrap(), b"keep me");

        let cp = root.path().join(format!("cp-{name}"));
        fs::create_dir(&cp).unwrap();
        std::os::unix::fs::symlink(&secret, cp.join(name)).unwrap();
        let r = run(
            "db_copy",
            &[
                os("-h"),
                home.as_os_str(),
                os("-t"),
                cp.as_os_str(),
                os(name),
            ],
        );
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(fs::read(&secret).unwrap(), b"keep me");
        let m = fs::symlink_metadata(cp.join(name)).unwrap();
        assert!(m.file_type().is_file(), "{name}: the link was replaced");
        assert_eq!(
            fs::read(cp.join(name)).unwrap(),
            fs::read(home.join(name)).unwrap()
        );
    }
}

/// A 0600 database stays 0600 in a db_copy copy and in a hot backup, and
/// after the backup's recovery.
#[test]
fn a_private_database_stays_private_in_every_copy() {
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    fs::set_permissions(home.join("a.db"), fs::Permissions::from_mode(0o600)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let cp = root.path().join("cp");
    fs::create_dir(&cp).unwrap();
    let r = run(
        "db_copy",
        &[
            os("-h"),
            home.as_os_str(),
            os("-t"),
            cp.as_os_str(),
            os("a.db"),
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(mode(&cp.join("a.db")), 0o600);

    let bk = root.path().join("bk");
    let r = run(
        "db_hotbackup",
        &[os("-h"), home.as_os_str(), os("-b"), bk.as_os_str()],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(mode(&bk.join("a.db")), 0o600);
    let r = run(
        "db_hotbackup",
        &[
            os("-u"),
            os("-h"),
            home.as_os_str(),
            os("-b"),
            bk.as_os_str(),
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(mode(&bk.join("a.db")), 0o600);
    let r = run("db_recover", &[os("-c"), os("-h"), bk.as_os_str()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(mode(&bk.join("a.db")), 0o600);
    assert_eq!(mode(&home.join("a.db")), 0o600);
}
