//! The rule-file loaders on arbitrary bytes: a TOML rule (Elastic's detection-rules layout or a
//! quarry pack), a JSON or NDJSON export (Kibana's saved objects, the Elastic package's
//! `security_rule` assets), or a `version.lock.json`. Loading never panics; a file that cannot
//! be read is a problem named by its path, and every version loaded compiles to a status.
//! The first byte picks which kind of file the rest is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry::rules::pack::{self, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (name, lock) = match pick % 4 {
        0 => ("rule.toml", false),
        1 => ("rules.json", false),
        2 => ("rules.ndjson", false),
        _ => ("version.lock.json", true),
    };
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write input");
    let opts = LoadOptions {
        version_lock: lock.then(|| path.clone()),
    };
    // A lock is read beside an empty pack; any other file is the pack.
    let packs = if lock {
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).expect("rules dir");
        vec![rules]
    } else {
        vec![path.clone()]
    };
    match pack::load(&packs, &opts) {
        Ok(pack) => {
            for v in &pack.versions {
                let _ = v.status.problem();
                let _ = v.rule.key();
            }
            for p in &pack.problems {
                let _ = p.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
