//! Page versions for snapshots (snapshot.rs): which snapshots are alive,
//! at which install each one was taken, and the committed page images
//! later installs replaced that a live snapshot may still need (its
//! *pre-images*).
//!
//! Every install has a sequence number (the pool's generation after it).
//! A snapshot taken when the generation was `g` sees the state after
//! install `g`. When install `s` replaces page P while a snapshot older
//! than `s` is alive, the image it replaces is kept here under (P, `s`).
//! A snapshot at `g` reads P as the pre-image with the smallest `s > g`
//! (the first install after it that replaced P: that image was current
//! at `g`), else as the current committed page.
//!
//! Invariants:
//! * nothing is kept while no snapshot is alive, so writers pay nothing
//!   then (one read lock and an empty map per install);
//! * pre-images live only here, never in the cache, so write-back and
//!   eviction never see them and none ever reaches a file;
//! * a pre-image is dropped once every live snapshot is at or after its
//!   install (no one reads it any more); an image a snapshot would read
//!   is never dropped while that snapshot lives;
//! * an install skips a page whose newest pre-image is newer than every
//!   live snapshot: every snapshot alive reads that older pre-image, and
//!   the one the install would keep would serve none of them.
//!
//! A long-lived snapshot keeps every page replaced since it began (at most
//! one image per page for it alone, more while younger snapshots come and
//! go): memory grows with the writes it outlives, as LMDB's long readers
//! hold back page reuse. `Env::snapshot_stats` shows the count.

use super::cache::PageKey;
use super::{read, write};
use crate::storage::pagestore::PageBuf;
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

/// What a page was before the install that replaced it.
#[derive(Clone, Debug)]
pub(crate) enum PreImage {
    /// Its committed image.
    Image(PageBuf),
    /// It did not exist yet (past its file's committed end, or bulk mode
    /// wrote it straight to its file): no consistent snapshot reads it.
    Absent,
    /// Reading it to keep it failed (the error, as text): a snapshot that
    /// needs it fails with this instead of reading a newer image.
    Unreadable(String),
}

impl PreImage {
    fn bytes(&self) -> usize {
        match self {
            PreImage::Image(b) => b.len(),
            _ => 0,
        }
    }
}

#[derive(Default)]
struct State {
    /// Live snapshots: sequence number -> how many were taken at it.
    live: BTreeMap<u64, usize>,
    /// Pre-images by page, then by the install that replaced them.
    images: HashMap<PageKey, BTreeMap<u64, PreImage>>,
    /// The pages each install kept a pre-image of (for dropping them).
    by_install: BTreeMap<u64, Vec<PageKey>>,
    count: usize,
    bytes: usize,
}

/// Counts of the version map, for `Env::snapshot_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Snapshots alive now.
    pub live: usize,
    /// Replaced page images kept for them.
    pub pre_images: usize,
    /// Bytes those images hold.
    pub pre_image_bytes: usize,
}

/// A read-write lock: snapshot readers look pages up several million
/// times a second and must not queue behind each other (with a mutex they
/// did, and the committer, queued among them, starved); installs and
/// snapshot ends take the write side.
#[derive(Default)]
pub(crate) struct Versions {
    state: RwLock<State>,
}

impl Versions {
    /// Registers a snapshot at sequence `seq` (under the commit lock's
    /// read side, so no install runs meanwhile).
    pub(crate) fn register(&self, seq: u64) {
        *write(&self.state).live.entry(seq).or_insert(0) += 1;
    }

