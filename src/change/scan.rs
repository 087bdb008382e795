//! A validating scanner that finds where a JSON object's keys and values lie in its text, without reading
//! the values.
//!
//! Why not `serde_json` here: indexing a snapshot page through serde's visitor calls (a key deserialised
//! and a `RawValue` skipped per field) cost some 5 µs per Desk ticket, as much as writing its Avro; this
//! loop does the same work in a fraction of that. It checks what `serde_json` checks when it skips a value
//! (the grammar, escapes, control characters in strings) and, like it, takes any depth without recursion;
//! the tests hold it to `serde_json`'s verdict on random and mutated texts.

use super::record::RecordError;
use std::borrow::Cow;
use std::ops::Range;

/// An object key: the text between its quotes, and whether that text holds escapes.
pub(crate) struct Key {
    pub inner: Range<usize>,
    pub escaped: bool,
}

/// A position in a text being scanned, and the containers opened around it.
pub(crate) struct Scanner<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    depth: usize,
}

impl<'t> Scanner<'t> {
    /// Scans `text[range]` (byte positions refer to the whole text).
    pub fn new(text: &'t str, range: Range<usize>) -> Self {
        let bytes = text.as_bytes();
        let end = range.end.min(bytes.len());
        Self { text, bytes: &bytes[..end], at: range.start.min(end), depth: 0 }
    }

