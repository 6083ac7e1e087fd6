//! The Tachyon frame: a 32-byte little-endian header and `msg_count`
//! length-prefixed records (PROTOCOL.md, version 1).

use super::{le16, le32, le64};

pub const HEADER_LEN: usize = 32;
pub const MAGIC: [u8; 2] = *b"TY";
pub const VERSION: u8 = 1;
pub const FLAG_TS_PRESENT: u8 = 0x01;
const RESERVED_FLAGS: u8 = !FLAG_TS_PRESENT;
pub const RECORD_LEN_PREFIX: usize = 2;

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
        self.buf[0..2] == MAGIC
    }

    pub fn version(&self) -> u8 {
        self.buf[2]
    }

    pub fn flags(&self) -> u8 {
        self.buf[3]
    }

    pub fn msg_count(&self) -> u16 {
        le16(self.buf, 4)
    }

    pub fn reserved(&self) -> u16 {
        le16(self.buf, 6)
    }

    pub fn topic_id(&self) -> u32 {
        le32(self.buf, 8)
    }

    pub fn sender_id(&self) -> u32 {
        le32(self.buf, 12)
    }

    pub fn seq(&self) -> u64 {
        le64(self.buf, 16)
    }

    pub fn timestamp_ns(&self) -> u64 {
        le64(self.buf, 24)
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
