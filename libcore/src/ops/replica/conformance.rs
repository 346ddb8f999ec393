//! The conformance suite of `ReplicaStore`: one generic set of checks that
//! every implementation must pass, run by libcore's tests on `DirStore`
//! (also under the fault models) and by the `s3store` tests on a real
//! S3-compatible server. Test infrastructure, like the `testkit` crate, so
//! compiled only with the `testing` feature: nothing in
//! the engine uses it, and a check panics with a message saying which
//! promise was broken.
//!
//! Every check works under a namespace `ns` (a key prefix) of its own, so
//! several runs can share one store.

use super::framed::{self, Kind};
use super::store::{FileSum, ObjectMeta, ReplicaStore, Summer};
use crate::error::StoreFault;
use crate::storage::vfs::{OsVfs, Vfs};
use crate::test_support::Rng;
use std::path::Path;
use std::sync::Barrier;

/// How hard `run_all` pushes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size of the big file of `big_files` (a few tens of MiB exercises
    /// multipart uploads on object stores).
    pub big_bytes: usize,
    /// Rounds of each race.
    pub race_rounds: usize,
}

/// Every check, in order, under namespace `ns`. `racers` are handles on
/// the same store (separate clients, ideally) used by the racing threads;
/// `scratch` is an empty local directory for the big-file checks.
pub fn run_all(
    store: &dyn ReplicaStore,
    racers: &[&dyn ReplicaStore],
    ns: &str,
    scratch: &Path,
    opts: &Options,
) {
    assert!(!store.describe().is_empty(), "describe() is empty");
    round_trips(store, &format!("{ns}/rt"), scratch);
    listing(store, &format!("{ns}/ls"));
    create_only(store, &format!("{ns}/co"));
    compare_and_swap(store, &format!("{ns}/cas"));
    invalid_keys(store);
    framing(store, &format!("{ns}/fr"));
    big_files(store, &format!("{ns}/big"), scratch, opts.big_bytes);
    create_race(racers, &format!("{ns}/crace"), opts.race_rounds);
    replace_race(racers, &format!("{ns}/rrace"), opts.race_rounds);
}

fn get_bytes(store: &dyn ReplicaStore, key: &str) -> Option<Vec<u8>> {
    store
        .get(key)
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
        .map(|o| o.bytes)
}

