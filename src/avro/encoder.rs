//! Turns change events into Kafka key/value bytes in the Confluent wire format
//! (`0x00`, 4-byte big-endian schema id, Avro binary datum).

use super::convert::{self, ConvertError};
use super::registry::{RegistryClient, RegistryError};
use super::schemas::{self, ModuleSchemas, SchemaError};
use crate::change::ChangeEvent;
use crate::zoho::module::Module;
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("record {id} of {module} cannot be converted: {source}")]
    Convert { module: Module, id: String, source: ConvertError },
    #[error("record {id} of {module} does not fit its Avro schema: {message}")]
    Avro { module: Module, id: String, message: String },
    #[error("module {0} was not prepared before encoding")]
    NotPrepared(Module),
}

/// Static identity written into every event's `source` block.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub topic_prefix: String,
    pub org_id: String,
}

#[derive(Debug)]
struct Prepared {
    schemas: ModuleSchemas,
    key_id: u32,
    value_id: u32,
}

#[derive(Debug)]
pub struct Encoder {
    info: SourceInfo,
    modules: HashMap<Module, Prepared>,
}

/// The data topic of a module: `<prefix>.<org>.<module>`.
pub fn topic_name(prefix: &str, org_id: &str, module: Module) -> String {
    format!("{prefix}.{org_id}.{}", module.name())
}

impl Encoder {
    pub fn new(info: SourceInfo) -> Self {
        Self { info, modules: HashMap::new() }
    }

    pub fn topic(&self, module: Module) -> String {
        topic_name(&self.info.topic_prefix, &self.info.org_id, module)
    }

    /// Registers the module's key and value schemas (TopicNameStrategy) and caches their ids.
    pub async fn prepare(&mut self, registry: &RegistryClient, module: Module) -> Result<(), EncodeError> {
        if self.modules.contains_key(&module) {
            return Ok(());
        }
        let schemas = schemas::for_module(module)?;
        let topic = self.topic(module);
        let key_id = registry.register(&format!("{topic}-key"), &schemas.key_text).await?;
        let value_id = registry.register(&format!("{topic}-value"), &schemas.value_text).await?;
        self.modules.insert(module, Prepared { schemas, key_id, value_id });
        Ok(())
    }

    pub fn encode_key(&self, module: Module, id: &str) -> Result<Vec<u8>, EncodeError> {
        let p = self.modules.get(&module).ok_or(EncodeError::NotPrepared(module))?;
        let value = Avro::Record(vec![("id".into(), Avro::String(id.to_owned()))]);
        frame(p.key_id, &p.schemas.key, value).map_err(|message| EncodeError::Avro {
            module,
            id: id.into(),
            message,
        })
    }

    pub fn encode_value(&self, event: &ChangeEvent, ts_ms: i64) -> Result<Vec<u8>, EncodeError> {
        let module = event.module;
        let p = self.modules.get(&module).ok_or(EncodeError::NotPrepared(module))?;
        let image = |r: &Option<serde_json::Map<String, serde_json::Value>>| -> Result<Avro, EncodeError> {
            match r {
                None => Ok(Avro::Union(0, Box::new(Avro::Null))),
                Some(map) => convert::record_to_avro(&p.schemas.record, map)
                    .map(|v| Avro::Union(1, Box::new(v)))
                    .map_err(|source| EncodeError::Convert { module, id: event.id.clone(), source }),
            }
        };
        let opt_str = |s: Option<&str>| match s {
            Some(s) => Avro::Union(1, Box::new(Avro::String(s.to_owned()))),
            None => Avro::Union(0, Box::new(Avro::Null)),
        };
        let source = Avro::Record(vec![
            ("version".into(), Avro::String(env!("CARGO_PKG_VERSION").into())),
            ("connector".into(), Avro::String("zoho-desk".into())),
            ("name".into(), Avro::String(self.info.topic_prefix.clone())),
            ("ts_ms".into(), Avro::Long(event.source_ts_ms)),
            ("snapshot".into(), opt_str(event.snapshot.map(|s| s.as_str()))),
            ("org_id".into(), Avro::String(self.info.org_id.clone())),
            ("module".into(), Avro::String(module.name().into())),
            ("event_type".into(), opt_str(event.event_type.as_deref())),
            ("event_time_ms".into(), Avro::Union(1, Box::new(Avro::Long(event.source_ts_ms)))),
            ("position".into(), opt_str(event.position.as_deref())),
        ]);
        let value = Avro::Record(vec![
            ("before".into(), image(&event.before)?),
            ("after".into(), image(&event.after)?),
            ("op".into(), Avro::String(event.op.code().into())),
            ("ts_ms".into(), Avro::Long(ts_ms)),
            ("source".into(), source),
        ]);
        frame(p.value_id, &p.schemas.value, value).map_err(|message| EncodeError::Avro {
            module,
            id: event.id.clone(),
            message,
        })
    }
}

fn frame(id: u32, schema: &apache_avro::Schema, value: Avro) -> Result<Vec<u8>, String> {
    let writer = GenericDatumWriter::builder(schema).build().map_err(|e| e.to_string())?;
    let datum = writer.write_value_to_vec(value).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(datum);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn wire_format_is_magic_then_big_endian_id() {
        let schema = apache_avro::Schema::parse_str(schemas::KEY).unwrap();
        let bytes =
            frame(0x0102_0304, &schema, Avro::Record(vec![("id".into(), Avro::String("7".into()))])).unwrap();
        assert_eq!(&bytes[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(&bytes[5..], &[2, b'7']); // zig-zag length 1, then the byte
    }
}
