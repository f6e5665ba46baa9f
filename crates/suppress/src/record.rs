//! The suppression topic's records, as bytes: keys, values and erasure requests.
//!
//! The compacted topic `openclick.suppressions.v1` is the single source of truth every replica
//! follows (its contract, record keys included, is documented in
//! `proto/openclick/v1/suppression.proto`). This module is the pure part of that contract:
//! scope <-> record key, change <-> `SuppressionChange` value (a removal is a tombstone), and the
//! `ErasureRequest` a reason `erase` also publishes. The Kafka clients that write and follow the
//! topic live in `openclick-kafka`; hostile or malformed records are refused here, with
//! [`SuppressError::Parse`], before they reach the set.

use openclick_events::v1::{
    ErasureRequest, RedirectBlock, SuppressionAction, SuppressionChange, SuppressionReason,
    SuppressionScope,
};
use openclick_events::Message as _;

use crate::blocks::{Block, BlockChange, BlockScope};
use crate::{Change, Reason, Scope, SuppressError};

/// The default suppressions topic (compacted).
pub const DEFAULT_SUPPRESSIONS_TOPIC: &str = "openclick.suppressions.v1";
/// The default erasure-requests topic.
pub const DEFAULT_ERASURES_TOPIC: &str = "openclick.erasures.v1";

/// The record key of a scope (see `suppression.proto`).
pub fn record_key(scope: &Scope) -> String {
    match scope {
        Scope::Contact { tenant, contact } => format!("{tenant}/{contact}"),
        Scope::Tenant { tenant } => tenant.clone(),
        Scope::Campaign { tenant, campaign } => format!("campaign:{tenant}/{campaign}"),
        Scope::ContactInList {
            tenant,
            list,
            contact,
        } => format!("list:{tenant}/{list}/{contact}"),
    }
}

/// Parses a record key back into its scope.
pub fn parse_key(key: &str) -> Result<Scope, SuppressError> {
    let bad = || SuppressError::Parse("malformed suppression record key".into());
    let scope = if let Some(rest) = key.strip_prefix("list:") {
        // A list id holds no '/', a tenant id neither: the contact is the rest (it may).
        let (tenant, rest) = rest.split_once('/').ok_or_else(bad)?;
        let (list, contact) = rest.split_once('/').ok_or_else(bad)?;
        Scope::ContactInList {
            tenant: tenant.into(),
            list: list.into(),
            contact: contact.into(),
        }
    } else if let Some(rest) = key.strip_prefix("campaign:") {
        let (tenant, campaign) = rest.split_once('/').ok_or_else(bad)?;
        Scope::Campaign {
            tenant: tenant.into(),
            campaign: campaign.into(),
        }
    } else if let Some((tenant, contact)) = key.split_once('/') {
        Scope::Contact {
            tenant: tenant.into(),
            contact: contact.into(),
        }
    } else {
        Scope::Tenant { tenant: key.into() }
    };
    scope.validate().map_err(|_| bad())?;
    Ok(scope)
}

fn pb_reason(r: Reason) -> SuppressionReason {
    match r {
        Reason::OptOut => SuppressionReason::OptOut,
        Reason::Restrict => SuppressionReason::Restrict,
        Reason::Erase => SuppressionReason::Erase,
        Reason::Complaint => SuppressionReason::Complaint,
        Reason::Bounce => SuppressionReason::Bounce,
        Reason::Manual => SuppressionReason::Manual,
    }
}

fn from_pb_reason(r: SuppressionReason) -> Reason {
    match r {
        // Unknown reasons are read on the safe side: suppressed.
        SuppressionReason::Unspecified | SuppressionReason::OptOut => Reason::OptOut,
        SuppressionReason::Restrict => Reason::Restrict,
        SuppressionReason::Erase => Reason::Erase,
        SuppressionReason::Complaint => Reason::Complaint,
        SuppressionReason::Bounce => Reason::Bounce,
        SuppressionReason::Manual => Reason::Manual,
    }
}

/// The message for an added entry (removals are tombstones and carry none).
pub fn encode_change(change: &Change) -> Option<SuppressionChange> {
    let reason = change.reason?;
    let mut m = SuppressionChange {
        action: SuppressionAction::Add as i32,
        reason: pb_reason(reason) as i32,
        at_ms: change.at_ms,
        ..Default::default()
    };
    match &change.scope {
        Scope::Contact { tenant, contact } => {
            m.tenant_id = tenant.clone();
            m.contact_id = contact.clone();
            m.scope = SuppressionScope::Contact as i32;
        }
        Scope::Tenant { tenant } => {
            m.tenant_id = tenant.clone();
            m.scope = SuppressionScope::Tenant as i32;
        }
        Scope::Campaign { tenant, campaign } => {
            m.tenant_id = tenant.clone();
            m.campaign_id = campaign.clone();
            m.scope = SuppressionScope::Campaign as i32;
        }
        Scope::ContactInList {
            tenant,
            list,
            contact,
        } => {
            m.tenant_id = tenant.clone();
            m.contact_id = contact.clone();
            m.list_id = list.clone();
            m.scope = SuppressionScope::ContactInList as i32;
        }
    }
    Some(m)
}

