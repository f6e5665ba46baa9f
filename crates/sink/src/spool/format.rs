//! On-disk format of spool segments: the file header, record frames, and a reader that parses
//! frames out of a segment file and classifies damage. See the module docs of
//! [`crate::spool`] for the layout.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// First four bytes of every segment file.
pub(crate) const MAGIC: [u8; 4] = *b"OCSP";
/// Segment format version written by this code.
pub(crate) const VERSION: u16 = 1;
/// Length of the segment file header.
pub(crate) const HEADER_LEN: u64 = 16;
/// Length of a frame's header (`len` + `crc32c`).
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// Fixed part of a record body (`written_at_ms` + `key_len`).
pub(crate) const BODY_FIXED_LEN: usize = 10;
/// Largest body accepted on write and believed on read. A length field above it is "absurd".
pub(crate) const MAX_BODY_LEN: usize = 16 * 1024 * 1024;
/// File name suffix of segments.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";

/// The file name of segment `id`: 20 zero-padded decimal digits and `.seg`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("{id:020}{SEGMENT_SUFFIX}")
}

/// The segment id in a file name, if it is exactly a segment file name.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes a segment header.
pub(crate) fn encode_header(created_at_ms: i64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    // h[6..8]: reserved flags, zero.
    h[8..16].copy_from_slice(&created_at_ms.to_le_bytes());
    h
}

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// Magic and version are ours.
    Ok {
        /// When the segment was created (ms since the Unix epoch).
        created_at_ms: i64,
    },
    /// Not our magic, or a version this code does not read.
    Foreign,
}

/// Checks a segment header.
pub(crate) fn check_header(h: &[u8; HEADER_LEN as usize]) -> HeaderCheck {
    if h[0..4] != MAGIC {
        return HeaderCheck::Foreign;
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return HeaderCheck::Foreign;
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&h[8..16]);
    HeaderCheck::Ok {
        created_at_ms: i64::from_le_bytes(ts),
    }
}

/// Size on disk of a frame holding `key_len + payload_len` bytes.
pub(crate) fn frame_len(key_len: usize, payload_len: usize) -> usize {
    FRAME_HEADER_LEN + BODY_FIXED_LEN + key_len + payload_len
}

/// Encodes one frame. The caller has checked that `key.len() <= u16::MAX` and that the body is
/// at most [`MAX_BODY_LEN`]; larger inputs are truncated by no one, so the check matters.
pub(crate) fn encode_frame(written_at_ms: i64, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let body_len = BODY_FIXED_LEN + key.len() + payload.len();
    let mut buf = Vec::with_capacity(FRAME_HEADER_LEN + body_len);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]); // crc, filled below
    buf.extend_from_slice(&written_at_ms.to_le_bytes());
    buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(payload);
    let crc = crc32c::crc32c(&buf[FRAME_HEADER_LEN..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// A record parsed out of a frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedRecord {
    pub(crate) written_at_ms: i64,
    pub(crate) key: Vec<u8>,
    pub(crate) payload: Vec<u8>,
}

/// Splits a CRC-checked body into its parts. `None` if the key length does not fit the body.
fn decode_body(body: &[u8]) -> Option<DecodedRecord> {
    let fixed = body.get(..BODY_FIXED_LEN)?;
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&fixed[0..8]);
    let key_len = u16::from_le_bytes([fixed[8], fixed[9]]) as usize;
    let rest = &body[BODY_FIXED_LEN..];
    if key_len > rest.len() {
        return None;
    }
    let (key, payload) = rest.split_at(key_len);
    Some(DecodedRecord {
        written_at_ms: i64::from_le_bytes(ts),
        key: key.to_vec(),
        payload: payload.to_vec(),
    })
}

/// Why bytes in a segment could not be read as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// The segment ends in the middle of a frame (a write cut short by a crash).
    TornTail,
    /// The length field is below the minimum body or above [`MAX_BODY_LEN`].
    AbsurdLength,
    /// The body does not match its CRC (or is malformed inside despite a matching CRC).
    BadCrc,
}

impl Damage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Damage::TornTail => "torn tail",
            Damage::AbsurdLength => "absurd record length",
            Damage::BadCrc => "CRC mismatch",
        }
    }
}

/// The outcome of reading at one offset.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A good record; the next frame starts at `next`.
    Record { record: DecodedRecord, next: u64 },
    /// Nothing more before `end`.
    End,
    /// Damaged bytes; reading resumes at `skip_to` (which is `end` when the rest of the
    /// segment cannot be trusted).
    Damaged { damage: Damage, skip_to: u64 },
}

/// Where a [`SegmentReader`] reads from: a seekable byte source that can move by a relative
/// amount cheaply (`BufReader::seek_relative` keeps its buffer where `seek` would drop it).
pub(crate) trait Source: Read + Seek {
    /// Moves the position by `delta` bytes.
    fn skip(&mut self, delta: i64) -> io::Result<()>;
}

