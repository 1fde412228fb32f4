//! The log readers on arbitrary bytes: whatever a file holds (ECS or Winlogbeat NDJSON, search
//! responses, OTRF JSON lines, EVTX, gzip of any of them), sniffing and reading it never
//! panic, and every record comes out as a document or as a bad record with its place.
//! The first byte picks the file name's extension; the reader decides the format from the
//! content, as `quarry convert` does.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use quarry::ingest::doc::Doc;
use quarry::ingest::pipeline::{self, PipelineOptions};
use quarry::ingest::reader::{self, Item, Prepare};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let name = match pick % 4 {
        0 => "input.json",
        1 => "input.jsonl",
        2 => "input.evtx",
        _ => "input.json.gz",
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write input");
    let Ok((files, _skipped)) = reader::discover(&[path]) else {
        return;
    };
    let options = PipelineOptions::default();
    let prepare: Prepare = Arc::new(move |doc: &mut Doc| pipeline::apply(doc, options));
    for file in &files {
        let mut docs = 0usize;
        let mut bad = 0usize;
        let result = reader::read(file, &prepare, &mut |_| {}, &|| false, &mut |item| {
            match item {
                Item::Doc { .. } => docs += 1,
                Item::Bad(b) => {
                    assert!(!b.location.is_empty(), "a bad record without its place");
                    bad += 1;
                }
            }
        });
        if let Err(e) = result {
            let _ = e.to_string();
        }
        let _ = (docs, bad);
    }
});
