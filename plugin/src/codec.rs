//! A minimal little-endian binary writer and a bounds-checked reader, for the snapshot.
//!
//! Integer arrays are written as a length and their bytes, so reading one back is a copy, not a
//! parse. The reader never panics: anything short or malformed is a [`Truncated`] error.
//!
//! ```
//! use contact_ms365::codec::{Reader, Writer};
//! let mut w = Writer::default();
//! w.str("Zoë");
//! w.u32s(&[1, 2, 3]);
//! let bytes = w.into_bytes();
//! let mut r = Reader::new(&bytes);
//! assert_eq!(r.str().unwrap(), "Zoë");
//! assert_eq!(r.u32s().unwrap(), [1, 2, 3]);
//! assert!(r.is_empty());
//! assert!(Reader::new(&bytes[..11]).str().is_err(), "cut short");
//! ```

use std::fmt;

/// The input ended early, or a length or text in it is impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated;

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated or malformed data")
    }
}

impl std::error::Error for Truncated {}

/// Appends values to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

macro_rules! put_array {
    ($name:ident, $t:ty) => {
        /// An array: its length (u64), then every value little-endian.
        pub fn $name(&mut self, values: &[$t]) {
            self.u64(values.len() as u64);
            self.0.reserve(values.len() * std::mem::size_of::<$t>());
            for v in values {
                self.0.extend_from_slice(&v.to_le_bytes());
            }
        }
    };
}

impl Writer {
    /// A writer with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Writer {
        Writer(Vec::with_capacity(bytes))
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    /// A u32.
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// A u64.
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// Bytes with their length.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
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

/// Reads values back, in the order written.
#[derive(Debug)]
pub struct Reader<'a>(&'a [u8]);

macro_rules! get_array {
    ($name:ident, $t:ty) => {
        /// An array written by the writer's method of the same name.
        pub fn $name(&mut self) -> Result<Vec<$t>, Truncated> {
            const SIZE: usize = std::mem::size_of::<$t>();
            let n = self.length()?;
            let bytes = self.take(n.checked_mul(SIZE).ok_or(Truncated)?)?;
            Ok(bytes
                .chunks_exact(SIZE)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect())
        }
    };
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader(bytes)
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(Truncated)?;
        self.0 = rest;
        Ok(head)
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

    /// A length (u64) no larger than what is left to read, so a damaged length never makes a
    /// caller reserve absurd amounts of memory.
    pub fn length(&mut self) -> Result<usize, Truncated> {
        let n = usize::try_from(self.u64()?).map_err(|_| Truncated)?;
        if n > self.0.len() {
            return Err(Truncated);
        }
        Ok(n)
    }

    /// Bytes with their length.
    pub fn bytes(&mut self) -> Result<&'a [u8], Truncated> {
        let n = self.length()?;
        self.take(n)
    }

    /// A string with its length.
    pub fn str(&mut self) -> Result<&'a str, Truncated> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Truncated)
    }

    /// An optional string.
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, Truncated> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(Truncated),
        }
    }

    get_array!(u16s, u16);
    get_array!(u32s, u32);
    get_array!(u64s, u64);
}
