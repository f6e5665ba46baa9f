//! An open or click event encoded from borrowed data: [`EventRef`].
//!
//! The edge's hot path has everything an event holds at hand, borrowed: the ids and URL from
//! the verified token, the enrichment's messages, the key id, a version string, an event id on
//! the stack. Building a [`v1::EngagementEvent`] from that would copy each into a fresh
//! `String`; [`EventRef::encode`] writes the same protobuf bytes straight into a reused buffer.
//!
//! Hand-written (field keys and lengths, with prost's own `encoding` primitives and prost's
//! encoder for the nested messages) because a benchmark said it pays: the owned event's
//! construction was most of the allocations a tracked hit made (BENCHMARKS.md, session 9). The
//! bytes are prost's, byte for byte, which the tests check against prost's encoding of
//! [`EventRef::to_owned`] and by decoding with prost: fields in tag order, proto3 defaults
//! (empty strings, zero numbers and enums) left out, the four nested messages always present.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, message, WireType};

use crate::v1;

/// The fields of an open or click [`v1::EngagementEvent`], borrowed. The fields an open or a
/// click never sets (unsubscribe and page-view ones) are absent, that is, default.
#[derive(Clone, Copy, Debug)]
pub struct EventRef<'a> {
    /// `event_id` (1).
    pub event_id: &'a str,
    /// `type` (2), a [`v1::EventType`] value.
    pub r#type: i32,
    /// `channel` (3), a [`v1::Channel`] value.
    pub channel: i32,
    /// `tenant_id` (4).
    pub tenant_id: &'a str,
    /// `campaign_id` (5).
    pub campaign_id: &'a str,
    /// `message_id` (6).
    pub message_id: &'a str,
    /// `contact_id` (7).
    pub contact_id: &'a str,
    /// `link_id` (8).
    pub link_id: &'a str,
    /// `target_url` (9).
    pub target_url: &'a str,
    /// `occurred_at_ms` (10).
    pub occurred_at_ms: i64,
    /// `sent_at_ms` (11).
    pub sent_at_ms: i64,
    /// `client` (12), always present.
    pub client: &'a v1::Client,
    /// `geo` (13), always present.
    pub geo: &'a v1::Geo,
    /// `network` (14), always present.
    pub network: &'a v1::Network,
    /// `signals` (15), always present.
    pub signals: &'a v1::Signals,
    /// `key_id` (16).
    pub key_id: &'a str,
    /// `producer_version` (17).
    pub producer_version: &'a str,
}

fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
    }
}

fn put_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.extend_from_slice(s.as_bytes());
    }
}

// int32 (enums) and int64 are varints of the value as u64 (a negative int32 sign-extended).
fn int_len(tag: u32, v: i64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v as u64)
    }
}

fn put_int(tag: u32, v: i64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v as u64, buf);
    }
}

