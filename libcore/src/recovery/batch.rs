//! The records of the transaction redo is reading, held until its commit
//! record says they may be applied (a batch cut short by a crash is never
//! applied).
//!
//! Page records, nearly all of a log, are kept as their raw payload bytes
//! in one buffer that is reused from transaction to transaction: reading a
//! record allocates nothing, and a page image is copied out only if redo
//! applies it. The payloads were checked (`PageRecord::decode`) when read,
//! so a damaged record is reported where it is, committed or not.
//!
//! Memory is bounded whatever the transaction's size: a batch holds at
//! most `HOLD_LIMIT` bytes of records. One that outgrows it *spills*: its
//! bytes are let go and only the LSN of its first record is kept; at its
//! commit redo reads its records again from the log (a transaction's
//! records are contiguous in our log, so that is one sequential read of
//! the batch, `Redo::replay_spilled`). Transactions under the limit, nearly
//! all of them, never pay for the second read.

use crate::types::{Lsn, TxnId};
use crate::wal::{PageRecord, Record, RecordError};
use std::ops::Range;

/// Bytes of records a batch holds in memory at most before it spills.
pub(super) const HOLD_LIMIT: usize = 4 << 20;

enum Held {
    Page { lsn: Lsn, ty: u8, at: Range<usize> },
    Other(Lsn, Record),
}

impl Held {
    fn lsn(&self) -> Lsn {
        match self {
            Held::Page { lsn, .. } | Held::Other(lsn, _) => *lsn,
        }
    }
}

/// One held record, handed out in log order by `Batch::drain`.
pub(super) enum Pending<'a> {
    Page(Lsn, PageRecord<'a>),
    Other(Lsn, Record),
}

#[derive(Default)]
pub(super) struct Batch {
    /// The transaction the held records belong to.
    pub txn: TxnId,
    bytes: Vec<u8>,
    held: Vec<Held>,
    /// Payload bytes of the records held (page records and others).
    held_bytes: usize,
    /// Set when the batch spilled: the LSN of its first record. Nothing is
    /// held then; the records are read again from the log at the commit.
    spilled_from: Option<Lsn>,
    /// The most payload bytes held at once, over every batch.
    pub peak: usize,
}

impl Batch {
    /// Drops what is held (keeping the buffers' capacity).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.held.clear();
        self.held_bytes = 0;
        self.spilled_from = None;
    }

    /// Where the records of a spilled batch start in the log (`None`: the
    /// batch holds its records, `drain` hands them out).
    pub fn spilled_from(&self) -> Option<Lsn> {
        self.spilled_from
    }

    /// Counts `size` more bytes for the record at `lsn`; `false` when the
    /// batch is spilled (now or before) and must not hold the record.
    fn make_room(&mut self, lsn: Lsn, size: usize) -> bool {
        if self.spilled_from.is_some() {
            return false;
        }
        if self.held_bytes + size > HOLD_LIMIT {
            let first = self.held.first().map_or(lsn, Held::lsn);
            self.bytes.clear();
            self.held.clear();
            self.held_bytes = 0;
            self.spilled_from = Some(first);
            return false;
        }
        self.held_bytes += size;
        self.peak = self.peak.max(self.held_bytes);
        true
    }

    /// Holds a page record after checking its payload.
    pub fn push_page(&mut self, lsn: Lsn, ty: u8, payload: &[u8]) -> Result<(), RecordError> {
        PageRecord::decode(ty, payload)?;
        if !self.make_room(lsn, payload.len()) {
            return Ok(());
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.held.push(Held::Page {
            lsn,
            ty,
            at: start..self.bytes.len(),
        });
        Ok(())
    }

    /// Holds another record of the transaction; `size` is its payload's.
    pub fn push(&mut self, lsn: Lsn, rec: Record, size: usize) {
        if self.make_room(lsn, size) {
            self.held.push(Held::Other(lsn, rec));
        }
    }

    /// Hands every held record to `apply` in log order, then clears (a
    /// spilled batch hands out nothing: see `spilled_from`).
    pub fn drain<E>(
        &mut self,
        mut apply: impl FnMut(Pending<'_>) -> Result<(), E>,
        bad: impl Fn(Lsn, RecordError) -> E,
    ) -> Result<(), E> {
        for h in self.held.drain(..) {
            match h {
                Held::Page { lsn, ty, at } => {
                    let rec = PageRecord::decode(ty, &self.bytes[at]).map_err(|e| bad(lsn, e))?;
                    apply(Pending::Page(lsn, rec))?;
                }
                Held::Other(lsn, rec) => apply(Pending::Other(lsn, rec))?,
            }
        }
        self.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FileId, PageNo};

    /// A page image record of a page of `len` bytes: (type, payload).
    fn image(len: usize) -> (u8, Vec<u8>) {
        Record::PageImage {
            file_id: FileId(1),
            pgno: PageNo(3),
            image: vec![7u8; len],
        }
        .encode()
    }

    #[test]
    fn a_batch_over_the_limit_lets_its_bytes_go_and_keeps_its_first_lsn() {
        let mut b = Batch::default();
        let (ty, p) = image(65536);
        let n = HOLD_LIMIT / p.len() + 3;
        for i in 0..n {
            b.push_page(Lsn::new(1, 100 + i as u32), ty, &p).unwrap();
            assert!(b.held_bytes <= HOLD_LIMIT && b.bytes.len() <= HOLD_LIMIT);
        }
        assert_eq!(b.spilled_from(), Some(Lsn::new(1, 100)));
        assert!(b.held.is_empty() && b.bytes.is_empty());
        assert!(b.peak <= HOLD_LIMIT);
        let mut seen = 0;
        b.drain(
            |_| -> Result<(), ()> {
                seen += 1;
                Ok(())
            },
            |_, _| (),
        )
        .unwrap();
        assert_eq!(seen, 0);
        assert_eq!(b.spilled_from(), None, "drain ends the batch");
    }
}
