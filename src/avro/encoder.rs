//! Turns change events into Kafka key/value bytes in the Confluent wire format
//! (`0x00`, 4-byte big-endian schema id, Avro binary datum).

use super::convert::{self, ConvertError};
use super::direct;
use super::registry::{RegistryClient, RegistryError};
use super::schemas::{self, ModuleSchemas, SchemaError};
use crate::change::{ChangeEvent, Record};
use crate::zoho::module::Module;
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use std::collections::HashMap;
use std::sync::Arc;

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

/// A registered module: its schema ids, topic and Avro writers, built once (a writer resolves the schema's
/// names when it is built).
struct Prepared {
    topic: Arc<str>,
    key_id: u32,
    value_id: u32,
    key: GenericDatumWriter<'static>,
    value: GenericDatumWriter<'static>,
    record: &'static apache_avro::Schema,
    /// How [`direct`] writes the record schema (every shipped schema has one); else the `Value` path.
    plan: Option<direct::Plan<'static>>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("topic", &self.topic)
            .field("key_id", &self.key_id)
            .field("value_id", &self.value_id)
            .finish_non_exhaustive()
    }
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

    pub fn topic(&self, module: Module) -> Arc<str> {
        match self.modules.get(&module) {
            Some(p) => p.topic.clone(),
            None => topic_name(&self.info.topic_prefix, &self.info.org_id, module).into(),
        }
    }

    /// Registers the key and value schemas (TopicNameStrategy) of every module in `modules`, all modules at
    /// once, and caches their ids. One after another, a start-up spent over two seconds on the registry (two
    /// calls per schema, about 50 ms each against Apicurio, for a dozen modules).
    pub async fn prepare(
        &mut self,
        registry: &RegistryClient,
        modules: &[Module],
    ) -> Result<(), EncodeError> {
        let todo: Vec<Module> = modules.iter().copied().filter(|m| !self.modules.contains_key(m)).collect();
        let registrations = todo.iter().map(|&module| Self::register(registry, module, self.topic(module)));
        // In the order of `todo`.
        let prepared = futures::future::try_join_all(registrations).await?;
        self.modules.extend(todo.into_iter().zip(prepared));
        Ok(())
    }

    /// One module's schemas registered under `topic`, and its writers.
    async fn register(
        registry: &RegistryClient,
        module: Module,
        topic: Arc<str>,
    ) -> Result<Prepared, EncodeError> {
        let schemas: &'static ModuleSchemas = schemas::shared(module)?;
        let key_id = registry.register(&format!("{topic}-key"), &schemas.key_text).await?;
        let value_id = registry.register(&format!("{topic}-value"), &schemas.value_text).await?;
        let writer = |schema: &'static apache_avro::Schema| {
            GenericDatumWriter::builder(schema)
                .build()
                .map_err(|e| SchemaError::Avro { module: module.to_string(), source: Box::new(e) })
        };
        let (key, value) = (writer(&schemas.key)?, writer(&schemas.value)?);
        Ok(Prepared {
            topic,
            key_id,
            value_id,
            key,
            value,
            record: &schemas.record,
            plan: direct::Plan::new(&schemas.record),
        })
    }

    /// Appends the Kafka key of record `id` to `out`: the Confluent framing, then the key schema's datum.
    pub fn write_key(&self, module: Module, id: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let p = self.modules.get(&module).ok_or(EncodeError::NotPrepared(module))?;
        if p.plan.is_some() {
            // The key schema is `{id: string}`: the datum is the string.
            header(p.key_id, out);
            direct::string(out, id);
            return Ok(());
        }
        let value = Avro::Record(vec![("id".into(), Avro::String(id.to_owned()))]);
        frame(p.key_id, &p.key, &value, out).map_err(|message| EncodeError::Avro {
            module,
            id: id.into(),
            message,
        })
    }

    /// The Kafka value of `event` on its own (see [`Self::write_value`]).
    pub fn encode_value(&self, event: &ChangeEvent, ts_ms: i64) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(Self::value_size_hint(event));
        self.write_value(event, ts_ms, &mut out)?;
        Ok(out)
    }

    /// Appends the Kafka value of `event` to `out`: the Confluent framing, then the envelope's datum. On an
    /// error `out` may hold part of it.
    pub fn write_value(&self, event: &ChangeEvent, ts_ms: i64, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let p = self.modules.get(&event.module).ok_or(EncodeError::NotPrepared(event.module))?;
        match &p.plan {
            Some(plan) => self.write_direct(p, plan, event, ts_ms, out),
            None => self.build_value(p, event, ts_ms, out),
        }
    }

    /// About the bytes of `event`'s value, or a little more: the length of its images' text (a bound on
    /// their Avro) and room for the envelope.
    pub fn value_size_hint(event: &ChangeEvent) -> usize {
        256 + event.before.as_ref().map_or(0, Record::text_len)
            + event.after.as_ref().map_or(0, Record::text_len)
    }

    /// The envelope written field by field, in the order of `envelope.avsc` and `source.avsc` (a test
    /// checks the bytes against [`Self::build_value`]).
    fn write_direct(
        &self,
        p: &Prepared,
        plan: &direct::Plan<'_>,
        event: &ChangeEvent,
        ts_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let module = event.module;
        header(p.value_id, out);
        for image in [&event.before, &event.after] {
            match image {
                None => direct::null(out),
                Some(record) => {
                    direct::some(out);
                    direct::write_record(plan, record, out).map_err(|source| EncodeError::Convert {
                        module,
                        id: event.id.to_string(),
                        source,
                    })?;
                }
            }
        }
        direct::string(out, event.op.code());
        direct::long(out, ts_ms);
        // source
        direct::string(out, env!("CARGO_PKG_VERSION"));
        direct::string(out, "zoho-desk");
        direct::string(out, &self.info.topic_prefix);
        direct::long(out, event.source_ts_ms);
        direct::opt_string(out, event.snapshot.map(|s| s.as_str()));
        direct::string(out, &self.info.org_id);
        direct::string(out, module.name());
        direct::opt_string(out, event.event_type.as_deref());
        direct::some(out);
        direct::long(out, event.source_ts_ms);
        direct::opt_string(out, event.position.as_deref());
        Ok(())
    }

    /// The envelope as an `apache_avro` value, validated and encoded against the schema.
    fn build_value(
        &self,
        p: &Prepared,
        event: &ChangeEvent,
        ts_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let module = event.module;
        let image = |r: &Option<Record>| -> Result<Avro, EncodeError> {
            match r {
                None => Ok(Avro::Union(0, Box::new(Avro::Null))),
                Some(record) => convert::record_to_avro(p.record, record)
                    .map(|v| Avro::Union(1, Box::new(v)))
                    .map_err(|source| EncodeError::Convert { module, id: event.id.to_string(), source }),
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
        frame(p.value_id, &p.value, &value, out).map_err(|message| EncodeError::Avro {
            module,
            id: event.id.to_string(),
            message,
        })
    }
}

/// The Confluent framing: magic byte 0, then the schema id big-endian.
fn header(id: u32, out: &mut Vec<u8>) {
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
}

fn frame(id: u32, writer: &GenericDatumWriter<'_>, value: &Avro, out: &mut Vec<u8>) -> Result<(), String> {
    header(id, out);
    writer.write_value_ref(out, value).map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn wire_format_is_magic_then_big_endian_id() {
        let schema = apache_avro::Schema::parse_str(schemas::KEY).unwrap();
        let writer = GenericDatumWriter::builder(&schema).build().unwrap();
        let value = Avro::Record(vec![("id".into(), Avro::String("7".into()))]);
        let mut bytes = Vec::new();
        frame(0x0102_0304, &writer, &value, &mut bytes).unwrap();
        assert_eq!(&bytes[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(&bytes[5..], &[2, b'7']); // zig-zag length 1, then the byte
    }

    /// The bytes written field by field equal the validated `apache_avro` encoding, for every module and op.
    #[test]
    fn direct_envelope_matches_the_value_path() {
        use crate::change::{Op, SnapshotMarker};
        let mut enc = Encoder::new(SourceInfo { topic_prefix: "p".into(), org_id: "1".into() });
        for m in Module::all() {
            let schemas = schemas::shared(m).unwrap();
            let writer = |s: &'static apache_avro::Schema| GenericDatumWriter::builder(s).build().unwrap();
            let prepared = Prepared {
                topic: enc.topic(m),
                key_id: 7,
                value_id: 9,
                key: writer(&schemas.key),
                value: writer(&schemas.value),
                record: &schemas.record,
                plan: direct::Plan::new(&schemas.record),
            };
            enc.modules.insert(m, prepared);
        }
        let map = Record::parse(r#"{"id": "42", "subject": "s", "cf": {"cf_a": "b"}, "x": [1]}"#).unwrap();
        for m in Module::all() {
            for (op, before, after) in [
                (Op::Read, None, Some(map.clone())),
                (Op::Update, Some(map.clone()), Some(map.clone())),
                (Op::Delete, Some(map.clone()), None),
            ] {
                let event = ChangeEvent {
                    module: m,
                    id: "42".into(),
                    op,
                    before,
                    after,
                    source_ts_ms: 1_700_000_000_000,
                    snapshot: (op == Op::Read).then_some(SnapshotMarker::True),
                    event_type: (op != Op::Read).then(|| "Ticket_Update".to_owned()),
                    position: Some("page 3".into()),
                };
                let p = &enc.modules[&m];
                // Each appends to what the buffer holds (a commit writes many events into one buffer).
                let (mut direct, mut built) = (b"earlier".to_vec(), b"earlier".to_vec());
                enc.write_direct(p, p.plan.as_ref().unwrap(), &event, 5, &mut direct).unwrap();
                enc.build_value(p, &event, 5, &mut built).unwrap();
                // Maps (cf) have one entry here, so the two encodings are byte for byte the same.
                assert_eq!(direct, built, "{m} {op:?}");
                assert_eq!(enc.encode_value(&event, 5).unwrap(), direct[b"earlier".len()..]);
            }
            let p = &enc.modules[&m];
            let mut key = Vec::new();
            enc.write_key(m, "42", &mut key).unwrap();
            let value = Avro::Record(vec![("id".into(), Avro::String("42".into()))]);
            let mut framed = Vec::new();
            frame(p.key_id, &p.key, &value, &mut framed).unwrap();
            assert_eq!(key, framed);
        }
    }
}
