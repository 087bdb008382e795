//! One Desk record: a JSON object kept as its text, with where each top-level field lies in it.
//!
//! Why not `serde_json::Map`: a snapshot page of 100 tickets (some 60 fields each) became about 12,000
//! allocations (a `String` per key and value, B-tree nodes), built only to be read once by the Avro writer
//! and freed; that cost more than everything else the bridge does per record. A record here is a shared
//! text (a whole page or webhook body, read once) and one vector of spans into it.

use super::scan::Scanner;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Messages never quote the input (it holds customer data).
    #[error("invalid JSON ({0})")]
    Json(&'static str),
    #[error("not a JSON object")]
    NotAnObject,
}

impl From<serde_json::Error> for RecordError {
    fn from(e: serde_json::Error) -> Self {
        RecordError::Json(match e.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "data error",
            serde_json::error::Category::Eof => "truncated",
        })
    }
}

/// A JSON object: its fields in text order (a repeated key counts as its last value, as in
/// `serde_json::Map`).
#[derive(Clone)]
pub struct Record {
    text: Arc<str>,
    fields: Vec<Field>,
    /// The unescaped keys of fields whose keys held escapes (rare: Desk's never do), by [`Key::Owned`].
    /// Kept apart so that a field owns nothing: dropping a record frees its vectors without visiting each
    /// field, and a field takes 20 bytes instead of 32.
    owned_keys: Box<[Box<str>]>,
    known: Known,
}

/// Where the values the pipeline reads of every record are (the last of each name), found while indexing:
/// a lookup by name scans all fields, and these are asked for several times per record. The value's span
/// itself, not its field's index: a page's records are read again only after the page waited its turn in
/// the commit queue, out of the caches, and the field list is then one more miss per lookup. A missing value
/// is [`Known::NONE`] rather than an `Option`, to keep records (moved several times each) small.
#[derive(Clone, Copy)]
struct Known([Span; KNOWN_KEYS.len()]);

impl Default for Known {
    fn default() -> Self {
        Self([Self::NONE; KNOWN_KEYS.len()])
    }
}

/// The names [`Known`] keeps, by slot.
const KNOWN_KEYS: [&str; 3] = ["id", "createdTime", "modifiedTime"];

impl Known {
    /// No value: no span of a text (spans are 32-bit and a record's text is shorter) ends here.
    const NONE: Span = Span { start: u32::MAX, end: u32::MAX };

    fn note(&mut self, key: &[u8], value: Span) {
        if let Some(slot) = Self::slot(key) {
            self.0[slot] = value;
        }
    }

    /// `Some(value)` when `key` is one of these (`Some(None)`: it is, and the record lacks it).
    fn find(&self, key: &str) -> Option<Option<Span>> {
        Self::slot(key.as_bytes()).map(|slot| Some(self.0[slot]).filter(|s| s.end != u32::MAX))
    }

    fn slot(key: &[u8]) -> Option<usize> {
        KNOWN_KEYS.iter().position(|k| k.as_bytes() == key)
    }
}

/// A list page read by [`Record::list`].
pub struct RecordList<'t> {
    pub records: Vec<Record>,
    /// Whether the object held an array under the key (its last value): an empty page and a page of
    /// another shape both have no records.
    pub has_array: bool,
    /// The page's other top-level fields (`count`, ...), in text order.
    pub rest: Vec<(Cow<'t, str>, Json<'t>)>,
}

#[derive(Clone, Copy)]
struct Field {
    key: Key,
    value: Span,
}

#[derive(Clone, Copy)]
enum Key {
    /// The key's characters in the text (it held no escapes).
    At(Span),
    /// The unescaped key (it held escapes): its index in the record's `owned_keys`.
    Owned(u32),
}

#[derive(Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            text: Arc::from("{}"),
            fields: Vec::new(),
            owned_keys: Box::default(),
            known: Known::default(),
        }
    }
}

