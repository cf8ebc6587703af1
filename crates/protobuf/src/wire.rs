//! The protobuf wire format itself: varints, tags and length-delimited fields.
//! Hand-written because the transcoder works on a runtime schema; prost's codec is
//! generated per type.

use crate::Error;

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

/// A value read off the wire, before the schema gives it a meaning.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

/// Reads `(field number, value)` pairs.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some((&byte, rest)) = self.data.split_first() else {
                return Err(Error::new("truncated varint"));
            };
            self.data = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::new("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.data.len() {
            return Err(Error::new(format!(
                "field length {n} runs past the end of the message ({} bytes left)",
                self.data.len()
            )));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    /// The next field, or None at the end.
    pub fn next_field(&mut self) -> Result<Option<(u32, Raw<'a>)>, Error> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| Error::new("field number too large"))?;
        if number == 0 {
            return Err(Error::new("field number 0 is not valid"));
        }
        let value = match (key & 7) as u8 {
            VARINT => Raw::Varint(self.varint()?),
            FIXED64 => {
                let b = self.take(8)?;
                Raw::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            LEN => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| Error::new("field length too large"))?;
                Raw::Len(self.take(n)?)
            }
            FIXED32 => {
                let b = self.take(4)?;
                Raw::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
            }
            other => {
                return Err(Error::new(format!(
                    "wire type {other} of field {number} is not supported"
                )));
            }
        };
        Ok(Some((number, value)))
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

pub fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A length-delimited field whose contents `write` appends; the length is patched in
/// afterwards so nested messages are written once, without a sizing pass.
pub fn put_nested(
    out: &mut Vec<u8>,
    number: u32,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    put_key(out, number, LEN);
    let mark = out.len();
    write(out)?;
    let len = out.len() - mark;
    let mut prefix = Vec::with_capacity(10);
    put_varint(&mut prefix, len as u64);
    out.splice(mark..mark, prefix);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_key(&mut out, 5, VARINT);
            put_varint(&mut out, value);
            let mut r = Reader::new(&out);
            match r.next_field().unwrap() {
                Some((5, Raw::Varint(v))) => assert_eq!(v, value),
                other => panic!("{other:?}"),
            }
            assert!(r.next_field().unwrap().is_none());
        }
    }

    #[test]
    fn truncation_is_an_error() {
        let mut out = Vec::new();
        put_bytes(&mut out, 1, b"hello");
        for cut in 1..out.len() {
            assert!(Reader::new(&out[..cut]).next_field().is_err(), "cut {cut}");
        }
    }

    #[test]
    fn nested_lengths_are_patched() {
        let mut out = Vec::new();
        put_nested(&mut out, 2, |o| {
            o.extend(std::iter::repeat_n(7u8, 200));
            Ok(())
        })
        .unwrap();
        let mut r = Reader::new(&out);
        match r.next_field().unwrap() {
            Some((2, Raw::Len(b))) => assert_eq!(b.len(), 200),
            other => panic!("{other:?}"),
        }
    }
}
