//! Avro binary written straight from Desk's JSON, for the record schemas the bridge ships (every field
//! `string`, or `["null", T]` with T a string, long, double, boolean, array of strings, or the `cf` map,
//! and `extra` last).
//!
//! Why not `apache-avro` here: building an `apache_avro::types::Value` per record (a name, a box and a copy
//! per field) and encoding it (a hash map of the fields per record) cost several times the JSON parse on
//! every snapshot row and webhook event. The decisions (what fits a field, what goes to `extra`) are those
//! of [`super::convert`], shared through [`convert::fit_type`]; `apache-avro` still parses the schemas, and the
//! tests decode these bytes with it and compare them with [`convert::record_to_avro`].

use super::convert::{self, ConvertError, FieldType, Fit, Rest};
use crate::change::record::{Json, Kind, Record};
use apache_avro::Schema;
use apache_avro::schema::{RecordField, RecordSchema};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What [`write_record`] needs of a record schema, prepared once per module: its fields in order with what
/// each holds, and where each name is among them (a fast hash: it is asked once per field of every record).
#[derive(Debug)]
pub struct Plan<'s> {
    fields: &'s [RecordField],
    holds: Vec<Holds>,
    index: HashMap<&'s str, usize, foldhash::fast::FixedState>,
    /// For the n-th field of a record, the schema field the n-th field of the last record was: Desk sends a
    /// module's fields in one order, so this guess, checked by one comparison, mostly spares the hash.
    guesses: Vec<AtomicUsize>,
}

/// What a schema field holds, decided once per schema rather than once per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    Id,
    Cf,
    Extra,
    Typed(FieldType),
}

impl<'s> Plan<'s> {
    /// The plan for `schema`, or `None` when [`write_record`] cannot write its records.
    pub fn new(schema: &'s Schema) -> Option<Self> {
        let Schema::Record(RecordSchema { fields, .. }) = schema else { return None };
        if fields.last().is_none_or(|f| f.name != "extra") {
            return None;
        }
        let holds = fields
            .iter()
            .map(|f| match f.name.as_str() {
                "id" => matches!(f.schema, Schema::String).then_some(Holds::Id),
                "extra" => is_nullable(&f.schema, |s| matches!(s, Schema::String)).then_some(Holds::Extra),
                "cf" => is_nullable(&f.schema, |s| matches!(s, Schema::Map(_))).then_some(Holds::Cf),
                _ => is_nullable(&f.schema, |s| FieldType::of(s).is_some())
                    .then(|| FieldType::of(&f.schema).map(Holds::Typed))
                    .flatten(),
            })
            .collect::<Option<Vec<_>>>()?;
        let index = fields.iter().enumerate().map(|(i, f)| (f.name.as_str(), i)).collect();
        // Room for records with as many fields again as the schema (Desk sends fields it does not document).
        let guesses = (0..fields.len() * 2).map(|_| AtomicUsize::new(usize::MAX)).collect();
        Some(Self { fields, holds, index, guesses })
    }

    /// Where the schema has the field `key`, the `nth` of its record.
    fn find(&self, nth: usize, key: &str) -> Option<usize> {
        let guess = self.guesses.get(nth);
        // Relaxed: a guess is only a hint, checked before use.
        if let Some(i) = guess.map(|g| g.load(Ordering::Relaxed)) {
            if self.fields.get(i).is_some_and(|f| same_name(&f.name, key)) {
                return Some(i);
            }
        }
        let found = self.index.get(key).copied();
        if let (Some(guess), Some(i)) = (guess, found) {
            guess.store(i, Ordering::Relaxed);
        }
        found
    }
}

/// `a == b`, compared in place eight bytes at a time: for the 10-20 byte names of a Desk record, the call
/// to the C library's `memcmp` that `==` makes cost more than the comparison (once per field of every
/// record).
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| <[u8; 8]>::try_from(c).ok().map(u64::from_ne_bytes);
    match a.len().checked_sub(8) {
        // Whole words, then the last eight bytes (overlapping the last word when the length is not a multiple).
        Some(last) => {
            a.chunks_exact(8).zip(b.chunks_exact(8)).all(|(x, y)| word(x) == word(y))
                && a.get(last..).and_then(word) == b.get(last..).and_then(word)
        }
        None => a.iter().zip(b).all(|(x, y)| x == y),
    }
}