impl Source for io::BufReader<File> {
    fn skip(&mut self, delta: i64) -> io::Result<()> {
        self.seek_relative(delta)
    }
}

impl Source for io::Cursor<&[u8]> {
    fn skip(&mut self, delta: i64) -> io::Result<()> {
        self.seek(SeekFrom::Current(delta)).map(drop)
    }
}

/// Reads frames from one segment, with a read buffer for sequential access: a file in the
/// spool, or bytes in memory (`Cursor`, for the fuzz target) through the same code.
pub(crate) struct SegmentReader<R = io::BufReader<File>> {
    id: u64,
    path: PathBuf,
    file: R,
    pos: u64,
    body: Vec<u8>,
}

impl<R> std::fmt::Debug for SegmentReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentReader")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("pos", &self.pos)
            .finish()
    }
}

impl SegmentReader {
    /// Opens segment `id` at `path` for reading.
    pub(crate) fn open(id: u64, path: &Path) -> io::Result<SegmentReader> {
        let file = File::open(path)?;
        Ok(SegmentReader::from_reader(
            id,
            path,
            io::BufReader::with_capacity(256 * 1024, file),
        ))
    }
}

impl<R: Source> SegmentReader<R> {
    /// Reads segment `id` from `file`, positioned at its start; `path` is for messages.
    pub(crate) fn from_reader(id: u64, path: &Path, file: R) -> SegmentReader<R> {
        SegmentReader {
            id,
            path: path.to_path_buf(),
            file,
            pos: 0,
            body: Vec::new(),
        }
    }

    /// The segment id this reader reads.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    fn read_exact_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        if off != self.pos {
            let delta = off as i128 - self.pos as i128;
            match i64::try_from(delta) {
                Ok(d) => self.file.skip(d)?,
                Err(_) => {
                    self.file.seek(SeekFrom::Start(off))?;
                }
            }
            self.pos = off;
        }
        match self.file.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Position unknown after a failed read: force a real seek next time.
                self.file.seek(SeekFrom::Start(off))?;
                self.pos = off;
                Err(e)
            }
        }
    }

    /// Reads the segment header.
    pub(crate) fn read_header(&mut self) -> io::Result<HeaderCheck> {
        let mut h = [0u8; HEADER_LEN as usize];
        self.read_exact_at(0, &mut h)?;
        Ok(check_header(&h))
    }

    /// Reads the frame at `off`, believing no byte at or past `end`.
    ///
    /// On a CRC mismatch with a plausible length, the length is trusted only if the bytes right
    /// after the damaged frame are the segment end or a frame that passes its own CRC; otherwise
    /// the rest of the segment is skipped. A short read (the file is shorter than `end`) is a
    /// torn tail.
    pub(crate) fn read_frame(&mut self, off: u64, end: u64) -> io::Result<Frame> {
        match self.read_frame_inner(off, end)? {
            Frame::Damaged {
                damage: Damage::BadCrc,
                skip_to,
            } if skip_to < end => {
                // Only resync by the length field if the next frame proves it right.
                let resynced = matches!(
                    self.read_frame_inner(skip_to, end)?,
                    Frame::Record { .. } | Frame::End
                );
                Ok(Frame::Damaged {
                    damage: Damage::BadCrc,
                    skip_to: if resynced { skip_to } else { end },
                })
            }
            other => Ok(other),
        }
    }

    fn read_frame_inner(&mut self, off: u64, end: u64) -> io::Result<Frame> {
        if off >= end {
            return Ok(Frame::End);
        }
        let remaining = end - off;
        if remaining < FRAME_HEADER_LEN as u64 {
            return Ok(Frame::Damaged {
                damage: Damage::TornTail,
                skip_to: end,
            });
        }
        let mut fh = [0u8; FRAME_HEADER_LEN];
        if let Err(e) = self.read_exact_at(off, &mut fh) {
            return short_read_or(e, end);
        }
        let len = u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]) as usize;
        let crc = u32::from_le_bytes([fh[4], fh[5], fh[6], fh[7]]);
        if !(BODY_FIXED_LEN..=MAX_BODY_LEN).contains(&len) {
            return Ok(Frame::Damaged {
                damage: Damage::AbsurdLength,
                skip_to: end,
            });
        }
        let next = off + FRAME_HEADER_LEN as u64 + len as u64;
        if next > end {
            return Ok(Frame::Damaged {
                damage: Damage::TornTail,
                skip_to: end,
            });
        }
        let mut body = std::mem::take(&mut self.body);
        body.resize(len, 0);
        let read = self.read_exact_at(off + FRAME_HEADER_LEN as u64, &mut body);
        let result = match read {
            Err(e) => short_read_or(e, end),
            Ok(()) if crc32c::crc32c(&body) != crc => Ok(Frame::Damaged {
                damage: Damage::BadCrc,
                skip_to: next,
            }),
            Ok(()) => match decode_body(&body) {
                Some(record) => Ok(Frame::Record { record, next }),
                None => Ok(Frame::Damaged {
                    damage: Damage::BadCrc,
                    skip_to: next,
                }),
            },
        };
        self.body = body;
        result
    }
}

