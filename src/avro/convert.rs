//! JSON (as Desk sends it) → Avro values of the module record schema.
//!
//! Lossless by construction: a value that fits its typed field goes there (numbers sent as strings are
//! parsed, scalars are stringified for string fields); anything that does not fit, and every field the
//! schema does not know, is kept in `extra` as JSON text. Never panics on odd input.

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the {0} schema is not a record")]
    NotARecord(String),
    #[error("record has no usable `id`")]
    MissingId,
    #[error("the record's unknown fields cannot be written as JSON: {0}")]
    Extra(String),
}

fn null() -> Avro {
    Avro::Union(0, Box::new(Avro::Null))
}

fn some(v: Avro) -> Avro {
    Avro::Union(1, Box::new(v))
}

/// Converts one record. `record` must be the module's record schema.
///
/// Reads the record by reference (only the values that go into Avro are copied): this runs once per record
/// of every load, so a clone of the whole map per record would dominate the snapshot's cost.
pub fn record_to_avro(schema: &Schema, record: &Map<String, Json>) -> Result<Avro, ConvertError> {
    let Schema::Record(RecordSchema { fields, name, lookup, .. }) = schema else {
        return Err(ConvertError::NotARecord(format!("{schema:?}")));
    };
    // What goes to `extra`: unknown fields, values that fit no typed field, and non-string custom fields.
    // Sorted by key like a `serde_json::Map`, so `extra` reads the same as before.
    let mut rest = unknown_fields(lookup, record);
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        let key = field.name.as_str();
        let value = match key {
            "id" => match record.get("id") {
                Some(Json::String(s)) => Avro::String(s.clone()),
                Some(Json::Number(n)) => Avro::String(n.to_string()),
                _ => return Err(ConvertError::MissingId),
            },
            "extra" => null(), // filled in last
            "cf" => match record.get("cf") {
                None | Some(Json::Null) => null(),
                Some(Json::Object(cf)) => {
                    let (map, leftovers) = split_cf(cf);
                    if !leftovers.is_empty() {
                        rest.insert("cf", Rest::Object(leftovers));
                    }
                    let map = map
                        .into_iter()
                        .map(|(k, v)| {
                            (k.to_owned(), v.map_or_else(null, |v| some(Avro::String(v.to_owned()))))
                        })
                        .collect();
                    some(Avro::Map(map))
                }
                Some(other) => {
                    rest.insert("cf", Rest::Json(other));
                    null()
                }
            },
            _ => match record.get(key) {
                None | Some(Json::Null) => null(),
                Some(v) => match typed(&field.schema, v) {
                    Some(a) => some(a),
                    None => {
                        rest.insert(key, Rest::Json(v));
                        null()
                    }
                },
            },
        };
        out.push((field.name.clone(), value));
    }
    if !rest.is_empty() {
        if let Some(slot) = out.iter_mut().find(|(n, _)| n == "extra") {
            slot.1 = some(Avro::String(extra_text(&rest)?));
        } else {
            tracing::debug!(schema = %name, "Schema has no `extra` field; unknown fields are dropped.");
        }
    }
    Ok(Avro::Record(out))
}

/// A value bound for `extra`: borrowed from the record, or the custom fields that were not strings.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(super) enum Rest<'a> {
    Json(&'a Json),
    Object(BTreeMap<&'a str, &'a Json>),
}

/// A custom field bound for the `cf` map: its name and its value (`None` for null).
pub(super) type CfEntry<'a> = (&'a str, Option<&'a str>);

/// Desk sends custom fields as strings or null: those go to the `cf` map; anything else to `extra`.
pub(super) fn split_cf(cf: &Map<String, Json>) -> (Vec<CfEntry<'_>>, BTreeMap<&str, &Json>) {
    let mut map = Vec::with_capacity(cf.len());
    let mut leftovers = BTreeMap::new();
    for (k, v) in cf {
        match v {
            Json::Null => map.push((k.as_str(), None)),
            Json::String(s) => map.push((k.as_str(), Some(s.as_str()))),
            other => {
                leftovers.insert(k.as_str(), other);
            }
        }
    }
    (map, leftovers)
}

/// The text of `extra`: the fields that went nowhere else, as a JSON object sorted by key.
pub(super) fn extra_text(rest: &BTreeMap<&str, Rest<'_>>) -> Result<String, ConvertError> {
    serde_json::to_string(rest).map_err(|e| ConvertError::Extra(e.to_string()))
}