    /// The text at positions the scan returned (always on character boundaries: they are at ASCII
    /// punctuation).
    #[inline]
    pub fn slice(&self, at: Range<usize>) -> &'t str {
        self.text.get(at).unwrap_or_default()
    }

    /// A key's text, unescaped when it held escapes (a lone surrogate is refused, as `serde_json` refuses
    /// it).
    pub fn key_text(&self, key: &Key) -> Result<Cow<'t, str>, RecordError> {
        let inner = self.slice(key.inner.clone());
        if !key.escaped {
            return Ok(Cow::Borrowed(inner));
        }
        let quoted = self.slice(key.inner.start.saturating_sub(1)..key.inner.end + 1);
        Ok(Cow::Owned(serde_json::from_str::<String>(quoted)?))
    }

    /// Opens the object that comes next; `false` (nothing consumed) when the next value is not an object.
    pub fn open_object(&mut self) -> Result<bool, RecordError> {
        self.open(b'{')
    }

    /// Opens the array that comes next; `false` (nothing consumed) when the next value is not an array.
    pub fn open_array(&mut self) -> Result<bool, RecordError> {
        self.open(b'[')
    }

    /// The next key of the innermost open object, with its colon consumed, or `None` once the object is
    /// closed. `first` must be true for the first call after [`Self::open_object`] (and is then cleared).
    // Inlined, like `more` and `key`: returned through the stack, the `Option<Key>` was copied with overlapping
    // moves that stalled the load after them (the largest single cost of indexing a record).
    #[inline(always)]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Key>, RecordError> {
        if !self.more(b'}', first)? {
            return Ok(None);
        }
        let key = self.key()?;
        Ok(Some(key))
    }

    /// Whether the innermost open array has another item (then next to be read), or is now closed.
    pub fn next_item(&mut self, first: &mut bool) -> Result<bool, RecordError> {
        self.more(b']', first)
    }

    /// Skips the next value, whatever it is, and returns where it lies.
    // Inlined for the strings most values are, the rest out of line: a string skipped through the call of
    // the whole loop below paid for saving and restoring the registers that loop needs (a tenth of indexing
    // a Desk ticket).
    #[inline(always)]
    pub fn skip_value(&mut self) -> Result<Range<usize>, RecordError> {
        self.space();
        let start = self.at;
        match self.peek() {
            Some(b'"') => {
                self.string()?;
                return Ok(start..self.at);
            }
            // A ticket's other values are mostly these: read in place, not through the loop's setup.
            Some(b'n' | b't' | b'f') => {
                if let Some(len) = self.literal_len() {
                    self.at += len;
                    return Ok(start..self.at);
                }
            }
            _ => {}
        }
        self.skip_other(start)
    }

    /// The length of the `null`, `true` or `false` at the current position; `None` for anything else (the
    /// general path then reads it, and words it to errors).
    #[inline(always)]
    fn literal_len(&self) -> Option<usize> {
        match self.bytes.get(self.at..self.at + 4)? {
            b"null" | b"true" => Some(4),
            b"fals" if self.bytes.get(self.at + 4) == Some(&b'e') => Some(5),
            _ => None,
        }
    }

    /// [`Self::skip_value`] for a value that is not a string, starting at `start`.
    #[inline(never)]
    fn skip_other(&mut self, start: usize) -> Result<Range<usize>, RecordError> {
        let base = self.depth;
        let mut objects = Levels::default();
        loop {
            // A value is next.
            self.space();
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    self.enter();
                    objects.set(self.depth - base - 1, c == b'{');
                    self.space();
                    if c == b'{' {
                        if self.peek() != Some(b'}') {
                            self.key()?;
                            continue;
                        }
                    } else if self.peek() != Some(b']') {
                        continue;
                    }
                    self.at += 1;
                    self.depth -= 1;
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return self.fail(),
            }
            // A value ended: close what it ended, until another value is due.
            loop {
                if self.depth == base {
                    return Ok(start..self.at);
                }
                let in_object = objects.get(self.depth - base - 1);
                self.space();
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        if in_object {
                            self.key()?;
                        }
                        break;
                    }
                    Some(b'}') if in_object => {}
                    Some(b']') if !in_object => {}
                    _ => return self.fail(),
                }
                self.at += 1;
                self.depth -= 1;
            }
        }
    }

    /// Ends the scan: only whitespace may follow.
    pub fn finish(&mut self) -> Result<(), RecordError> {
        self.space();
        if self.at == self.bytes.len() { Ok(()) } else { self.fail() }
    }

    fn open(&mut self, c: u8) -> Result<bool, RecordError> {
        self.space();
        if self.peek() != Some(c) {
            return Ok(false);
        }
        self.enter();
        Ok(true)
    }

    fn enter(&mut self) {
        self.at += 1;
        self.depth += 1;
    }

    /// After `,` or at the start of a container: whether another entry follows, or `close` ends it.
    #[inline(always)]
    fn more(&mut self, close: u8, first: &mut bool) -> Result<bool, RecordError> {
        self.space();
        let next = self.peek();
        if next == Some(close) {
            // `{}` and `[]`, or the end after an entry; never after a comma (that is a syntax error).
            self.at += 1;
            self.depth = self.depth.saturating_sub(1);
            *first = false;
            return Ok(false);
        }
        if *first {
            *first = false;
            return Ok(true);
        }
        if next != Some(b',') {
            return self.fail();
        }
        self.at += 1;
        Ok(true)
    }

    /// A key and its colon.
    #[inline(always)]
    fn key(&mut self) -> Result<Key, RecordError> {
        self.space();
        if self.peek() != Some(b'"') {
            return self.fail();
        }
        let start = self.at + 1;
        let escaped = self.string()?;
        let key = Key { inner: start..self.at - 1, escaped };
        self.space();
        if self.peek() != Some(b':') {
            return self.fail();
        }
        self.at += 1;
        Ok(key)
    }

    /// Skips a string (at its opening quote); whether it held escapes.
    // Inlined into its callers: a Desk ticket has some 190 strings, mostly short, and the call (saving and
    // restoring five registers each time) cost a tenth of indexing it (3.01 → 2.71 µs per ticket).
    #[inline(always)]
    fn string(&mut self) -> Result<bool, RecordError> {
        let bytes = self.bytes;
        let mut at = self.at + 1;
        let mut escaped = false;
        loop {
            // Sixteen bytes at a time, and straight to the first that needs a look: stepping byte by byte to
            // it cost a mispredicted branch per string, which is most of the time on short Desk values; most
            // of them fit in one step of sixteen (eight at a time took two or three).
            let found = match bytes.get(at..at + 16).and_then(|c| <[u8; 16]>::try_from(c).ok()) {
                Some(chunk) => match care_mask(chunk) {
                    0 => {
                        at += 16;
                        continue;
                    }
                    mask => at + mask.trailing_zeros() as usize,
                },
                // The last few bytes of the text.
                None => match bytes.get(at..).and_then(|rest| rest.iter().position(|&c| cares(c))) {
                    Some(offset) => at + offset,
                    None => bytes.len(),
                },
            };
            self.at = found;
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.at += 1;
                    self.escape()?;
                    at = self.at;
                }
                _ => return self.fail(),
            }
        }
    }

    /// The rest of an escape, after its backslash. As when `serde_json` skips a string, a `\u` escape needs
    /// four hex digits but is not decoded (a lone surrogate passes here; reading the string refuses it).
    fn escape(&mut self) -> Result<(), RecordError> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 1,
            Some(b'u') => {
                let hex = self.bytes.get(self.at + 1..self.at + 5);
                match hex {
                    Some(h) if h.iter().all(u8::is_ascii_hexdigit) => self.at += 5,
                    _ => {
                        // Point at the first bad digit, so a cut-off escape reads as truncated.
                        self.at += 1;
                        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                            self.at += 1;
                        }
                        return self.fail();
                    }
                }
            }
            _ => return self.fail(),
        }
        Ok(())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), RecordError> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.fail(),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn some_digits(&mut self) -> Result<(), RecordError> {
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return self.fail();
        }
        self.digits();
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), RecordError> {
        for &c in word {
            if self.peek() != Some(c) {
                return self.fail();
            }
            self.at += 1;
        }
        Ok(())
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// The error at the current position: the text ran out, or something unexpected stands there.
    fn fail<T>(&self) -> Result<T, RecordError> {
        Err(RecordError::Json(if self.at >= self.bytes.len() { "truncated" } else { "syntax error" }))
    }
}

/// Which of the containers open in a skipped value are objects, by level: a bit each for the first 128 (Desk
/// nests a few), a byte each past them (a hostile text may nest thousands, and is read without recursion).
#[derive(Default)]
struct Levels {
    first: u128,
    deeper: Vec<bool>,
}

