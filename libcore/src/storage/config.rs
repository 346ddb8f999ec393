//! The `DB_CONFIG` file of an environment home, in Berkeley DB 5.3 syntax.
//!
//! One directive per line. A trailing `\n` (and a `\r` before it) is
//! removed, leading whitespace is skipped, and a line that is then empty or
//! starts with `#` is ignored. The name is case-sensitive; tokens are split
//! on spaces and tabs. String directives (`set_data_dir`, `add_data_dir`,
//! `set_create_dir`, `set_lg_dir`) take the rest of the line after the
//! blanks that follow the name; unlike Berkeley DB we strip trailing
//! blanks from it (a deliberate difference). Numeric directives need
//! exactly two fields, `set_cachesize` four, `set_flags` two or three.
//!
//! Directives we use: `set_data_dir`, `add_data_dir`, `set_create_dir`,
//! `set_lg_dir`, `set_lg_max`, `set_cachesize`, `set_flags`
//! (`DB_TXN_NOSYNC` / `DB_TXN_WRITE_NOSYNC`), and our own `set_pagesize`,
//! `repl_store` (where `db_replicate` keeps its replica store: a
//! directory or `s3://bucket/prefix`), `repl_base_size` (megabytes of log
//! after which the master writes a new base) and `repl_lease_secs` (how
//! long the master's lease on the store lasts unrenewed).
//! Every other directive Berkeley DB 5.3 knows is accepted (it must carry
//! a value) and ignored, so an existing DB_CONFIG keeps working. Anything
//! else is an `Error::Config` naming the file, the line and the problem.
//!
//! Directories are recorded as written (relative to home unless absolute);
//! nothing is resolved or checked here.

use crate::error::{Error, Result};
use crate::storage::vfs::{OpenMode, OsVfs, Vfs};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The settings of a `DB_CONFIG` file that matter to us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `set_data_dir` and `add_data_dir` lines, in order.
    pub data_dirs: Vec<PathBuf>,
    /// `set_create_dir`.
    pub create_dir: Option<PathBuf>,
    /// `set_lg_dir` (the last one wins, as in Berkeley DB).
    pub lg_dir: Option<PathBuf>,
    /// `set_lg_max`; 0 means the default, as in Berkeley DB, and is kept as
    /// `None`.
    pub lg_max: Option<u32>,
    /// `set_pagesize` (ours, not Berkeley DB's): a power of two from 512 to
    /// 65536.
    pub page_size: Option<u32>,
    /// `set_cachesize gbytes bytes ncache`, in bytes.
    pub cache_size: Option<u64>,
    /// `set_flags DB_TXN_NOSYNC` or `set_flags DB_TXN_WRITE_NOSYNC` is on.
    pub nosync: bool,
    /// `repl_store` (ours): the replica store of `db_replicate`, as
    /// written (a directory; relative to the home unless absolute).
    pub repl_store: Option<PathBuf>,
    /// `repl_base_size` (ours): megabytes of log shipped since the newest
    /// base after which the master writes a new one.
    pub repl_base_mb: Option<u32>,
    /// `repl_lease_secs` (ours): how long the master's lease on the
    /// replica store lasts unrenewed.
    pub repl_lease_secs: Option<u32>,
}

/// Directive names of Berkeley DB 5.3 that we accept and ignore (checked
/// against db5.3_archive: each is known to its DB_CONFIG parser).
const IGNORED: &[&str] = &[
    "log_set_config",
    "mutex_set_align",
    "mutex_set_increment",
    "mutex_set_init",
    "mutex_set_max",
    "mutex_set_tas_spins",
    "rep_set_clockskew",
    "rep_set_config",
    "rep_set_limit",
    "rep_set_nsites",
    "rep_set_priority",
    "rep_set_request",
    "rep_set_timeout",
    "repmgr_set_ack_policy",
    "repmgr_site",
    "set_cache_max",
    "set_data_len",
    "set_intermediate_dir",
    "set_intermediate_dir_mode",
    "set_lg_bsize",
    "set_lg_filemode",
    "set_lg_regionmax",
    "set_lk_detect",
    "set_lk_max_lockers",
    "set_lk_max_locks",
    "set_lk_max_objects",
    "set_lk_partitions",
    "set_lk_tablesize",
    "set_lock_timeout",
    "set_memory_init",
    "set_memory_max",
    "set_metadata_dir",
    "set_mp_max_openfd",
    "set_mp_max_write",
    "set_mp_mmapsize",
    "set_mp_mtxcount",
    "set_mp_pagesize",
    "set_open_flags",
    "set_reg_timeout",
    "set_region_init",
    "set_shm_key",
    "set_tas_spins",
    "set_thread_count",
    "set_tmp_dir",
    "set_tx_max",
    "set_txn_timeout",
    "set_verbose",
];