fn put(store: &dyn ReplicaStore, key: &str, bytes: &[u8]) {
    store
        .put(key, bytes)
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

fn keys(list: &[ObjectMeta]) -> Vec<&str> {
    list.iter().map(|m| m.key.as_str()).collect()
}

/// put, get, overwrite, empty and binary objects, delete; a deleted or
/// never written object is reported missing by every read.
pub fn round_trips(store: &dyn ReplicaStore, ns: &str, scratch: &Path) {
    let k = format!("{ns}/k");
    assert_eq!(get_bytes(store, &k), None, "{k} before any put");
    put(store, &k, b"first");
    let first = store.get(&k).unwrap().expect("object just put");
    assert_eq!(first.bytes, b"first");
    put(store, &k, b"second, longer");
    let second = store.get(&k).unwrap().expect("object just put");
    assert_eq!(second.bytes, b"second, longer");
    assert_ne!(
        first.version, second.version,
        "a put must change the version"
    );

    let empty = format!("{ns}/empty");
    put(store, &empty, b"");
    assert_eq!(get_bytes(store, &empty), Some(Vec::new()), "empty object");
    let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let bin = format!("{ns}/deep/er/binary");
    put(store, &bin, &binary);
    assert_eq!(get_bytes(store, &bin), Some(binary));

    store
        .delete(&k)
        .unwrap_or_else(|e| panic!("delete {k}: {e}"));
    assert_eq!(get_bytes(store, &k), None, "{k} after delete");
    store
        .delete(&k)
        .unwrap_or_else(|e| panic!("deleting the missing {k} must succeed: {e}"));
    let scratch = scratch.join("deleted.dst");
    let got = store
        .get_to_file(&k, &OsVfs, &scratch)
        .unwrap_or_else(|e| panic!("get_to_file of the deleted {k}: {e}"));
    assert_eq!(got, None, "get_to_file of the deleted {k}");
    assert!(
        !scratch.exists(),
        "get_to_file of a missing object wrote a file"
    );
    let listed = store.list(ns).unwrap();
    assert!(
        !keys(&listed).contains(&k.as_str()),
        "deleted {k} still listed"
    );
}

/// list: sorted, sizes, whole-part prefixes, nothing outside the prefix.
pub fn listing(store: &dyn ReplicaStore, ns: &str) {
    let names = ["b/2", "a", "b/10", "b/1", "bb/1", "c/d/e"];
    for (i, n) in names.iter().enumerate() {
        put(store, &format!("{ns}/{n}"), &vec![b'x'; i * 3]);
    }
    let all = store.list(ns).unwrap();
    let mut want: Vec<ObjectMeta> = names
        .iter()
        .enumerate()
        .map(|(i, n)| ObjectMeta {
            key: format!("{ns}/{n}"),
            size: (i * 3) as u64,
        })
        .collect();
    want.sort();
    assert_eq!(all, want, "list({ns})");
    let b = store.list(&format!("{ns}/b")).unwrap();
    assert_eq!(
        keys(&b),
        vec![
            format!("{ns}/b/1").as_str(),
            &format!("{ns}/b/10"),
            &format!("{ns}/b/2")
        ],
        "list of a prefix takes whole key parts (bb/ is not under b)"
    );
    assert!(store.list(&format!("{ns}/nothing")).unwrap().is_empty());
    assert!(
        store.list(&format!("{ns}/a")).unwrap().is_empty(),
        "an object is not a prefix of itself"
    );
    let whole = store.list("").unwrap();
    for m in &all {
        assert!(whole.contains(m), "list(\"\") lacks {}", m.key);
    }
    assert!(
        whole.windows(2).all(|w| w[0].key < w[1].key),
        "list(\"\") not sorted"
    );
}

/// create is create-only and leaves an existing object alone.
pub fn create_only(store: &dyn ReplicaStore, ns: &str) {
    let k = format!("{ns}/lease");
    assert!(store.create(&k, b"one").unwrap(), "create of a new key");
    assert!(
        !store.create(&k, b"two").unwrap(),
        "create of an existing key"
    );
    assert_eq!(get_bytes(store, &k), Some(b"one".to_vec()));
    store.delete(&k).unwrap();
    assert!(store.create(&k, b"three").unwrap(), "create after delete");
    assert_eq!(get_bytes(store, &k), Some(b"three".to_vec()));
}

/// replace succeeds only against the current version.
pub fn compare_and_swap(store: &dyn ReplicaStore, ns: &str) {
    let k = format!("{ns}/lease");
    put(store, &k, b"epoch 1");
    let v1 = store.get(&k).unwrap().unwrap().version;
    assert!(store.replace(&k, b"epoch 2", &v1).unwrap(), "replace at v1");
    assert!(
        !store.replace(&k, b"epoch 2 again", &v1).unwrap(),
        "replace with a stale version"
    );
    let o2 = store.get(&k).unwrap().unwrap();
    assert_eq!(o2.bytes, b"epoch 2");
    assert_ne!(o2.version, v1);
    assert!(
        !store
            .replace(&format!("{ns}/missing"), b"x", &o2.version)
            .unwrap(),
        "replace of a missing key"
    );
    assert_eq!(get_bytes(store, &format!("{ns}/missing")), None);
    store.delete(&k).unwrap();
    assert!(
        !store.replace(&k, b"epoch 3", &o2.version).unwrap(),
        "replace of a deleted key"
    );
    assert_eq!(get_bytes(store, &k), None, "a failed replace created {k}");
}

/// Bad keys are refused with one `Invalid` line, by every operation.
pub fn invalid_keys(store: &dyn ReplicaStore) {
    for bad in [
        "", "/abs", "a/", "a//b", "../up", "a/./b", ".hidden", "sp ace",
    ] {
        let errs = [
            store.get(bad).err(),
            store.put(bad, b"x").err(),
            store.create(bad, b"x").err(),
            store.delete(bad).err(),
        ];
        for e in errs {
            let e = e.unwrap_or_else(|| panic!("key {bad:?} accepted"));
            assert_eq!(e.store_fault(), Some(StoreFault::Invalid), "{bad:?}: {e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
    let e = store.list("a/").unwrap_err();
    assert_eq!(e.store_fault(), Some(StoreFault::Invalid));
}

/// Framed objects read back whole; a torn one (written short behind the
/// framing's back, as a cut upload or a hand would) is refused naming the
/// store and the key.
pub fn framing(store: &dyn ReplicaStore, ns: &str) {
    let kind = Kind(*b"TEST");
    let k = format!("{ns}/seg/1");
    framed::put_framed(store, &k, kind, b"segment payload").unwrap();
    let (payload, version) = framed::get_framed(store, &k, kind).unwrap().unwrap();
    assert_eq!(payload, b"segment payload");
    assert_eq!(version, store.get(&k).unwrap().unwrap().version);
    let whole = framed::encode(kind, b"segment payload").unwrap();
    put(store, &k, &whole[..whole.len() - 3]);
    let e = framed::get_framed(store, &k, kind).unwrap_err();
    assert_eq!(e.store_fault(), Some(StoreFault::Corrupt), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}/{k}: torn object", store.describe())),
        "{msg}"
    );
    assert!(framed::create_framed(store, &format!("{ns}/lease"), kind, b"l").unwrap());
    assert_eq!(
        framed::get_framed(store, &format!("{ns}/missing"), kind).unwrap(),
        None
    );
}

/// Writes `size` deterministic pseudo-random bytes to `path`.
pub fn write_test_file(path: &Path, size: usize, seed: u64) -> FileSum {
    let mut rng = Rng::new(seed);
    let mut summer = Summer::new();
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        let n = (size - data.len()).min(1 << 16);
        let chunk = rng.bytes(n);
        summer.update(&chunk);
        data.extend_from_slice(&chunk);
    }
    std::fs::write(path, &data).unwrap();
    summer.sum()
}

/// put_file / get_to_file of a big file: the sums agree both ways, and the
/// object is byte for byte the file.
pub fn big_files(store: &dyn ReplicaStore, ns: &str, scratch: &Path, size: usize) {
    let src = scratch.join("big.src");
    let dst = scratch.join("big.dst");
    let want = write_test_file(&src, size, size as u64);
    let k = format!("{ns}/base/a.db");
    let put_sum = store
        .put_file(&k, &OsVfs, &src)
        .unwrap_or_else(|e| panic!("put_file {k}: {e}"));
    assert_eq!(put_sum, want, "put_file's sum");
    let listed = store.list(ns).unwrap();
    assert_eq!(
        listed,
        vec![ObjectMeta {
            key: k.clone(),
            size: size as u64
        }]
    );
    let got = store
        .get_to_file(&k, &OsVfs, &dst)
        .unwrap_or_else(|e| panic!("get_to_file {k}: {e}"))
        .expect("object just put");
    assert_eq!(got, want, "get_to_file's sum");
    got.verify(&store.describe(), &k, want).unwrap();
    assert!(
        std::fs::read(&src).unwrap() == std::fs::read(&dst).unwrap(),
        "the file read back differs"
    );
    // Overwriting with a small file leaves no trace of the big one.
    std::fs::write(&src, b"small").unwrap();
    store.put_file(&k, &OsVfs, &src).unwrap();
    assert_eq!(get_bytes(store, &k), Some(b"small".to_vec()));
    let _ = OsVfs.remove(&src);
    let _ = OsVfs.remove(&dst);
}

/// Runs `f(racer index, handle)` on one thread per racer, all released at
/// once, and returns their results in racer order.
fn race<T: Send>(
    racers: &[&dyn ReplicaStore],
    f: impl Fn(usize, &dyn ReplicaStore) -> T + Sync,
) -> Vec<T> {
    let barrier = Barrier::new(racers.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = racers
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i, *st)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer panicked"))
            .collect()
    })
}

