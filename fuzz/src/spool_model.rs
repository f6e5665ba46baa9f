//! The model of a spool segment the spool fuzz targets check against: the documented damage
//! rules of `openclick_sink::spool` ("Restart and damage") written again, independently, over a
//! byte slice.

/// Segment header length.
pub const HEADER_LEN: usize = 16;
const MAX_BODY_LEN: usize = 16 * 1024 * 1024;

/// A record as the model reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Rec {
    /// Spool time.
    pub written_at_ms: i64,
    /// Kafka key.
    pub key: Vec<u8>,
    /// Event bytes.
    pub payload: Vec<u8>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// A frame at `off`: `Ok((record or None for a bad body, next))`, `Err(())` when it cannot be
/// framed (torn or absurd length: the rest of the segment is lost).
#[allow(clippy::type_complexity)]
fn frame(b: &[u8], off: usize) -> Result<(Option<Rec>, usize), ()> {
    if b.len() - off < 8 {
        return Err(());
    }
    let len = u32_at(b, off) as usize;
    if !(10..=MAX_BODY_LEN).contains(&len) || off + 8 + len > b.len() {
        return Err(());
    }
    let body = &b[off + 8..off + 8 + len];
    let next = off + 8 + len;
    if crc32c::crc32c(body) != u32_at(b, off + 4) {
        return Ok((None, next));
    }
    let key_len = usize::from(u16::from_le_bytes([body[8], body[9]]));
    if key_len > len - 10 {
        return Ok((None, next));
    }
    Ok((
        Some(Rec {
            written_at_ms: i64::from_le_bytes(body[..8].try_into().unwrap()),
            key: body[10..10 + key_len].to_vec(),
            payload: body[10 + key_len..].to_vec(),
        }),
        next,
    ))
}

/// What the spool should find: the records, damaged spots, skipped bytes, and whether the file
/// is set aside as foreign.
pub fn model(b: &[u8]) -> (Vec<Rec>, u64, u64, bool) {
    if b.len() < HEADER_LEN {
        return (Vec::new(), u64::from(!b.is_empty()), b.len() as u64, false);
    }
    if &b[..4] != b"OCSP" || b[4..6] != [1, 0] {
        return (Vec::new(), 0, 0, true);
    }
    let (mut recs, mut damage, mut skipped) = (Vec::new(), 0u64, 0u64);
    let mut off = HEADER_LEN;
    while off < b.len() {
        match frame(b, off) {
            Ok((Some(r), next)) => {
                recs.push(r);
                off = next;
            }
            Ok((None, next)) => {
                // Trust the length only if the next frame proves it (or the segment ends).
                let resync = next == b.len() || matches!(frame(b, next), Ok((Some(_), _)));
                let to = if resync { next } else { b.len() };
                damage += 1;
                skipped += (to - off) as u64;
                off = to;
            }
            Err(()) => {
                damage += 1;
                skipped += (b.len() - off) as u64;
                off = b.len();
            }
        }
    }
    (recs, damage, skipped, false)
}

/// Bit 1 of the flags: rewrite every frame's CRC that can be framed.
fn fix_crcs(b: &mut [u8]) {
    let mut off = HEADER_LEN;
    while b.len() >= off + 8 {
        let len = u32_at(b, off) as usize;
        if !(10..=MAX_BODY_LEN).contains(&len) || off + 8 + len > b.len() {
            return;
        }
        let crc = crc32c::crc32c(&b[off + 8..off + 8 + len]);
        b[off + 4..off + 8].copy_from_slice(&crc.to_le_bytes());
        off += 8 + len;
    }
}

/// The segment a fuzz input stands for: a flags byte, then the segment bytes. Flag bit 0:
/// prepend a valid 16-byte header; bit 1: fix the CRC of every frame whose length fits (so
/// random bodies become records and the fuzzer explores framing rather than CRC32C). `None`
/// for an empty input.
pub fn segment(data: &[u8]) -> Option<Vec<u8>> {
    let (&flags, rest) = data.split_first()?;
    let mut seg = Vec::with_capacity(rest.len() + HEADER_LEN);
    if flags & 1 == 1 {
        seg.extend_from_slice(b"OCSP\x01\x00\x00\x00");
        seg.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
    }
    seg.extend_from_slice(rest);
    if flags & 2 == 2 {
        fix_crcs(&mut seg);
    }
    Some(seg)
}