/// The flags `set_flags` accepts in Berkeley DB 5.3 (compared without
/// regard to case, as it does).
const FLAGS: &[&str] = &[
    "DB_AUTO_COMMIT",
    "DB_CDB_ALLDB",
    "DB_DIRECT_DB",
    "DB_DSYNC_DB",
    "DB_MULTIVERSION",
    "DB_NOLOCKING",
    "DB_NOMMAP",
    "DB_NOPANIC",
    "DB_OVERWRITE",
    "DB_REGION_INIT",
    "DB_TIME_NOTGRANTED",
    "DB_TXN_NOSYNC",
    "DB_TXN_NOWAIT",
    "DB_TXN_SNAPSHOT",
    "DB_TXN_WRITE_NOSYNC",
    "DB_YIELDCPU",
    // Log flags that 5.3 still takes through set_flags.
    "DB_DIRECT_LOG",
    "DB_DSYNC_LOG",
    "DB_LOG_AUTOREMOVE",
    "DB_LOG_INMEMORY",
];

const INCORRECT: &str = "incorrect name-value pair";

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Leading whitespace as C's isspace() sees it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn parse_u32(field: &[u8]) -> std::result::Result<u32, String> {
    let s = String::from_utf8_lossy(field);
    let digits = s.strip_prefix('+').unwrap_or(&s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid numeric argument".to_string());
    }
    digits
        .parse::<u32>()
        .map_err(|_| "value greater than maximum (4294967295)".to_string())
}

impl Config {
    /// Reads `<home>/DB_CONFIG`; a missing file gives the defaults.
    pub fn read(home: &Path) -> Result<Config> {
        Config::read_with(&OsVfs, home)
    }

