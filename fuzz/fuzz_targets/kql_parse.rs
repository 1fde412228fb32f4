//! The KQL parser on arbitrary text: it never panics, errors render, and whatever parses
//! prints to a text that parses back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry::rules::kql;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match kql::parse(text) {
        Ok(query) => {
            let printed = query.to_kql();
            let again = kql::parse(&printed)
                .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
            assert_eq!(again, query, "round trip of {text:?} via {printed:?}");
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = e.caret();
        }
    }
});
