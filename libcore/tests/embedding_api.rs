//! The embedding API's promises to an application (issue 15): the
//! durability a transaction chooses is the durability it gets under a
//! power loss, `Env::flush` makes nosync commits durable without a
//! checkpoint, and a `Db` handle works only with the environment that gave
//! it out.

use libcore::{Durability, Env, EnvOptions, Error};
use std::path::Path;
use testkit::CrashVfs;

fn key(i: u32) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

/// Commits `k<i>` alone in one transaction with durability `d`.
fn put_one(env: &Env, db: &libcore::Db, i: u32, d: Durability) {
    let mut t = env.begin().unwrap();
    t.set_durability(d);
    t.put(db, &key(i), b"v").unwrap();
    t.commit().unwrap();
}

fn present(home: &Path) -> Vec<u32> {
    let env = Env::open(home, EnvOptions::default()).unwrap();
    let db = env.open_db("a.db").unwrap();
    let got = (0..10).filter(|&i| env.get(&db, &key(i)).unwrap().is_some());
    let got = got.collect();
    env.close().unwrap();
    got
}

/// Sync commits survive any power loss; nosync ones survive once
/// `flush` returned; a nosync commit after the last flush may be lost,
/// but only with everything after it (the log is a prefix), and it is
/// lost when the power loss keeps nothing unsynced: a nosync commit
/// really did not fsync. Readers see a nosync commit at once.
#[test]
fn each_transaction_gets_the_durability_it_chose() {
    for seed in 0..24u64 {
        let d = tempfile::tempdir().unwrap();
        let crash = CrashVfs::new(d.path());
        let opts = EnvOptions {
            vfs: Some(crash.clone()),
            ..EnvOptions::create()
        };
        let env = Env::open(d.path(), opts).unwrap();
        let mut t = env.begin().unwrap();
        let db = t.create_db("a.db", None).unwrap();
        t.commit().unwrap();
        put_one(&env, &db, 0, Durability::Sync);
        put_one(&env, &db, 1, Durability::NoSync);
        assert!(env.get(&db, &key(1)).unwrap().is_some(), "seen at once");
        put_one(&env, &db, 2, Durability::NoSync);
        env.flush().unwrap();
        put_one(&env, &db, 3, Durability::NoSync);
        put_one(&env, &db, 4, Durability::NoSync);
        drop(env); // the process dies with the machine
        if seed == 0 {
            crash.power_loss_untorn().unwrap();
        } else {
            crash.power_loss(seed).unwrap();
        }
        let got = present(d.path());
        assert!(got.starts_with(&[0, 1, 2]), "seed {seed}: {got:?}");
        assert!(
            got == [0, 1, 2] || got == [0, 1, 2, 3] || got == [0, 1, 2, 3, 4],
            "seed {seed}: not a prefix: {got:?}"
        );
        if seed == 0 {
            assert_eq!(got, [0, 1, 2], "nothing unsynced kept");
        }
    }
}

/// In an environment opened nosync, a transaction can still ask to be
/// durable when it returns.
#[test]
fn a_sync_transaction_in_a_nosync_environment_is_durable() {
    let d = tempfile::tempdir().unwrap();
    let crash = CrashVfs::new(d.path());
    let opts = EnvOptions {
        vfs: Some(crash.clone()),
        nosync: Some(true),
        ..EnvOptions::create()
    };
    let env = Env::open(d.path(), opts).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    put_one(&env, &db, 0, Durability::NoSync);
    put_one(&env, &db, 1, Durability::Sync);
    drop(env);
    crash.power_loss_untorn().unwrap();
    assert_eq!(present(d.path()), [0, 1]);
}

fn assert_misuse<T: std::fmt::Debug>(r: libcore::Result<T>, what: &str) {
    match r {
        Err(Error::Misuse(m)) => {
            assert!(m.contains("another open environment"), "{what}: {m}");
            assert!(!m.contains('\n'), "{what}: {m}");
        }
        other => panic!("{what}: {other:?}"),
    }
}

/// A `Db` from one environment used with another (even one opened later
/// on the same directory, where the same file id may name another
/// database) used to read and write whatever that id named there. Every
/// use fails now, and changes nothing.
#[test]
fn a_database_handle_works_only_with_its_own_environment() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let env_a = Env::open(a.path(), EnvOptions::create()).unwrap();
    let env_b = Env::open(b.path(), EnvOptions::create()).unwrap();
    let mut t = env_a.begin().unwrap();
    let db_a = t.create_db("a.db", None).unwrap();
    t.put(&db_a, b"k", b"from a").unwrap();
    t.commit().unwrap();
    let mut t = env_b.begin().unwrap();
    let db_b = t.create_db("a.db", None).unwrap();
    t.put(&db_b, b"k", b"from b").unwrap();
    t.commit().unwrap();

    assert_misuse(env_b.get(&db_a, b"k"), "get");
    let mut t = env_b.begin().unwrap();
    assert_misuse(t.put(&db_a, b"k", b"x"), "put");
    assert_misuse(t.get(&db_a, b"k"), "txn get");
    assert_misuse(t.delete(&db_a, b"k"), "delete");
    drop(t);
    assert_eq!(env_b.get(&db_b, b"k").unwrap().unwrap(), b"from b");
    // A clone is the same environment: the handle works there.
    let clone = env_a.clone();
    assert_eq!(clone.get(&db_a, b"k").unwrap().unwrap(), b"from a");
    clone.close().unwrap();

    // Reopened, the directory is another open environment.
    env_a.close().unwrap();
    let again = Env::open(a.path(), EnvOptions::default()).unwrap();
    assert_misuse(again.get(&db_a, b"k"), "after reopen");
    let db = again.open_db("a.db").unwrap();
    assert_eq!(again.get(&db, b"k").unwrap().unwrap(), b"from a");
    again.close().unwrap();
    env_b.close().unwrap();
}
