//! Avro: the hand-written schemas in `schemas/`, JSON → Avro conversion, the schema-registry client and
//! the Confluent wire format.

pub mod convert;
pub mod direct;
pub mod encoder;
pub mod registry;
pub mod schemas;