impl Record {
    /// Parses one JSON object.
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let text: Arc<str> = Arc::from(text);
        Self::within(&text, &text)
    }

    /// The object whose JSON text is `raw`, a slice of `text` (the page or body the record shares). A `raw`
    /// that is not a slice of `text` is copied.
    pub fn within(text: &Arc<str>, raw: &str) -> Result<Self, RecordError> {
        let Some(span) = span_of(text, raw) else { return Self::parse(raw) };
        let mut scan = Scanner::new(text, span.start as usize..span.end as usize);
        let record = Self::scan_object(text, &mut scan)?;
        scan.finish()?;
        record.ok_or(RecordError::NotAnObject)
    }

    /// The records of a list page: the array under `key` of the JSON object `text` (items that are not
    /// objects are skipped), and the raw values of the object's other fields. `None` when `text` is not an
    /// object. One pass over the text, however long the page.
    pub fn list<'t>(text: &'t Arc<str>, key: &str) -> Result<Option<RecordList<'t>>, RecordError> {
        let mut scan = Scanner::new(text, 0..text.len());
        if !scan.open_object()? {
            scan.skip_value()?;
            scan.finish()?;
            return Ok(None);
        }
        let mut list = RecordList { records: Vec::new(), has_array: false, rest: Vec::new() };
        let mut first = true;
        while let Some(k) = scan.next_key(&mut first)? {
            let name = scan.key_text(&k)?;
            if name == key {
                // A repeated key counts as its last value.
                let items = Self::scan_items(text, &mut scan)?;
                list.has_array = items.is_some();
                list.records = items.unwrap_or_default();
            } else {
                let value = scan.skip_value()?;
                list.rest.push((name, Json(scan.slice(value))));
            }
        }
        scan.finish()?;
        Ok(Some(list))
    }

    /// The objects of the array next in `scan`, as records of `text`; `None` (the value skipped) when it is
    /// not an array.
    fn scan_items(text: &Arc<str>, scan: &mut Scanner<'_>) -> Result<Option<Vec<Self>>, RecordError> {
        if !scan.open_array()? {
            scan.skip_value()?;
            return Ok(None);
        }
        let mut out = Vec::with_capacity(ITEMS_HINT);
        let mut first = true;
        while scan.next_item(&mut first)? {
            out.extend(Self::scan_object(text, scan)?);
        }
        Ok(Some(out))
    }

    /// The object next in `scan` as a record of `text`; `None` (the value skipped) for any other value.
    fn scan_object(text: &Arc<str>, scan: &mut Scanner<'_>) -> Result<Option<Self>, RecordError> {
        if !scan.open_object()? {
            scan.skip_value()?;
            return Ok(None);
        }
        Self::scan_fields(text, scan).map(Some)
    }

    /// The value next in `scan`, a slice of `text`: an object becomes a record of `text`, each key and value
    /// a span of it.
    pub(crate) fn scan_value(text: &Arc<str>, scan: &mut Scanner<'_>) -> Result<Placed, RecordError> {
        if scan.open_object()? {
            return Self::scan_fields(text, scan).map(Placed::Object);
        }
        let value = scan.skip_value()?;
        Ok(if scan.slice(value) == "null" { Placed::Null } else { Placed::Other })
    }

    /// The fields of the object just opened in `scan`, up to its end.
    fn scan_fields(text: &Arc<str>, scan: &mut Scanner<'_>) -> Result<Self, RecordError> {
        // Checked once here, so that each position below fits a span as it is.
        if text.len() >= u32::MAX as usize {
            return Err(TOO_LONG);
        }
        // Desk records have some 60 fields; growing from a small vector cost two copies of each.
        let mut fields = Vec::with_capacity(FIELDS_HINT);
        let mut owned_keys = Vec::new();
        let mut known = Known::default();
        let mut first = true;
        while let Some(k) = scan.next_key(&mut first)? {
            let value = Span::within(scan.skip_value()?);
            let key = if k.escaped {
                let name = scan.key_text(&k)?;
                known.note(name.as_bytes(), value);
                Key::Owned(own_key(&mut owned_keys, name.into())?)
            } else {
                known.note(text.as_bytes().get(k.inner.clone()).unwrap_or_default(), value);
                Key::At(Span::within(k.inner))
            };
            fields.push(Field { key, value });
        }
        Ok(Record { text: text.clone(), fields, owned_keys: owned_keys.into_boxed_slice(), known })
    }

    /// The value of `key` (its last occurrence).
    pub fn get(&self, key: &str) -> Option<Json<'_>> {
        if let Some(at) = self.known.find(key) {
            return at.map(|s| Json(self.slice(s)));
        }
        self.fields.iter().rev().find(|f| self.key_is(f, key)).map(|f| self.value(f))
    }

    /// The record id, as Desk sends it (a string or a number).
    pub fn id(&self) -> Option<Cow<'_, str>> {
        let v = self.get("id")?;
        match v.kind() {
            Kind::String => v.as_str(),
            Kind::Number => v.as_number().map(|n| Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    /// `key` when it holds a JSON string.
    pub fn get_str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key)?.as_str()
    }

    /// Every field in text order, repeated keys included.
    pub fn fields(&self) -> impl Iterator<Item = (&str, Json<'_>)> {
        self.fields.iter().map(|f| (self.key(f), self.value(f)))
    }

    /// The fields with each key once (its last value), in text order of those last values.
    pub fn unique_fields(&self) -> Vec<(&str, Json<'_>)> {
        let mut seen = std::collections::HashSet::with_capacity(self.fields.len());
        let mut out: Vec<_> = self.fields.iter().rev().filter(|f| seen.insert(self.key(f))).collect();
        out.reverse();
        out.into_iter().map(|f| (self.key(f), self.value(f))).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The length of its fields' text: a bound on its Avro size, for sizing buffers.
    pub fn text_len(&self) -> usize {
        match (self.fields.first(), self.fields.last()) {
            (Some(first), Some(last)) => {
                (last.value.end as usize).saturating_sub(first.value.start as usize) + 64
            }
            _ => 0,
        }
    }

    /// The record as a `serde_json` map (for the slow paths and tests).
    pub fn to_map(&self) -> Map<String, Value> {
        self.fields().map(|(k, v)| (k.to_owned(), v.to_value())).collect()
    }

    /// A record of `map`.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        // A map always serialises to an object, which always parses.
        Self::parse(&Value::Object(map.clone()).to_string()).unwrap_or_default()
    }

    /// The object as compact JSON text, each key once.
    pub fn to_json(&self) -> String {
        let mut w = ObjectWriter::default();
        for (k, v) in self.unique_fields() {
            w.field(k, v.raw());
        }
        w.finish()
    }

    /// This record with `key` set to `value` (replacing any value it had).
    pub fn with(&self, key: &str, value: &Value) -> Self {
        let mut w = ObjectWriter::default();
        for (k, v) in self.unique_fields().into_iter().filter(|(k, _)| *k != key) {
            w.field(k, v.raw());
        }
        w.field(key, &value.to_string());
        Self::parse(&w.finish()).unwrap_or_default()
    }

    /// This record with `prev` laid over it: for an update with Desk's `prevState`, the record as it was
    /// before. Nested objects (`cf`) are merged key by key, since `prevState` lists only their changed keys.
    pub fn overlaid(&self, prev: &Record) -> Self {
        let nested = |k: &str, v: Json<'_>| v.is_object() && prev.get(k).is_some_and(Json::is_object);
        // Both read from one text (a webhook body holds payload and prevState) and nothing to merge below the
        // top level: the before-image is that text with a new field list, built in one pass over this record
        // per field of `prev` (a few: the changed ones).
        // (A `prev` with escaped keys takes the general path below: its keys' indexes are its own.)
        if Arc::ptr_eq(&self.text, &prev.text)
            && prev.owned_keys.is_empty()
            && !self.fields().any(|(k, v)| nested(k, v))
        {
            let mut fields = Vec::with_capacity(self.fields.len() + prev.fields.len());
            fields.extend_from_slice(&self.fields);
            let mut known = self.known;
            for p in &prev.fields {
                let key = prev.key(p);
                let mut found = false;
                for f in fields.iter_mut().take(self.fields.len()).filter(|f| self.key_is(f, key)) {
                    f.value = p.value;
                    found = true;
                }
                // Either way the key's last value is now this one.
                known.note(key.as_bytes(), p.value);
                if !found {
                    fields.push(*p);
                }
            }
            return Self { text: self.text.clone(), fields, owned_keys: self.owned_keys.clone(), known };
        }
        let mut w = ObjectWriter::default();
        for (k, v) in self.unique_fields() {
            match prev.get(k) {
                None => w.field(k, v.raw()),
                Some(p) if p.is_object() && v.is_object() => {
                    match (Record::parse(v.raw()), Record::parse(p.raw())) {
                        (Ok(a), Ok(b)) => w.field(k, &a.overlaid(&b).to_json()),
                        _ => w.field(k, p.raw()),
                    }
                }
                Some(p) => w.field(k, p.raw()),
            }
        }
        for (k, p) in prev.unique_fields() {
            if self.get(k).is_none() {
                w.field(k, p.raw());
            }
        }
        Self::parse(&w.finish()).unwrap_or_default()
    }

    /// Whether `f`, a field of this record, is named `key`.
    fn key_is(&self, f: &Field, key: &str) -> bool {
        // Compare lengths before slicing the text.
        match f.key {
            Key::At(s) => (s.end - s.start) as usize == key.len() && self.slice(s) == key,
            Key::Owned(_) => self.key(f) == key,
        }
    }

    fn key(&self, f: &Field) -> &str {
        Self::key_in(&self.text, &self.owned_keys, f)
    }

    fn key_in<'a>(text: &'a str, owned_keys: &'a [Box<str>], f: &Field) -> &'a str {
        match f.key {
            Key::At(s) => slice(text, s),
            Key::Owned(i) => owned_keys.get(i as usize).map(|k| &**k).unwrap_or_default(),
        }
    }

    fn value(&self, f: &Field) -> Json<'_> {
        Json(self.slice(f.value))
    }

    fn slice(&self, s: Span) -> &str {
        slice(&self.text, s)
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Record({})", self.to_json())
    }
}

