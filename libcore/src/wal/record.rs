//! Log record payloads: the typed `Record` and its byte form (layout in the
//! module docs of `log`). Decoding bounds-checks every field and refuses
//! trailing bytes, because a payload may come from a damaged file.

use crate::storage::codec::{Reader, Short, Writer};
use crate::types::{FileId, Lsn, PageNo};
use std::fmt;

pub const TYPE_FILE_CREATE: u8 = 1;
pub const TYPE_FILE_REMOVE: u8 = 2;
pub const TYPE_FILE_RENAME: u8 = 3;
pub const TYPE_PAGE_IMAGE: u8 = 4;
pub const TYPE_PAGE_DELTA: u8 = 5;
pub const TYPE_COMMIT: u8 = 6;
pub const TYPE_CHECKPOINT: u8 = 7;
pub const TYPE_BULK_MARKER: u8 = 8;
/// Since log format version 2.
pub const TYPE_EPOCH: u8 = 9;

/// The body of a checkpoint record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Redo starts here after a crash.
    pub redo_lsn: Lsn,
    /// The checkpoint record before this one (`Lsn::ZERO` if none).
    pub last_ckp: Lsn,
    /// Unix seconds.
    pub timestamp: u64,
    /// The database files open at the checkpoint, with their names
    /// relative to the data directory.
    pub files: Vec<(FileId, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    FileCreate {
        file_id: FileId,
        page_size: u32,
        name: Vec<u8>,
    },
    FileRemove {
        file_id: FileId,
        name: Vec<u8>,
    },
    FileRename {
        file_id: FileId,
        old: Vec<u8>,
        new: Vec<u8>,
    },
    /// A full page (every byte; redo sets the page LSN and checksum).
    PageImage {
        file_id: FileId,
        pgno: PageNo,
        image: Vec<u8>,
    },
    /// After-images of byte ranges of a page whose LSN was `prev_lsn`.
    PageDelta {
        file_id: FileId,
        pgno: PageNo,
        prev_lsn: Lsn,
        ranges: Vec<(u32, Vec<u8>)>,
    },
    Commit {
        timestamp: u64,
    },
    Checkpoint(Checkpoint),
    /// Pages `first_new..=last` of the file were written straight to the data
    /// file by a bulk transaction and are not in the log.
    BulkMarker {
        file_id: FileId,
        first_new: PageNo,
        last: PageNo,
    },
    /// A promotion (db_replicate -M on a standby): from here on this
    /// environment is the primary of `epoch` of its replica store, whose
    /// history begins at `begins` and continues epoch `continues`.
    /// Outside any transaction, like a checkpoint.
    Epoch {
        epoch: u64,
        begins: Lsn,
        continues: u64,
    },
}

/// A payload that does not decode (its checksum held, so this is corruption
/// or a format mismatch, never a torn tail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(pub String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn short(name: &str) -> impl Fn(Short) -> RecordError + '_ {
    move |_| RecordError(format!("{} record is truncated", name))
}

/// Lengths in the format are u32; callers never build a field that large
/// (records are limited to `MAX_RECORD_LEN`, checked by the appender).
fn blob(w: &mut Writer, b: &[u8]) {
    w.blob(b);
}

impl Record {
    pub fn type_code(&self) -> u8 {
        match self {
            Record::FileCreate { .. } => TYPE_FILE_CREATE,
            Record::FileRemove { .. } => TYPE_FILE_REMOVE,
            Record::FileRename { .. } => TYPE_FILE_RENAME,
            Record::PageImage { .. } => TYPE_PAGE_IMAGE,
            Record::PageDelta { .. } => TYPE_PAGE_DELTA,
            Record::Commit { .. } => TYPE_COMMIT,
            Record::Checkpoint(_) => TYPE_CHECKPOINT,
            Record::BulkMarker { .. } => TYPE_BULK_MARKER,
            Record::Epoch { .. } => TYPE_EPOCH,
        }
    }

