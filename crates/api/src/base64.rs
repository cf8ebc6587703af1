//! Base64 as Go's `encoding/json` reads and writes `[]byte` fields (Secret `data`,
//! ConfigMap `binaryData`): `base64.StdEncoding`, which requires padding, ignores `\r` and
//! `\n` anywhere (so the PEM-style line breaks of the Kubernetes docs' TLS example are
//! accepted), and does not check the unused bits of the last quantum. Errors are the byte
//! offsets Go's `CorruptInputError` reports, so messages match upstream's.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `base64.StdEncoding.EncodeToString`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `base64.StdEncoding.DecodeString`; the error is the offset Go reports
/// (`illegal base64 data at input byte N`).
pub fn decode(text: &str) -> Result<Vec<u8>, usize> {
    let src = text.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    let skip_newlines = |si: &mut usize| {
        while *si < src.len() && matches!(src[*si], b'\n' | b'\r') {
            *si += 1;
        }
    };
    loop {
        // One quantum of up to four characters, as Go's `decodeQuantum`.
        let mut quantum = [0u8; 4];
        let mut len = 0;
        while len < 4 {
            skip_newlines(&mut si);
            if si == src.len() {
                if len == 0 {
                    return Ok(out);
                }
                // StdEncoding pads: a short final quantum is corrupt.
                return Err(si - len);
            }
            let b = src[si];
            si += 1;
            if b == b'=' {
                match len {
                    0 | 1 => return Err(si - 1),
                    2 => {
                        // `xx==`: the second pad may follow newlines.
                        skip_newlines(&mut si);
                        if si == src.len() {
                            return Err(src.len());
                        }
                        if src[si] != b'=' {
                            return Err(si - 1);
                        }
                        si += 1;
                    }
                    _ => {}
                }
                skip_newlines(&mut si);
                if si < src.len() {
                    return Err(si);
                }
                break;
            }
            match value(b) {
                Some(v) => {
                    quantum[len] = v;
                    len += 1;
                }
                None => return Err(si - 1),
            }
        }
        let n = (quantum[0] as u32) << 18
            | (quantum[1] as u32) << 12
            | (quantum[2] as u32) << 6
            | quantum[3] as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // `len` sextets carry `len - 1` whole bytes (4 → 3, 3 → 2, 2 → 1).
        out.extend_from_slice(&bytes[..len - 1]);
        if len < 4 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_go_leniencies() {
        for s in ["", "a", "ab", "abc", "abcd", "hello, world\n"] {
            assert_eq!(decode(&encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(encode(b"ab"), "YWI=");
        // Line breaks anywhere are skipped, as in PEM-wrapped certificates.
        assert_eq!(decode("YW\nJj\r\nZA=\n=\n").unwrap(), b"abcd");
        // Unused bits of the last quantum are not checked (StdEncoding is not Strict).
        assert_eq!(decode("YWJ=").unwrap(), b"ab");
    }

    #[test]
    fn errors_carry_go_offsets() {
        // Values checked against Go 1.22's base64.StdEncoding.DecodeString.
        assert_eq!(decode("YWI"), Err(0));
        assert_eq!(decode("YQ"), Err(0));
        assert_eq!(decode("YWJjZ"), Err(4));
        assert_eq!(decode("YW I="), Err(2));
        assert_eq!(decode("Y==="), Err(1));
        assert_eq!(decode("YQ=="), Ok(b"a".to_vec()));
        assert_eq!(decode("YQ=x"), Err(2));
        assert_eq!(decode("YQ="), Err(3));
        assert_eq!(decode("YWI=YWI="), Err(4));
        assert_eq!(decode("not base64!"), Err(3));
    }
}