/// Equal when they read as the same `serde_json` map.
impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.to_map() == other.to_map()
    }
}

/// The text at `s`. Spans are made from slices of the very text, so they lie on character boundaries.
fn slice(text: &str, s: Span) -> &str {
    text.get(s.start as usize..s.end as usize).unwrap_or_default()
}

/// Where `part` (a slice of `text`) lies in it.
fn span_of(text: &str, part: &str) -> Option<Span> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    if end > text.len() {
        return None;
    }
    Some(Span { start: u32::try_from(start).ok()?, end: u32::try_from(end).ok()? })
}

/// The top-level entries of the JSON object `raw`: each key (borrowed unless it held escapes) and the raw
/// text of its value, in text order.
pub fn object_entries(raw: &str) -> Result<Vec<(Cow<'_, str>, &str)>, RecordError> {
    let mut scan = Scanner::new(raw, 0..raw.len());
    if !scan.open_object()? {
        scan.skip_value()?;
        scan.finish()?;
        return Err(RecordError::NotAnObject);
    }
    let mut out = Vec::new();
    let mut first = true;
    while let Some(k) = scan.next_key(&mut first)? {
        let value = scan.skip_value()?;
        out.push((scan.key_text(&k)?, scan.slice(value)));
    }
    scan.finish()?;
    Ok(out)
}

