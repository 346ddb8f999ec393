//! The workload of tests/writer.rs, shared with the tests that check what
//! it wrote: transaction `j` puts `k<j>` = `value(j)` into a.db and sets
//! `last` = j in b.db.

pub fn key(j: u64) -> Vec<u8> {
    format!("k{j:010}").into_bytes()
}

pub fn value(j: u64) -> Vec<u8> {
    let len = if j.is_multiple_of(9) {
        6000
    } else {
        20 + (j % 200) as usize
    };
    (0..len).map(|i| (j as usize * 7 + i) as u8).collect()
}
