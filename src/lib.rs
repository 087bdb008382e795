//! zoho-desk-cdc: streams a ZoHo Desk organization into Apache Kafka as Avro, Debezium-style change events.
//!
//! The folders follow the data: `zoho` (Desk) → change events → `avro` → `kafka`, with the HTTP servers
//! (`http`) and the orchestration (`pipeline`) beside them. `sim` is the ZoHo Desk simulator, which shares
//! no Desk-facing code with the bridge.

pub mod app;
pub mod avro;
pub mod change;
pub mod config;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod secret;
pub mod shutdown;
pub mod sim;
pub mod zoho;
