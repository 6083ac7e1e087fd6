//! The Tachyon frame: a 32-byte little-endian header and `msg_count`
//! length-prefixed records (PROTOCOL.md, version 1).

use super::{le16, le32, le64};

pub const HEADER_LEN: usize = 32;
pub const MAGIC: [u8; 2] = *b"TY";
pub const VERSION: u8 = 1;
pub const FLAG_TS_PRESENT: u8 = 0x01;
/// Flag bits that must be 0 in version 1.
pub const RESERVED_FLAGS: u8 = !FLAG_TS_PRESENT;
/// Size of the little-endian length before each record's payload.
pub const RECORD_LEN_PREFIX: usize = 2;
/// Longest record payload the length prefix can state.
pub const MAX_RECORD_LEN: usize = u16::MAX as usize;
/// The UDP destination port that marks Tachyon traffic unless configured.
pub const DEFAULT_UDP_PORT: u16 = 47000;

/// Byte offsets of the header fields, from the start of the UDP payload.
pub mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 2;
    pub const FLAGS: usize = 3;
    pub const MSG_COUNT: usize = 4;
    pub const RESERVED: usize = 6;
    pub const TOPIC_ID: usize = 8;
    pub const SENDER_ID: usize = 12;
    pub const SEQ: usize = 16;
    pub const TIMESTAMP_NS: usize = 24;
}

/// The first four header bytes (magic, version, flags) as one little-endian
/// u32 with no flag set, and the mask that ignores `TS_PRESENT`: a fast
/// path checks magic, version and reserved flags in one compare.
pub const MAGIC_VERSION_WORD: u32 = u32::from_le_bytes([MAGIC[0], MAGIC[1], VERSION, 0]);
pub const MAGIC_VERSION_FLAGS_MASK: u32 = u32::from_le_bytes([0xff, 0xff, 0xff, RESERVED_FLAGS]);
const _: () = assert!(field::MAGIC == 0 && field::VERSION == 2 && field::FLAGS == 3);

/// View over a Tachyon header (at least 32 bytes present).
#[derive(Clone, Copy)]
pub struct FrameHeader<'a> {
    buf: &'a [u8],
}

/// Outcome of walking the records.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordsCheck {
    /// Records end exactly at the end of the payload.
    Exact,
    /// A record's length runs past the end.
    Truncated,
    /// Bytes remain after the last record.
    TrailingBytes,
}

impl<'a> FrameHeader<'a> {
    /// Needs the whole UDP payload (records are walked from it).
    #[inline(always)]
    pub fn parse(udp_payload: &'a [u8]) -> Option<Self> {
        (udp_payload.len() >= HEADER_LEN).then_some(FrameHeader { buf: udp_payload })
    }

    pub fn magic_ok(&self) -> bool {
        self.buf[field::MAGIC..field::MAGIC + 2] == MAGIC
    }

    pub fn version(&self) -> u8 {
        self.buf[field::VERSION]
    }

    pub fn flags(&self) -> u8 {
        self.buf[field::FLAGS]
    }

    pub fn msg_count(&self) -> u16 {
        le16(self.buf, field::MSG_COUNT)
    }

    pub fn reserved(&self) -> u16 {
        le16(self.buf, field::RESERVED)
    }

    pub fn topic_id(&self) -> u32 {
        le32(self.buf, field::TOPIC_ID)
    }

    pub fn sender_id(&self) -> u32 {
        le32(self.buf, field::SENDER_ID)
    }

    pub fn seq(&self) -> u64 {
        le64(self.buf, field::SEQ)
    }

    pub fn timestamp_ns(&self) -> u64 {
        le64(self.buf, field::TIMESTAMP_NS)
    }

    pub fn has_timestamp(&self) -> bool {
        self.flags() & FLAG_TS_PRESENT != 0
    }

    /// Reserved flag bits, the reserved field and msg_count are as required.
    #[inline(always)]
    pub fn header_fields_ok(&self) -> bool {
        self.flags() & RESERVED_FLAGS == 0 && self.reserved() == 0 && self.msg_count() != 0
    }

    /// Walks the `msg_count` records: each is `len: u16` then `len` bytes.
    #[inline(always)]
    pub fn check_records(&self) -> RecordsCheck {
        let mut rest = &self.buf[HEADER_LEN..];
        for _ in 0..self.msg_count() {
            // One length check per record: the prefix, then the payload it announces.
            let [lo, hi, tail @ ..] = rest else {
                return RecordsCheck::Truncated;
            };
            let len = u16::from_le_bytes([*lo, *hi]) as usize;
            match tail.get(len..) {
                Some(after) => rest = after,
                None => return RecordsCheck::Truncated,
            }
        }
        if rest.is_empty() { RecordsCheck::Exact } else { RecordsCheck::TrailingBytes }
    }

