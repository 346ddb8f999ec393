//! `make bench` keeps working: the benchmark driver (bench/main.rs) runs
//! its smallest size against the debug build and must print every row of
//! the table and write its plots. The numbers themselves are never looked
//! at here: timings belong in benchmarks, not in tests.

use crate::common::example_exe;
use std::process::Command;

#[test]
fn bench_tiny_prints_every_row_and_writes_its_plots() {
    let out = tempfile::tempdir().unwrap();
    let r = Command::new(example_exe("bench"))
        .args(["--size", "tiny", "--runs", "1", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "bench failed:\n{stdout}\n{stderr}");
    // Every section of the table has at least one row.
    for section in 1..=9 {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{section} "))),
            "no row for section {section}:\n{stdout}"
        );
    }
    for f in [
        "results.md",
        "results.tsv",
        "u-time.svg",
        "recovery-time.svg",
    ] {
        let p = out.path().join(f);
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        assert!(!text.is_empty(), "{} missing or empty", p.display());
    }
    let svg = std::fs::read_to_string(out.path().join("u-time.svg")).unwrap();
    assert!(svg.contains("<polyline"), "the -u plot has no line");
}
