//! Messages as the pipeline sees them: payload, metadata and error flag, all living in
//! the request's bumpalo arena, plus `Value`, the structured value type that metadata and
//! Bloblang share.
//!
//! Nothing here owns heap memory: a `Message<'a>` borrows everything from the arena of
//! the request it belongs to, so copying one (a broker's fan-out) is a handful of words
//! plus the metadata list, and dropping the whole request is one arena reset.

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;

/// A structured value allocated in a request arena.
///
/// `Copy` on purpose: values are immutable once built; an update builds a new value
/// that shares the unchanged parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Array(&'a [Value<'a>]),
    /// Object members sorted by key (upstream's objects are Go maps, and its JSON output
    /// sorts keys), so lookup is a binary search and serialisation needs no sort.
    Object(&'a [(&'a str, Value<'a>)]),
}

impl<'a> Value<'a> {
    /// The value as metadata text: strings and bytes raw, everything else as JSON.
    pub fn to_text(&self, arena: &'a Bump) -> &'a str {
        match *self {
            Value::Str(s) => s,
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => s,
                Err(_) => arena.alloc_str(&String::from_utf8_lossy(b)),
            },
            _ => {
                let mut out = BVec::new_in(arena);
                write_json(self, &mut out);
                // SAFETY: write_json only emits valid UTF-8 (escaped strings, digits, punctuation).
                unsafe { std::str::from_utf8_unchecked(out.into_bump_slice()) }
            }
        }
    }
}

/// Compact JSON of `v` appended to `out` (object keys in the stored, sorted order).
pub fn write_json(v: &Value<'_>, out: &mut impl Extend<u8>) {
    match *v {
        Value::Null => out.extend(*b"null"),
        Value::Bool(true) => out.extend(*b"true"),
        Value::Bool(false) => out.extend(*b"false"),
        Value::Int(i) => out.extend(itoa_bytes(i)),
        Value::Float(f) => write_float(f, out),
        Value::Str(s) => write_json_str(s, out),
        Value::Bytes(b) => write_json_str(&String::from_utf8_lossy(b), out),
        Value::Array(items) => {
            out.extend(*b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend(*b",");
                }
                write_json(item, out);
            }
            out.extend(*b"]");
        }
        Value::Object(members) => {
            out.extend(*b"{");
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.extend(*b",");
                }
                write_json_str(k, out);
                out.extend(*b":");
                write_json(item, out);
            }
            out.extend(*b"}");
        }
    }
}

fn itoa_bytes(i: i64) -> impl Iterator<Item = u8> {
    let mut buf = [0u8; 20];
    let neg = i < 0;
    let mut n = i.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let sign = if neg { Some(b'-') } else { None };
    sign.into_iter().chain(buf.into_iter().skip(pos))
}

fn write_float(f: f64, out: &mut impl Extend<u8>) {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        out.extend(itoa_bytes(f as i64));
    } else if f.is_finite() {
        // Rust's shortest round-trip formatting, like Go's strconv 'g' -1 for JSON.
        out.extend(format!("{f}").into_bytes());
    } else {
        out.extend(*b"null");
    }
}

/// A JSON string literal with the escapes RFC 8259 requires.
pub fn write_json_str(s: &str, out: &mut impl Extend<u8>) {
    out.extend(*b"\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend(bytes[start..i].iter().copied());
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend([
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend(esc.iter().copied());
        }
        start = i + 1;
    }
    out.extend(bytes[start..].iter().copied());
    out.extend(*b"\"");
}

/// Message metadata: insertion-ordered key/value pairs; setting a key replaces it.
#[derive(Clone, Debug)]
pub struct Meta<'a> {
    entries: BVec<'a, (&'a str, Value<'a>)>,
}

impl<'a> Meta<'a> {
    pub fn new_in(arena: &'a Bump) -> Self {
        Meta {
            entries: BVec::new_in(arena),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn set(&mut self, key: &'a str, value: Value<'a>) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| *k != key);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One message of a batch.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    /// Raw payload bytes (the request body, or what a processor produced).
    pub payload: &'a [u8],
    /// Metadata: request headers, query and path parameters, values set by mappings.
    pub meta: Meta<'a>,
    /// Set when a processor failed on this message; it still flows on (upstream's rule),
    /// `errored()`/`error()` read it and `catch` clears it.
    pub error: Option<&'a str>,
}

impl<'a> Message<'a> {
    pub fn new(arena: &'a Bump, payload: &'a [u8]) -> Self {
        Message {
            payload,
            meta: Meta::new_in(arena),
            error: None,
        }
    }
}

/// The messages of one request (one, or one per part of a multipart body).
pub type Batch<'a> = BVec<'a, Message<'a>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &Value<'_>) -> String {
        let mut out = Vec::new();
        write_json(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_of_nested_values() {
        let items = [
            Value::Int(-12),
            Value::Float(1.5),
            Value::Float(3.0),
            Value::Null,
        ];
        let members = [("a", Value::Array(&items)), ("b", Value::Str("x\"\n\u{1}"))];
        assert_eq!(
            json(&Value::Object(&members)),
            r#"{"a":[-12,1.5,3,null],"b":"x\"\n\u0001"}"#
        );
        assert_eq!(json(&Value::Int(i64::MIN)), "-9223372036854775808");
    }

    #[test]
    fn meta_set_replaces_and_keeps_order() {
        let arena = Bump::new();
        let mut m = Meta::new_in(&arena);
        m.set("a", Value::Int(1));
        m.set("b", Value::Int(2));
        m.set("a", Value::Int(3));
        let keys: Vec<_> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(m.get("a"), Some(&Value::Int(3)));
        m.remove("a");
        assert_eq!(m.len(), 1);
    }
}
