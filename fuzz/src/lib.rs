//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries
//! (`fuzz_targets/*.rs`, nightly) and a plain `cargo test` smoke run over
//! seeded random inputs (any toolchain). Each body feeds arbitrary bytes to
//! one parser of libcore (`redo`: turns them into a CRC-valid log and
//! recovers it, see `redo.rs`) and only requires that it returns, with a
//! value or an error: a panic, an endless loop or an unbounded allocation
//! is the bug (CONVENTIONS.md: nothing read from disk is trusted).

use libcore::testing::btree;
use libcore::testing::dump::{DumpReader, TextReader};
use libcore::testing::log::{LogCursor, OnBadRecord, Record};
use libcore::testing::pagestore::{MemStore, PageWrite};
use libcore::OsVfs;
use libcore::FileId;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};

mod redo;
pub use redo::redo;

/// Upper bound on items pulled from one input, so a parser that never
/// ends is caught as a hang rather than by the fuzzer's timeout alone.
const MAX_STEPS: usize = 100_000;

/// `Record::decode` on (first byte as the type, rest as the payload), a
/// re-encode round trip of whatever decodes, and the log cursor over the
/// bytes as a whole log file (behind a valid header when the first byte
/// is even, so the record framing is reached).
pub fn log_record(data: &[u8]) {
    if let Some((&ty, payload)) = data.split_first() {
        if let Ok(rec) = Record::decode(ty, payload) {
            let (t, p) = rec.encode();
            assert_eq!(Record::decode(t, &p).as_ref(), Ok(&rec));
            assert_eq!(p.len(), rec.payload_len());
        }
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bdbfuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut file = Vec::new();
    if data.first().is_some_and(|b| b % 2 == 0) {
        let h = libcore::testing::log::FileHeader {
            file_no: 1,
            lg_max: 1 << 20,
            env_id: 42,
            last_ckp: libcore::Lsn::ZERO,
        };
        file.extend_from_slice(&h.encode());
        file.extend_from_slice(&data[1..]);
    } else {
        file.extend_from_slice(data);
    }
    std::fs::write(dir.join("log.0000000001"), &file).unwrap();
    for policy in [OnBadRecord::EndOfLog, OnBadRecord::Fail] {
        if let Ok(mut cur) = LogCursor::open_with(OsVfs::shared(), &dir, policy) {
            for _ in 0..MAX_STEPS {
                match cur.next() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            let _ = cur.end();
            for _ in 0..MAX_STEPS {
                match cur.prev() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A valid 512-byte-page tree of 60 keys (meta page kept valid), with the
/// input XORed over its other pages and appended as extra pages; then
/// `btree::verify`, `btree::get` and a full `Scan`.
pub fn page(data: &[u8]) {
    const PS: usize = 512;
    let mut s = MemStore::new(PS);
    btree::create(&mut s, FileId(1)).unwrap();
    for i in 0..60u32 {
        let v = vec![i as u8; (i as usize * 13) % 700];
        btree::put(&mut s, format!("key{i:04}").as_bytes(), &v).unwrap();
    }
    let mut chunks = data.chunks(PS);
    let n = s.pages.len();
    for no in 1..n {
        let Some(chunk) = chunks.next() else { break };
        if let Ok(p) = s.page_mut(libcore::PageNo(no as u32)) {
            for (b, x) in p.iter_mut().zip(chunk) {
                *b ^= x;
            }
        }
    }
    for (i, chunk) in chunks.enumerate() {
        let mut p = chunk.to_vec();
        p.resize(PS, 0);
        if let Ok(dst) = s.page_new(libcore::PageNo((n + i) as u32)) {
            dst.copy_from_slice(&p);
        }
    }
    let _ = btree::verify(&s);
    for k in [&b"key0000"[..], b"key0031", b"key0059", b"", b"zzz"] {
        let _ = btree::get(&s, k);
    }
    if let Ok(mut scan) = btree::Scan::new(&s, None) {
        for _ in 0..MAX_STEPS {
            match scan.next(&s) {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
}

/// `DumpReader` (headers and pairs, every section) and `TextReader` over
/// the input.
pub fn dump(data: &[u8]) {
    let mut r = DumpReader::new(Cursor::new(data), "fuzz");
    'sections: for _ in 0..MAX_STEPS {
        match r.next_header() {
            Ok(Some(_)) => {}
            _ => break,
        }
        for _ in 0..MAX_STEPS {
            match r.next_pair() {
                Ok(Some(_)) => {}
                Ok(None) => continue 'sections,
                Err(_) => break 'sections,
            }
        }
    }
    let mut t = TextReader::new(Cursor::new(data), "fuzz");
    for _ in 0..MAX_STEPS {
        match t.next_pair() {
            Ok(Some(_)) => {}
            _ => break,
        }
    }
}

#[cfg(test)]
mod smoke {
    //! A few thousand seeded random inputs per target, biased towards
    //! valid-looking bytes (mutations of real records, pages and dumps),
    //! so any toolchain runs the targets: `cd fuzz && cargo test`.

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
        /// `seed` with a few random bytes flipped, cut or extended.
        fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
            let mut v = seed.to_vec();
            for _ in 0..1 + self.below(4) {
                match self.below(4) {
                    0 if !v.is_empty() => {
                        let i = self.below(v.len());
                        v[i] ^= 1 << self.below(8);
                    }
                    1 if !v.is_empty() => {
                        let i = self.below(v.len());
                        v[i] = self.next() as u8;
                    }
                    2 => v.truncate(self.below(v.len() + 1)),
                    _ => {
                        let n = self.below(16);
                        let extra = self.bytes(n);
                        v.extend(extra);
                    }
                }
            }
            v
        }
    }

    const RUNS: usize = 3000;

    fn seeds_log() -> Vec<Vec<u8>> {
        use libcore::testing::log::{Checkpoint, Record};
        use libcore::{FileId, Lsn, PageNo};
        let recs = [
            Record::FileCreate {
                file_id: FileId(1),
                page_size: 4096,
                name: b"a.db".to_vec(),
            },
            Record::FileRename {
                file_id: FileId(1),
                old: b"a".to_vec(),
                new: b"b".to_vec(),
            },
            Record::PageDelta {
                file_id: FileId(1),
                pgno: PageNo(3),
                prev_lsn: Lsn::new(1, 40),
                ranges: vec![(100, vec![1, 2, 3]), (200, vec![4])],
            },
            Record::Checkpoint(Checkpoint {
                redo_lsn: Lsn::new(1, 40),
                last_ckp: Lsn::ZERO,
                timestamp: 5,
                files: vec![(FileId(1), b"a.db".to_vec())],
            }),
            Record::Commit { timestamp: 9 },
        ];
        recs.iter()
            .map(|r| {
                let (t, mut p) = r.encode();
                p.insert(0, t);
                p
            })
            .collect()
    }

    #[test]
    fn log_record_smoke() {
        let mut rng = Rng(0x5eed_0001);
        let seeds = seeds_log();
        for i in 0..RUNS {
            let input = if i % 2 == 0 {
                let s = &seeds[rng.below(seeds.len())];
                rng.mutate(s)
            } else {
                let n = rng.below(300);
                rng.bytes(n)
            };
            super::log_record(&input);
        }
    }

    #[test]
    fn page_smoke() {
        let mut rng = Rng(0x5eed_0002);
        for i in 0..RUNS {
            // Sparse damage most of the time: a few random bytes of noise
            // over the valid tree, like a bit rot.
            let n = 512 * (1 + rng.below(12));
            let mut input = vec![0u8; n];
            let hits = if i % 4 == 0 { n } else { 1 + rng.below(6) };
            for _ in 0..hits {
                let at = rng.below(n);
                input[at] = rng.next() as u8;
            }
            super::page(&input);
        }
    }

    /// Inputs of the redo target: each is a whole environment recovered
    /// five ways, so fewer of them.
    const REDO_RUNS: usize = 1000;

    /// The redo target reads its input as a stream of choices, so plain
    /// random bytes are as good as any: every one of them is a valid log.
    #[test]
    fn redo_smoke() {
        let mut rng = Rng(0x5eed_0004);
        for _ in 0..REDO_RUNS {
            let n = rng.below(700);
            let input = rng.bytes(n);
            super::redo(&input);
        }
    }

    #[test]
    fn dump_smoke() {
        let mut rng = Rng(0x5eed_0003);
        let seeds: [&[u8]; 3] = [
            b"VERSION=3\nformat=bytevalue\ntype=btree\ndb_pagesize=4096\nHEADER=END\n 6b\n 76\nDATA=END\n",
            b"VERSION=3\nformat=print\ntype=btree\nHEADER=END\n k\\41\n v\nDATA=END\nVERSION=3\nformat=print\ntype=btree\nHEADER=END\nDATA=END\n",
            b"key\nvalue\nk\\5c\\00\nv\n",
        ];
        for _ in 0..RUNS {
            let s = seeds[rng.below(seeds.len())];
            let input = rng.mutate(s);
            super::dump(&input);
        }
    }
}