/// Schemas with up to this many fields (all the shipped ones) keep their per-record slots on the stack.
const STACK_SLOTS: usize = 64;

/// `["null", T]`, null first, with `T` accepted by `inner`.
fn is_nullable(schema: &Schema, inner: impl Fn(&Schema) -> bool) -> bool {
    match schema {
        Schema::Union(u) => matches!(u.variants(), [Schema::Null, t] if inner(t)),
        _ => false,
    }
}

/// Appends the Avro binary of `record` under the plan's schema to `out`.
pub fn write_record(plan: &Plan<'_>, record: &Record, out: &mut Vec<u8>) -> Result<(), ConvertError> {
    // Each field's value (a repeated key keeps its last), in schema order; the rest is bound for `extra`.
    let mut on_stack = [None; STACK_SLOTS];
    let mut on_heap = Vec::new();
    let slots: &mut [Option<Json<'_>>] = match on_stack.get_mut(..plan.fields.len()) {
        Some(slots) => slots,
        None => {
            on_heap.resize(plan.fields.len(), None);
            &mut on_heap
        }
    };
    let mut rest: Vec<(&str, Rest<'_>)> = Vec::new();
    for (nth, (key, value)) in record.fields().enumerate() {
        match plan.find(nth, key) {
            // `extra` is written from the rest; a field Desk calls `extra` is part of that rest.
            Some(i) if plan.holds.get(i) != Some(&Holds::Extra) => slots[i] = Some(value),
            _ => {
                if rest.is_empty() {
                    // Room for the few fields of a Desk record that go to `extra` (a ticket has six) at once.
                    rest.reserve(8);
                }
                rest.push((key, Rest::Json(value)));
            }
        }
    }
    for ((field, holds), slot) in plan.fields.iter().zip(&plan.holds).zip(slots.iter()) {
        let value = slot.filter(|v| !v.is_null());
        match *holds {
            // Read as the record reads it, so a repeated `id` counts as its last value there too.
            Holds::Id => string(out, &record.id().ok_or(ConvertError::MissingId)?),
            Holds::Extra => {} // last: written below
            Holds::Cf => match value {
                None => null(out),
                Some(cf) if plain_cf(cf, out) => {}
                Some(cf) => match cf.entries() {
                    Some(entries) => {
                        let (map, leftovers) = convert::split_entries(entries);
                        if !leftovers.is_empty() {
                            rest.push(("cf", Rest::Object(leftovers)));
                        }
                        some(out);
                        map_block(out, map.iter().map(|(k, v)| (&**k, v.as_deref())), opt_string);
                    }
                    None => {
                        rest.push(("cf", Rest::Json(cf)));
                        null(out);
                    }
                },
            },
            Holds::Typed(ty) => match value {
                None => null(out),
                // Most fields of a Desk record: text for a text field, written as it stands. `fit_type` makes
                // the same of it, through `as_str`'s out-of-line call and a `Cow`: 1,600 instructions more per
                // ticket without this arm.
                Some(v) if let (FieldType::String, Some(text)) = (ty, v.plain_str()) => {
                    some(out);
                    string(out, text);
                }
                Some(v) => match convert::fit_type(ty, v) {
                    Some(fit) => {
                        some(out);
                        typed(out, fit);
                    }
                    None => {
                        rest.push((field.name.as_str(), Rest::Json(v)));
                        null(out);
                    }
                },
            },
        }
    }
    if rest.is_empty() {
        null(out);
    } else {
        let rest = convert::sorted_unique(rest);
        some(out);
        length_prefixed(out, |out| {
            convert::write_extra(&rest, out);
        });
    }
    Ok(())
}

/// Desk's usual `cf` written as it stands, in one pass over its text (no list of its entries, no sorting,
/// no copies): keys without escapes in strictly ascending order, each value null or a string without
/// escapes (what [`convert::split_entries`] would keep as it is), at most 63 of them (a one-byte count).
/// `false`, with `out` as it was, for any other `cf`.
fn plain_cf(cf: Json<'_>, out: &mut Vec<u8>) -> bool {
    const MAX_COUNT: u8 = 63;
    let mark = out.len();
    some(out);
    let count_at = out.len();
    out.push(0);
    let mut count = 0u8;
    let mut last: Option<&str> = None;
    let plain = cf.all_entries(|key, value| {
        let Some(key) = key.filter(|k| last.is_none_or(|last| last < *k)) else { return false };
        let text = match value.kind() {
            Kind::Null => None,
            Kind::String => match value.as_str() {
                Some(Cow::Borrowed(text)) => Some(text),
                _ => return false,
            },
            _ => return false,
        };
        if count == MAX_COUNT {
            return false;
        }
        count += 1;
        last = Some(key);
        string(out, key);
        opt_string(out, text);
        true
    });
    if !plain {
        out.truncate(mark);
        return false;
    }
    if count == 0 {
        // An empty map is its end alone.
        out.truncate(count_at);
    } else {
        // The zig-zag of a count below 64, in one byte.
        out[count_at] = count * 2;
    }
    long(out, 0);
    true
}

/// An Avro map of `entries`: one block (none when empty), then the end.
fn map_block<'v, V>(
    out: &mut Vec<u8>,
    entries: impl ExactSizeIterator<Item = (&'v str, V)>,
    value: impl Fn(&mut Vec<u8>, V),
) {
    if entries.len() > 0 {
        long(out, entries.len() as i64);
        for (k, v) in entries {
            string(out, k);
            value(out, v);
        }
    }
    long(out, 0);
}

fn typed(out: &mut Vec<u8>, fit: Fit<'_>) {
    match fit {
        Fit::Str(s) => string(out, &s),
        Fit::Long(n) => long(out, n),
        Fit::Double(f) => out.extend_from_slice(&f.to_le_bytes()),
        Fit::Bool(b) => out.push(u8::from(b)),
        Fit::Strings(values) => {
            if !values.is_empty() {
                long(out, values.len() as i64);
                for v in values {
                    string(out, &v);
                }
            }
            long(out, 0);
        }
    }
}

/// Union branch 0 of `["null", T]`.
pub fn null(out: &mut Vec<u8>) {
    out.push(0);
}

/// Union branch 1 of `["null", T]`; the value follows.
pub fn some(out: &mut Vec<u8>) {
    out.push(2);
}

/// A `long` (also a length or block count): zig-zag, then base-128 little-endian.
pub fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The bytes of [`long`] `n` in an array, and how many there are.
fn zig_zag(n: i64) -> ([u8; 10], usize) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut bytes = [0; 10];
    let mut len = 0;
    while z >= 0x80 {
        bytes[len] = (z as u8) | 0x80;
        z >>= 7;
        len += 1;
    }
    bytes[len] = z as u8;
    (bytes, len + 1)
}

