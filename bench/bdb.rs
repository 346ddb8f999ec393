//! The Berkeley DB 5.3 anchor: its utilities (`db5.3_*`, package
//! db5.3-util) and `bench/bdb_env.c`, a small libdb program that builds and
//! writes environments the way our writer does (compiled here with `cc`
//! against libdb5.3-dev). When any of it is missing the anchors are left
//! out of the table, with the reason, rather than failing the whole run.

use crate::measure::{self, Sample};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Bdb {
    bdb_env: PathBuf,
}

impl Bdb {
    /// Compiles bdb_env.c into `out` and checks the utilities are there.
    pub fn find(source: &Path, out: &Path) -> Result<Bdb, String> {
        for tool in [
            "db5.3_hotbackup",
            "db5.3_recover",
            "db5.3_load",
            "db5.3_archive",
        ] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !found {
                return Err(format!("{tool} not found (apt-get install db5.3-util)"));
            }
        }
        let bdb_env = out.join("bdb_env");
        let built = Command::new("cc")
            .args(["-O2", "-pthread", "-o"])
            .arg(&bdb_env)
            .arg(source)
            .arg("-ldb-5.3")
            .output()
            .map_err(|e| format!("cc: {e} (a C compiler and libdb5.3-dev are needed)"))?;
        if !built.status.success() {
            return Err(format!(
                "cc {}: {}",
                source.display(),
                String::from_utf8_lossy(&built.stderr)
                    .lines()
                    .next()
                    .unwrap_or("failed")
            ));
        }
        Ok(Bdb { bdb_env })
    }

    pub fn env(&self) -> Command {
        Command::new(&self.bdb_env)
    }

    /// An environment at `home` with `records` environment records in a.db
    /// (1000 puts a transaction), then a checkpoint that removes the logs
    /// no longer needed: at rest, as `workload::build_ours` leaves ours.
    pub fn build(&self, home: &Path, records: u64) -> Result<Sample, String> {
        std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
        let s = measure::time(self.env().arg(home).arg("load").arg(records.to_string()))?;
        measure::time(self.env().arg(home).arg("ckp"))?;
        Ok(s)
    }

    /// Copies an environment for catastrophic recovery: `cp -r` without
    /// the region files, as an operator's copy of the files would be.
    pub fn copy_for_recovery(from: &Path, to: &Path) -> Result<(), String> {
        measure::time(Command::new("cp").arg("-r").arg(from).arg(to))?;
        for e in std::fs::read_dir(to).map_err(|e| format!("{}: {e}", to.display()))? {
            let e = e.map_err(|e| format!("{}: {e}", to.display()))?;
            if e.file_name().to_string_lossy().starts_with("__db.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}