/// Reads one record of the suppressions topic. The key names the entry (it is what compaction
/// keeps); the value says what happened. `Ok(None)`: a record to skip (unknown action).
pub fn decode_record(
    key: &[u8],
    value: Option<&[u8]>,
    timestamp_ms: i64,
) -> Result<Option<Change>, SuppressError> {
    let key = std::str::from_utf8(key)
        .map_err(|_| SuppressError::Parse("suppression record key is not UTF-8".into()))?;
    let scope = parse_key(key)?;
    let Some(value) = value else {
        // A tombstone's time is the record's timestamp, which any producer sets: clamped like
        // a value's `at_ms`.
        return Ok(Some(Change {
            scope,
            reason: None,
            at_ms: crate::clamp_at_ms(timestamp_ms, openclick_common::now_ms()),
        }));
    };
    let m = SuppressionChange::decode(value)
        .map_err(|e| SuppressError::Parse(format!("SuppressionChange: {e}")))?;
    let at_ms = crate::clamp_at_ms(
        if m.at_ms > 0 { m.at_ms } else { timestamp_ms },
        openclick_common::now_ms(),
    );
    let reason = match m.action() {
        SuppressionAction::Add => Some(from_pb_reason(m.reason())),
        SuppressionAction::Remove => None,
        SuppressionAction::Unspecified => return Ok(None),
    };
    Ok(Some(Change {
        scope,
        reason,
        at_ms,
    }))
}

/// One record of the control topic, whatever its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlRecord {
    /// A suppression change.
    Suppression(Change),
    /// A redirect block change.
    Block(BlockChange),
}

/// The key prefix of redirect blocks.
const BLOCK: &str = "block:";

/// The record key of a block scope (see `suppression.proto`).
pub fn block_key(scope: &BlockScope) -> String {
    match scope {
        BlockScope::Tenant { tenant } => format!("{BLOCK}tenant:{tenant}"),
        BlockScope::Campaign { tenant, campaign } => format!("{BLOCK}campaign:{tenant}/{campaign}"),
        BlockScope::Link { tenant, link } => format!("{BLOCK}link:{tenant}/{link}"),
        BlockScope::Host { host } => format!("{BLOCK}host:{host}"),
    }
}

/// Parses a block key back into its scope (validated).
pub fn parse_block_key(key: &str) -> Result<BlockScope, SuppressError> {
    let bad = || SuppressError::Parse("malformed redirect block key".into());
    let rest = key.strip_prefix(BLOCK).ok_or_else(bad)?;
    let (kind, rest) = rest.split_once(':').ok_or_else(bad)?;
    let pair = || rest.split_once('/').ok_or_else(bad);
    let scope = match kind {
        "tenant" => BlockScope::Tenant {
            tenant: rest.into(),
        },
        "campaign" => {
            let (t, c) = pair()?;
            BlockScope::Campaign {
                tenant: t.into(),
                campaign: c.into(),
            }
        }
        "link" => {
            let (t, l) = pair()?;
            BlockScope::Link {
                tenant: t.into(),
                link: l.into(),
            }
        }
        "host" => BlockScope::Host { host: rest.into() },
        _ => return Err(bad()),
    };
    let v = scope.clone().validated().map_err(|_| bad())?;
    if v != scope {
        return Err(bad()); // a host must be stored normalised
    }
    Ok(v)
}

/// The value of a block record.
pub fn encode_block(block: &Block, source: &str) -> RedirectBlock {
    RedirectBlock {
        reason: block.reason.clone(),
        at_ms: block.at_ms,
        source: source.to_string(),
    }
}

/// Reads one record of the control topic: a redirect block (key prefix `block:`) or a
/// suppression change. `Ok(None)`: a record to skip.
pub fn decode_control(
    key: &[u8],
    value: Option<&[u8]>,
    timestamp_ms: i64,
) -> Result<Option<ControlRecord>, SuppressError> {
    if !key.starts_with(BLOCK.as_bytes()) {
        return Ok(decode_record(key, value, timestamp_ms)?.map(ControlRecord::Suppression));
    }
    let key = std::str::from_utf8(key)
        .map_err(|_| SuppressError::Parse("block key is not UTF-8".into()))?;
    let scope = parse_block_key(key)?;
    let block = match value {
        None => None,
        Some(v) => {
            let m = RedirectBlock::decode(v)
                .map_err(|e| SuppressError::Parse(format!("RedirectBlock: {e}")))?;
            Some(Block {
                reason: m.reason,
                at_ms: crate::clamp_at_ms(
                    if m.at_ms > 0 { m.at_ms } else { timestamp_ms },
                    openclick_common::now_ms(),
                ),
            })
        }
    };
    Ok(Some(ControlRecord::Block(BlockChange { scope, block })))
}

