//! JSON → Avro conversion against the real module schemas. The first byte picks the module, the rest is
//! the record's JSON. A converted record must encode with apache-avro against the record schema (so the
//! conversion never builds a value its schema refuses) and must read back to JSON. The bytes the bridge
//! writes straight from the JSON (`avro::direct`) must decode, with apache-avro, to that same value, and
//! both paths must accept or refuse the same records.
#![no_main]

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use libfuzzer_sys::fuzz_target;
use zoho_desk_cdc::avro::{convert, direct, schemas};
use zoho_desk_cdc::change::Record;
use zoho_desk_cdc::zoho::module::Module;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, json)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(json) else { return };
    let Ok(record) = Record::parse(text) else { return };
    let modules: Vec<Module> = Module::all().collect();
    let module = modules[pick as usize % modules.len()];
    let s = schemas::for_module(module).expect("the built-in schemas parse");
    let mut bytes = Vec::new();
    let plan = direct::Plan::new(&s.record).expect("every shipped schema is written directly");
    let written = direct::write_record(&plan, &record, &mut bytes);
    match convert::record_to_avro(&s.record, &record) {
        Ok(avro) => {
            let writer = GenericDatumWriter::builder(&s.record).build().expect("writer for the record schema");
            if let Err(e) = writer.write_value_to_vec(avro.clone()) {
                panic!("{module}: converted record does not encode: {e}");
            }
            assert!(convert::avro_to_json(&avro).is_some(), "{module}: converted record does not read back");
            assert!(written.is_ok(), "{module}: the direct writer refused a record the value path took");
            let reader = GenericDatumReader::builder(&s.record).build().expect("reader for the record schema");
            let decoded = reader.read_value(&mut bytes.as_slice()).expect("direct bytes decode");
            assert_eq!(decoded, avro, "{module}: direct bytes differ from the value path");
        }
        Err(_) => assert!(written.is_err(), "{module}: the direct writer took a record the value path refused"),
    }
});
