//! `record::decode_record` on an arbitrary key and value. Never panics; a decoded change
//! re-encodes (`record_key`, `encode_change`; a removal as a tombstone whose record timestamp is
//! the change's time) to a record that decodes to the same change, under the same key
//! (compaction keeps one record per key, so a key has exactly one spelling); its time is in the
//! clamped window.
//!
//! Input: timestamp (8 bytes LE), flags (bit 0: a value is present), key length (1 byte), the
//! key, then the value (the rest). Short input is zero-padded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclick_events::Message as _;
use openclick_suppress::record::{decode_record, encode_change, record_key};

fn openclick_common_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fuzz_target!(|data: &[u8]| {
    let mut head = [0u8; 10];
    let n = data.len().min(10);
    head[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let ts = i64::from_le_bytes(head[..8].try_into().unwrap());
    let has_value = head[8] & 1 == 1;
    let key_len = usize::from(head[9]).min(rest.len());
    let (key, value) = rest.split_at(key_len);
    let value = has_value.then_some(value);

    let change = match decode_record(key, value, ts) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            let _ = (e.to_string(), e.is_retryable());
            return;
        }
    };
    change.scope.validate().expect("decoded scope validates");
    let now = openclick_common_now();
    assert!(
        (0..=now + openclick_suppress::MAX_FUTURE_AT_MS).contains(&change.at_ms),
        "time outside the clamped window: {}",
        change.at_ms
    );
    let key2 = record_key(&change.scope);
    assert_eq!(key2.as_bytes(), key, "the key has another spelling");
    let value2 = encode_change(&change).map(|m| m.encode_to_vec());
    assert_eq!(value2.is_none(), change.reason.is_none());
    // A removal is a tombstone: its time travels as the record timestamp.
    let ts2 = if value2.is_none() { change.at_ms } else { ts };
    let again = decode_record(key2.as_bytes(), value2.as_deref(), ts2)
        .expect("re-encoded record decodes")
        .expect("re-encoded record is not skipped");
    assert_eq!(again, change);
});
