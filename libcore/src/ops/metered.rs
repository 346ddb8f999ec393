//! A `Vfs` that tells a [`Progress`] about every byte written through it:
//! how a restore shows the base files a replica store streams into the
//! home (the store writes them; it knows nothing of progress). Everything
//! else passes straight through, so the fault models under it see the
//! same operations.

use crate::error::Result;
use crate::progress::Progress;
use crate::storage::vfs::{OpenMode, SharedVfs, VFile, Vfs};
use crate::storage::vfs_layer::{FileLayer, VfsLayer};
use std::path::Path;
use std::sync::Arc;

/// Writes through it advance `progress` by their length.
pub struct WriteMeter {
    inner: SharedVfs,
    progress: Arc<dyn Progress>,
}

impl WriteMeter {
    pub fn new(inner: SharedVfs, progress: Arc<dyn Progress>) -> WriteMeter {
        WriteMeter { inner, progress }
    }
}

struct MeteredFile {
    inner: Box<dyn VFile>,
    progress: Arc<dyn Progress>,
}

impl FileLayer for MeteredFile {
    fn lower(&self) -> &dyn VFile {
        &*self.inner
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        self.inner.write_at(buf, off)?;
        crate::progress::advance(Some(&*self.progress), buf.len() as u64);
        Ok(())
    }
}

impl VfsLayer for WriteMeter {
    fn lower(&self) -> &dyn Vfs {
        &*self.inner
    }

    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        Ok(Box::new(MeteredFile {
            inner: self.inner.open(path, mode)?,
            progress: self.progress.clone(),
        }))
    }
}
