//! The records of the transaction redo is reading, held until its commit
//! record says they may be applied (a batch cut short by a crash is never
//! applied).
//!
//! Page records, nearly all of a log, are kept as their raw payload bytes
//! in one buffer that is reused from transaction to transaction: reading a
//! record allocates nothing, and a page image is copied out only if redo
//! applies it. The payloads were checked (`PageRecord::decode`) when read,
//! so a damaged record is reported where it is, committed or not.

use crate::types::{Lsn, TxnId};
use crate::wal::{PageRecord, Record, RecordError};
use std::ops::Range;

enum Held {
    Page { lsn: Lsn, ty: u8, at: Range<usize> },
    Other(Lsn, Record),
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
}

impl Batch {
    /// Drops what is held (keeping the buffers' capacity).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.held.clear();
    }

    /// Holds a page record after checking its payload.
    pub fn push_page(&mut self, lsn: Lsn, ty: u8, payload: &[u8]) -> Result<(), RecordError> {
        PageRecord::decode(ty, payload)?;
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.held.push(Held::Page {
            lsn,
            ty,
            at: start..self.bytes.len(),
        });
        Ok(())
    }

    pub fn push(&mut self, lsn: Lsn, rec: Record) {
        self.held.push(Held::Other(lsn, rec));
    }

    /// Hands every held record to `apply` in log order, then clears.
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
        self.bytes.clear();
        Ok(())
    }
}