impl EventRef<'_> {
    /// The length [`EventRef::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        str_len(1, self.event_id)
            + int_len(2, i64::from(self.r#type))
            + int_len(3, i64::from(self.channel))
            + str_len(4, self.tenant_id)
            + str_len(5, self.campaign_id)
            + str_len(6, self.message_id)
            + str_len(7, self.contact_id)
            + str_len(8, self.link_id)
            + str_len(9, self.target_url)
            + int_len(10, self.occurred_at_ms)
            + int_len(11, self.sent_at_ms)
            + message::encoded_len(12, self.client)
            + message::encoded_len(13, self.geo)
            + message::encoded_len(14, self.network)
            + message::encoded_len(15, self.signals)
            + str_len(16, self.key_id)
            + str_len(17, self.producer_version)
    }

    /// Appends the event's protobuf encoding to `buf`: the bytes prost writes for
    /// [`EventRef::to_owned`].
    pub fn encode(&self, buf: &mut Vec<u8>) {
        // No `reserve(self.encoded_len())` first: the caller's buffer is reused and already
        // large enough, and that pass would size the nested messages a second time.
        put_str(1, self.event_id, buf);
        put_int(2, i64::from(self.r#type), buf);
        put_int(3, i64::from(self.channel), buf);
        put_str(4, self.tenant_id, buf);
        put_str(5, self.campaign_id, buf);
        put_str(6, self.message_id, buf);
        put_str(7, self.contact_id, buf);
        put_str(8, self.link_id, buf);
        put_str(9, self.target_url, buf);
        put_int(10, self.occurred_at_ms, buf);
        put_int(11, self.sent_at_ms, buf);
        message::encode(12, self.client, buf);
        message::encode(13, self.geo, buf);
        message::encode(14, self.network, buf);
        message::encode(15, self.signals, buf);
        put_str(16, self.key_id, buf);
        put_str(17, self.producer_version, buf);
    }

    /// The owned event with the same fields.
    pub fn to_owned(&self) -> v1::EngagementEvent {
        v1::EngagementEvent {
            event_id: self.event_id.to_owned(),
            r#type: self.r#type,
            channel: self.channel,
            tenant_id: self.tenant_id.to_owned(),
            campaign_id: self.campaign_id.to_owned(),
            message_id: self.message_id.to_owned(),
            contact_id: self.contact_id.to_owned(),
            link_id: self.link_id.to_owned(),
            target_url: self.target_url.to_owned(),
            occurred_at_ms: self.occurred_at_ms,
            sent_at_ms: self.sent_at_ms,
            client: Some(self.client.clone()),
            geo: Some(self.geo.clone()),
            network: Some(self.network.clone()),
            signals: Some(self.signals.clone()),
            key_id: self.key_id.to_owned(),
            producer_version: self.producer_version.to_owned(),
            ..v1::EngagementEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn check(e: &EventRef<'_>) {
        let mut buf = b"prefix".to_vec();
        e.encode(&mut buf);
        let ours = &buf[6..];
        let owned = e.to_owned();
        // prost's own encoding of the same event: the independent truth, byte for byte.
        assert_eq!(ours, owned.encode_to_vec().as_slice(), "{e:?}");
        assert_eq!(ours.len(), e.encoded_len());
        // And prost reads it back as the event.
        assert_eq!(v1::EngagementEvent::decode(ours).unwrap(), owned);
    }

    #[test]
    fn bytes_are_prosts_for_full_empty_and_extreme_events() {
        let client = v1::Client {
            user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)".into(),
            browser: "Safari".into(),
            email_client: "Apple Mail".into(),
            os: "iOS".into(),
            ..Default::default()
        };
        let geo = v1::Geo {
            country_code: "DE".into(),
            latitude: 50.94,
            city: "Köln".into(),
            ..Default::default()
        };
        let network = v1::Network {
            ip: "2001:db8::".into(),
            asn: 3320,
            ..Default::default()
        };
        let signals = v1::Signals {
            machine_open: true,
            suspected_bot: true,
            bot_reasons: vec![v1::BotReason::HeadRequest as i32, 7],
            image_proxy: 2,
            verdict: 3,
            ..Default::default()
        };
        let empty = (
            v1::Client::default(),
            v1::Geo::default(),
            v1::Network::default(),
            v1::Signals::default(),
        );
        let long = "x".repeat(300); // a two-byte length varint
        let full = EventRef {
            event_id: "0190f1c2-0000-7000-8000-000000000000",
            r#type: v1::EventType::Click as i32,
            channel: v1::Channel::Sms as i32,
            tenant_id: "acme",
            campaign_id: "spring",
            message_id: "m-1",
            contact_id: "c-42",
            link_id: "cta",
            target_url: "https://shop.example.com/sale?a=1&b=ü",
            occurred_at_ms: 1_717_000_000_123,
            sent_at_ms: 1_716_999_000_000,
            client: &client,
            geo: &geo,
            network: &network,
            signals: &signals,
            key_id: "k2",
            producer_version: "0.1.0",
        };
        check(&full);
        check(&EventRef {
            event_id: "",
            r#type: 0,
            channel: 0,
            tenant_id: "",
            campaign_id: "",
            message_id: "",
            contact_id: "",
            link_id: "",
            target_url: "",
            occurred_at_ms: 0,
            sent_at_ms: 0,
            client: &empty.0,
            geo: &empty.1,
            network: &empty.2,
            signals: &empty.3,
            key_id: "",
            producer_version: "",
        });
        check(&EventRef {
            r#type: -1,
            channel: i32::MAX,
            occurred_at_ms: i64::MIN,
            sent_at_ms: -1,
            target_url: &long,
            contact_id: &long[..128],
            ..full
        });
    }
}
