//! The example application (`examples/ledger.rs`) run as a user would:
//! deposits and transfers, a refused overdraft that changes nothing,
//! reports from snapshots, and a hot backup that opens with the same
//! balances.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The example's binary, built by `cargo test` beside the test binaries.
fn ledger() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    let path = target.join("examples").join("ledger");
    assert!(
        path.exists(),
        "{}: missing (cargo build -p libcore --examples)",
        path.display()
    );
    path
}

fn run(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(ledger())
        .arg(home)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn ok(home: &Path, args: &[&str]) -> String {
    let (good, out, err) = run(home, args);
    assert!(good, "ledger {args:?}: {err}");
    out
}

#[test]
fn the_ledger_moves_money_whole_and_its_backup_agrees() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("books with spaces");
    ok(&home, &["deposit", "alice", "100"]);
    ok(&home, &["deposit", "bob", "5"]);
    ok(&home, &["transfer", "alice", "bob", "30"]);
    let before = ok(&home, &["balances"]);
    assert_eq!(before, "alice 70\nbob 35\ntotal 105\n");

    let (good, _, err) = run(&home, &["transfer", "bob", "alice", "1000"]);
    assert!(!good);
    assert_eq!(err, "ledger: bob: not enough money\n");
    assert_eq!(
        ok(&home, &["balances"]),
        before,
        "a refused transfer changed nothing"
    );

    let history = ok(&home, &["history", "alice"]);
    let amounts: Vec<&str> = history
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(amounts, ["-30", "100"], "newest first: {history}");

    let backup = d.path().join("backup");
    ok(&home, &["backup", backup.to_str().unwrap()]);
    assert_eq!(ok(&backup, &["balances"]), before);

    let (good, _, err) = run(&home, &["deposit", "carol", "-3"]);
    assert!(
        !good && err.contains("not a positive whole amount"),
        "{err}"
    );
}
