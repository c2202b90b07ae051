//! Messages as the pipeline sees them: payload, metadata and error flag, all living in
//! the request's bumpalo arena, plus `Value`, the structured value type that metadata and
//! Bloblang share.
//!
//! Nothing here owns heap memory: a `Message<'a>` borrows everything from the arena of
//! the request it belongs to, so copying one (a broker's fan-out) is a handful of words
//! plus the metadata list, and dropping the whole request is one arena reset.

use std::borrow::Cow;

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

/// `b` as a string if it is UTF-8. ASCII, which nearly every header and many payloads
/// are, is checked a word at a time; only other bytes pay for the full UTF-8 check.
pub fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// `b` as text: borrowed when it is UTF-8, else a copy with U+FFFD for each invalid
/// sequence (as Go's string conversion shows it).
pub fn text(b: &[u8]) -> Cow<'_, str> {
    match utf8(b) {
        Some(s) => Cow::Borrowed(s),
        None => String::from_utf8_lossy(b),
    }
}

/// [`text`], with the rare copy in `arena`.
pub fn text_in<'a>(arena: &'a Bump, b: &'a [u8]) -> &'a str {
    match text(b) {
        Cow::Borrowed(s) => s,
        Cow::Owned(s) => arena.alloc_str(&s),
    }
}

impl<'a> Value<'a> {
    /// The value as metadata text: strings and bytes raw, everything else as JSON.
    pub fn to_text(&self, arena: &'a Bump) -> &'a str {
        match *self {
            Value::Str(s) => s,
            Value::Bytes(b) => text_in(arena, b),
            _ => {
                let mut out = BVec::new_in(arena);
                write_json(self, &mut out);
                // SAFETY: write_json only emits valid UTF-8 (escaped strings, digits, punctuation).
                unsafe { std::str::from_utf8_unchecked(out.into_bump_slice()) }
            }
        }
    }
}

/// Where JSON is written: a `Vec<u8>` or an arena vector.
pub trait JsonOut {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, b: u8);
    fn reserve_bytes(&mut self, n: usize);
}

impl JsonOut for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn put_byte(&mut self, b: u8) {
        self.push(b);
    }
    fn reserve_bytes(&mut self, n: usize) {
        self.reserve(n);
    }
}

impl JsonOut for BVec<'_, u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice_copy(bytes);
    }
    fn put_byte(&mut self, b: u8) {
        self.push(b);
    }
    fn reserve_bytes(&mut self, n: usize) {
        self.reserve(n);
    }
}

/// A JSON string literal of `s` (RFC 8259 escapes).
pub fn write_json_str(s: &str, out: &mut impl JsonOut) {
    write_json_bytes(s.as_bytes(), out);
}

/// Bytes a JSON string cannot hold raw: control characters, `"` and `\\`.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// A float as Go's `strconv.FormatFloat(f, 'g', -1)` in JSON: exponent form outside
/// [1e-6, 1e21), e.g. `1e+21`.
pub fn write_go_float(f: f64, out: &mut impl std::fmt::Write) {
    if !f.is_finite() {
        let _ = out.write_str(if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        });
        return;
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let mut buf = [0u8; 40];
        let mut cur = std::io::Cursor::new(&mut buf[..]);
        let _ = std::io::Write::write_fmt(&mut cur, format_args!("{f:e}"));
        let n = cur.position() as usize;
        let s = std::str::from_utf8(&buf[..n]).unwrap_or("0");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => {
                let _ = std::write!(out, "{m}e+{e}");
            }
            _ => {
                let _ = out.write_str(s);
            }
        }
    } else {
        let _ = std::write!(out, "{f}");
    }
}

/// Compact JSON of `v`: object keys in their stored (sorted) order, numbers in Go's JSON
/// form (as upstream prints them), runs of bytes copied at once, floats formatted on the
/// stack. The one JSON writer of the crate: payloads, metadata text, logs.
pub fn write_json(v: &Value<'_>, out: &mut impl JsonOut) {
    match *v {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::Int(i) => {
            let mut buf = [0u8; 20];
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
            if i < 0 {
                out.put_byte(b'-');
            }
            out.put(&buf[pos..]);
        }
        Value::Float(f) => {
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
                write_json(&Value::Int(f as i64), out);
            } else if f.is_finite() {
                // Go's JSON number form: exponent outside [1e-6, 1e21), like upstream.
                let mut buf = StackBuf {
                    buf: [0; 64],
                    len: 0,
                };
                write_go_float(f, &mut buf);
                out.put(&buf.buf[..buf.len]);
            } else {
                out.put(b"null");
            }
        }
        Value::Str(s) => write_json_bytes(s.as_bytes(), out),
        Value::Bytes(b) => write_json_bytes(text(b).as_bytes(), out),
        Value::Array(items) => {
            out.put_byte(b'[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.put_byte(b',');
                }
                write_json(it, out);
            }
            out.put_byte(b']');
        }
        Value::Object(members) => {
            out.put_byte(b'{');
            for (i, (k, it)) in members.iter().enumerate() {
                if i > 0 {
                    out.put_byte(b',');
                }
                write_json_bytes(k.as_bytes(), out);
                out.put_byte(b':');
                write_json(it, out);
            }
            out.put_byte(b'}');
        }
    }
}

