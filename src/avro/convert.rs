//! JSON (as Desk sends it) → Avro values of the module record schema.
//!
//! Lossless by construction: a value that fits its typed field goes there (numbers sent as strings are
//! parsed, scalars are stringified for string fields); anything that does not fit, and every field the
//! schema does not know, is kept in `extra` as JSON text. Never panics on odd input.

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

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
pub fn record_to_avro(schema: &Schema, record: &Map<String, Json>) -> Result<Avro, ConvertError> {
    let Schema::Record(RecordSchema { fields, name, .. }) = schema else {
        return Err(ConvertError::NotARecord(format!("{schema:?}")));
    };
    let mut rest: Map<String, Json> = record.clone();
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        let value = match field.name.as_str() {
            "id" => match rest.remove("id") {
                Some(Json::String(s)) => Avro::String(s),
                Some(Json::Number(n)) => Avro::String(n.to_string()),
                _ => return Err(ConvertError::MissingId),
            },
            "extra" => null(), // filled in last
            "cf" => match rest.remove("cf") {
                None | Some(Json::Null) => null(),
                Some(Json::Object(cf)) => {
                    let (map, leftovers) = custom_fields(cf);
                    if !leftovers.is_empty() {
                        rest.insert("cf".into(), Json::Object(leftovers));
                    }
                    some(Avro::Map(map))
                }
                Some(other) => {
                    rest.insert("cf".into(), other);
                    null()
                }
            },
            key => match rest.remove(key) {
                None | Some(Json::Null) => null(),
                Some(v) => match typed(&field.schema, &v) {
                    Some(a) => some(a),
                    None => {
                        rest.insert(key.to_owned(), v);
                        null()
                    }
                },
            },
        };
        out.push((field.name.clone(), value));
    }
    if !rest.is_empty() {
        if let Some(slot) = out.iter_mut().find(|(n, _)| n == "extra") {
            slot.1 = some(Avro::String(Json::Object(rest).to_string()));
        } else {
            tracing::debug!(schema = %name, "Schema has no `extra` field; unknown fields are dropped.");
        }
    }
    Ok(Avro::Record(out))
}

/// Desk sends custom fields as strings or null; other scalars are stringified, structures go to `extra`.
fn custom_fields(cf: Map<String, Json>) -> (HashMap<String, Avro>, Map<String, Json>) {
    let mut map = HashMap::with_capacity(cf.len());
    let mut leftovers = Map::new();
    for (k, v) in cf {
        match v {
            Json::Null => {
                map.insert(k, null());
            }
            Json::String(s) => {
                map.insert(k, some(Avro::String(s)));
            }
            other => {
                leftovers.insert(k, other);
            }
        }
    }
    (map, leftovers)
}

/// The non-null branch of a `["null", T]` field, converted; `None` when the value does not fit.
fn typed(field_schema: &Schema, v: &Json) -> Option<Avro> {
    let inner = match field_schema {
        Schema::Union(u) => u.variants().iter().find(|s| !matches!(s, Schema::Null))?,
        other => other,
    };
    match (inner, v) {
        (Schema::String, Json::String(s)) => Some(Avro::String(s.clone())),
        (Schema::String, Json::Number(n)) => Some(Avro::String(n.to_string())),
        (Schema::String, Json::Bool(b)) => Some(Avro::String(b.to_string())),
        (Schema::Long, Json::Number(n)) => n.as_i64().map(Avro::Long),
        (Schema::Long, Json::String(s)) => canonical_i64(s).map(Avro::Long),
        (Schema::Double, Json::Number(n)) => n.as_f64().map(Avro::Double),
        (Schema::Double, Json::String(s)) => {
            s.parse::<f64>().ok().filter(|f| f.is_finite()).map(Avro::Double)
        }
        (Schema::Boolean, Json::Bool(b)) => Some(Avro::Boolean(*b)),
        (Schema::Boolean, Json::String(s)) => match s.as_str() {
            "true" => Some(Avro::Boolean(true)),
            "false" => Some(Avro::Boolean(false)),
            _ => None,
        },
        (Schema::Array(items), Json::Array(values)) if matches!(*items.items, Schema::String) => values
            .iter()
            .map(|x| match x {
                Json::String(s) => Some(Avro::String(s.clone())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Avro::Array),
        _ => None,
    }
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
