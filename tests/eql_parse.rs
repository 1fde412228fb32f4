//! EQL parsing: every EQL query of Elastic's corpus and of the Windows rule history parses,
//! or is rejected with the message Elasticsearch gives; the normalised text parses back to
//! the same tree; and a table of queries Elasticsearch's own tests accept or reject.

use std::collections::BTreeMap;

use quarry::rules::eql;

use crate::util;

/// Every distinct EQL query of the corpus and the history, with the rules that use it.
fn real_queries() -> Option<BTreeMap<String, Vec<String>>> {
    let rules = util::shared_data()?.join("../rules");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in ["elastic-eql-corpus.jsonl", "windows-rules-history.jsonl"] {
        let text = std::fs::read_to_string(rules.join(file)).expect("rules file");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            if v["language"] != "eql" {
                continue;
            }
            let query = v["query"].as_str().expect("query").to_string();
            let key = format!("{}@{}", v["rule_id"].as_str().unwrap_or(""), v["version"]);
            out.entry(query).or_default().push(key);
        }
    }
    Some(out)
}

#[test]
fn every_real_eql_query_parses_and_prints_back_to_itself() {
    let Some(queries) = real_queries() else {
        return;
    };
    let mut failures = Vec::new();
    let mut refused = BTreeMap::new();
    for (query, users) in &queries {
        match eql::parse(query) {
            Ok(q) => {
                if let Err(e) = eql::check(&q, query) {
                    refused.insert(users[0].clone(), format!("{e}"));
                }
                let printed = q.to_eql();
                let again = eql::parse(&printed)
                    .unwrap_or_else(|e| panic!("{printed}\ndoes not parse: {e}"));
                assert_eq!(again, q, "round trip of {}", users[0]);
            }
            Err(e) => failures.push(format!("{}: {e}\n{}", users[0], e.caret())),
        }
    }
    eprintln!(
        "{} distinct EQL queries, {} rejected",
        queries.len(),
        failures.len()
    );
    for (rule, why) in &refused {
        eprintln!("refused: {rule}: {why}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Cut and damaged real queries are parsed or refused, never a panic; whatever parses
/// prints back to the same tree.
#[test]
fn damaged_queries_are_refused_not_panicked_on() {
    let Some(queries) = real_queries() else {
        return;
    };
    let noise = [
        '(', ')', '[', ']', '"', '\'', '\\', '~', '!', '?', ':', '=', '*', '`', '/', ' ',
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut cases = 0;
    for q in queries.keys().take(600) {
        let chars: Vec<char> = q.chars().collect();
        for _ in 0..8 {
            let at = (next() % (chars.len() as u64 + 1)) as usize;
            let mut damaged: Vec<char> = chars.clone();
            match next() % 3 {
                0 => damaged.truncate(at),
                1 if at < damaged.len() => {
                    damaged.remove(at);
                }
                _ => damaged.insert(at, noise[(next() % noise.len() as u64) as usize]),
            }
            let text: String = damaged.into_iter().collect();
            cases += 1;
            if let Ok(parsed) = eql::parse(&text) {
                let _ = eql::check(&parsed, &text);
                assert_eq!(eql::parse(&parsed.to_eql()).as_ref(), Ok(&parsed), "{text}");
            }
        }
    }
    for text in [
        "",
        " ",
        "/*",
        "\"",
        "\"\"\"",
        "`",
        "?",
        "any",
        "any where",
        "sequence",
        "![",
        "x where ((((",
    ] {
        assert!(eql::parse(text).is_err(), "{text:?}");
    }
    assert!(cases > 4000, "{cases}");
    for deep in [
        format!(
            "any where {}x == 1{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        ),
        format!("any where {}x", "not ".repeat(100_000)),
        format!("any where x == {}1", "-".repeat(100_000)),
        format!("any where x == 1{}", " and x == 1".repeat(100_000)),
        format!("any where x == 1{}", " + 1".repeat(100_000)),
    ] {
        let e = eql::parse(&deep).expect_err("too deep");
        assert!(e.message.starts_with("EQL statement is too large"), "{e}");
    }
}