/// A fixed buffer for formatting one number without the heap.
struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Whether any byte is a control character, `"` or `\\`; eight bytes at a time.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // A byte below 0x20 borrows when 0x20 is subtracted; `"` and `\\` become zero
        // after the xor.
        let below = v.wrapping_sub(ONES * 0x20) & !v & HIGHS;
        if below | has_zero(v ^ (ONES * b'"' as u64)) | has_zero(v ^ (ONES * b'\\' as u64)) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| SPECIAL[b as usize])
}

fn write_json_bytes(bytes: &[u8], out: &mut impl JsonOut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve_bytes(bytes.len() + 2);
    out.put_byte(b'"');
    // Fast path (vectorisable): nothing to escape.
    if !needs_escape(bytes) {
        out.put(bytes);
        out.put_byte(b'"');
        return;
    }
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
        out.put(&bytes[start..i]);
        if esc.is_empty() {
            out.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.put(esc);
        }
        start = i + 1;
    }
    out.put(&bytes[start..]);
    out.put_byte(b'"');
}

/// Message metadata: insertion-ordered key/value pairs; setting a key replaces it.
///
/// A request's headers join without being copied (`with_headers`): each reads as an
/// entry keyed by its canonical name (`content-type` -> `Content-Type`; of repeated
/// names the first wins), in the place they joined at (after the entries there were
/// then, before those set later), and an entry of the same key hides the header. Most
/// pipelines read no header metadata, and turning every header into an entry on every
/// request was a tenth of the weather request's user-space instructions.
#[derive(Clone, Debug)]
pub struct Meta<'a> {
    entries: BVec<'a, (&'a str, Value<'a>)>,
    /// Request headers read as entries (see above); spilled into `entries` before a key
    /// they provide is removed.
    headers: &'a [(&'a str, &'a [u8])],
    /// Where the headers sit: after `entries[..at]`.
    at: usize,
}

impl<'a> Meta<'a> {
    pub fn new_in(arena: &'a Bump) -> Self {
        Self::with_capacity_in(0, arena)
    }

    /// Room for `n` entries before the list grows (each growth is a copy in the arena).
    pub fn with_capacity_in(n: usize, arena: &'a Bump) -> Self {
        Meta {
            entries: BVec::with_capacity_in(n, arena),
            headers: &[],
            at: 0,
        }
    }

