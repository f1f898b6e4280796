//! Byte formats of the log: segment records and ack entries, plus the
//! tolerant segment scanner used at open.
//!
//! Everything here is pure (no I/O) so the recovery rules can be tested on
//! byte buffers.

use std::ops::Range;

/// "OTLR" read as little-endian; chosen so it is unlikely to appear in
/// protobuf payloads by accident (resync relies on crc anyway).
pub const MAGIC: u32 = u32::from_le_bytes(*b"OTLR");
/// magic u32, len u32, items u64, crc32c u32.
pub const HEADER: usize = 20;
/// offset u64, crc32c u32 (over the offset bytes).
pub const ACK_ENTRY: usize = 12;

fn record_crc(len: u32, items: u64, payload: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(&len.to_le_bytes());
    c = crc32c::crc32c_append(c, &items.to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

/// Size on disk of a record carrying `payload_len` bytes.
pub fn encoded_len(payload_len: usize) -> u64 {
    (HEADER + payload_len) as u64
}

/// Appends one record to `buf` (the log writes header and payload apart).
#[cfg(test)]
pub fn encode(buf: &mut Vec<u8>, payload: &[u8], items: u64) {
    buf.extend_from_slice(&header(payload, items));
    buf.extend_from_slice(payload);
}

/// The header of a record carrying `payload`; the payload follows it on
/// disk. The caller has checked `payload.len()` fits u32.
pub fn header(payload: &[u8], items: u64) -> [u8; HEADER] {
    let len = u32::try_from(payload.len()).expect("caller checks payload size");
    let mut out = [0u8; HEADER];
    out[..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&len.to_le_bytes());
    out[8..16].copy_from_slice(&items.to_le_bytes());
    out[16..].copy_from_slice(&record_crc(len, items, payload).to_le_bytes());
    out
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

/// A record that checked out: its item count, payload range and where the
/// next record starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub items: u64,
    pub payload: Range<usize>,
    pub next: usize,
}

/// Decodes the record at `off` only if it is complete and its crc matches;
/// any other state (short, bad magic, bad crc) is `None` so callers have a
/// single notion of "not a record here".
pub fn decode_at(buf: &[u8], off: usize) -> Option<Decoded> {
    let rest = buf.len().checked_sub(off)?;
    if rest < HEADER || u32_at(buf, off) != MAGIC {
        return None;
    }
    let len = u32_at(buf, off + 4);
    let items = u64_at(buf, off + 8);
    let crc = u32_at(buf, off + 16);
    // `len` comes from disk: compare in u64 so a huge value cannot overflow.
    if len as u64 > (rest - HEADER) as u64 {
        return None;
    }
    let start = off + HEADER;
    let end = start + len as usize;
    if record_crc(len, items, &buf[start..end]) != crc {
        return None;
    }
    Some(Decoded {
        items,
        payload: start..end,
        next: end,
    })
}

/// Outcome of scanning one segment image.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// (offset, decoded) of every good record, in file order.
    pub records: Vec<(u64, Decoded)>,
    /// Offsets where bad bytes began and were skipped.
    pub corrupt: Vec<u64>,
    /// For the last segment: the length to cut the file back to.
    pub truncate_to: Option<u64>,
}

/// Smallest offset > `from` holding a record that checks out.
///
/// Each candidate costs at most one crc over the rest of the buffer, and the
/// loop only moves forward, so this always terminates.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let magic = MAGIC.to_le_bytes();
    let last_start = buf.len().checked_sub(HEADER)?;
    (from + 1..=last_start).find(|&q| buf[q..q + 4] == magic && decode_at(buf, q).is_some())
}

/// Walks a segment image record by record.
///
/// On a bad record, scans forward for the next record that checks out. If one
/// exists the bad bytes are corruption (counted, skipped); if none does, the
/// bad bytes run to the end of the file: in the last segment that is the
/// torn tail of an interrupted append (cut it off), elsewhere it can only be
/// damage, so it is counted.
pub fn scan(buf: &[u8], is_last: bool) -> Scan {
    let mut out = Scan::default();
    let mut off = 0usize;
    while off < buf.len() {
        if let Some(d) = decode_at(buf, off) {
            let next = d.next;
            out.records.push((off as u64, d));
            off = next;
            continue;
        }
        match resync(buf, off) {
            Some(q) => {
                out.corrupt.push(off as u64);
                off = q;
            }
            None => {
                if is_last {
                    out.truncate_to = Some(off as u64);
                } else {
                    out.corrupt.push(off as u64);
                }
                break;
            }
        }
    }
    out
}

/// One ack entry naming a record offset within its segment.
pub fn encode_ack(buf: &mut Vec<u8>, offset: u64) {
    let b = offset.to_le_bytes();
    buf.extend_from_slice(&b);
    buf.extend_from_slice(&crc32c::crc32c(&b).to_le_bytes());
}

/// Parses an ack file: returns the acked offsets and the length of the
/// whole-entry prefix (a torn final entry is cut back to that). Entries with
/// a bad crc are ignored, which at worst re-exports a record.
pub fn decode_acks(buf: &[u8]) -> (Vec<u64>, u64) {
    let whole = buf.len() / ACK_ENTRY * ACK_ENTRY;
    let offsets = buf[..whole]
        .chunks_exact(ACK_ENTRY)
        .filter(|e| crc32c::crc32c(&e[..8]) == u32_at(e, 8))
        .map(|e| u64_at(e, 0))
        .collect();
    (offsets, whole as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(recs: &[(&[u8], u64)]) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut offs = Vec::new();
        for (p, i) in recs {
            offs.push(buf.len());
            encode(&mut buf, p, *i);
        }
        (buf, offs)
    }

    #[test]
    fn roundtrip_and_corruption() {
        let (mut buf, offs) = image(&[(b"aaaa", 1), (b"bbbbbb", 2), (b"", 3)]);
        let s = scan(&buf, true);
        assert_eq!(s.records.len(), 3);
        assert_eq!(&buf[s.records[1].1.payload.clone()], b"bbbbbb");
        assert_eq!(s.records[2].1.items, 3);
        buf[offs[1] + HEADER + 1] ^= 0xff;
        let s = scan(&buf, false);
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.corrupt, vec![offs[1] as u64]);
    }

    #[test]
    fn hostile_images_terminate() {
        let magic_only: Vec<u8> = MAGIC.to_le_bytes().repeat(1000);
        let mut rng = 0x9e3779b97f4a7c15u64;
        let garbage: Vec<u8> = (0..5000)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        for img in [Vec::new(), magic_only, garbage, vec![0u8; 100]] {
            for last in [true, false] {
                let s = scan(&img, last);
                assert!(s.records.is_empty());
                assert_eq!(s.truncate_to.is_some(), last && !img.is_empty());
            }
        }
    }

    #[test]
    fn acks_tolerate_torn_and_bad_entries() {
        let mut buf = Vec::new();
        for o in [0u64, 40, 80] {
            encode_ack(&mut buf, o);
        }
        buf[ACK_ENTRY + 2] ^= 1;
        buf.extend_from_slice(&[1, 2, 3]);
        let (offs, whole) = decode_acks(&buf);
        assert_eq!(offs, vec![0, 80]);
        assert_eq!(whole, 3 * ACK_ENTRY as u64);
    }
}