    /// As `read`, through a given file system.
    pub fn read_with(vfs: &dyn Vfs, home: &Path) -> Result<Config> {
        let path = home.join("DB_CONFIG");
        let file = match vfs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(Config::default()),
            Err(e) => return Err(e),
        };
        let len = usize::try_from(file.len()?)
            .map_err(|_| Error::corrupt(&path, crate::error::Location::Whole, "file too large"))?;
        let mut buf = vec![0; len];
        let n = file.read_at(&mut buf, 0)?;
        buf.truncate(n);
        Config::parse_bytes(&path, &buf)
    }

    /// Parses the text of a DB_CONFIG file; `path` is only for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        Config::parse_bytes(path, text.as_bytes())
    }

    /// As `parse`, for file contents that need not be UTF-8 (directory
    /// names are bytes on Unix).
    pub fn parse_bytes(path: &Path, text: &[u8]) -> Result<Config> {
        let mut cfg = Config::default();
        let (mut txn_nosync, mut write_nosync) = (false, false);
        let mut lines = text.split(|&b| b == b'\n').peekable();
        let mut line_no = 0;
        while let Some(raw) = lines.next() {
            if raw.is_empty() && lines.peek().is_none() {
                break; // after the last newline
            }
            line_no += 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            let err = |what: &str| Error::Config {
                path: path.to_path_buf(),
                line: line_no,
                text: String::from_utf8_lossy(line).into_owned(),
                what: what.to_string(),
            };
            let start = line
                .iter()
                .position(|&b| !is_space(b))
                .unwrap_or(line.len());
            let body = &line[start..];
            if body.is_empty() || body[0] == b'#' {
                continue;
            }
            let name_end = body.iter().position(|&b| is_blank(b)).unwrap_or(body.len());
            let name = &body[..name_end];
            // The string value: after the blanks that follow the name,
            // without trailing blanks.
            let value = {
                let rest = &body[name_end..];
                let s = rest
                    .iter()
                    .position(|&b| !is_blank(b))
                    .unwrap_or(rest.len());
                let rest = &rest[s..];
                let e = rest
                    .iter()
                    .rposition(|&b| !is_blank(b))
                    .map_or(0, |i| i + 1);
                &rest[..e]
            };
            let fields: Vec<&[u8]> = body
                .split(|&b| is_blank(b))
                .filter(|f| !f.is_empty())
                .collect();
            let dir = || -> Result<PathBuf> {
                if value.is_empty() {
                    return Err(err(INCORRECT));
                }
                Ok(PathBuf::from(OsStr::from_bytes(value)))
            };
            let number = || -> Result<u32> {
                if fields.len() != 2 {
                    return Err(err(INCORRECT));
                }
                parse_u32(fields[1]).map_err(|w| err(&w))
            };
            match name {
                b"set_data_dir" | b"add_data_dir" => cfg.data_dirs.push(dir()?),
                b"set_create_dir" => cfg.create_dir = Some(dir()?),
                b"set_lg_dir" => cfg.lg_dir = Some(dir()?),
                b"repl_store" => cfg.repl_store = Some(dir()?),
                b"repl_base_size" => {
                    let n = number()?;
                    if n == 0 {
                        return Err(err("the base size must be at least 1 (megabytes)"));
                    }
                    cfg.repl_base_mb = Some(n);
                }
                b"repl_lease_secs" => {
                    let n = number()?;
                    if n == 0 {
                        return Err(err("the lease must last at least 1 second"));
                    }
                    cfg.repl_lease_secs = Some(n);
                }
                b"set_lg_max" => cfg.lg_max = Some(number()?).filter(|&n| n != 0),
                b"set_pagesize" => {
                    let n = number()?;
                    if !crate::storage::page::valid_page_size(n as usize) {
                        return Err(err("page size must be a power of two from 512 to 65536"));
                    }
                    cfg.page_size = Some(n);
                }
                b"set_cachesize" => {
                    if fields.len() != 4 {
                        return Err(err(INCORRECT));
                    }
                    let gbytes = parse_u32(fields[1]).map_err(|w| err(&w))?;
                    let bytes = parse_u32(fields[2]).map_err(|w| err(&w))?;
                    parse_u32(fields[3]).map_err(|w| err(&w))?;
                    cfg.cache_size = Some(u64::from(gbytes) * (1 << 30) + u64::from(bytes));
                }
                b"set_flags" => {
                    let on = match fields.len() {
                        2 => true,
                        3 if fields[2].eq_ignore_ascii_case(b"on") => true,
                        3 if fields[2].eq_ignore_ascii_case(b"off") => false,
                        _ => return Err(err(INCORRECT)),
                    };
                    let flag = fields[1];
                    if !FLAGS
                        .iter()
                        .any(|f| flag.eq_ignore_ascii_case(f.as_bytes()))
                    {
                        return Err(err(INCORRECT));
                    }
                    if flag.eq_ignore_ascii_case(b"DB_TXN_NOSYNC") {
                        txn_nosync = on;
                    } else if flag.eq_ignore_ascii_case(b"DB_TXN_WRITE_NOSYNC") {
                        write_nosync = on;
                    }
                }
                _ if IGNORED.iter().any(|n| n.as_bytes() == name) => {
                    if fields.len() < 2 {
                        return Err(err(INCORRECT));
                    }
                }
                _ => return Err(err("unrecognized name-value pair")),
            }
        }
        cfg.nosync = txn_nosync || write_nosync;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("h/DB_CONFIG"), text)
    }

    /// The (line, text, what) of a Config error.
    fn fails(text: &str) -> (usize, String, String) {
        match parse(text) {
            Err(Error::Config {
                path,
                line,
                text,
                what,
            }) => {
                assert_eq!(path, Path::new("h/DB_CONFIG"));
                (line, text, what)
            }
            other => panic!("{:?}: expected a Config error, got {:?}", text, other),
        }
    }

    #[test]
    fn empty_blank_and_comment_lines_give_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(
            parse("\n   \n\t\n# set_lg_dir x\n   # indented comment\r\n").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn directories_are_recorded_as_written() {
        let c = parse(
            "set_data_dir d1\nadd_data_dir /abs/d2\n  set_create_dir\td1\nset_lg_dir logs\nset_lg_dir logs2\n",
        )
        .unwrap();
        assert_eq!(
            c.data_dirs,
            vec![PathBuf::from("d1"), PathBuf::from("/abs/d2")]
        );
        assert_eq!(c.create_dir, Some(PathBuf::from("d1")));
        assert_eq!(c.lg_dir, Some(PathBuf::from("logs2")), "last one wins");
    }

    #[test]
    fn string_values_take_the_rest_of_the_line_without_trailing_blanks() {
        // Berkeley DB would keep "my logs  " (deliberate difference 8).
        let c = parse("set_lg_dir   my logs  \t\r\nset_data_dir a\tb \n").unwrap();
        assert_eq!(c.lg_dir, Some(PathBuf::from("my logs")));
        assert_eq!(c.data_dirs, vec![PathBuf::from("a\tb")]);
        let (line, _, what) = fails("set_lg_dir   \n");
        assert_eq!((line, what.as_str()), (1, INCORRECT));
        assert_eq!(fails("set_create_dir").2, INCORRECT);
    }

    #[test]
    fn the_replica_store_and_its_base_size_are_read() {
        let c = parse("repl_store  /mnt/replica store \nrepl_base_size 512\n").unwrap();
        assert_eq!(c.repl_store, Some(PathBuf::from("/mnt/replica store")));
        assert_eq!(c.repl_base_mb, Some(512));
        let c = parse("repl_store s3://bkt/p\nrepl_lease_secs 5\n").unwrap();
        assert_eq!(c.repl_lease_secs, Some(5));
        assert_eq!(fails("repl_lease_secs 0\n").0, 1);
        assert_eq!(fails("repl_store\n").2, INCORRECT);
        assert_eq!(fails("repl_base_size 0\n").0, 1);
        assert_eq!(fails("repl_base_size x\n").2, "invalid numeric argument");
    }

    #[test]
    fn non_utf8_directory_names_are_kept() {
        let c = Config::parse_bytes(Path::new("DB_CONFIG"), b"set_lg_dir l\xff\n").unwrap();
        assert_eq!(c.lg_dir.unwrap().as_os_str().as_bytes(), b"l\xff");
    }

    #[test]
    fn names_are_case_sensitive() {
        let (line, text, what) = fails("set_lg_max 1000000\nSET_LG_MAX 1000000\n");
        assert_eq!(line, 2);
        assert_eq!(text, "SET_LG_MAX 1000000");
        assert_eq!(what, "unrecognized name-value pair");
        assert_eq!(fails("bogus_name x").2, "unrecognized name-value pair");
        // Not a Berkeley DB 5.3 name either.
        assert_eq!(fails("set_lk_max 5").2, "unrecognized name-value pair");
    }

    #[test]
    fn message_names_file_line_text_and_problem() {
        let e = parse("# c\n\nset_lg_max abc\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "h/DB_CONFIG: line 3: invalid numeric argument: set_lg_max abc"
        );
    }

    #[test]
    fn numeric_values_need_exactly_two_fields() {
        assert_eq!(parse("set_lg_max 1048576").unwrap().lg_max, Some(1048576));
        assert_eq!(
            parse("\t set_lg_max\t+2000000 ").unwrap().lg_max,
            Some(2000000)
        );
        assert_eq!(
            parse("set_lg_max 4294967295").unwrap().lg_max,
            Some(u32::MAX)
        );
        assert_eq!(parse("set_lg_max 0").unwrap().lg_max, None);
        assert_eq!(fails("set_lg_max").2, INCORRECT);
        assert_eq!(fails("set_lg_max 1 2").2, INCORRECT);
        assert_eq!(
            fails("set_lg_max 5 #c").2,
            INCORRECT,
            "no trailing comments"
        );
        assert!(fails("set_lg_max abc").2 == "invalid numeric argument");
        assert!(fails("set_lg_max 12abc").2 == "invalid numeric argument");
        assert!(fails("set_lg_max 0x100").2 == "invalid numeric argument");
        assert!(fails("set_lg_max -1").2 == "invalid numeric argument");
        assert_eq!(
            fails("set_lg_max 4294967296").2,
            "value greater than maximum (4294967295)"
        );
    }

    #[test]
    fn page_size_is_a_power_of_two_from_512_to_65536() {
        for ok in [512, 1024, 4096, 65536] {
            assert_eq!(
                parse(&format!("set_pagesize {}", ok)).unwrap().page_size,
                Some(ok)
            );
        }
        for bad in ["0", "256", "1000", "131072", "4095"] {
            assert_eq!(
                fails(&format!("set_pagesize {}", bad)).2,
                "page size must be a power of two from 512 to 65536"
            );
        }
        assert_eq!(fails("set_pagesize").2, INCORRECT);
    }

    #[test]
    fn cachesize_takes_gbytes_bytes_ncache() {
        let c = parse("set_cachesize 1 524288 1").unwrap();
        assert_eq!(c.cache_size, Some((1 << 30) + 524288));
        let c = parse("set_cachesize 4294967295 4294967295 4").unwrap();
        assert_eq!(c.cache_size, Some(4294967295 * (1 << 30) + 4294967295));
        assert_eq!(fails("set_cachesize 0 1000000").2, INCORRECT);
        assert_eq!(fails("set_cachesize 0 1000000 1 2").2, INCORRECT);
        assert!(fails("set_cachesize 0 x 1").2 == "invalid numeric argument");
    }

    #[test]
    fn set_flags_nosync_and_other_flags() {
        assert!(parse("set_flags DB_TXN_NOSYNC").unwrap().nosync);
        assert!(parse("set_flags DB_TXN_WRITE_NOSYNC on").unwrap().nosync);
        assert!(parse("set_flags db_txn_nosync ON").unwrap().nosync);
        assert!(
            !parse("set_flags DB_TXN_NOSYNC\nset_flags DB_TXN_NOSYNC off")
                .unwrap()
                .nosync
        );
        // Two separate flags, as in Berkeley DB: clearing one keeps the other.
        assert!(
            parse("set_flags DB_TXN_NOSYNC\nset_flags DB_TXN_WRITE_NOSYNC Off")
                .unwrap()
                .nosync
        );
        let c = parse(
            "set_flags DB_AUTO_COMMIT\nset_flags DB_REGION_INIT off\nset_flags DB_LOG_AUTOREMOVE\n",
        )
        .unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(fails("set_flags").2, INCORRECT);
        assert_eq!(fails("set_flags DB_BOGUS").2, INCORRECT);
        assert_eq!(fails("set_flags DB_TXN_NOSYNC maybe").2, INCORRECT);
        assert_eq!(fails("set_flags DB_TXN_NOSYNC on extra").2, INCORRECT);
    }

    #[test]
    fn other_berkeley_db_directives_are_accepted_and_ignored() {
        let text = "set_lk_max_locks 10000\nset_lk_max_objects 10000\nset_lk_max_lockers 100\n\
                    set_tx_max 200\nmutex_set_max 50000\nset_lg_bsize 65536\n\
                    set_lg_regionmax 262144\nset_verbose DB_VERB_RECOVERY on\n\
                    set_tmp_dir /tmp/x y\nset_lk_detect DB_LOCK_DEFAULT\n\
                    set_mp_mmapsize 1048576\nset_cache_max 0 1048576\n\
                    log_set_config DB_LOG_AUTO_REMOVE\nset_thread_count 8\n";
        assert_eq!(parse(text).unwrap(), Config::default());
        for name in IGNORED {
            assert!(parse(&format!("{} 1", name)).is_ok(), "{}", name);
            assert_eq!(fails(name).2, INCORRECT, "{} needs a value", name);
        }
    }

    #[test]
    fn read_missing_file_gives_defaults_and_present_file_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::read(dir.path()).unwrap(), Config::default());
        std::fs::write(dir.path().join("DB_CONFIG"), "set_lg_dir logs\nnope\n").unwrap();
        match Config::read(dir.path()) {
            Err(Error::Config { path, line, .. }) => {
                assert_eq!(path, dir.path().join("DB_CONFIG"));
                assert_eq!(line, 2);
            }
            other => panic!("{:?}", other),
        }
        std::fs::write(dir.path().join("DB_CONFIG"), "set_lg_dir logs\n").unwrap();
        assert_eq!(
            Config::read(dir.path()).unwrap().lg_dir,
            Some(PathBuf::from("logs"))
        );
    }
}