    /// The record's name as `db_printlog` prints it.
    pub fn name(&self) -> &'static str {
        type_name(self.type_code()).unwrap_or("unknown")
    }

    /// The type code and payload bytes.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut w = Writer::new();
        match self {
            Record::FileCreate {
                file_id,
                page_size,
                name,
            } => {
                w.u32(file_id.0).u32(*page_size);
                blob(&mut w, name);
            }
            Record::FileRemove { file_id, name } => {
                w.u32(file_id.0);
                blob(&mut w, name);
            }
            Record::FileRename { file_id, old, new } => {
                w.u32(file_id.0);
                blob(&mut w, old);
                blob(&mut w, new);
            }
            Record::PageImage {
                file_id,
                pgno,
                image,
            } => {
                w.u32(file_id.0).u32(pgno.0);
                blob(&mut w, image);
            }
            Record::PageDelta {
                file_id,
                pgno,
                prev_lsn,
                ranges,
            } => {
                w.u32(file_id.0)
                    .u32(pgno.0)
                    .u64(prev_lsn.to_u64())
                    .u32(ranges.len() as u32);
                for (off, bytes) in ranges {
                    w.u32(*off);
                    blob(&mut w, bytes);
                }
            }
            Record::Commit { timestamp } => {
                w.u64(*timestamp);
            }
            Record::Checkpoint(c) => {
                w.u64(c.redo_lsn.to_u64())
                    .u64(c.last_ckp.to_u64())
                    .u64(c.timestamp)
                    .u32(c.files.len() as u32);
                for (id, name) in &c.files {
                    w.u32(id.0);
                    blob(&mut w, name);
                }
            }
            Record::BulkMarker {
                file_id,
                first_new,
                last,
            } => {
                w.u32(file_id.0).u32(first_new.0).u32(last.0);
            }
            Record::Epoch {
                epoch,
                begins,
                continues,
            } => {
                w.u64(*epoch).u64(begins.to_u64()).u64(*continues);
            }
        }
        (self.type_code(), w.buf)
    }

    /// Size of the payload `encode` would produce, without building it.
    pub fn payload_len(&self) -> usize {
        const B: usize = 4; // blob length prefix
        match self {
            Record::FileCreate { name, .. } => 8 + B + name.len(),
            Record::FileRemove { name, .. } => 4 + B + name.len(),
            Record::FileRename { old, new, .. } => 4 + 2 * B + old.len() + new.len(),
            Record::PageImage { image, .. } => 8 + B + image.len(),
            Record::PageDelta { ranges, .. } => {
                20 + ranges.iter().map(|(_, b)| 4 + B + b.len()).sum::<usize>()
            }
            Record::Commit { .. } => 8,
            Record::Checkpoint(c) => {
                28 + c.files.iter().map(|(_, n)| 4 + B + n.len()).sum::<usize>()
            }
            Record::BulkMarker { .. } => 12,
            Record::Epoch { .. } => 24,
        }
    }

    /// Size of the framed record (header and payload): what `peek_lsn`
    /// takes.
    pub fn encoded_len(&self) -> usize {
        super::RECORD_HEADER_SIZE + self.payload_len()
    }

    pub fn decode(ty: u8, payload: &[u8]) -> Result<Record, RecordError> {
        let name =
            type_name(ty).ok_or_else(|| RecordError(format!("unknown record type {}", ty)))?;
        let e = short(name);
        let mut r = Reader::new(payload);
        let rec = match ty {
            TYPE_FILE_CREATE => Record::FileCreate {
                file_id: FileId(r.u32().map_err(&e)?),
                page_size: r.u32().map_err(&e)?,
                name: r.blob().map_err(&e)?.to_vec(),
            },
            TYPE_FILE_REMOVE => Record::FileRemove {
                file_id: FileId(r.u32().map_err(&e)?),
                name: r.blob().map_err(&e)?.to_vec(),
            },
            TYPE_FILE_RENAME => Record::FileRename {
                file_id: FileId(r.u32().map_err(&e)?),
                old: r.blob().map_err(&e)?.to_vec(),
                new: r.blob().map_err(&e)?.to_vec(),
            },
            // One decoder for page records, shared with redo's in-place
            // reading (`PageRecord`), so both accept exactly the same bytes.
            TYPE_PAGE_IMAGE | TYPE_PAGE_DELTA => {
                return Ok(PageRecord::decode(ty, payload)?.to_record());
            }
            TYPE_COMMIT => Record::Commit {
                timestamp: r.u64().map_err(&e)?,
            },
            TYPE_CHECKPOINT => {
                let redo_lsn = Lsn::from_u64(r.u64().map_err(&e)?);
                let last_ckp = Lsn::from_u64(r.u64().map_err(&e)?);
                let timestamp = r.u64().map_err(&e)?;
                let count = r.u32().map_err(&e)? as usize;
                let mut files = Vec::with_capacity(count.min(r.remaining() / 8));
                for _ in 0..count {
                    let id = FileId(r.u32().map_err(&e)?);
                    files.push((id, r.blob().map_err(&e)?.to_vec()));
                }
                Record::Checkpoint(Checkpoint {
                    redo_lsn,
                    last_ckp,
                    timestamp,
                    files,
                })
            }
            TYPE_EPOCH => Record::Epoch {
                epoch: r.u64().map_err(&e)?,
                begins: Lsn::from_u64(r.u64().map_err(&e)?),
                continues: r.u64().map_err(&e)?,
            },
            _ => Record::BulkMarker {
                file_id: FileId(r.u32().map_err(&e)?),
                first_new: PageNo(r.u32().map_err(&e)?),
                last: PageNo(r.u32().map_err(&e)?),
            },
        };
        no_trailing_bytes(name, &r)?;
        Ok(rec)
    }
}

