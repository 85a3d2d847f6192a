//! A minimal little-endian binary writer and a bounds-checked reader, for the snapshot, both
//! streaming: a 100,000-contact snapshot is written and read through a small buffer, never held
//! whole in memory beside the data it holds. Both keep a CRC-32 of every byte that passed.
//!
//! Integer arrays are written as a length and their bytes, so reading one back is a copy, not a
//! parse. The reader never panics and never reserves more than what is left of its input:
//! anything short or malformed is a [`Truncated`] error.
//!
//! ```
//! use contact_ms365::codec::{Reader, Writer};
//! let mut w = Writer::default();
//! w.str("Zoë");
//! w.u32s(&[1, 2, 3]);
//! let (bytes, crc) = w.finish().unwrap();
//! let mut r = Reader::new(&bytes);
//! assert_eq!(r.str().unwrap(), "Zoë");
//! assert_eq!(r.u32s().unwrap(), [1, 2, 3]);
//! assert_eq!((r.left(), r.crc()), (0, crc));
//! assert!(Reader::new(&bytes[..11]).str().is_err(), "cut short");
//! ```

use std::{
    fmt,
    io::{self, BufRead, Write},
};

/// The input ended early, could not be read, or a length or text in it is impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated;

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated or malformed data")
    }
}

impl std::error::Error for Truncated {}

/// Bytes gathered before they go to the sink.
const CHUNK: usize = 256 * 1024;

/// Appends values to a buffer that goes to a sink every 256 KiB (or stays in memory,
/// without a sink). Writing never fails on the spot: the first error of the sink is kept and
/// returned by [`Writer::finish`].
#[derive(Default)]
pub struct Writer<'a> {
    buf: Vec<u8>,
    sink: Option<&'a mut dyn Write>,
    crc: crc32fast::Hasher,
    error: Option<io::Error>,
}

macro_rules! put_array {
    ($name:ident, $t:ty) => {
        /// An array: its length (u64), then every value little-endian.
        pub fn $name(&mut self, values: &[$t]) {
            self.u64(values.len() as u64);
            for chunk in values.chunks(CHUNK / std::mem::size_of::<$t>()) {
                self.buf.reserve(std::mem::size_of_val(chunk));
                for v in chunk {
                    self.buf.extend_from_slice(&v.to_le_bytes());
                }
                self.spill();
            }
        }
    };
}

impl<'a> Writer<'a> {
    /// A writer that streams to `sink`.
    pub fn to(sink: &'a mut dyn Write) -> Writer<'a> {
        Writer {
            buf: Vec::with_capacity(CHUNK * 2),
            sink: Some(sink),
            ..Writer::default()
        }
    }

    fn spill(&mut self) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        if self.buf.len() < CHUNK {
            return;
        }
        self.crc.update(&self.buf);
        if self.error.is_none()
            && let Err(e) = sink.write_all(&self.buf)
        {
            self.error = Some(e);
        }
        self.buf.clear();
    }

    /// Sends what is left to the sink; returns the bytes not sent (all of them without a sink)
    /// and the CRC-32 of everything written, or the sink's first error.
    pub fn finish(mut self) -> io::Result<(Vec<u8>, u32)> {
        self.crc.update(&self.buf);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.sink.take() {
            Some(sink) => {
                sink.write_all(&self.buf)?;
                Ok((Vec::new(), self.crc.finalize()))
            }
            None => Ok((std::mem::take(&mut self.buf), self.crc.finalize())),
        }
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Bytes with their length.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        for chunk in v.chunks(CHUNK) {
            self.buf.extend_from_slice(chunk);
            self.spill();
        }
    }

    /// Bytes without their length (the reader must know it).
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
        self.spill();
    }

    /// A string with its length.
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    /// An optional string.
    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    put_array!(u16s, u16);
    put_array!(u32s, u32);
    put_array!(u64s, u64);
}

/// Reads values back, in the order written, from a slice or a stream of known length.
pub struct Reader<'a> {
    src: Box<dyn BufRead + 'a>,
    left: u64,
    crc: crc32fast::Hasher,
    scratch: Vec<u8>,
}