    /// Ends a snapshot at `seq`, and drops the pre-images no live snapshot
    /// needs any more.
    pub(crate) fn release(&self, seq: u64) {
        let mut st = write(&self.state);
        if let Some(n) = st.live.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                st.live.remove(&seq);
            }
        }
        let oldest = st.live.keys().next().copied();
        match oldest {
            None => {
                st.images.clear();
                st.by_install.clear();
                st.count = 0;
                st.bytes = 0;
            }
            Some(oldest) => drop_up_to(&mut st, oldest),
        }
    }

    /// The newest live snapshot's sequence, `None` when none is alive
    /// (then an install keeps nothing).
    pub(crate) fn newest_live(&self) -> Option<u64> {
        read(&self.state).live.keys().next_back().copied()
    }

    /// Whether an install must keep the image of `key` it replaces, with
    /// `newest` the newest live snapshot (see the module comment).
    pub(crate) fn wants(&self, key: PageKey, newest: u64) -> bool {
        let st = read(&self.state);
        match st.images.get(&key).and_then(|m| m.keys().next_back()) {
            Some(&s) => s <= newest,
            None => true,
        }
    }

    /// Keeps the pre-images install `seq` replaced (none if every snapshot
    /// ended meanwhile).
    pub(crate) fn keep(&self, seq: u64, pre: Vec<(PageKey, PreImage)>) {
        let mut st = write(&self.state);
        if st.live.is_empty() || pre.is_empty() {
            return;
        }
        let mut keys = Vec::with_capacity(pre.len());
        for (key, img) in pre {
            let added = img.bytes();
            if let Some(old) = st.images.entry(key).or_default().insert(seq, img) {
                st.bytes -= old.bytes();
                st.count -= 1;
            }
            st.bytes += added;
            st.count += 1;
            keys.push(key);
        }
        st.by_install.entry(seq).or_default().extend(keys);
    }

    /// What a snapshot at `seq` reads for `key` from here: the pre-image
    /// of the first install after `seq` that replaced it, if any.
    pub(crate) fn lookup(&self, key: PageKey, seq: u64) -> Option<PreImage> {
        let st = read(&self.state);
        let m = st.images.get(&key)?;
        m.range(seq + 1..).next().map(|(_, img)| img.clone())
    }

    pub(crate) fn stats(&self) -> SnapshotStats {
        let st = read(&self.state);
        SnapshotStats {
            live: st.live.values().sum(),
            pre_images: st.count,
            pre_image_bytes: st.bytes,
        }
    }
}

/// Drops the pre-images of installs at or before `oldest`: every live
/// snapshot is at or after them and reads something newer.
fn drop_up_to(st: &mut State, oldest: u64) {
    let newer = st.by_install.split_off(&(oldest + 1));
    let gone = std::mem::replace(&mut st.by_install, newer);
    for (seq, keys) in gone {
        for key in keys {
            let Some(m) = st.images.get_mut(&key) else {
                continue;
            };
            if let Some(img) = m.remove(&seq) {
                st.bytes -= img.bytes();
                st.count -= 1;
            }
            if m.is_empty() {
                st.images.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FileId, PageNo};
    use std::sync::Arc;

    fn img(b: u8) -> PreImage {
        PreImage::Image(Arc::new(vec![b; 8]))
    }

    fn byte(p: Option<PreImage>) -> Option<u8> {
        match p {
            Some(PreImage::Image(b)) => Some(b[0]),
            _ => None,
        }
    }

    /// A snapshot reads the pre-image of the first install after it;
    /// images go once no live snapshot is older than their install, and
    /// all go with the last snapshot.
    #[test]
    fn lookup_picks_the_first_install_after_the_snapshot_and_release_drops_the_rest() {
        let v = Versions::default();
        let p = (FileId(1), PageNo(3));
        v.keep(1, vec![(p, img(0))]);
        assert_eq!(v.stats().pre_images, 0, "nothing kept without a snapshot");
        v.register(1);
        v.register(3);
        v.keep(2, vec![(p, img(1))]);
        assert!(v.wants(p, 3));
        v.keep(5, vec![(p, img(4))]);
        assert!(!v.wants(p, 3), "image from install 5 serves every live one");
        assert_eq!(byte(v.lookup(p, 1)), Some(1));
        assert_eq!(byte(v.lookup(p, 3)), Some(4));
        assert!(v.lookup(p, 5).is_none());
        v.release(1);
        assert_eq!(v.stats().pre_images, 1);
        assert_eq!(byte(v.lookup(p, 3)), Some(4));
        v.release(3);
        assert_eq!(v.stats(), SnapshotStats::default());
    }
}
