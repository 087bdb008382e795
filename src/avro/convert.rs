//! JSON (as Desk sends it) → Avro values of the module record schema.
//!
//! Lossless by construction: a value that fits its typed field goes there (numbers sent as strings are
//! parsed, scalars are stringified for string fields); anything that does not fit, and every field the
//! schema does not know, is kept in `extra` as JSON text. Never panics on odd input.

use crate::change::record::{Json, Kind, ObjectWriter, Record, TextOut};
use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Value as JsonValue};
use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the {0} schema is not a record")]
    NotARecord(String),
    #[error("record has no usable `id`")]
    MissingId,
}

fn null() -> Avro {
    Avro::Union(0, Box::new(Avro::Null))
}

fn some(v: Avro) -> Avro {
    Avro::Union(1, Box::new(v))
}

/// Converts one record. `record` must be the module's record schema.
pub fn record_to_avro(schema: &Schema, record: &Record) -> Result<Avro, ConvertError> {
    let Schema::Record(RecordSchema { fields, name, lookup, .. }) = schema else {
        return Err(ConvertError::NotARecord(format!("{schema:?}")));
    };
    // What goes to `extra`: unknown fields, values that fit no typed field, and non-string custom fields.
    // A field Desk calls `extra` is part of that rest.
    let mut rest: Vec<(&str, Rest<'_>)> = record
        .fields()
        .filter(|(k, _)| *k == "extra" || !lookup.contains_key(*k))
        .map(|(k, v)| (k, Rest::Json(v)))
        .collect();
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        let key = field.name.as_str();
        let value = match key {
            "id" => Avro::String(record.id().ok_or(ConvertError::MissingId)?.into_owned()),
            "extra" => null(), // filled in last
            "cf" => match record.get("cf").filter(|v| !v.is_null()) {
                None => null(),
                Some(cf) => match split_cf(cf) {
                    Some((map, leftovers)) => {
                        if !leftovers.is_empty() {
                            rest.push(("cf", Rest::Object(leftovers)));
                        }
                        let map = map
                            .into_iter()
                            .map(|(k, v)| {
                                (k.into_owned(), v.map_or_else(null, |v| some(Avro::String(v.into_owned()))))
                            })
                            .collect();
                        some(Avro::Map(map))
                    }
                    None => {
                        rest.push(("cf", Rest::Json(cf)));
                        null()
                    }
                },
            },
            _ => match record.get(key).filter(|v| !v.is_null()) {
                None => null(),
                Some(v) => match typed(&field.schema, v) {
                    Some(a) => some(a),
                    None => {
                        rest.push((key, Rest::Json(v)));
                        null()
                    }
                },
            },
        };
        out.push((field.name.clone(), value));
    }
    if !rest.is_empty() {
        if let Some(slot) = out.iter_mut().find(|(n, _)| n == "extra") {
            let rest = sorted_unique(rest);
            slot.1 = some(Avro::String(extra_text(&rest)));
        } else {
            tracing::debug!(schema = %name, "Schema has no `extra` field; unknown fields are dropped.");
        }
    }
    Ok(Avro::Record(out))
}