/// Rounds of concurrent creators of one key: exactly one wins each round,
/// and the object holds the winner's bytes.
pub fn create_race(racers: &[&dyn ReplicaStore], ns: &str, rounds: usize) {
    assert!(racers.len() >= 2);
    for round in 0..rounds {
        let k = format!("{ns}/{round}");
        let won = race(racers, |i, st| {
            st.create(&k, format!("racer {i} round {round}").as_bytes())
                .unwrap_or_else(|e| panic!("create {k} by racer {i}: {e}"))
        });
        let winners: Vec<usize> = (0..won.len()).filter(|&i| won[i]).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of {} creators of {k} won",
            winners.len(),
            racers.len()
        );
        assert_eq!(
            get_bytes(racers[0], &k),
            Some(format!("racer {} round {round}", winners[0]).into_bytes()),
            "round {round}: the object is not the winner's"
        );
    }
}

/// Rounds of concurrent replacers holding the same version: exactly one
/// wins each round, and the object holds the winner's bytes.
pub fn replace_race(racers: &[&dyn ReplicaStore], ns: &str, rounds: usize) {
    assert!(racers.len() >= 2);
    for round in 0..rounds {
        let k = format!("{ns}/{round}");
        put(racers[0], &k, format!("base of round {round}").as_bytes());
        let v = racers[0].get(&k).unwrap().unwrap().version;
        let won = race(racers, |i, st| {
            st.replace(&k, format!("racer {i} round {round}").as_bytes(), &v)
                .unwrap_or_else(|e| panic!("replace {k} by racer {i}: {e}"))
        });
        let winners: Vec<usize> = (0..won.len()).filter(|&i| won[i]).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of {} replacers of {k} won",
            winners.len(),
            racers.len()
        );
        assert_eq!(
            get_bytes(racers[0], &k),
            Some(format!("racer {} round {round}", winners[0]).into_bytes()),
            "round {round}: the object is not the winner's"
        );
    }
}