/// Spans are 32-bit: a text past 4 GiB is refused (the HTTP body limits keep it far below that).
const TOO_LONG: RecordError = RecordError::Json("a record's text is longer than 4 GiB");

impl Span {
    /// The span of positions in a text shorter than `u32::MAX` (checked once per text by the caller, so that
    /// no end is `Known::NONE`'s either).
    fn within(at: std::ops::Range<usize>) -> Self {
        Span { start: at.start as u32, end: at.end as u32 }
    }
}

/// Keeps `key` in `owned_keys`; its index there.
fn own_key(owned_keys: &mut Vec<Box<str>>, key: Box<str>) -> Result<u32, RecordError> {
    let at = u32::try_from(owned_keys.len()).map_err(|_| TOO_LONG)?;
    owned_keys.push(key);
    Ok(at)
}

/// A value read by [`Record::scan_value`].
pub enum Placed {
    Object(Record),
    Null,
    /// Any other value (a string, a number, an array, a boolean).
    Other,
}

/// Fields a record vector starts with room for.
const FIELDS_HINT: usize = 64;

/// Records a page's vector starts with room for (Desk's largest page of most modules).
const ITEMS_HINT: usize = 100;

/// The raw JSON text of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Json<'a>(&'a str);

/// What a JSON value is, from its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl<'a> Json<'a> {
    /// `raw` must be the text of one JSON value (as `serde_json` hands out for a `RawValue`).
    pub fn new(raw: &'a str) -> Self {
        Json(raw)
    }

    pub fn raw(self) -> &'a str {
        self.0
    }

    pub fn kind(self) -> Kind {
        match self.0.as_bytes().first() {
            Some(b'"') => Kind::String,
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') | None => Kind::Null,
            Some(_) => Kind::Number,
        }
    }

    pub fn is_null(self) -> bool {
        self.kind() == Kind::Null
    }

    pub fn is_object(self) -> bool {
        self.kind() == Kind::Object
    }

    /// The string when it holds no escapes (as it stands in the text, and as [`Self::as_str`] reads it).
    #[inline]
    pub fn plain_str(self) -> Option<&'a str> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        (!holds_backslash(inner.as_bytes())).then_some(inner)
    }

    /// The string, unescaped (borrowed when it held no escapes).
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        if let Some(text) = self.plain_str() {
            return Some(Cow::Borrowed(text));
        }
        // A string with escapes, or not a string at all.
        self.0.strip_prefix('"')?.strip_suffix('"')?;
        serde_json::from_str::<String>(self.0).ok().map(Cow::Owned)
    }

    /// Whether the text holds a `\\` (for a string: whether reading it unescapes anything).
    pub fn has_escapes(self) -> bool {
        holds_backslash(self.0.as_bytes())
    }

    pub fn as_bool(self) -> Option<bool> {
        match self.0 {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    pub fn as_number(self) -> Option<Number> {
        (self.kind() == Kind::Number).then(|| serde_json::from_str(self.0).ok()).flatten()
    }

    /// The items of an array.
    pub fn items(self) -> Option<Vec<Json<'a>>> {
        if self.kind() != Kind::Array {
            return None;
        }
        let items: Vec<&'a RawValue> = serde_json::from_str(self.0).ok()?;
        Some(items.into_iter().map(|r| Json(r.get())).collect())
    }

    /// Visits the entries of an object in text order, each key as it stands in the text (`None` when it
    /// holds escapes), until `visit` refuses one. Whether this is an object and `visit` took every entry:
    /// an object read in one pass, with no list of its entries built (Desk's `cf`, on every ticket).
    pub fn all_entries(self, mut visit: impl FnMut(Option<&'a str>, Json<'a>) -> bool) -> bool {
        let mut scan = Scanner::new(self.0, 0..self.0.len());
        if !matches!(scan.open_object(), Ok(true)) {
            return false;
        }
        let mut first = true;
        loop {
            match scan.next_key(&mut first) {
                Ok(Some(key)) => {
                    let Ok(value) = scan.skip_value() else { return false };
                    let key = (!key.escaped).then(|| scan.slice(key.inner));
                    if !visit(key, Json(scan.slice(value))) {
                        return false;
                    }
                }
                Ok(None) => return scan.finish().is_ok(),
                Err(_) => return false,
            }
        }
    }

    /// The entries of an object, keys unescaped, in text order.
    pub fn entries(self) -> Option<Vec<(Cow<'a, str>, Json<'a>)>> {
        if self.kind() != Kind::Object {
            return None;
        }
        let entries = object_entries(self.0).ok()?;
        Some(entries.into_iter().map(|(k, v)| (k, Json(v))).collect())
    }

    pub fn to_value(self) -> Value {
        serde_json::from_str(self.0).unwrap_or(Value::Null)
    }
}

