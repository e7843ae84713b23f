//! The CBOR (RFC 8949) WebAuthn uses: an attestation object and a COSE
//! key. Definite lengths only, nesting and sizes bounded; anything else is
//! refused.

/// A decoded item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Item>),
    Map(Vec<(Item, Item)>),
    Simple(u8),
}

impl Item {
    pub fn int(&self) -> Option<i64> {
        match self {
            Item::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Item::Bytes(b) => Some(b),
            _ => None,
        }
    }

    fn get(&self, key: &Item) -> Option<&Item> {
        match self {
            Item::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value under text key `key` of a map.
    pub fn get_text(&self, key: &str) -> Option<&Item> {
        self.get(&Item::Text(key.to_owned()))
    }

    /// The value under integer key `key` of a map.
    pub fn get_int(&self, key: i64) -> Option<&Item> {
        self.get(&Item::Int(key))
    }
}

const MAX_DEPTH: usize = 8;
const MAX_ITEMS: u64 = 1024;

/// The first item of `input` (what follows it is ignored: an attested
/// credential's key is followed by extensions).
pub fn decode(input: &[u8]) -> Result<Item, String> {
    let mut pos = 0;
    item(input, &mut pos, 0)
}

fn take<'a>(input: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = pos
        .checked_add(n)
        .filter(|e| *e <= input.len())
        .ok_or("truncated CBOR")?;
    let s = &input[*pos..end];
    *pos = end;
    Ok(s)
}

fn argument(input: &[u8], pos: &mut usize, info: u8) -> Result<u64, String> {
    Ok(match info {
        0..=23 => u64::from(info),
        24 => u64::from(take(input, pos, 1)?[0]),
        25 => u64::from(u16::from_be_bytes(
            take(input, pos, 2)?.try_into().expect("2"),
        )),
        26 => u64::from(u32::from_be_bytes(
            take(input, pos, 4)?.try_into().expect("4"),
        )),
        27 => u64::from_be_bytes(take(input, pos, 8)?.try_into().expect("8")),
        _ => return Err("indefinite or reserved CBOR lengths are not accepted".into()),
    })
}

fn item(input: &[u8], pos: &mut usize, depth: usize) -> Result<Item, String> {
    if depth > MAX_DEPTH {
        return Err("CBOR nested too deep".into());
    }
    let head = take(input, pos, 1)?[0];
    let (major, info) = (head >> 5, head & 0x1f);
    let arg = argument(input, pos, info)?;
    let len = |n: u64| usize::try_from(n).map_err(|_| "CBOR length too large".to_owned());
    Ok(match major {
        0 => Item::Int(i64::try_from(arg).map_err(|_| "CBOR integer too large")?),
        1 => Item::Int(-1 - i64::try_from(arg).map_err(|_| "CBOR integer too large")?),
        2 => Item::Bytes(take(input, pos, len(arg)?)?.to_vec()),
        3 => Item::Text(
            String::from_utf8(take(input, pos, len(arg)?)?.to_vec())
                .map_err(|_| "CBOR text that is not UTF-8")?,
        ),
        4 | 5 if arg > MAX_ITEMS => return Err("CBOR container too large".into()),
        4 => Item::Array(
            (0..arg)
                .map(|_| item(input, pos, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        5 => Item::Map(
            (0..arg)
                .map(|_| Ok((item(input, pos, depth + 1)?, item(input, pos, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
        7 if info < 24 => Item::Simple(info),
        _ => return Err("CBOR tags and floats are not accepted".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_webauthn_sends_and_refuses_the_rest() {
        // {"fmt": "none", 1: -7, "k": h'0102'}
        let bytes = [
            0xa3, 0x63, b'f', b'm', b't', 0x64, b'n', b'o', b'n', b'e', 0x01, 0x26, 0x61, b'k',
            0x42, 1, 2,
        ];
        let m = decode(&bytes).unwrap();
        assert_eq!(m.get_text("fmt"), Some(&Item::Text("none".into())));
        assert_eq!(m.get_int(1).and_then(Item::int), Some(-7));
        assert_eq!(m.get_text("k").and_then(Item::bytes), Some(&[1u8, 2][..]));
        for bad in [
            &[0x5f][..],
            &[0x42, 1],
            &[0xc0, 0],
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let deep = [0x81u8; 20];
        assert!(decode(&deep).is_err());
    }
}