    /// Adds a request's headers after the current entries, read in place (see [`Meta`]).
    pub fn with_headers(mut self, headers: &'a [(&'a str, &'a [u8])]) -> Self {
        self.spill_headers();
        self.headers = headers;
        self.at = self.entries.len();
        self
    }

    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        match self.entries.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(*v),
            None => self.header(key).map(|v| self.header_value(v)),
        }
    }

    pub fn set(&mut self, key: &'a str, value: Value<'a>) {
        // A new entry hides a header of the same name.
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// A copy whose entry list lives in `arena` (keys, values and headers are shared).
    pub fn clone_in<'b>(&self, arena: &'b Bump) -> Meta<'b>
    where
        'a: 'b,
    {
        let mut entries = BVec::with_capacity_in(self.entries.len(), arena);
        entries.extend(self.entries.iter().cloned());
        Meta {
            entries,
            headers: self.headers,
            at: self.at,
        }
    }

    pub fn remove(&mut self, key: &str) {
        if self.header(key).is_some() {
            self.spill_headers();
        }
        self.at -= self.entries[..self.at]
            .iter()
            .filter(|(k, _)| *k == key)
            .count();
        self.entries.retain(|(k, _)| *k != key);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.headers = &[];
        self.at = 0;
    }

    /// The first entry (in `iter` order) whose key is `name` in any case. `name` is
    /// canonical (`Content-Type`): most clients send header names so, and those then
    /// match without a case-insensitive comparison.
    pub fn find_ignore_case(&self, name: &str) -> Option<(&'a str, Value<'a>)> {
        debug_assert!(is_canonical(name));
        let same = |k: &str| k == name || k.eq_ignore_ascii_case(name);
        let (before, after) = self.entries.split_at(self.at);
        let found = |entries: &[(&'a str, Value<'a>)]| {
            entries.iter().find(|(k, _)| same(k)).map(|(k, v)| (*k, *v))
        };
        if let Some(e) = found(before) {
            return Some(e);
        }
        let Some(i) = self.headers.iter().position(|(n, _)| same(n)) else {
            return found(after);
        };
        let n = self.headers[i].0;
        let key = if n == name {
            n
        } else {
            canonical_header(self.entries.bump(), n)
        };
        // Visible: `i` is the first header of its name, and no entry before the headers
        // has the key (`found(before)` matched any case of it).
        Some(self.header_in_place(i, key))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + '_ {
        let headers = self.headers;
        let (before, after) = self.entries.split_at(self.at);
        let entry = |(k, v): &(&'a str, Value<'a>)| (*k, *v);
        let header = move |(i, (name, _)): (usize, &'a (&'a str, &'a [u8]))| {
            // Hidden by an earlier header of the name (checked first: a repeat needs no
            // canonical key in the arena) or by an entry before the headers.
            if headers[..i]
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                return None;
            }
            let key = canonical_header(self.entries.bump(), name);
            if before.iter().any(|(k, _)| *k == key) {
                return None;
            }
            Some(self.header_in_place(i, key))
        };
        let in_header_place = move |k: &str| {
            is_canonical(k) && headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k))
        };
        before
            .iter()
            .map(entry)
            .chain(headers.iter().enumerate().filter_map(header))
            .chain(
                after
                    .iter()
                    .filter(move |(k, _)| !in_header_place(k))
                    .map(entry),
            )
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        // The first header is visible unless an entry hides it.
        self.entries.is_empty() && self.headers.is_empty()
    }

    /// What stands in the place of visible header `i`, whose canonical name is `key`:
    /// the header itself, or an entry of exactly that key set after the headers.
    fn header_in_place(&self, i: usize, key: &'a str) -> (&'a str, Value<'a>) {
        match self.entries[self.at..].iter().find(|(k, _)| *k == key) {
            Some((k, v)) => (*k, *v),
            None => (key, self.header_value(self.headers[i].1)),
        }
    }

    /// The value of the first header whose canonical name is `key`.
    fn header(&self, key: &str) -> Option<&'a [u8]> {
        if self.headers.is_empty() || !is_canonical(key) {
            return None;
        }
        self.headers
            .iter()
            .find(|(n, _)| *n == key || n.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }

    fn header_value(&self, value: &'a [u8]) -> Value<'a> {
        Value::Str(text_in(self.entries.bump(), value))
    }

    /// Turns the visible headers into entries, in their place.
    fn spill_headers(&mut self) {
        if self.headers.is_empty() {
            return;
        }
        let mut all =
            BVec::with_capacity_in(self.entries.len() + self.headers.len(), self.entries.bump());
        all.extend(self.iter());
        self.entries = all;
        self.headers = &[];
        self.at = 0;
    }
}

/// Whether `name` is in Go's canonical header form: a capital at the start and after
/// each `-`, lower case elsewhere.
pub fn is_canonical(name: &str) -> bool {
    let mut upper = true;
    name.bytes().all(|b| {
        let ok = if upper {
            !b.is_ascii_lowercase()
        } else {
            !b.is_ascii_uppercase()
        };
        upper = b == b'-';
        ok
    })
}