/// The fields of `record` the schema does not know (and `extra` itself, should Desk send one), bound for
/// `extra`.
pub(super) fn unknown_fields<'a>(
    lookup: &std::collections::BTreeMap<String, usize>,
    record: &'a Map<String, Json>,
) -> BTreeMap<&'a str, Rest<'a>> {
    record
        .iter()
        .filter(|(k, _)| k.as_str() == "extra" || !lookup.contains_key(k.as_str()))
        .map(|(k, v)| (k.as_str(), Rest::Json(v)))
        .collect()
}

/// How a JSON value fits a typed field: the one decision both writers (Avro values here, bytes in
/// [`super::direct`]) take, so they cannot disagree.
pub(super) enum Fit<'a> {
    Str(std::borrow::Cow<'a, str>),
    Long(i64),
    Double(f64),
    Bool(bool),
    /// An array whose items are all strings.
    Strings(&'a [Json]),
}

/// The non-null branch of a `["null", T]` field (or `T` itself).
pub(super) fn non_null(field_schema: &Schema) -> Option<&Schema> {
    match field_schema {
        Schema::Union(u) => u.variants().iter().find(|s| !matches!(s, Schema::Null)),
        other => Some(other),
    }
}

/// `v` read as the field's type; `None` when it does not fit (it then goes to `extra`).
pub(super) fn fit<'a>(field_schema: &Schema, v: &'a Json) -> Option<Fit<'a>> {
    use std::borrow::Cow;
    match (non_null(field_schema)?, v) {
        (Schema::String, Json::String(s)) => Some(Fit::Str(Cow::Borrowed(s))),
        (Schema::String, Json::Number(n)) => Some(Fit::Str(Cow::Owned(n.to_string()))),
        (Schema::String, Json::Bool(b)) => Some(Fit::Str(Cow::Borrowed(if *b { "true" } else { "false" }))),
        (Schema::Long, Json::Number(n)) => n.as_i64().map(Fit::Long),
        (Schema::Long, Json::String(s)) => canonical_i64(s).map(Fit::Long),
        (Schema::Double, Json::Number(n)) => n.as_f64().map(Fit::Double),
        (Schema::Double, Json::String(s)) => s.parse::<f64>().ok().filter(|f| f.is_finite()).map(Fit::Double),
        (Schema::Boolean, Json::Bool(b)) => Some(Fit::Bool(*b)),
        (Schema::Boolean, Json::String(s)) => match s.as_str() {
            "true" => Some(Fit::Bool(true)),
            "false" => Some(Fit::Bool(false)),
            _ => None,
        },
        (Schema::Array(items), Json::Array(values))
            if matches!(*items.items, Schema::String) && values.iter().all(Json::is_string) =>
        {
            Some(Fit::Strings(values))
        }
        _ => None,
    }
}

fn typed(field_schema: &Schema, v: &Json) -> Option<Avro> {
    Some(match fit(field_schema, v)? {
        Fit::Str(s) => Avro::String(s.into_owned()),
        Fit::Long(n) => Avro::Long(n),
        Fit::Double(f) => Avro::Double(f),
        Fit::Bool(b) => Avro::Boolean(b),
        Fit::Strings(values) => Avro::Array(
            values.iter().map(|x| Avro::String(x.as_str().unwrap_or_default().to_owned())).collect(),
        ),
    })
}

/// Only strings that print back identically are parsed, so "007" stays a string in `extra`.
fn canonical_i64(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|n| n.to_string() == s)
}

/// The inverse, for consumers and tests: typed fields, `cf` and `extra` merged back into Desk's JSON.
pub fn avro_to_json(value: &Avro) -> Option<Map<String, Json>> {
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
                extra = serde_json::from_str::<Map<String, Json>>(s).ok();
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
            (Some(Json::Object(typed)), Json::Object(more)) => typed.extend(more),
            (_, v) => {
                out.insert(k, v);
            }
        }
    }
    Some(out)
}

fn plain_json(v: &Avro) -> Json {
    match v {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(*b),
        Avro::Long(n) => Json::from(*n),
        Avro::Int(n) => Json::from(*n),
        Avro::Double(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        Avro::String(s) => Json::String(s.clone()),
        Avro::Union(_, inner) => plain_json(inner),
        Avro::Array(items) => Json::Array(items.iter().map(plain_json).collect()),
        Avro::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), plain_json(v))).collect()),
        Avro::Record(fields) => {
            Json::Object(fields.iter().map(|(k, v)| (k.clone(), plain_json(v))).collect())
        }
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::avro::schemas;
    use crate::zoho::module::Module;
    use serde_json::json;

    fn round_trip(input: Json) -> Map<String, Json> {
        let s = schemas::for_module(Module::Tickets).unwrap();
        let v = record_to_avro(&s.record, input.as_object().unwrap()).unwrap();
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
        assert!(record_to_avro(&s.record, json!({"subject": "no id"}).as_object().unwrap()).is_err());
    }
}
