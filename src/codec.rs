//! The binary layout of the persisted formats (the agent snapshot's parts and the manager's
//! state): big-endian integers, `u32`-length-prefixed byte strings, a `0`/`1` tag before each
//! optional value, times as seconds + nanoseconds within [`crate::time`]'s storable range.
//!
//! Decoding never panics and never allocates more than its input: every count is bounded by
//! the bytes left. Errors are [`CodecError`]s; each format wraps them in its own error type.
//!
//! ```
//! use smart_agent::codec::{Reader, Writer};
//!
//! let mut w = Writer::default();
//! w.str("PID:UCM");
//! w.opt(Some(7u32), Writer::u32);
//! let bytes = w.finish();
//! let mut r = Reader::new(&bytes);
//! assert_eq!(r.string().unwrap(), "PID:UCM");
//! assert_eq!(r.opt(Reader::u32).unwrap(), Some(7));
//! r.end().unwrap();
//! ```

use chrono::{DateTime, TimeDelta, Utc};

use crate::time;

/// Why bytes do not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ends inside a value.
    #[error("truncated")]
    Truncated,
    /// Bytes are left after the last value.
    #[error("trailing bytes")]
    TrailingBytes,
    /// A length would overflow the address space.
    #[error("length overflow")]
    LengthOverflow,
    /// A boolean is neither 0 nor 1.
    #[error("bad boolean")]
    BadBoolean,
    /// An option tag is neither 0 nor 1.
    #[error("bad option tag")]
    BadOptionTag,
    /// A string is not UTF-8.
    #[error("bad UTF-8")]
    BadUtf8,
    /// A time is outside years 1–9999.
    #[error("time out of range")]
    TimeOutOfRange,
    /// A duration is negative, longer than a century, or has a bad fraction.
    #[error("duration out of range")]
    DurationOutOfRange,
    /// A count of items is larger than the bytes that follow could hold.
    #[error("count exceeds data")]
    CountExceedsData,
}

/// Appends values in the layout of the [module docs](self).
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    /// A boolean as one byte, 0 or 1.
    pub fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    /// Big-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Big-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Big-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Big-endian `i32`.
    pub fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Big-endian `i64`.
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// A `u32` length, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        // Values are far below 4 GiB; saturate rather than wrap if one ever is not (the
        // reader then refuses it as truncated).
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }
    /// A string as length-prefixed UTF-8.
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// A count of items to follow, as `u32`.
    pub fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    /// Seconds since the epoch (`i64`) and nanoseconds (`u32`).
    pub fn time(&mut self, t: DateTime<Utc>) {
        self.i64(t.timestamp());
        self.u32(t.timestamp_subsec_nanos());
    }
    /// Whole seconds (`i64`) and nanoseconds (`u32`).
    pub fn delta(&mut self, d: TimeDelta) {
        self.i64(d.num_seconds());
        self.u32(d.subsec_nanos().unsigned_abs());
    }
    /// `0`, or `1` and the value written by `f`.
    pub fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                f(self, x);
            }
        }
    }
}

/// Reads what [`Writer`] wrote.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// The next `n` bytes, borrowed from the input.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::LengthOverflow)?;
        let s = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    /// Whether every byte was read.
    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    /// How many bytes were read.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Succeeds only if every byte was read.
    pub fn end(&self) -> Result<(), CodecError> {
        if self.is_at_end() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes)
        }
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    /// A boolean (0 or 1).
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::BadBoolean),
        }
    }
    /// Big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    /// Big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    /// Big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// Big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    /// Big-endian `i64`.
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// Length-prefixed bytes, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// Length-prefixed UTF-8.
    pub fn string(&mut self) -> Result<String, CodecError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| CodecError::BadUtf8)
    }
    /// A time in the storable range (years 1–9999), like every time the crate writes.
    pub fn time(&mut self) -> Result<DateTime<Utc>, CodecError> {
        let secs = self.i64()?;
        let nanos = self.u32()?;
        if !time::is_storable_secs(secs) {
            return Err(CodecError::TimeOutOfRange);
        }
        DateTime::from_timestamp(secs, nanos).ok_or(CodecError::TimeOutOfRange)
    }
    /// A duration from zero to a century: what the crate stores is evaluation time.
    pub fn delta(&mut self) -> Result<TimeDelta, CodecError> {
        let secs = self.i64()?;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(CodecError::DurationOutOfRange);
        }
        let d = TimeDelta::new(secs, nanos).ok_or(CodecError::DurationOutOfRange)?;
        if d < TimeDelta::zero() || d > TimeDelta::days(366 * 100) {
            return Err(CodecError::DurationOutOfRange);
        }
        Ok(d)
    }
    /// `0` → `None`; `1` → the value `f` reads.
    pub fn opt<T, E: From<CodecError>>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            _ => Err(CodecError::BadOptionTag.into()),
        }
    }
    /// A count of items to follow, bounded by the bytes left so that a forged count cannot
    /// make the decoder allocate more than the input.
    pub fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.u32()? as usize;
        if n > self.buf.len() - self.pos {
            return Err(CodecError::CountExceedsData);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        let t = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        let mut w = Writer::default();
        w.u8(1);
        w.bool(true);
        w.u16(0xbeef);
        w.u32(7);
        w.u64(u64::MAX);
        w.i64(-3);
        w.bytes(b"ab");
        w.str("ü");
        w.count(2);
        w.time(t);
        w.delta(TimeDelta::days(90));
        w.opt(None::<u8>, Writer::u8);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.u16(), Ok(0xbeef));
        assert_eq!(r.u32(), Ok(7));
        assert_eq!(r.u64(), Ok(u64::MAX));
        assert_eq!(r.i64(), Ok(-3));
        assert_eq!(r.bytes(), Ok(&b"ab"[..]));
        assert_eq!(r.string().as_deref(), Ok("ü"));
        assert_eq!(r.count(), Ok(2));
        assert_eq!(r.time(), Ok(t));
        assert_eq!(r.delta(), Ok(TimeDelta::days(90)));
        assert_eq!(r.opt::<u8, CodecError>(Reader::u8), Ok(None));
        assert_eq!(r.end(), Ok(()));
    }

    #[test]
    fn damaged_input_is_a_typed_error() {
        assert_eq!(Reader::new(&[0, 0]).u32(), Err(CodecError::Truncated));
        assert_eq!(Reader::new(&[2]).bool(), Err(CodecError::BadBoolean));
        assert_eq!(
            Reader::new(&[0, 0, 0, 9, 1]).count(),
            Err(CodecError::CountExceedsData)
        );
        assert_eq!(
            Reader::new(&[0, 0, 0, 5, 1]).bytes(),
            Err(CodecError::Truncated)
        );
        let mut w = Writer::default();
        w.i64(time::LAST_STORABLE_SECS + 1);
        w.u32(0);
        assert_eq!(
            Reader::new(&w.finish()).time(),
            Err(CodecError::TimeOutOfRange)
        );
        let mut r = Reader::new(&[0, 1]);
        r.u8().unwrap();
        assert_eq!(r.end(), Err(CodecError::TrailingBytes));
    }
}
