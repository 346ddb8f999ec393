//! A small application on libcore: a ledger of accounts that moves money
//! between them in transactions, reports from snapshots, and keeps its
//! environment tidy by itself.
//!
//! ```text
//! ledger HOME deposit ACCOUNT AMOUNT
//! ledger HOME transfer FROM TO AMOUNT
//! ledger HOME balances                 every account, and the total
//! ledger HOME history ACCOUNT          its movements, newest first
//! ledger HOME backup DIR               a hot backup of HOME into DIR
//! ```
//!
//! `balances.db` maps an account to its balance; `moves.db` holds every
//! movement under `ACCOUNT/SEQUENCE` (a counter kept in `moves.db`
//! itself, zero-padded, so the
//! B-tree's byte order is time order and an account's history is one key
//! range). A transfer changes two balances and records two moves in one
//! transaction: a report never sees half of one, and neither does
//! recovery after a crash.
//!
//! Run it: `cargo run -p libcore --example ledger -- /tmp/l deposit alice 10`.

use libcore::{Db, Durability, Env, EnvOptions, ErrorKind, Txn, Upkeep};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let [home, command, rest @ ..] = args else {
        return Err("usage: ledger HOME deposit|transfer|balances|history|backup ...".into());
    };
    let home = Path::new(home);
    std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
    let env = Env::open(
        home,
        EnvOptions {
            // A checkpoint every 16 MiB of log, and the log files no
            // longer needed removed (but any a running backup still needs).
            upkeep: Upkeep {
                checkpoint_log_bytes: Some(16 << 20),
                remove_unused_logs: true,
                ..Upkeep::default()
            },
            ..EnvOptions::create()
        },
    )
    .map_err(|e| e.to_string())?;
    let result = command_on(&env, command, rest);
    env.close().map_err(|e| e.to_string())?;
    result
}

fn command_on(env: &Env, command: &str, rest: &[String]) -> Result<(), String> {
    let (balances, moves) = databases(env).map_err(|e| e.to_string())?;
    match (command, rest) {
        ("deposit", [account, amount]) => {
            let account = parse_account(account)?;
            let amount = parse_amount(amount)?;
            let mut t = env.begin().map_err(|e| e.to_string())?;
            change(&mut t, &balances, &moves, account, amount as i64)?;
            t.commit().map_err(|e| e.to_string())?;
            Ok(())
        }
        ("transfer", [from, to, amount]) => {
            let (from, to) = (parse_account(from)?, parse_account(to)?);
            let amount = parse_amount(amount)? as i64;
            let mut t = env.begin().map_err(|e| e.to_string())?;
            if balance_in(&mut t, &balances, from)? < amount {
                return Err(format!("{from}: not enough money")); // t aborts when dropped
            }
            change(&mut t, &balances, &moves, from, -amount)?;
            change(&mut t, &balances, &moves, to, amount)?;
            t.commit().map_err(|e| e.to_string())?;
            Ok(())
        }
        ("balances", []) => {
            // One snapshot: the total is the sum at one commit.
            let snap = env.snapshot().map_err(|e| e.to_string())?;
            let mut total = 0i64;
            for pair in snap.iter(&balances).map_err(|e| e.to_string())? {
                let (account, value) = pair.map_err(|e| e.to_string())?;
                let n = decode(&value)?;
                total += n;
                println!("{} {n}", String::from_utf8_lossy(&account));
            }
            println!("total {total}");
            Ok(())
        }
        ("history", [account]) => {
            let snap = env.snapshot().map_err(|e| e.to_string())?;
            let prefix = format!("{account}/");
            let end = format!("{account}0"); // '0' is the byte after '/'
            for pair in snap
                .range(&moves, prefix.as_str()..end.as_str())
                .map_err(|e| e.to_string())?
                .rev()
            {
                let (key, value) = pair.map_err(|e| e.to_string())?;
                let seq = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                println!("{seq} {}", decode(&value)?);
            }
            Ok(())
        }
        ("backup", [dir]) => {
            // Everything committed so far is in the backup, whatever the
            // transactions chose: make it durable, then copy hot.
            env.flush().map_err(|e| e.to_string())?;
            let report = libcore::backup::hot_backup(
                env.vfs(),
                env.home(),
                Path::new(dir),
                &libcore::backup::BackupOptions::default(),
                &mut |_| {},
            )
            .map_err(|e| e.to_string())?;
            println!(
                "backed up {} files, {} bytes",
                report.files_copied, report.bytes_copied
            );
            Ok(())
        }
        _ => Err(format!("{command}: unknown command or wrong arguments")),
    }
}

/// The two databases, created on first use.
fn databases(env: &Env) -> libcore::Result<(Db, Db)> {
    match (env.open_db("balances.db"), env.open_db("moves.db")) {
        (Ok(b), Ok(m)) => Ok((b, m)),
        (Err(e), _) | (_, Err(e)) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => {
            let mut t = env.begin()?;
            let b = t.create_db("balances.db", None)?;
            let m = t.create_db("moves.db", None)?;
            t.commit()?;
            Ok((b, m))
        }
    }
}

/// Adds `delta` to `account`'s balance and records the move.
fn change(
    t: &mut Txn<'_>,
    balances: &Db,
    moves: &Db,
    account: &str,
    delta: i64,
) -> Result<(), String> {
    let now = balance_in(t, balances, account)?;
    t.put(
        balances,
        account.as_bytes(),
        (now + delta).to_string().as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let seq = next_sequence(t, moves)?;
    let key = format!("{account}/{seq:020}");
    t.put(moves, key.as_bytes(), delta.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    // A move is worth waiting for the disk: the default, said here.
    t.set_durability(Durability::Sync);
    Ok(())
}

/// The next movement number, kept in `moves.db` under `#next` (no
/// account's history range `NAME/`..`NAME0` holds it, as long as names
/// do not start with `#`, which `parse_account` refuses). Counted inside
/// the transaction, so two movements never share one, and an aborted one
/// gives its number back.
fn next_sequence(t: &mut Txn<'_>, moves: &Db) -> Result<u64, String> {
    let next = match t.get(moves, SEQUENCE_KEY).map_err(|e| e.to_string())? {
        Some(v) => decode(&v)? as u64,
        None => 1,
    };
    t.put(moves, SEQUENCE_KEY, (next + 1).to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(next)
}

const SEQUENCE_KEY: &[u8] = b"#next";

fn balance_in(t: &mut Txn<'_>, balances: &Db, account: &str) -> Result<i64, String> {
    match t
        .get(balances, account.as_bytes())
        .map_err(|e| e.to_string())?
    {
        Some(v) => decode(&v),
        None => Ok(0),
    }
}

fn decode(v: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("a stored amount is not a number: {v:?}"))
}

/// An account name: not empty, no `/` (the history key's separator) and
/// no leading `#` (the counter's key).
fn parse_account(s: &str) -> Result<&str, String> {
    if s.is_empty() || s.contains('/') || s.starts_with('#') {
        return Err(format!(
            "{s:?}: not an account name (empty, a '/', or a leading '#')"
        ));
    }
    Ok(s)
}

fn parse_amount(s: &str) -> Result<u64, String> {
    s.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s}: not a positive whole amount"))
}