    /// Iterates the record payloads (assumes `check_records` said Exact).
    pub fn records(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        let mut at = HEADER_LEN;
        (0..self.msg_count()).map_while(move |_| {
            if at + RECORD_LEN_PREFIX > buf.len() {
                return None;
            }
            let len = le16(buf, at) as usize;
            let start = at + RECORD_LEN_PREFIX;
            at = start + len;
            buf.get(start..at)
        })
    }
}

/// The header fields of a Tachyon frame as values, to write one. The
/// reserved field is written as 0 and `TS_PRESENT` follows `timestamp_ns`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TachyonRepr {
    pub msg_count: u16,
    pub topic_id: u32,
    pub sender_id: u32,
    /// Sender's sequence number of the first record.
    pub seq: u64,
    /// `Some` sets `TS_PRESENT` and writes the value; `None` writes 0.
    pub timestamp_ns: Option<u64>,
}

impl TachyonRepr {
    /// Reads back what a view shows, for round trips.
    pub fn parse(header: &FrameHeader<'_>) -> TachyonRepr {
        TachyonRepr {
            msg_count: header.msg_count(),
            topic_id: header.topic_id(),
            sender_id: header.sender_id(),
            seq: header.seq(),
            timestamp_ns: header.has_timestamp().then(|| header.timestamp_ns()),
        }
    }

    /// The header alone; records follow it.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 32-byte header at the start of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than 32 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        let h = &mut buf[..HEADER_LEN];
        let flags = if self.timestamp_ns.is_some() { FLAG_TS_PRESENT } else { 0 };
        h[field::MAGIC..field::MAGIC + 2].copy_from_slice(&MAGIC);
        h[field::VERSION] = VERSION;
        h[field::FLAGS] = flags;
        h[field::MSG_COUNT..field::MSG_COUNT + 2].copy_from_slice(&self.msg_count.to_le_bytes());
        h[field::RESERVED..field::RESERVED + 2].fill(0);
        h[field::TOPIC_ID..field::TOPIC_ID + 4].copy_from_slice(&self.topic_id.to_le_bytes());
        h[field::SENDER_ID..field::SENDER_ID + 4].copy_from_slice(&self.sender_id.to_le_bytes());
        h[field::SEQ..field::SEQ + 8].copy_from_slice(&self.seq.to_le_bytes());
        h[field::TIMESTAMP_NS..field::TIMESTAMP_NS + 8].copy_from_slice(&self.timestamp_ns.unwrap_or(0).to_le_bytes());
    }
}

/// Bytes a record takes on the wire: its length prefix and its payload.
pub const fn record_len(payload_len: usize) -> usize {
    RECORD_LEN_PREFIX + payload_len
}

/// Writes one record (length prefix, then `payload`) at the start of `buf`
/// and returns the bytes written.
///
/// # Panics
/// If `payload` is longer than [`MAX_RECORD_LEN`] or `buf` is too short.
pub fn emit_record(buf: &mut [u8], payload: &[u8]) -> usize {
    let len = u16::try_from(payload.len()).expect("record longer than 65535 bytes");
    let end = record_len(payload.len());
    buf[..RECORD_LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
    buf[RECORD_LEN_PREFIX..end].copy_from_slice(payload);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_emit_then_parse_round_trips() {
        for timestamp_ns in [None, Some(0), Some(u64::MAX)] {
            let repr = TachyonRepr { msg_count: 3, topic_id: 0x0102_0304, sender_id: 9, seq: 1 << 40, timestamp_ns };
            let mut buf = [0xee; HEADER_LEN];
            repr.emit(&mut buf);
            let view = FrameHeader::parse(&buf).unwrap();
            assert!(view.magic_ok() && view.version() == VERSION && view.header_fields_ok());
            assert_eq!(TachyonRepr::parse(&view), repr);
        }
    }

    #[test]
    fn records_emit_then_walk_back() {
        let payloads: [&[u8]; 3] = [b"hello", b"", &[7; 300]];
        let mut buf = vec![0u8; HEADER_LEN + payloads.iter().map(|p| record_len(p.len())).sum::<usize>()];
        TachyonRepr { msg_count: 3, ..TachyonRepr::default() }.emit(&mut buf);
        let mut at = HEADER_LEN;
        for p in payloads {
            at += emit_record(&mut buf[at..], p);
        }
        let view = FrameHeader::parse(&buf).unwrap();
        assert_eq!(view.check_records(), RecordsCheck::Exact);
        assert_eq!(view.records().collect::<Vec<_>>(), payloads);
    }

    #[test]
    fn fast_path_word_is_the_bytes_it_stands_for() {
        assert_eq!(MAGIC_VERSION_WORD.to_le_bytes(), [b'T', b'Y', 1, 0]);
        assert_eq!(MAGIC_VERSION_FLAGS_MASK, 0xfeff_ffff);
    }
}