/// Whether `bytes` hold a `\\`, eight at a time, the last eight overlapping the word before: Desk's values
/// are short, where `memchr`'s setup costs more than the search (it was a tenth of writing a ticket's Avro),
/// and so did searching the bytes after the last whole word on their own.
#[inline]
fn holds_backslash(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let in_word = |w: &[u8]| {
        let v = u64::from_le_bytes(<[u8; 8]>::try_from(w).unwrap_or_default()) ^ (ONES * u64::from(b'\\'));
        v.wrapping_sub(ONES) & !v & HIGH != 0
    };
    match bytes.len().checked_sub(8) {
        Some(last) => bytes.chunks_exact(8).any(in_word) || bytes.get(last..).is_some_and(in_word),
        None => bytes.contains(&b'\\'),
    }
}

/// Where an [`ObjectWriter`] puts its text.
pub trait TextOut {
    fn put(&mut self, s: &str);
}

impl TextOut for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl TextOut for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

impl<T: TextOut + ?Sized> TextOut for &mut T {
    fn put(&mut self, s: &str) {
        (**self).put(s);
    }
}

/// Builds an object's JSON text from keys and raw values.
pub struct ObjectWriter<O = String> {
    out: O,
    started: bool,
}

impl Default for ObjectWriter {
    fn default() -> Self {
        Self::new(String::new())
    }
}