/// The erasure request a change publishes besides its record: a contact suppressed with reason
/// `erase`. `source` names what made the change (no personal data).
pub fn erasure_request(change: &Change, source: &str) -> Option<ErasureRequest> {
    match (change.reason, &change.scope) {
        (Some(Reason::Erase), Scope::Contact { tenant, contact }) => Some(ErasureRequest {
            request_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.clone(),
            contact_id: contact.clone(),
            requested_at_ms: change.at_ms,
            source: source.to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for scope in [
            Scope::Contact {
                tenant: "acme".into(),
                contact: "a/b@example.com".into(),
            },
            Scope::Tenant {
                tenant: "acme".into(),
            },
            Scope::Campaign {
                tenant: "acme".into(),
                campaign: "spring/1".into(),
            },
        ] {
            assert_eq!(parse_key(&record_key(&scope)).unwrap(), scope);
        }
        // The documented key shapes (suppression.proto), written out independently.
        assert_eq!(
            record_key(&Scope::Contact {
                tenant: "acme".into(),
                contact: "c-42".into()
            }),
            "acme/c-42"
        );
        assert_eq!(
            record_key(&Scope::Campaign {
                tenant: "acme".into(),
                campaign: "spring".into()
            }),
            "campaign:acme/spring"
        );
        assert_eq!(record_key(&Scope::Tenant { tenant: "t".into() }), "t");
        assert!(parse_key("a:b").is_err());
        assert!(parse_key("").is_err());
    }

    /// Found by the `suppress_record` fuzz target (fuzz/): a tombstone took the record
    /// timestamp unclamped (`i64::MAX` or negative), where a value's time is clamped.
    #[test]
    fn tombstone_times_are_clamped_like_values() {
        let now = openclick_common::now_ms();
        let far = decode_record(b"t/c", None, i64::MAX).unwrap().unwrap();
        assert!(
            far.at_ms <= now + crate::MAX_FUTURE_AT_MS + 60_000,
            "{}",
            far.at_ms
        );
        assert_eq!(decode_record(b"t", None, -5).unwrap().unwrap().at_ms, 0);
        let remove = SuppressionChange {
            action: SuppressionAction::Remove as i32,
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(
            decode_record(b"t", Some(&remove), -5)
                .unwrap()
                .unwrap()
                .at_ms,
            0
        );
    }

    #[test]
    fn records_decode_to_changes() {
        let add = Change {
            scope: Scope::Contact {
                tenant: "t".into(),
                contact: "c".into(),
            },
            reason: Some(Reason::Restrict),
            at_ms: 42,
        };
        let bytes = encode_change(&add).unwrap().encode_to_vec();
        assert_eq!(decode_record(b"t/c", Some(&bytes), 7).unwrap(), Some(add));
        let removed = decode_record(b"t/c", None, 7).unwrap().unwrap();
        assert_eq!(removed.reason, None);
        assert_eq!(removed.at_ms, 7);
        let unknown = SuppressionChange::default().encode_to_vec();
        assert_eq!(decode_record(b"t/c", Some(&unknown), 7).unwrap(), None);
        assert!(decode_record(b"t/c", Some(b"\xff\xff"), 7).is_err());
    }

    #[test]
    fn block_records_round_trip_and_never_read_as_suppressions() {
        let scopes = [
            BlockScope::Tenant {
                tenant: "acme".into(),
            },
            BlockScope::Campaign {
                tenant: "acme".into(),
                campaign: "spring/1".into(),
            },
            BlockScope::Link {
                tenant: "acme".into(),
                link: "hero".into(),
            },
            BlockScope::Host {
                host: "evil.example".into(),
            },
        ];
        for scope in scopes {
            let key = block_key(&scope);
            assert!(key.starts_with("block:"), "{key}");
            let block = Block {
                reason: "ticket 9".into(),
                at_ms: 42,
            };
            let v = encode_block(&block, "admin-api").encode_to_vec();
            let got = decode_control(key.as_bytes(), Some(&v), 7)
                .unwrap()
                .unwrap();
            assert_eq!(
                got,
                ControlRecord::Block(BlockChange {
                    scope: scope.clone(),
                    block: Some(block)
                })
            );
            let lifted = decode_control(key.as_bytes(), None, 7).unwrap().unwrap();
            assert_eq!(
                lifted,
                ControlRecord::Block(BlockChange { scope, block: None })
            );
            // An older replica reads the key as a suppression key and refuses it.
            assert!(decode_record(key.as_bytes(), Some(&v), 7).is_err(), "{key}");
        }
        assert_eq!(
            block_key(&BlockScope::Host {
                host: "e.com".into()
            }),
            "block:host:e.com"
        );
        for bad in [
            "block:",
            "block:tenant:",
            "block:host:Evil.example",
            "block:x:y",
            "block:link:acme",
        ] {
            assert!(decode_control(bad.as_bytes(), None, 7).is_err(), "{bad}");
        }
        // Suppression records still decode as before.
        assert!(matches!(
            decode_control(b"t/c", None, 7).unwrap(),
            Some(ControlRecord::Suppression(_))
        ));
    }
}