/// Appends what `write` writes as an Avro `string`, its length first. Written once, after room for the
/// length most texts have (two bytes: up to 8,191), and moved only when its length takes another size:
/// measuring it first (a second pass over every `extra`) cost more than the rare move.
fn length_prefixed(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    const ROOM: usize = 2;
    let mark = out.len();
    out.extend_from_slice(&[0; ROOM]);
    write(out);
    let (bytes, len) = zig_zag((out.len() - mark - ROOM) as i64);
    out.splice(mark..mark + ROOM, bytes[..len].iter().copied());
}

pub fn string(out: &mut Vec<u8>, s: &str) {
    long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// `["null", "string"]`.
pub fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => null(out),
        Some(s) => {
            some(out);
            string(out, s);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::avro::schemas;
    use crate::zoho::module::Module;
    use serde_json::json;

    /// The bytes decode, with apache-avro, to exactly what the `Value` path builds.
    fn same_as_value_path(module: Module, input: &serde_json::Value) {
        same_as_value_path_of_text(module, &input.to_string());
    }

    fn same_as_value_path_of_text(module: Module, input: &str) {
        let s = schemas::for_module(module).unwrap();
        let record = Record::parse(input).unwrap();
        let mut bytes = Vec::new();
        write_record(&Plan::new(&s.record).unwrap(), &record, &mut bytes).unwrap();
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&s.record).build().unwrap();
        let decoded = reader.read_value(&mut bytes.as_slice()).unwrap();
        let expected = convert::record_to_avro(&s.record, &record).unwrap();
        assert_eq!(decoded, expected, "{input}");
    }

    #[test]
    fn every_shipped_schema_is_supported() {
        for m in Module::all() {
            assert!(Plan::new(&schemas::for_module(m).unwrap().record).is_some(), "{m}");
        }
    }

    #[test]
    fn bytes_match_the_value_path() {
        for input in [
            json!({"id": "1892000000042001", "subject": "Printer on fire", "isDeleted": false,
                   "threadCount": "3", "cf": {"cf_region": "EU", "cf_empty": null, "cf_weird": 5},
                   "contact": {"id": "1", "firstName": "Ada"}, "unknownFlag": true, "priority": null,
                   "secondaryContacts": ["a", "b"], "sharedDepartments": [], "extra": "sent by Desk"}),
            json!({"id": 5}),
            json!({"id": "1", "subject": {"a": 1}, "isSpam": "maybe", "cf": "x"}),
            json!({"id": "1", "isSpam": "true", "threadCount": 12_345_678_901_i64, "cf": {}}),
            // Text fields with escapes (read through `as_str`), without (written as they stand), and empty.
            json!({"id": "1", "subject": "Tab\there, \"quoted\" \\ é", "status": "Open", "email": ""}),
            json!({"id": "1", "secondaryContacts": ["a", 1], "ticketNumber": 7, "subject": true}),
        ] {
            same_as_value_path(Module::Tickets, &input);
        }
        same_as_value_path(Module::Contacts, &json!({"id": "2", "firstName": "Ada", "cf": {"cf_x": "y"}}));
        // `cf` as Desk sends it (written as it stands), and every way it can differ from that.
        for cf in [
            r#"{"cf_a": "x", "cf_b": null, "cf_c": ""}"#,
            r#"{"cf_b": "x", "cf_a": "y"}"#,
            r#"{"cf_a": "x", "cf_a": "y"}"#,
            r#"{"cf_a": "x\"y", "cf_b": "\u00e9"}"#,
            r#"{"cf_a": "x", "cf_b": 5, "cf_c": {"n": 1}}"#,
            r#"{"cf_\u0061": "x", "cf_b": "y"}"#,
            r#"{}"#,
        ] {
            let input = format!(r#"{{"id": "1", "cf": {cf}, "unknown": [1], "ke\"y": "v", "subject": 7}}"#);
            same_as_value_path_of_text(Module::Tickets, &input);
        }
        // Around the one-byte count of the one-pass path (63 entries), and past it.
        for n in [62, 63, 64, 65] {
            let cf: Vec<String> = (0..n).map(|i| format!(r#""cf_{i:03}": "{i}""#)).collect();
            let input = format!(r#"{{"id": "1", "cf": {{{}}}}}"#, cf.join(", "));
            same_as_value_path_of_text(Module::Tickets, &input);
        }
    }

    #[test]
    fn names_compare_as_strings_do() {
        let names = ["", "a", "id", "subject", "createdTime", "modifiedTime", "customerResponseTime"];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a} {b}");
            }
        }
        for n in 0..40 {
            let a = "x".repeat(n);
            for at in 0..n {
                let mut b = a.clone().into_bytes();
                b[at] = b'y';
                assert!(!same_name(&a, std::str::from_utf8(&b).unwrap()), "{n} {at}");
            }
            assert!(same_name(&a, &a.clone()));
        }
    }

    #[test]
    fn length_prefixed_texts_are_avro_strings_whatever_their_length() {
        // One byte of length (up to 63), two (the room kept), three.
        for n in [0, 1, 63, 64, 8_191, 8_192, 70_000] {
            let text = "x".repeat(n);
            let mut want = vec![7];
            string(&mut want, &text);
            let mut got = vec![7];
            length_prefixed(&mut got, |out| out.extend_from_slice(text.as_bytes()));
            assert_eq!(got, want, "{n}");
        }
    }

    #[test]
    fn longs_are_zig_zag_varints() {
        for (n, want) in [(0_i64, vec![0_u8]), (-1, vec![1]), (1, vec![2]), (64, vec![0x80, 1])] {
            let mut out = Vec::new();
            long(&mut out, n);
            assert_eq!(out, want, "{n}");
        }
        let mut out = Vec::new();
        long(&mut out, i64::MIN);
        assert_eq!(out.len(), 10);
    }
}