/// A payload must be used up by its record's fields: bytes left over mean
/// the record is not what its type says.
fn no_trailing_bytes(name: &str, r: &Reader<'_>) -> Result<(), RecordError> {
    match r.remaining() {
        0 => Ok(()),
        n => Err(RecordError(format!("{name} record has {n} trailing bytes"))),
    }
}

/// A page record read in place from the bytes of its payload: what redo
/// needs, without copying a page image or a range it may not apply.
#[derive(Debug, Clone, Copy)]
pub enum PageRecord<'a> {
    Image {
        file_id: FileId,
        pgno: PageNo,
        image: &'a [u8],
    },
    Delta {
        file_id: FileId,
        pgno: PageNo,
        prev_lsn: Lsn,
        ranges: Ranges<'a>,
    },
}

impl<'a> PageRecord<'a> {
    /// The owned [`Record`] with the same fields (bytes copied).
    pub fn to_record(self) -> Record {
        match self {
            PageRecord::Image {
                file_id,
                pgno,
                image,
            } => Record::PageImage {
                file_id,
                pgno,
                image: image.to_vec(),
            },
            PageRecord::Delta {
                file_id,
                pgno,
                prev_lsn,
                ranges,
            } => Record::PageDelta {
                file_id,
                pgno,
                prev_lsn,
                ranges: ranges.map(|(o, b)| (o, b.to_vec())).collect(),
            },
        }
    }

    /// Whether records of type `ty` are page records.
    pub fn is_page_type(ty: u8) -> bool {
        ty == TYPE_PAGE_IMAGE || ty == TYPE_PAGE_DELTA
    }

    /// Decodes a `page_image` or `page_delta` payload with every check of
    /// `Record::decode` (the ranges are all checked here, before any is
    /// used); `ty` must be one of those two.
    pub fn decode(ty: u8, payload: &'a [u8]) -> Result<PageRecord<'a>, RecordError> {
        let name = type_name(ty).unwrap_or("unknown");
        let e = short(name);
        let mut r = Reader::new(payload);
        let file_id = FileId(r.u32().map_err(&e)?);
        let pgno = PageNo(r.u32().map_err(&e)?);
        let rec = match ty {
            TYPE_PAGE_IMAGE => PageRecord::Image {
                file_id,
                pgno,
                image: r.blob().map_err(&e)?,
            },
            TYPE_PAGE_DELTA => {
                let prev_lsn = Lsn::from_u64(r.u64().map_err(&e)?);
                let count = r.u32().map_err(&e)?;
                let start = r.pos();
                for _ in 0..count {
                    let off = r.u32().map_err(&e)?;
                    let bytes = r.blob().map_err(&e)?;
                    if u64::from(off) + bytes.len() as u64 > u64::from(u32::MAX) {
                        return Err(RecordError(format!(
                            "page_delta range at offset {} of {} bytes overflows",
                            off,
                            bytes.len()
                        )));
                    }
                }
                PageRecord::Delta {
                    file_id,
                    pgno,
                    prev_lsn,
                    ranges: Ranges {
                        rest: &payload[start..r.pos()],
                        count,
                    },
                }
            }
            _ => return Err(RecordError(format!("{} is not a page record", name))),
        };
        no_trailing_bytes(name, &r)?;
        Ok(rec)
    }
}

/// The (offset, after-image) ranges of a `page_delta`, already checked by
/// `PageRecord::decode`.
#[derive(Debug, Clone, Copy)]
pub struct Ranges<'a> {
    rest: &'a [u8],
    count: u32,
}

impl<'a> Iterator for Ranges<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<(u32, &'a [u8])> {
        if self.count == 0 {
            return None;
        }
        let mut r = Reader::new(self.rest);
        // Checked at decode: these cannot fail; stop rather than panic.
        let off = r.u32().ok()?;
        let bytes = r.blob().ok()?;
        self.rest = &self.rest[r.pos()..];
        self.count -= 1;
        Some((off, bytes))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.count as usize))
    }
}

/// The name of a record type code, `None` for codes this version does not
/// know.
pub fn type_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        TYPE_FILE_CREATE => "file_create",
        TYPE_FILE_REMOVE => "file_remove",
        TYPE_FILE_RENAME => "file_rename",
        TYPE_PAGE_IMAGE => "page_image",
        TYPE_PAGE_DELTA => "page_delta",
        TYPE_COMMIT => "commit",
        TYPE_CHECKPOINT => "checkpoint",
        TYPE_BULK_MARKER => "bulk_marker",
        TYPE_EPOCH => "epoch",
        _ => return None,
    })
}