impl Levels {
    fn set(&mut self, level: usize, object: bool) {
        match level.checked_sub(128) {
            None => {
                let bit = 1u128 << level;
                self.first = if object { self.first | bit } else { self.first & !bit };
            }
            Some(i) => {
                self.deeper.truncate(i);
                self.deeper.push(object);
            }
        }
    }

    fn get(&self, level: usize) -> bool {
        match level.checked_sub(128) {
            None => self.first & (1u128 << level) != 0,
            Some(i) => self.deeper.get(i).copied().unwrap_or(false),
        }
    }
}

/// Whether a string byte needs a look: it ends the string, starts an escape, or is a control character
/// (not allowed raw).
fn cares(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// The bytes of `chunk` for which [`cares`] holds, a bit each (bit n for byte n), in one SSE2 step on x86-64
/// (`wide` falls back to plain code elsewhere).
#[inline(always)]
fn care_mask(chunk: [u8; 16]) -> u32 {
    use wide::u8x16;
    let v = u8x16::new(chunk);
    let quote = v.simd_eq(u8x16::splat(b'"'));
    let backslash = v.simd_eq(u8x16::splat(b'\\'));
    // Below 0x20 exactly when the minimum with 0x1f leaves it as it is.
    let control = v.min(u8x16::splat(0x1f)).simd_eq(v);
    (quote | backslash | control).to_bitmask()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn skip(text: &str) -> Result<Range<usize>, RecordError> {
        let mut s = Scanner::new(text, 0..text.len());
        let r = s.skip_value()?;
        s.finish()?;
        Ok(r)
    }

    #[test]
    fn the_care_mask_marks_exactly_the_bytes_that_need_a_look() {
        // Every byte value at every position, over backgrounds of every kind.
        for background in [b'a', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xa0, 0xff, b'"', b'\\'] {
            for b in 0..=255u8 {
                for pos in 0..16 {
                    let mut chunk = [background; 16];
                    chunk[pos] = b;
                    let expected = chunk
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| cares(**c))
                        .map(|(i, _)| 1 << i)
                        .sum::<u32>();
                    assert_eq!(care_mask(chunk), expected, "{chunk:?}");
                }
            }
        }
    }

    #[test]
    fn values_are_skipped_whole() {
        for text in [r#"{"a":[1,{"b":"c\"d"}],"e":{}}"#, "[]", "-0.5e+3", r#""\u00e9""#, "true", " null "] {
            assert_eq!(skip(text).unwrap(), text.find(|c: char| c != ' ').unwrap()..text.trim_end().len());
        }
    }

    #[test]
    fn errors_say_truncated_at_the_end_of_the_text() {
        for text in ["", "{", r#"{"a""#, r#"{"a":"#, r#""abc"#, r#""\u00"#, "[1,", "-", "1.", "tru"] {
            assert_eq!(skip(text).unwrap_err(), RecordError::Json("truncated"), "{text:?}");
        }
        for text in ["{,}", "[1,]", r#"{"a":1,}"#, "01", "1.e5", r#""\x""#, "\"a\u{1}\"", "nul1", "[1 2]"] {
            assert_eq!(skip(text).unwrap_err(), RecordError::Json("syntax error"), "{text:?}");
        }
    }

    #[test]
    fn any_depth_is_read_without_recursion() {
        let deep = format!("{}1{}", r#"[{"a":"#.repeat(10_000), "}]".repeat(10_000));
        assert_eq!(skip(&deep).unwrap(), 0..deep.len());
        let unclosed = format!("{}1{}]", r#"[{"a":"#.repeat(300), "}]".repeat(299));
        assert_eq!(skip(&unclosed).unwrap_err(), RecordError::Json("syntax error"));
    }

    /// Characters the mutations insert: JSON's punctuation, pieces of numbers and literals, a control
    /// character and a non-ASCII one.
    const EDITS: [char; 20] = [
        '{', '}', '[', ']', '"', ',', ':', '\\', ' ', '0', '1', '-', '.', 'e', '+', 't', 'n', '\u{1}', 'a',
        'é',
    ];

    fn json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "[a-z\"\\\\/\u{1}\n\té€ ]{0,10}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\é]{0,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Valid texts, and texts a few edits away from valid ones, are accepted exactly when `serde_json`
        /// accepts them (when skipping, as both do here).
        #[test]
        fn the_scan_agrees_with_serde_json(
            value in json(),
            pretty in any::<bool>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(EDITS.to_vec())), 0..4),
        ) {
            let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
            let mut chars: Vec<char> = text.unwrap().chars().collect();
            for (at, how, c) in edits {
                let i = at.index(chars.len() + 1);
                match how {
                    0 => chars.insert(i, c),
                    1 if i < chars.len() => { chars.remove(i); }
                    _ if i < chars.len() => chars[i] = c,
                    _ => chars.push(c),
                }
            }
            let text: String = chars.into_iter().collect();
            let ours = skip(&text);
            let theirs = serde_json::from_str::<serde::de::IgnoredAny>(&text);
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?} vs {:?}", text, ours, theirs);
            if let Ok(at) = ours {
                prop_assert_eq!(&text[at], text.trim_matches([' ', '\n']));
            }
        }
    }
}