fn short_read_or(e: io::Error, end: u64) -> io::Result<Frame> {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Ok(Frame::Damaged {
            damage: Damage::TornTail,
            skip_to: end,
        })
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(7), "00000000000000000007.seg");
        assert_eq!(parse_segment_file_name("00000000000000000007.seg"), Some(7));
        assert_eq!(parse_segment_file_name("7.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000x.seg"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000007.seg.corrupt"),
            None
        );
        assert_eq!(parse_segment_file_name("99999999999999999999.seg"), None);
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
    }

    #[test]
    fn header_round_trip() {
        let h = encode_header(1234);
        assert_eq!(
            check_header(&h),
            HeaderCheck::Ok {
                created_at_ms: 1234
            }
        );
        let mut bad = h;
        bad[4] = 9;
        assert_eq!(check_header(&bad), HeaderCheck::Foreign);
    }

    fn write_segment(frames: &[Vec<u8>]) -> (tempfile::TempDir, PathBuf, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_file_name(1));
        let mut f = File::create(&path).unwrap();
        f.write_all(&encode_header(0)).unwrap();
        let mut len = HEADER_LEN;
        for fr in frames {
            f.write_all(fr).unwrap();
            len += fr.len() as u64;
        }
        (dir, path, len)
    }

    fn read_all(path: &Path, end: u64) -> (Vec<DecodedRecord>, Vec<Damage>) {
        let mut r = SegmentReader::open(1, path).unwrap();
        assert!(matches!(r.read_header().unwrap(), HeaderCheck::Ok { .. }));
        let mut off = HEADER_LEN;
        let (mut recs, mut dmg) = (Vec::new(), Vec::new());
        loop {
            match r.read_frame(off, end).unwrap() {
                Frame::Record { record, next } => {
                    recs.push(record);
                    off = next;
                }
                Frame::End => break,
                Frame::Damaged { damage, skip_to } => {
                    dmg.push(damage);
                    off = skip_to;
                }
            }
        }
        (recs, dmg)
    }

    #[test]
    fn frames_round_trip_and_crc_resync() {
        let frames: Vec<_> = (0..5u8)
            .map(|i| encode_frame(i as i64, &[i], &[i; 20]))
            .collect();
        let (_d, path, end) = write_segment(&frames);
        let (recs, dmg) = read_all(&path, end);
        assert_eq!(recs.len(), 5);
        assert!(dmg.is_empty());
        assert_eq!(recs[3].key, vec![3]);
        assert_eq!(recs[3].payload, vec![3; 20]);
        assert_eq!(recs[3].written_at_ms, 3);

        // Flip a payload byte of frame 2: only that record is lost.
        let mut bad = frames.clone();
        let n = bad[2].len();
        bad[2][n - 1] ^= 0x40;
        let (_d, path, end) = write_segment(&bad);
        let (recs, dmg) = read_all(&path, end);
        assert_eq!(dmg, vec![Damage::BadCrc]);
        let keys: Vec<u8> = recs.iter().map(|r| r.key[0]).collect();
        assert_eq!(keys, vec![0, 1, 3, 4]);

        // Corrupt the length of frame 1 (still plausible): the rest of the segment is skipped.
        let mut bad = frames.clone();
        bad[1][0] = bad[1][0].wrapping_add(3);
        let (_d, path, end) = write_segment(&bad);
        let (recs, dmg) = read_all(&path, end);
        assert_eq!(recs.len(), 1);
        assert_eq!(dmg.len(), 1);

        // Absurd length.
        let mut bad = frames.clone();
        bad[1][3] = 0xff;
        let (_d, path, end) = write_segment(&bad);
        let (recs, dmg) = read_all(&path, end);
        assert_eq!(recs.len(), 1);
        assert_eq!(dmg, vec![Damage::AbsurdLength]);
    }

    #[test]
    fn torn_tail_is_detected() {
        let frames: Vec<_> = (0..3u8).map(|i| encode_frame(0, b"k", &[i; 50])).collect();
        let (_d, path, end) = write_segment(&frames);
        for cut in [1u64, 5, 9, 30] {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(end - cut).unwrap();
            // The reader believes the file is as long as `end` (as after a crash).
            let (recs, dmg) = read_all(&path, end);
            assert_eq!(recs.len(), 2, "cut {cut}");
            assert_eq!(dmg, vec![Damage::TornTail], "cut {cut}");
        }
    }
}
