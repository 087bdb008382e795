//! Loads the `.avsc` files compiled into the binary and composes each module's value schema: the Debezium
//! envelope with `before`/`after` typed by the module's record and the shared `source` block.

use crate::zoho::module::Module;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema file {file} is not valid JSON: {source}")]
    Json { file: &'static str, source: serde_json::Error },
    #[error("schema for {module} is invalid Avro: {source}")]
    Avro { module: String, source: Box<apache_avro::Error> },
}

pub const KEY: &str = include_str!("../../schemas/key.avsc");
const SOURCE: &str = include_str!("../../schemas/source.avsc");
const ENVELOPE: &str = include_str!("../../schemas/envelope.avsc");

fn module_record(module: Module) -> (&'static str, &'static str) {
    match module {
        Module::Tickets => ("tickets.avsc", include_str!("../../schemas/modules/tickets.avsc")),
        Module::Contacts => ("contacts.avsc", include_str!("../../schemas/modules/contacts.avsc")),
        Module::Accounts => ("accounts.avsc", include_str!("../../schemas/modules/accounts.avsc")),
        Module::Departments => ("departments.avsc", include_str!("../../schemas/modules/departments.avsc")),
        Module::Products => ("products.avsc", include_str!("../../schemas/modules/products.avsc")),
        Module::Agents => ("agents.avsc", include_str!("../../schemas/modules/agents.avsc")),
        Module::Teams => ("teams.avsc", include_str!("../../schemas/modules/teams.avsc")),
        Module::Tasks => ("tasks.avsc", include_str!("../../schemas/modules/tasks.avsc")),
        Module::Calls => ("calls.avsc", include_str!("../../schemas/modules/calls.avsc")),
        Module::Events => ("events.avsc", include_str!("../../schemas/modules/events.avsc")),
        Module::Contracts => ("contracts.avsc", include_str!("../../schemas/modules/contracts.avsc")),
        Module::Articles => ("articles.avsc", include_str!("../../schemas/modules/articles.avsc")),
        Module::OrganizationFields => {
            ("organization_fields.avsc", include_str!("../../schemas/modules/organization_fields.avsc"))
        }
        Module::TicketThreads => {
            ("ticket_threads.avsc", include_str!("../../schemas/modules/ticket_threads.avsc"))
        }
        Module::TicketComments => {
            ("ticket_comments.avsc", include_str!("../../schemas/modules/ticket_comments.avsc"))
        }
    }
}

fn parse(file: &'static str, text: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(text).map_err(|source| SchemaError::Json { file, source })
}

/// A module's schemas, as JSON text (for the registry) and parsed (for encoding).
#[derive(Debug, Clone)]
pub struct ModuleSchemas {
    pub key_text: String,
    pub key: apache_avro::Schema,
    pub value_text: String,
    pub value: apache_avro::Schema,
    /// The record schema's field list (name, and the non-null branch type) for conversion.
    pub record: apache_avro::Schema,
}

pub fn for_module(module: Module) -> Result<ModuleSchemas, SchemaError> {
    let avro_err = |source: apache_avro::Error| SchemaError::Avro {
        module: module.to_string(),
        source: Box::new(source),
    };
    let (file, text) = module_record(module);
    let record = parse(file, text)?;
    let mut envelope = parse("envelope.avsc", ENVELOPE)?;
    let source = parse("source.avsc", SOURCE)?;
    envelope["namespace"] = Value::String(format!("zohodesk.{}", module.name()));
    if let Some(fields) = envelope["fields"].as_array_mut() {
        for field in fields {
            match field["name"].as_str() {
                // The first use defines the named type; the second refers to it by name.
                Some("before") => field["type"] = serde_json::json!(["null", record.clone()]),
                Some("after") => field["type"] = serde_json::json!(["null", "Value"]),
                Some("source") => field["type"] = source.clone(),
                _ => {}
            }
        }
    }
    let value_text = envelope.to_string();
    let key_text = parse("key.avsc", KEY)?.to_string();
    Ok(ModuleSchemas {
        key: apache_avro::Schema::parse_str(&key_text).map_err(avro_err)?,
        value: apache_avro::Schema::parse_str(&value_text).map_err(avro_err)?,
        record: apache_avro::Schema::parse_str(&record.to_string()).map_err(avro_err)?,
        key_text,
        value_text,
    })
}

/// The module's schemas for the life of the process: parsed once per module and never freed, so encoders
/// can keep Avro writers that borrow them (resolving a schema's names on every record was a large part of
/// the cost of encoding).
pub fn shared(module: Module) -> Result<&'static ModuleSchemas, SchemaError> {
    static CACHE: std::sync::Mutex<Option<std::collections::HashMap<Module, &'static ModuleSchemas>>> =
        std::sync::Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cache = cache.get_or_insert_with(Default::default);
    if let Some(s) = cache.get(&module) {
        return Ok(s);
    }
    let leaked: &'static ModuleSchemas = Box::leak(Box::new(for_module(module)?));
    cache.insert(module, leaked);
    Ok(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_schema_composes() {
        for m in Module::all() {
            let s = for_module(m);
            assert!(s.is_ok(), "{m}: {:?}", s.err());
        }
    }
}