/// A value bound for `extra`: as Desk sent it, or the custom fields that were not strings.
pub(super) enum Rest<'a> {
    Json(Json<'a>),
    Object(Vec<RawEntry<'a>>),
}

/// A custom field bound for the `cf` map: its name and its value (`None` for null).
pub(super) type CfEntry<'a> = (Cow<'a, str>, Option<Cow<'a, str>>);

/// A field kept as Desk sent it.
pub(super) type RawEntry<'a> = (Cow<'a, str>, Json<'a>);

/// Desk sends custom fields as strings or null: those go to the `cf` map; anything else to `extra`. Both
/// sorted by key, each key once (its last value). `None` when `cf` is not an object.
pub(super) fn split_cf(cf: Json<'_>) -> Option<(Vec<CfEntry<'_>>, Vec<RawEntry<'_>>)> {
    Some(split_entries(cf.entries()?))
}

/// [`split_cf`] of `cf`'s entries.
pub(super) fn split_entries(entries: Vec<RawEntry<'_>>) -> (Vec<CfEntry<'_>>, Vec<RawEntry<'_>>) {
    let entries = sorted_unique(entries);
    let mut map = Vec::with_capacity(entries.len());
    let mut leftovers = Vec::new();
    for (k, v) in entries {
        match v.kind() {
            Kind::Null => map.push((k, None)),
            Kind::String => match v.as_str() {
                Some(s) => map.push((k, Some(s))),
                None => leftovers.push((k, v)),
            },
            _ => leftovers.push((k, v)),
        }
    }
    (map, leftovers)
}

/// Sorted by key, each key once with its last value (as `serde_json::Map` reads an object).
pub(super) fn sorted_unique<K: AsRef<str>, V>(mut entries: Vec<(K, V)>) -> Vec<(K, V)> {
    // In place (no second list per record). Reversed, then sorted stably: among equal keys the last value
    // comes first, and `dedup_by` keeps the first of a run.
    entries.reverse();
    entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    entries.dedup_by(|later, first| later.0.as_ref() == first.0.as_ref());
    entries
}

/// The text of `extra`: the fields that went nowhere else, as a JSON object in the order given (sorted by
/// key), each value as Desk sent it.
pub(super) fn extra_text(rest: &[(&str, Rest<'_>)]) -> String {
    write_extra(rest, String::new())
}

/// [`extra_text`] written to `out`.
pub(super) fn write_extra<O: TextOut>(rest: &[(&str, Rest<'_>)], out: O) -> O {
    let mut w = ObjectWriter::new(out);
    for (k, v) in rest {
        match v {
            Rest::Json(j) => w.field(k, j.raw()),
            Rest::Object(entries) => w.field_with(k, |out| {
                let mut inner = ObjectWriter::new(out);
                for (ik, iv) in entries {
                    inner.field(ik, iv.raw());
                }
                inner.finish();
            }),
        }
    }
    w.finish()
}

/// How a JSON value fits a typed field: the one decision both writers (Avro values here, bytes in
/// [`super::direct`]) take, so they cannot disagree.
pub(super) enum Fit<'a> {
    Str(Cow<'a, str>),
    Long(i64),
    Double(f64),
    Bool(bool),
    /// An array whose items are all strings.
    Strings(Vec<Cow<'a, str>>),
}

/// The non-null branch of a `["null", T]` field (or `T` itself).
pub(super) fn non_null(field_schema: &Schema) -> Option<&Schema> {
    match field_schema {
        Schema::Union(u) => u.variants().iter().find(|s| !matches!(s, Schema::Null)),
        other => Some(other),
    }
}

/// The types a typed field can hold (the non-null branch of its `["null", T]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldType {
    String,
    Long,
    Double,
    Boolean,
    /// An array of strings.
    Strings,
}

impl FieldType {
    /// The type of a field with this schema; `None` for a type no JSON value is fitted to.
    pub(super) fn of(field_schema: &Schema) -> Option<Self> {
        Some(match non_null(field_schema)? {
            Schema::String => Self::String,
            Schema::Long => Self::Long,
            Schema::Double => Self::Double,
            Schema::Boolean => Self::Boolean,
            Schema::Array(items) if matches!(*items.items, Schema::String) => Self::Strings,
            _ => return None,
        })
    }
}

/// `v` read as the field's type; `None` when it does not fit (it then goes to `extra`).
pub(super) fn fit<'a>(field_schema: &Schema, v: Json<'a>) -> Option<Fit<'a>> {
    fit_type(FieldType::of(field_schema)?, v)
}

/// [`fit`] for a field whose type is known.
#[inline(always)] // Its answer is an enum: built in place, not moved through the stack.
pub(super) fn fit_type(ty: FieldType, v: Json<'_>) -> Option<Fit<'_>> {
    match (ty, v.kind()) {
        (FieldType::String, Kind::String) => v.as_str().map(Fit::Str),
        (FieldType::String, Kind::Number) => v.as_number().map(|n| Fit::Str(Cow::Owned(n.to_string()))),
        (FieldType::String, Kind::Bool) => {
            v.as_bool().map(|b| Fit::Str(Cow::Borrowed(if b { "true" } else { "false" })))
        }
        (FieldType::Long, Kind::Number) => v.as_number()?.as_i64().map(Fit::Long),
        (FieldType::Long, Kind::String) => canonical_i64(&v.as_str()?).map(Fit::Long),
        (FieldType::Double, Kind::Number) => v.as_number()?.as_f64().map(Fit::Double),
        (FieldType::Double, Kind::String) => {
            v.as_str()?.parse::<f64>().ok().filter(|f| f.is_finite()).map(Fit::Double)
        }
        (FieldType::Boolean, Kind::Bool) => v.as_bool().map(Fit::Bool),
        (FieldType::Boolean, Kind::String) => match v.as_str()?.as_ref() {
            "true" => Some(Fit::Bool(true)),
            "false" => Some(Fit::Bool(false)),
            _ => None,
        },
        (FieldType::Strings, Kind::Array) => v
            .items()?
            .into_iter()
            .map(|item| if item.kind() == Kind::String { item.as_str() } else { None })
            .collect::<Option<Vec<_>>>()
            .map(Fit::Strings),
        _ => None,
    }
}

fn typed(field_schema: &Schema, v: Json<'_>) -> Option<Avro> {
    Some(match fit(field_schema, v)? {
        Fit::Str(s) => Avro::String(s.into_owned()),
        Fit::Long(n) => Avro::Long(n),
        Fit::Double(f) => Avro::Double(f),
        Fit::Bool(b) => Avro::Boolean(b),
        Fit::Strings(values) => {
            Avro::Array(values.into_iter().map(|x| Avro::String(x.into_owned())).collect())
        }
    })
}

/// Only strings that print back identically are parsed, so "007" stays a string in `extra`.
fn canonical_i64(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|n| n.to_string() == s)
}

/// The inverse, for consumers and tests: typed fields, `cf` and `extra` merged back into Desk's JSON.
pub fn avro_to_json(value: &Avro) -> Option<Map<String, JsonValue>> {
    let Avro::Record(fields) = value else { return None };
    let mut out = Map::new();
    let mut extra = None;
    for (name, v) in fields {
        let v = match v {
            Avro::Union(_, inner) => inner.as_ref(),
            other => other,
        };
        if name == "extra" {
            if let Avro::String(s) = v {
                extra = serde_json::from_str::<Map<String, JsonValue>>(s).ok();
            }
            continue;
        }
        let j = plain_json(v);
        if !j.is_null() {
            out.insert(name.clone(), j);
        }
    }
    for (k, v) in extra.unwrap_or_default() {
        match (out.get_mut(&k), v) {
            (Some(JsonValue::Object(typed)), JsonValue::Object(more)) => typed.extend(more),
            (_, v) => {
                out.insert(k, v);
            }
        }
    }
    Some(out)
}

fn plain_json(v: &Avro) -> JsonValue {
    match v {
        Avro::Null => JsonValue::Null,
        Avro::Boolean(b) => JsonValue::Bool(*b),
        Avro::Long(n) => JsonValue::from(*n),
        Avro::Int(n) => JsonValue::from(*n),
        Avro::Double(f) => serde_json::Number::from_f64(*f).map(JsonValue::Number).unwrap_or(JsonValue::Null),
        Avro::String(s) => JsonValue::String(s.clone()),
        Avro::Union(_, inner) => plain_json(inner),
        Avro::Array(items) => JsonValue::Array(items.iter().map(plain_json).collect()),
        Avro::Map(m) => JsonValue::Object(m.iter().map(|(k, v)| (k.clone(), plain_json(v))).collect()),
        Avro::Record(fields) => {
            JsonValue::Object(fields.iter().map(|(k, v)| (k.clone(), plain_json(v))).collect())
        }
        _ => JsonValue::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::avro::schemas;
    use crate::zoho::module::Module;
    use serde_json::{Value as Json, json};

    fn round_trip(input: Json) -> Map<String, Json> {
        let s = schemas::for_module(Module::Tickets).unwrap();
        let v = record_to_avro(&s.record, &Record::parse(&input.to_string()).unwrap()).unwrap();
        // Must also be encodable against the schema.
        assert!(v.validate(&s.record), "{v:?}");
        avro_to_json(&v).unwrap()
    }

    #[test]
    fn nothing_is_lost() {
        let input = json!({
            "id": "1892000000042001", "subject": "Printer on fire", "isDeleted": false,
            "threadCount": "3", "cf": {"cf_region": "EU", "cf_empty": null, "cf_weird": 5},
            "contact": {"id": "1", "firstName": "Ada"}, "unknownFlag": true, "priority": null
        });
        let out = round_trip(input.clone());
        let mut expected = input.as_object().unwrap().clone();
        expected.remove("priority"); // null and absent are the same to consumers
        assert_eq!(Json::Object(out), Json::Object(expected));
    }

    #[test]
    fn sorted_unique_keeps_each_keys_last_value_in_key_order() {
        let entries = vec![("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5), ("b", 6)];
        assert_eq!(sorted_unique(entries), vec![("a", 5), ("b", 6), ("c", 4)]);
        assert_eq!(sorted_unique(Vec::<(&str, u8)>::new()), vec![]);
    }

    #[test]
    fn odd_values_never_panic() {
        for odd in [
            json!({"id": 5}),
            json!({"id": "1", "subject": {"a": 1}}),
            json!({"id": "1", "isSpam": "maybe"}),
            json!({"id": "1", "cf": "x"}),
            json!({"id": "1", "isSpam": "true"}),
        ] {
            let out = round_trip(odd.clone());
            assert!(out.contains_key("id"), "{odd}");
        }
        let s = schemas::for_module(Module::Tickets).unwrap();
        assert!(record_to_avro(&s.record, &Record::parse(r#"{"subject": "no id"}"#).unwrap()).is_err());
    }
}
