//! Properties of the suppression input parser on arbitrary input (the fuzz target
//! `suppress_parse` explores the same ground far longer; see fuzz/).

use openclick_suppress::parse::{parse_json_line, read_changes, ChangeLine};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// JSON values a field might plausibly (or implausibly) hold.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "add", "remove", "opt_out", "Bounce ", "erase", "", "t", "c/d", "a:b", "x\u{1}y",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z/:]{0,300}".prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..3).prop_map(Value::from),
    ]
}

/// JSON objects with the fields `ChangeLine` knows (and a few it does not).
fn object() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "tenant", "contact", "campaign", "action", "reason", "at_ms", "extra", "",
    ]);
    prop::collection::vec((key, value()), 0..7).prop_map(|fields| {
        let mut m = Map::new();
        for (k, v) in fields {
            m.insert(k.to_string(), v);
        }
        Value::Object(m).to_string()
    })
}

proptest! {
    #[test]
    fn json_objects_parse_or_fail_cleanly(line in object(), now in any::<i64>()) {
        if let Ok(c) = parse_json_line(&line, now) {
            prop_assert!(c.scope.validate().is_ok(), "{line}");
            let back = serde_json::to_string(&ChangeLine::from(&c)).unwrap();
            // Read back at the same clock: `at_ms` is clamped to at most now + 5 min.
            prop_assert_eq!(parse_json_line(&back, now).unwrap(), c);
        }
    }

    #[test]
    fn any_text_reads_or_fails_cleanly(
        lines in prop::collection::vec(
            prop_oneof![object(), "[a-z,\" #]{0,20}", any::<String>()], 0..6),
    ) {
        let text = lines.join("\n");
        let mut n = 0;
        let result = read_changes(text.as_bytes(), 7, |_, c| {
            assert!(c.scope.validate().is_ok());
            n += 1;
            Ok(())
        });
        if let Ok(count) = result {
            prop_assert_eq!(count, n);
        }
    }
}
