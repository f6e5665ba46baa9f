use super::*;
use std::collections::HashMap as StdMap;
use std::io::Write;
use std::sync::Arc;

#[test]
fn insert_remove_contains() {
    let s = SuppressionSet::new();
    assert!(!s.is_suppressed("t", "c"));
    assert!(s.insert("t", "c", Reason::OptOut));
    assert!(s.is_suppressed("t", "c"));
    assert!(!s.is_suppressed("t", "c2"));
    assert!(!s.is_suppressed("t2", "c"));
    assert_eq!(s.reason("t", "c"), Some(Reason::OptOut));
    assert!(!s.insert("t", "c", Reason::Erase));
    assert_eq!(s.reason("t", "c"), Some(Reason::Erase));
    assert_eq!(s.len(), 1);
    assert!(s.remove("t", "c"));
    assert!(!s.remove("t", "c"));
    assert!(!s.is_suppressed("t", "c"));
    assert!(s.is_empty());
}

#[test]
fn tenant_contact_boundary_is_unambiguous() {
    let s = SuppressionSet::new();
    s.insert("ab", "c", Reason::OptOut);
    assert!(!s.is_suppressed("a", "bc"));
}

#[test]
fn whole_tenant_and_campaign() {
    let s = SuppressionSet::new();
    s.suppress_tenant("t9");
    assert!(s.is_suppressed("t9", "anyone"));
    assert!(!s.is_suppressed("t1", "anyone"));
    assert!(s.unsuppress_tenant("t9"));
    assert!(!s.is_suppressed("t9", "anyone"));
    let camp = Scope::Campaign {
        tenant: "t1".into(),
        campaign: "spring".into(),
    };
    assert!(s.apply(&Change {
        scope: camp.clone(),
        reason: Some(Reason::Manual),
        at_ms: 5,
    }));
    assert_eq!(s.check("t1", "spring", "x"), Some(Reason::Manual));
    assert_eq!(s.check("t1", "autumn", "x"), None);
    assert_eq!(s.check("t2", "spring", "x"), None);
    assert_eq!(s.get(&camp), Some(Reason::Manual));
    assert_eq!(s.lookups(), 3);
    assert_eq!(s.dropped(Reason::Manual), 1);
    s.apply(&Change {
        scope: camp.clone(),
        reason: None,
        at_ms: 6,
    });
    assert_eq!(s.check("t1", "spring", "x"), None);
    assert_eq!(s.applied(), 2);
}

