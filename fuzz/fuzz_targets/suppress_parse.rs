//! `parse::parse_json_line` and `parse::read_changes` on arbitrary bytes. Never panics; every
//! change returned passes `Scope::validate`; an NDJSON change written back as a `ChangeLine`
//! parses to the same change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclick_suppress::parse::{parse_json_line, read_changes, ChangeLine};
use openclick_suppress::Change;

const NOW: i64 = 1_700_000_000_000;

fn check(c: &Change) {
    c.scope
        .validate()
        .unwrap_or_else(|e| panic!("returned change does not validate: {e}: {c:?}"));
}

fuzz_target!(|data: &[u8]| {
    let mut seen = 0usize;
    let mut last_line = 0usize;
    let result = read_changes(data, NOW, |line, c| {
        assert!(line > last_line, "line numbers go up");
        last_line = line;
        check(&c);
        seen += 1;
        Ok(())
    });
    match result {
        Ok(n) => assert_eq!(n, seen),
        Err(e) => {
            assert!(e.line >= 1);
            let _ = e.to_string();
        }
    }

    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            if let Ok(c) = parse_json_line(line, NOW) {
                check(&c);
                let back = serde_json::to_string(&ChangeLine::from(&c)).unwrap();
                let again = parse_json_line(&back, NOW)
                    .unwrap_or_else(|e| panic!("written-back line does not parse: {e}: {back}"));
                assert_eq!(again, c, "{back}");
            }
        }
    }
});
