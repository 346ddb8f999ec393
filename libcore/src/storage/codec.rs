//! The only place that turns numbers into bytes and back, and the only CRC32
//! wrapper. Every on-disk integer is little-endian. Readers are bounds
//! checked: a short buffer is an `Err(Short)`, never a panic, because every
//! byte they see may come from a damaged file.

/// CRC32 (IEEE) of a byte slice, as stored in page and record headers.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// CRC32 over several slices in order, without concatenating them.
pub fn crc32_parts(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

pub fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads a fixed-width integer at `at`. Callers must have checked the
/// buffer length (page buffers have a fixed, validated size); use `Reader`
/// for variable-length data from disk.
pub fn get_u16(buf: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[at..at + 2]);
    u16::from_le_bytes(b)
}

pub fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

pub fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The buffer ended before a field did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short;

/// A bounds-checked cursor over untrusted bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        if end > self.buf.len() {
            return Err(Short);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    #[cfg(test)]
    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.bytes(1)?[0])
    }

    #[cfg(test)]
    pub fn u16(&mut self) -> Result<u16, Short> {
        Ok(get_u16(self.bytes(2)?, 0))
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        Ok(get_u32(self.bytes(4)?, 0))
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        Ok(get_u64(self.bytes(8)?, 0))
    }

    /// A u32 length followed by that many bytes.
    pub fn blob(&mut self) -> Result<&'a [u8], Short> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
}

/// An appending encoder, the mirror of `Reader`.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { buf: Vec::new() }
    }

    #[cfg(test)]
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    #[cfg(test)]
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// A u32 length followed by the bytes (see `Reader::blob`).
    pub fn blob(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_round_trips_writer_and_refuses_short_input() {
        let mut w = Writer::new();
        w.u8(7).u16(300).u32(70000).u64(1 << 40).blob(b"abc");
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u16(), Ok(300));
        assert_eq!(r.u32(), Ok(70000));
        assert_eq!(r.u64(), Ok(1 << 40));
        assert_eq!(r.blob(), Ok(&b"abc"[..]));
        assert_eq!(r.u8(), Err(Short));
        let huge = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(Reader::new(&huge).blob(), Err(Short));
    }
}