impl<O: TextOut> ObjectWriter<O> {
    pub fn new(out: O) -> Self {
        Self { out, started: false }
    }

    pub fn field(&mut self, key: &str, raw_value: &str) {
        self.field_with(key, |out| out.put(raw_value));
    }

    /// A field whose value `value` writes.
    pub fn field_with(&mut self, key: &str, value: impl FnOnce(&mut O)) {
        self.out.put(if self.started { "," } else { "{" });
        self.started = true;
        if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.out.put("\"");
            self.out.put(key);
            self.out.put("\"");
        } else {
            // Escaping a string cannot fail.
            self.out.put(&serde_json::to_string(key).unwrap_or_default());
        }
        self.out.put(":");
        value(&mut self.out);
    }

    pub fn finish(mut self) -> O {
        if !self.started {
            self.out.put("{");
        }
        self.out.put("}");
        self.out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_read_in_place() {
        let r =
            Record::parse(r#" {"id": "7", "n": 12, "s": "a\"b", "o": {"x": [1, 2]}, "b": true, "z": null} "#)
                .unwrap();
        assert_eq!(r.get_str("id").as_deref(), Some("7"));
        assert_eq!(r.get("n").unwrap().as_number().unwrap().as_i64(), Some(12));
        assert_eq!(r.get_str("s").as_deref(), Some("a\"b"));
        assert_eq!(r.get("o").unwrap().raw(), r#"{"x": [1, 2]}"#);
        assert_eq!(r.get("b").unwrap().as_bool(), Some(true));
        assert!(r.get("z").unwrap().is_null());
        assert!(r.get("missing").is_none());
        assert_eq!(
            Value::Object(r.to_map()),
            json!({"id": "7", "n": 12, "s": "a\"b", "o": {"x": [1, 2]}, "b": true, "z": null})
        );
    }

    #[test]
    fn records_share_their_page() {
        let page: Arc<str> = Arc::from(r#"{"data":[{"id":"1"},{"id":"2","k\u00e9y":3}]}"#);
        let records = Record::list(&page, "data").unwrap().unwrap().records;
        assert_eq!(records[1].get_str("id").as_deref(), Some("2"));
        assert_eq!(records[1].get("kéy").unwrap().raw(), "3");
        assert!(Arc::ptr_eq(&records[0].text, &page));
    }

    #[test]
    fn a_repeated_key_reads_as_its_last_value() {
        let r = Record::parse(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(r.get("a").unwrap().raw(), "3");
        assert_eq!(r.unique_fields().len(), 2);
        assert_eq!(Value::Object(r.to_map()), json!({"a": 3, "b": 2}));
        assert_eq!(r.to_json(), r#"{"b":2,"a":3}"#);
    }

    #[test]
    fn non_objects_and_broken_text_are_refused() {
        for bad in ["[1]", "1", "\"x\"", "null", "{", "{\"a\":}", "{} x", ""] {
            assert!(Record::parse(bad).is_err(), "{bad}");
        }
        // A key must read as text; a value is kept as sent (its string reading then fails, so it goes to
        // `extra` raw).
        assert!(Record::parse(r#"{"\ud800":1}"#).is_err());
        let r = Record::parse(r#"{"k\u00e9y":"\ud800"}"#).unwrap();
        assert_eq!(r.get("kéy").unwrap().raw(), r#""\ud800""#);
        assert_eq!(r.get_str("kéy"), None);
    }

    #[test]
    fn with_and_overlay_build_new_records() {
        let r = Record::parse(r#"{"id":"1","status":"Open","cf":{"a":"x","b":"y"}}"#).unwrap();
        let w = r.with("module", &json!("tickets"));
        assert_eq!(w.get_str("module").as_deref(), Some("tickets"));
        let prev = Record::parse(r#"{"status":"On Hold","cf":{"b":"z"},"old":1}"#).unwrap();
        assert_eq!(
            Value::Object(r.overlaid(&prev).to_map()),
            json!({"id": "1", "status": "On Hold", "cf": {"a": "x", "b": "z"}, "old": 1})
        );
        assert_eq!(Record::from_map(&r.to_map()), r);
    }

    #[test]
    fn an_overlay_within_one_text_reads_as_one_across_texts() {
        let (now, prev) = (
            r#"{"id":"1","s":"Open","a":1,"a":2,"t":"x","modifiedTime":"new","k\u00e9y":1,"\u00e0":0}"#,
            r#"{"s":"Closed","a":3,"old":true,"old":false,"modifiedTime":"m1","modifiedTime":"m2","createdTime":"c","n\u00e9w":2,"k\u00e9y":5}"#,
        );
        let text: Arc<str> = Arc::from(format!("{now}{prev}"));
        let shared = Record::within(&text, &text[..now.len()])
            .unwrap()
            .overlaid(&Record::within(&text, &text[now.len()..]).unwrap());
        let apart = Record::parse(now).unwrap().overlaid(&Record::parse(prev).unwrap());
        assert_eq!(shared.to_map(), apart.to_map());
        assert_eq!(
            Value::Object(shared.to_map()),
            json!({"id": "1", "s": "Closed", "a": 3, "t": "x", "modifiedTime": "m2", "kéy": 5, "à": 0, "old": false, "createdTime": "c", "néw": 2})
        );
        assert_eq!(shared.get("old").unwrap().raw(), "false");
        // Escaped keys (kept apart from the fields) read across the overlay, replaced or added.
        assert_eq!((shared.get("kéy").unwrap().raw(), shared.get("néw").unwrap().raw()), ("5", "2"));
        // The names looked up without a scan (`Known`) read the overlay too, replaced or added.
        for r in [&shared, &apart] {
            assert_eq!(r.get_str("id").as_deref(), Some("1"));
            assert_eq!(r.get_str("modifiedTime").as_deref(), Some("m2"));
            assert_eq!(r.get_str("createdTime").as_deref(), Some("c"));
        }
    }

    #[test]
    fn a_backslash_is_found_at_any_position() {
        for len in 0..20 {
            assert!(!holds_backslash(&vec![b'a'; len]));
            for at in 0..len {
                let mut s = vec![0xdc_u8; len];
                s[at] = b'\\';
                assert!(holds_backslash(&s), "{len} {at}");
            }
        }
        assert_eq!(Json::new(r#""a\tb""#).as_str().as_deref(), Some("a\tb"));
        assert!(matches!(Json::new(r#""plain text here""#).as_str(), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn values_read_as_their_kind() {
        assert_eq!(Json::new("[\"a\", 1]").items().unwrap().len(), 2);
        assert_eq!(Json::new("{\"a\\u0041\": 1}").entries().unwrap()[0].0, "aA");
        assert!(Json::new("\"x\"").as_number().is_none());
        assert_eq!(Json::new("1.5").as_number().unwrap().as_f64(), Some(1.5));
    }
}
