//! The wire contract of openclick: Rust types for the protobuf messages in `proto/`.
//!
//! Types are generated at build time by prost from the `.proto` files (parsed by protox, so no
//! system `protoc` is needed), together with serde implementations that follow the proto3 JSON
//! mapping (via pbjson), which `openclick tail` and `openclick enrich` print.
//!
//! This crate owns nothing but the schema: no I/O, no policy. Every other crate speaks these types.

/// Version 1 of the schema, protobuf package `openclick.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/openclick.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/openclick.v1.serde.rs"));
}

/// The fully qualified protobuf name of [`v1::EngagementEvent`], sent in the `ce_type` record header.
pub const ENGAGEMENT_EVENT_TYPE: &str = "openclick.v1.EngagementEvent";

/// The fully qualified protobuf name of [`v1::SuppressionChange`] (`ce_type` header).
pub const SUPPRESSION_CHANGE_TYPE: &str = "openclick.v1.SuppressionChange";

/// The fully qualified protobuf name of [`v1::ErasureRequest`] (`ce_type` header).
pub const ERASURE_REQUEST_TYPE: &str = "openclick.v1.ErasureRequest";

/// `ce_type` header value of a redirect block on the control (suppressions) topic.
pub const REDIRECT_BLOCK_TYPE: &str = "openclick.v1.RedirectBlock";

pub use prost::Message;

mod borrowed;
pub use borrowed::EventRef;

#[cfg(test)]
mod tests {
    use super::v1::*;
    use prost::Message;

    #[test]
    fn round_trips_through_protobuf() {
        let ev = EngagementEvent {
            event_id: "0190f1c2-0000-7000-8000-000000000000".into(),
            r#type: EventType::Click as i32,
            channel: Channel::Sms as i32,
            tenant_id: "t1".into(),
            contact_id: "c1".into(),
            target_url: "https://example.com/x".into(),
            signals: Some(Signals {
                bot_reasons: vec![BotReason::HeadRequest as i32],
                suspected_bot: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = ev.encode_to_vec();
        let back = EngagementEvent::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.r#type(), EventType::Click);
    }

    #[test]
    fn json_uses_proto3_mapping() {
        let ev = EngagementEvent {
            r#type: EventType::Open as i32,
            channel: Channel::Email as i32,
            tenant_id: "t1".into(),
            occurred_at_ms: 1_700_000_000_000,
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::to_value(&ev).unwrap();
        // proto3 JSON: lowerCamelCase names, enum names as strings, int64 as a string.
        assert_eq!(v["type"], "EVENT_TYPE_OPEN");
        assert_eq!(v["channel"], "CHANNEL_EMAIL");
        assert_eq!(v["tenantId"], "t1");
        assert_eq!(v["occurredAtMs"], "1700000000000");
        let back: EngagementEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
    }
}