/// Go's `CanonicalMIMEHeaderKey`: `content-type` -> `Content-Type`.
pub fn canonical_header<'a>(arena: &'a Bump, name: &'a str) -> &'a str {
    // Most clients already send canonical names: then there is nothing to copy.
    if is_canonical(name) {
        return name;
    }
    let mut upper = true;
    let s = arena.alloc_str(name);
    // SAFETY: only ASCII letters change case, which keeps the bytes valid UTF-8.
    for b in unsafe { s.as_bytes_mut() } {
        if upper {
            b.make_ascii_uppercase();
        } else {
            b.make_ascii_lowercase();
        }
        upper = *b == b'-';
    }
    s
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
    fn escape_detection() {
        assert!(!needs_escape(
            b"plain ascii text, longer than eight bytes \x7f\xc3\xa9"
        ));
        for special in [b'"', b'\\', b'\n', 0u8, 0x1f] {
            for pos in 0..20 {
                let mut v = vec![b'a'; 20];
                v[pos] = special;
                assert!(needs_escape(&v), "{special} at {pos}");
            }
        }
    }

    #[test]
    fn floats_take_go_json_forms() {
        assert_eq!(json(&Value::Float(1e300)), "1e+300");
        assert_eq!(json(&Value::Float(1e21)), "1e+21");
        assert_eq!(json(&Value::Float(0.000001)), "0.000001");
        assert_eq!(json(&Value::Float(f64::NAN)), "null");
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
        assert_eq!(m.get("a"), Some(Value::Int(3)));
        m.remove("a");
        assert_eq!(m.len(), 1);
    }

    fn keys<'a>(m: &Meta<'a>) -> Vec<(&'a str, Value<'a>)> {
        m.iter().collect()
    }

    #[test]
    fn headers_read_as_canonical_entries_the_first_of_a_name_winning() {
        let arena = Bump::new();
        let headers: &[(&str, &[u8])] = &[
            ("content-type", b"application/json"),
            ("X-Trace", b"1"),
            ("x-trace", b"2"),
            ("Bad", b"\xff"),
        ];
        let mut m = Meta::new_in(&arena);
        assert_eq!(Meta::new_in(&arena).with_headers(headers).len(), 3);
        assert!(!Meta::new_in(&arena).with_headers(headers).is_empty());
        m.set("fixed", Value::Int(1));
        let mut m = m.with_headers(headers);
        m.set("later", Value::Int(2));
        assert_eq!(m.get("Content-Type"), Some(Value::Str("application/json")));
        assert_eq!(m.get("content-type"), None, "keys are canonical");
        assert_eq!(m.get("X-Trace"), Some(Value::Str("1")));
        assert_eq!(m.get("Bad"), Some(Value::Str("\u{fffd}")));
        // The headers sit where they joined: after "fixed", before "later".
        assert_eq!(
            keys(&m),
            [
                ("fixed", Value::Int(1)),
                ("Content-Type", Value::Str("application/json")),
                ("X-Trace", Value::Str("1")),
                ("Bad", Value::Str("\u{fffd}")),
                ("later", Value::Int(2)),
            ]
        );
        assert_eq!(m.len(), 5);

        // A later entry of another case comes after the header, as a later write; one
        // of the same key takes the header's place.
        m.set("content-type", Value::Str("text/plain"));
        assert_eq!(
            m.find_ignore_case("Content-Type"),
            Some(("Content-Type", Value::Str("application/json")))
        );
        m.set("Content-Type", Value::Str("text/html"));
        assert_eq!(m.get("Content-Type"), Some(Value::Str("text/html")));
        assert_eq!(
            m.find_ignore_case("Content-Type"),
            Some(("Content-Type", Value::Str("text/html")))
        );
        let order = [
            ("fixed", Value::Int(1)),
            ("Content-Type", Value::Str("text/html")),
            ("X-Trace", Value::Str("1")),
            ("Bad", Value::Str("\u{fffd}")),
            ("later", Value::Int(2)),
            ("content-type", Value::Str("text/plain")),
        ];
        assert_eq!(keys(&m), order);
        assert_eq!(keys(&m.clone_in(&arena)), order);

        // Removing a header's key turns the headers into entries in their place.
        m.remove("X-Trace");
        assert_eq!(
            m.get("X-Trace"),
            None,
            "the repeated name's value does not come back"
        );
        assert_eq!(keys(&m), [order[0], order[1], order[3], order[4], order[5]]);
        m.remove("fixed");
        m.set("new", Value::Int(3));
        assert_eq!(keys(&m)[0], ("Content-Type", Value::Str("text/html")));
        assert_eq!(keys(&m).last(), Some(&("new", Value::Int(3))));
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.get("Bad"), None);
    }

    #[test]
    fn removing_a_header_key_before_the_headers_are_read() {
        let arena = Bump::new();
        let headers: &[(&str, &[u8])] = &[("X-A", b"1"), ("x-a", b"2"), ("B", b"3")];
        let mut m = Meta::new_in(&arena).with_headers(headers);
        m.remove("X-A");
        assert_eq!(m.get("X-A"), None);
        assert_eq!(keys(&m), [("B", Value::Str("3"))]);
    }
}