#[test]
fn validate_ids() {
    let ok = Scope::Contact {
        tenant: "acme".into(),
        contact: "a/b@x".into(),
    };
    assert!(ok.validate().is_ok());
    for bad in [
        Scope::Contact {
            tenant: "a/b".into(),
            contact: "c".into(),
        },
        Scope::Tenant { tenant: "".into() },
        Scope::Tenant {
            tenant: "x:y".into(),
        },
        Scope::Campaign {
            tenant: "t".into(),
            campaign: "a\nb".into(),
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn matches_a_model_through_growth_removals_and_rebuilds() {
    let s = SuppressionSet::new();
    let mut model: StdMap<String, Reason> = StdMap::new();
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..200_000 {
        let k = format!("c{}", next() % 20_000);
        let op = next() % 10;
        if op < 6 {
            let r = Reason::ALL[(next() % 6) as usize];
            assert_eq!(s.insert("t", &k, r), model.insert(k.clone(), r).is_none());
        } else {
            assert_eq!(
                s.remove("t", &k),
                model.remove(&k).is_some(),
                "round {round}"
            );
        }
        if round % 997 == 0 {
            assert_eq!(s.len(), model.len());
        }
    }
    assert_eq!(s.len(), model.len());
    for i in 0..20_000 {
        let k = format!("c{i}");
        assert_eq!(s.reason("t", &k), model.get(&k).copied(), "{k}");
    }
    // Remove everything: tombstone-triggered rebuilds shrink the table again.
    for k in model.keys() {
        assert!(s.remove("t", k));
    }
    assert!(s.is_empty());
    assert!(s.table_bytes() < 64 * 1024, "{}", s.table_bytes());
}

#[test]
fn readers_never_miss_a_stable_entry_while_writers_churn() {
    let s = Arc::new(SuppressionSet::new());
    for i in 0..10_000 {
        s.insert("stable", &i.to_string(), Reason::OptOut);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                s.insert("churn", &i.to_string(), Reason::Bounce);
                if i >= 1000 {
                    s.remove("churn", &(i - 1000).to_string());
                }
                i += 1;
            }
            i
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for round in 0..30 {
                    for i in 0..10_000 {
                        assert!(s.is_suppressed("stable", &i.to_string()), "{round}/{i}");
                    }
                    assert!(!s.is_suppressed("never", "x"));
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let churned = writer.join().unwrap();
    assert!(churned > 1000);
    assert_eq!(s.len(), 10_000 + 1000);
}

#[test]
fn reserve_keeps_entries() {
    let s = SuppressionSet::new();
    for i in 0..1000 {
        s.insert("t", &i.to_string(), Reason::Complaint);
    }
    s.reserve(100_000);
    assert!(s.table_bytes() >= 100_000 * 8);
    for i in 0..1000 {
        assert_eq!(s.reason("t", &i.to_string()), Some(Reason::Complaint));
    }
}

#[test]
fn loads_csv_and_ndjson() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "tenant,contact,reason").unwrap();
    writeln!(f, "t1,c1").unwrap();
    writeln!(f, "# comment").unwrap();
    writeln!(f, "t1,c2,restrict").unwrap();
    writeln!(f, r#"{{"tenant":"t2","contact":"c3","reason":"erase"}}"#).unwrap();
    let s = SuppressionSet::new();
    assert_eq!(s.load_file(f.path()).unwrap(), 3);
    assert_eq!(s.reason("t1", "c1"), Some(Reason::OptOut));
    assert_eq!(s.reason("t1", "c2"), Some(Reason::Restrict));
    assert_eq!(s.reason("t2", "c3"), Some(Reason::Erase));
}

#[test]
fn bad_line_is_a_clear_error() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "t1,c1").unwrap();
    writeln!(f, "only-one-field").unwrap();
    let e = SuppressionSet::new().load_file(f.path()).unwrap_err();
    assert!(e.to_string().contains(":2:"), "{e}");
    assert!(!e.is_retryable());
    let e = SuppressionSet::new()
        .load_file(Path::new("/nonexistent/x.csv"))
        .unwrap_err();
    assert!(e.is_retryable());
}

/// Found by the `json_objects_parse_or_fail_cleanly` property (tests/parse_props.rs): with a
/// `now` before 1970 minus five minutes, `clamp` was asked for a maximum below its minimum and
/// panicked.
#[test]
fn change_times_clamp_without_panicking_for_any_now() {
    assert_eq!(crate::clamp_at_ms(5, -1_000_000), 0);
    assert_eq!(crate::clamp_at_ms(i64::MAX, i64::MIN), 0);
    assert_eq!(crate::clamp_at_ms(i64::MIN, i64::MAX), 0);
    assert_eq!(crate::clamp_at_ms(7, 1_000), 7);
    assert!(crate::parse::parse_json_line(r#"{"tenant":"t","at_ms":5}"#, i64::MIN).is_ok());
}

fn in_list(t: &str, l: &str, c: &str) -> Scope {
    Scope::ContactInList {
        tenant: t.into(),
        list: l.into(),
        contact: c.into(),
    }
}

#[test]
fn contact_in_list_entries_are_their_own_scope_and_never_checked_on_hits() {
    let s = SuppressionSet::new();
    let change = |scope: Scope, reason| Change {
        scope,
        reason,
        at_ms: 1,
    };
    assert!(s.apply(&change(in_list("t", "news", "c"), Some(Reason::OptOut))));
    assert!(!s.apply(&change(in_list("t", "news", "c"), Some(Reason::OptOut))));
    assert_eq!(s.list_entries_len(), 1);
    assert_eq!(s.len(), 0, "not a contact entry");
    assert_eq!(s.scopes_len(), 0, "not a tenant/campaign scope");
    // Hits name no list: the contact is still tracked (docs: crate "Scopes").
    assert_eq!(s.check("t", "camp", "c"), None);
    assert!(!s.is_suppressed("t", "c"));
    assert_eq!(
        s.check_in_list("t", "news", "c"),
        Some(Reason::OptOut),
        "the list unsubscribe"
    );
    assert_eq!(s.check_in_list("t", "other", "c"), None, "another list");
    assert_eq!(s.check_in_list("u", "news", "c"), None, "another tenant");
    assert_eq!(
        s.get(&in_list("t", "news", "c")),
        Some(Reason::OptOut),
        "exact scope"
    );
    // A tenant-wide opt-out covers every list.
    s.insert("t", "d", Reason::Erase);
    assert_eq!(s.check_in_list("t", "news", "d"), Some(Reason::Erase));
    // Boundaries are unambiguous.
    assert_eq!(s.check_in_list("t", "new", "sc"), None);
    assert!(s.apply(&change(in_list("t", "news", "c"), None)));
    assert_eq!(s.check_in_list("t", "news", "c"), None);
    assert_eq!(s.list_entries_len(), 0);
}

#[test]
fn contact_in_list_records_round_trip() {
    let scope = in_list("acme", "weekly", "c/with/slashes");
    let key = record::record_key(&scope);
    assert_eq!(key, "list:acme/weekly/c/with/slashes");
    assert_eq!(record::parse_key(&key).unwrap(), scope);
    let c = Change {
        scope: scope.clone(),
        reason: Some(Reason::OptOut),
        at_ms: 1_700_000_000_000,
    };
    let m = record::encode_change(&c).unwrap();
    assert_eq!(m.list_id, "weekly");
    assert_eq!(
        m.scope,
        openclick_events::v1::SuppressionScope::ContactInList as i32
    );
    let back = record::decode_record(
        key.as_bytes(),
        Some(&openclick_events::Message::encode_to_vec(&m)),
        0,
    )
    .unwrap()
    .unwrap();
    assert_eq!(back, c);
    // A list id with '/' or a missing part is refused.
    for bad in [
        "list:acme/weekly",
        "list:acme",
        "list:a:b/l/c",
        "list:acme//c",
    ] {
        assert!(record::parse_key(bad).is_err(), "{bad}");
    }
    assert!(in_list("t", "a/b", "c").validate().is_err());
}

#[test]
fn change_lines_take_a_list_with_a_contact() {
    let c = parse::parse_json_line(r#"{"tenant":"t","contact":"c","list":"news"}"#, 5).unwrap();
    assert_eq!(c.scope, in_list("t", "news", "c"));
    assert_eq!(parse::ChangeLine::from(&c).list.as_deref(), Some("news"));
    assert!(parse::parse_json_line(r#"{"tenant":"t","list":"news"}"#, 5).is_err());
    assert!(parse::parse_json_line(
        r#"{"tenant":"t","campaign":"x","contact":"c","list":"n"}"#,
        5
    )
    .is_err());
}

/// The sequence the unsubscribe page makes on one replica: opt out at 100, undo at 200, while
/// the follower reads the topic behind: first the opt-out record (older than the undo), then
/// the undo's tombstone. The older record must not re-suppress the contact in between.
#[test]
fn a_local_change_is_not_undone_by_an_older_record_still_in_flight() {
    let s = SuppressionSet::new();
    let scope = Scope::Contact {
        tenant: "t".into(),
        contact: "c".into(),
    };
    let at = |reason, at_ms| Change {
        scope: scope.clone(),
        reason,
        at_ms,
    };
    s.apply_local(&at(Some(Reason::OptOut), 100));
    assert!(s.is_suppressed("t", "c"));
    s.apply_local(&at(None, 200));
    assert!(!s.is_suppressed("t", "c"));
    assert_eq!(s.local_pending(), 1);

    // The opt-out's echo, older than the undo: skipped.
    assert!(!s.apply_replicated(&at(Some(Reason::OptOut), 100)));
    assert!(
        !s.is_suppressed("t", "c"),
        "re-suppressed by a stale record"
    );
    assert_eq!(s.local_pending(), 1);
    // The undo's echo (a tombstone stamped when produced, so no older): applies, ends the wait.
    s.apply_replicated(&at(None, 205));
    assert_eq!(s.local_pending(), 0);
    // From then on the topic rules, whatever the timestamps (another replica's clock).
    assert!(s.apply_replicated(&at(Some(Reason::Manual), 50)));
    assert_eq!(s.reason("t", "c"), Some(Reason::Manual));

    // Other scopes never wait, and a reverted local change stops holding records back.
    s.apply_local(&at(None, 300));
    assert!(s.apply_replicated(&Change {
        scope: in_list("t", "news", "c"),
        reason: Some(Reason::OptOut),
        at_ms: 1,
    }));
    s.revert_local(&at(Some(Reason::Manual), 300));
    assert!(s.apply_replicated(&at(Some(Reason::OptOut), 250)));
    assert!(s.is_suppressed("t", "c"));
}