macro_rules! get_array {
    ($name:ident, $t:ty) => {
        /// An array written by the writer's method of the same name.
        pub fn $name(&mut self) -> Result<Vec<$t>, Truncated> {
            const SIZE: usize = std::mem::size_of::<$t>();
            let n = self.length_of(SIZE)?;
            let mut out = Vec::with_capacity(n);
            let mut missing = n;
            while missing > 0 {
                let part = missing.min(CHUNK / SIZE);
                let bytes = self.take(part * SIZE)?;
                out.extend(
                    bytes
                        .chunks_exact(SIZE)
                        .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default())),
                );
                missing -= part;
            }
            Ok(out)
        }
    };
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader::from_stream(bytes, bytes.len() as u64)
    }

    /// A reader of the next `len` bytes of `src`.
    pub fn from_stream(src: impl BufRead + 'a, len: u64) -> Reader<'a> {
        Reader {
            src: Box::new(src),
            left: len,
            crc: crc32fast::Hasher::new(),
            scratch: Vec::new(),
        }
    }

    /// Bytes not read yet.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// CRC-32 of every byte read so far.
    pub fn crc(&self) -> u32 {
        self.crc.clone().finalize()
    }

    /// The next `n` bytes (valid until the next read).
    pub fn raw(&mut self, n: usize) -> Result<&[u8], Truncated> {
        self.take(n)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Truncated> {
        if n as u64 > self.left {
            return Err(Truncated);
        }
        self.scratch.resize(n, 0);
        self.src
            .read_exact(&mut self.scratch)
            .map_err(|_| Truncated)?;
        self.left -= n as u64;
        self.crc.update(&self.scratch);
        Ok(&self.scratch)
    }

    /// Reads (and counts in the CRC) everything but the last `keep` bytes.
    pub fn skip_to_last(&mut self, keep: u64) -> Result<(), Truncated> {
        while self.left > keep {
            let n = (self.left - keep).min(CHUNK as u64) as usize;
            self.take(n)?;
        }
        Ok(())
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.take(1)?[0])
    }

    /// A u32.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| Truncated)?,
        ))
    }

    /// A u64.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| Truncated)?,
        ))
    }

    /// A count (u64) of items of `size` bytes that fit in what is left, so a damaged count
    /// never makes a caller reserve absurd amounts of memory.
    fn length_of(&mut self, size: usize) -> Result<usize, Truncated> {
        let n = self.u64()?;
        if n.checked_mul(size.max(1) as u64)
            .is_none_or(|bytes| bytes > self.left)
        {
            return Err(Truncated);
        }
        usize::try_from(n).map_err(|_| Truncated)
    }

    /// A count of items of at least one byte each (see [`Reader::u32s`] for arrays).
    pub fn length(&mut self) -> Result<usize, Truncated> {
        self.length_of(1)
    }

    /// Bytes with their length (valid until the next read).
    pub fn bytes(&mut self) -> Result<&[u8], Truncated> {
        let n = self.length()?;
        self.take(n)
    }

    /// A string with its length (valid until the next read).
    pub fn str(&mut self) -> Result<&str, Truncated> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Truncated)
    }

    /// An optional string.
    pub fn opt_str(&mut self) -> Result<Option<String>, Truncated> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(|s| Some(s.to_owned())),
            _ => Err(Truncated),
        }
    }

    get_array!(u16s, u16);
    get_array!(u32s, u32);
    get_array!(u64s, u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_and_in_memory_writes_agree_and_read_back() {
        let big: Vec<u32> = (0..200_000).collect();
        let write = |w: &mut Writer| {
            w.opt_str(Some("a"));
            w.opt_str(None);
            w.u32s(&big);
            w.u16s(&[7, 8]);
            w.u64s(&[u64::MAX]);
            w.bytes(&[1; 300_000]);
        };
        let mut memory = Writer::default();
        write(&mut memory);
        let (bytes, crc) = memory.finish().unwrap();
        let mut file = Vec::new();
        let mut streamed = Writer::to(&mut file);
        write(&mut streamed);
        let (rest, crc2) = streamed.finish().unwrap();
        assert!(rest.is_empty());
        assert_eq!((&file, crc2), (&bytes, crc));
        assert_eq!(crc, crc32fast::hash(&bytes));

        let mut r = Reader::from_stream(io::BufReader::new(&bytes[..]), bytes.len() as u64);
        assert_eq!(r.opt_str().unwrap().as_deref(), Some("a"));
        assert_eq!(r.opt_str().unwrap(), None);
        assert_eq!(r.u32s().unwrap(), big);
        assert_eq!(r.u16s().unwrap(), [7, 8]);
        assert_eq!(r.u64s().unwrap(), [u64::MAX]);
        assert_eq!(r.bytes().unwrap().len(), 300_000);
        assert_eq!((r.left(), r.crc()), (0, crc));
    }

    #[test]
    fn damaged_lengths_are_errors_not_allocations() {
        let mut w = Writer::default();
        w.u64(u64::MAX / 2);
        w.u32(1);
        let (bytes, _) = w.finish().unwrap();
        assert_eq!(Reader::new(&bytes).u32s(), Err(Truncated));
        assert_eq!(Reader::new(&bytes).bytes().map(<[u8]>::len), Err(Truncated));
        assert_eq!(Reader::new(&bytes).u64s(), Err(Truncated));
        let mut r = Reader::new(&bytes[..3]);
        assert_eq!(r.u32(), Err(Truncated));
        assert_eq!(
            r.left(),
            3,
            "nothing is consumed by a read that cannot be done"
        );
    }

    #[test]
    fn a_failing_sink_is_reported_at_the_end() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Full;
        let mut w = Writer::to(&mut sink);
        w.bytes(&vec![0; CHUNK * 3]);
        assert_eq!(w.finish().unwrap_err().to_string(), "disk full");
    }
}
