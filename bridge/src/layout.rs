//! Region geometry: the [`Layout`] a creator asks for and the header every client checks.

use crate::error::{BridgeError, LayoutError};
use crate::ring::{BLOCK_HDR, HDR, MSG_HDR};

/// Magic bytes at offset 0 of every bridge file.
pub const MAGIC: [u8; 8] = *b"TYBRIDGE";
/// Version of the region layout and ring protocol this library implements.
pub const LAYOUT_VERSION: u32 = 1;
/// The header occupies the first page.
pub const HEADER_BYTES: u64 = 4096;
/// Size of the control block in front of each ingress ring's data.
pub const INGRESS_CTL_BYTES: u64 = 4096;
/// Size of one subscriber slot in the slot table.
pub const SLOT_BYTES: u64 = 512;
/// Size of the control block in front of each egress ring's data.
pub const EGRESS_CTL_BYTES: u64 = 256;
/// Most exact topic ids a subscription filter holds.
pub const MAX_FILTER_TOPICS: usize = 64;
/// Header of one egress record: total len, topic, sender, payload len.
pub(crate) const EGRESS_HDR: u64 = 16;

const PAGE: u64 = 4096;

const fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

/// Geometry of a bridge region, chosen by its creator (the appliance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Number of ingress rings (one per worker); a message goes to `topic % shards`.
    pub shards: u32,
    /// Bytes of each ingress ring's data (power of two, at least 64 KiB).
    pub ingress_ring_bytes: u32,
    /// Number of subscriber slots.
    pub subscriber_slots: u32,
    /// Bytes of each (slot, shard) egress ring's data (power of two, at least 4 KiB).
    pub subscriber_ring_bytes: u32,
    /// Largest message payload accepted (at most 65535, the wire limit).
    pub max_message_bytes: u32,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            shards: 1,
            ingress_ring_bytes: 1 << 20,
            subscriber_slots: 8,
            subscriber_ring_bytes: 1 << 20,
            max_message_bytes: 65535,
        }
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> LayoutError {
    LayoutError { field, reason: reason.into() }
}

impl Layout {
    /// Check every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if self.shards == 0 || self.shards > 1024 {
            return Err(bad("shards", format!("{} not in 1..=1024", self.shards)));
        }
        let r = self.ingress_ring_bytes;
        if !r.is_power_of_two() || !(64 * 1024..=1 << 30).contains(&r) {
            return Err(bad("ingress_ring_bytes", format!("{r} is not a power of two in 64 KiB..=1 GiB")));
        }
        if self.subscriber_slots > 4096 {
            return Err(bad("subscriber_slots", format!("{} > 4096", self.subscriber_slots)));
        }
        let s = self.subscriber_ring_bytes;
        if !s.is_power_of_two() || !(4096..=1 << 30).contains(&s) {
            return Err(bad("subscriber_ring_bytes", format!("{s} is not a power of two in 4 KiB..=1 GiB")));
        }
        let m = self.max_message_bytes;
        if m == 0 || m > 65535 {
            return Err(bad("max_message_bytes", format!("{m} not in 1..=65535")));
        }
        if HDR + BLOCK_HDR + MSG_HDR + u64::from(m) + 8 > u64::from(r) / 2 {
            return Err(bad("max_message_bytes", format!("{m} does not fit half an ingress ring ({r} bytes)")));
        }
        if EGRESS_HDR + u64::from(m) + 8 > u64::from(s) / 2 {
            return Err(bad("max_message_bytes", format!("{m} does not fit half a subscriber ring ({s} bytes)")));
        }
        Ok(())
    }

    /// Offsets and sizes of every area for this layout (the layout must be valid).
    pub fn geometry(&self) -> Geometry {
        let ingress_stride = INGRESS_CTL_BYTES + u64::from(self.ingress_ring_bytes);
        let ingress_offset = HEADER_BYTES;
        let slots_offset = ingress_offset + ingress_stride * u64::from(self.shards);
        let egress_offset = round_up(slots_offset + SLOT_BYTES * u64::from(self.subscriber_slots), PAGE);
        let egress_stride = EGRESS_CTL_BYTES + u64::from(self.subscriber_ring_bytes);
        let total_len =
            round_up(egress_offset + egress_stride * u64::from(self.subscriber_slots) * u64::from(self.shards), PAGE);
        Geometry {
            ingress_offset,
            ingress_stride,
            slots_offset,
            slot_stride: SLOT_BYTES,
            egress_offset,
            egress_stride,
            total_len,
        }
    }
}

/// Where the areas of a region are (all byte offsets from the start of the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Start of shard 0's ingress area (control block, then data).
    pub ingress_offset: u64,
    /// Bytes from one shard's ingress area to the next.
    pub ingress_stride: u64,
    /// Start of the subscriber slot table.
    pub slots_offset: u64,
    /// Bytes per slot.
    pub slot_stride: u64,
    /// Start of the egress rings, ordered (slot 0, shard 0), (slot 0, shard 1), ...
    pub egress_offset: u64,
    /// Bytes from one egress ring area to the next.
    pub egress_stride: u64,
    /// Length of the file.
    pub total_len: u64,
}

/// Header field offsets.
pub(crate) mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const HEADER_SIZE: usize = 12;
    pub const SHARDS: usize = 16;
    pub const INGRESS_RING: usize = 20;
    pub const SLOTS: usize = 24;
    pub const SUB_RING: usize = 28;
    pub const MAX_MSG: usize = 32;
    pub const PID: usize = 36;
    pub const NONCE: usize = 40;
    pub const INGRESS_OFF: usize = 48;
    pub const INGRESS_STRIDE: usize = 56;
    pub const SLOTS_OFF: usize = 64;
    pub const SLOT_STRIDE: usize = 72;
    pub const EGRESS_OFF: usize = 80;
    pub const EGRESS_STRIDE: usize = 88;
    pub const TOTAL_LEN: usize = 96;
    pub const END: usize = 104;
    /// Feature bits (u32), zero in regions written before they existed; not part of `END`
    /// (a header without them is still valid).
    pub const FEATURES: usize = 104;
}

/// Feature bit: the region's consumers understand parts split into HEAD + CONT blocks, so
/// clients may publish parts larger than half a ring.
pub(crate) const FEATURE_SPLIT_PARTS: u32 = 1;

/// Feature bits of a header page (0 when absent).
pub(crate) fn features(page: &[u8]) -> u32 {
    page.get(off::FEATURES..off::FEATURES + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()))
}

/// The decoded region header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Layout the region was created with.
    pub layout: Layout,
    /// Area offsets.
    pub geometry: Geometry,
    /// Pid of the creating appliance.
    pub creator_pid: u32,
    /// Random value chosen at creation (tells two incarnations apart).
    pub nonce: u64,
}

impl Header {
    /// Encode into the first [`HEADER_BYTES`] of a region.
    pub fn encode(&self, out: &mut [u8]) {
        let g = &self.geometry;
        let l = &self.layout;
        out[..HEADER_BYTES as usize].fill(0);
        out[off::MAGIC..off::MAGIC + 8].copy_from_slice(&MAGIC);
        let w32 = |o: &mut [u8], at: usize, v: u32| o[at..at + 4].copy_from_slice(&v.to_le_bytes());
        w32(out, off::VERSION, LAYOUT_VERSION);
        w32(out, off::HEADER_SIZE, HEADER_BYTES as u32);
        w32(out, off::SHARDS, l.shards);
        w32(out, off::INGRESS_RING, l.ingress_ring_bytes);
        w32(out, off::SLOTS, l.subscriber_slots);
        w32(out, off::SUB_RING, l.subscriber_ring_bytes);
        w32(out, off::MAX_MSG, l.max_message_bytes);
        w32(out, off::PID, self.creator_pid);
        let w64 = |o: &mut [u8], at: usize, v: u64| o[at..at + 8].copy_from_slice(&v.to_le_bytes());
        w64(out, off::NONCE, self.nonce);
        w64(out, off::INGRESS_OFF, g.ingress_offset);
        w64(out, off::INGRESS_STRIDE, g.ingress_stride);
        w64(out, off::SLOTS_OFF, g.slots_offset);
        w64(out, off::SLOT_STRIDE, g.slot_stride);
        w64(out, off::EGRESS_OFF, g.egress_offset);
        w64(out, off::EGRESS_STRIDE, g.egress_stride);
        w64(out, off::TOTAL_LEN, g.total_len);
        w32(out, off::FEATURES, FEATURE_SPLIT_PARTS);
    }

    /// Decode and fully check a header against the length of the file it came from:
    /// magic, version, header size, layout, and every offset and size.
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<Header, BridgeError> {
        if bytes.len() < off::END {
            return Err(BridgeError::BadHeader(format!("file is {} bytes, shorter than a header", bytes.len())));
        }
        if bytes[..8] != MAGIC {
            return Err(BridgeError::BadHeader(format!("magic {:02x?} is not {:?}", &bytes[..8], "TYBRIDGE")));
        }
        let r32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let r64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let version = r32(off::VERSION);
        if version != LAYOUT_VERSION {
            return Err(BridgeError::LayoutVersion { found: version, expected: LAYOUT_VERSION });
        }
        if u64::from(r32(off::HEADER_SIZE)) != HEADER_BYTES {
            return Err(BridgeError::BadHeader(format!("header size {} != {HEADER_BYTES}", r32(off::HEADER_SIZE))));
        }
        let layout = Layout {
            shards: r32(off::SHARDS),
            ingress_ring_bytes: r32(off::INGRESS_RING),
            subscriber_slots: r32(off::SLOTS),
            subscriber_ring_bytes: r32(off::SUB_RING),
            max_message_bytes: r32(off::MAX_MSG),
        };
        layout.validate().map_err(|e| BridgeError::BadHeader(e.to_string()))?;
        let geometry = Geometry {
            ingress_offset: r64(off::INGRESS_OFF),
            ingress_stride: r64(off::INGRESS_STRIDE),
            slots_offset: r64(off::SLOTS_OFF),
            slot_stride: r64(off::SLOT_STRIDE),
            egress_offset: r64(off::EGRESS_OFF),
            egress_stride: r64(off::EGRESS_STRIDE),
            total_len: r64(off::TOTAL_LEN),
        };
        // Offsets are a pure function of the layout in this version: anything else is corrupt.
        let expect = layout.geometry();
        if geometry != expect {
            return Err(BridgeError::BadHeader(format!(
                "area offsets {geometry:?} do not match the layout {expect:?}"
            )));
        }
        if geometry.total_len > file_len {
            return Err(BridgeError::BadHeader(format!(
                "file is {file_len} bytes but the layout needs {} (truncated?)",
                geometry.total_len
            )));
        }
        Ok(Header { layout, geometry, creator_pid: r32(off::PID), nonce: r64(off::NONCE) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Layout {
        Layout {
            shards: 2,
            ingress_ring_bytes: 1 << 16,
            subscriber_slots: 4,
            subscriber_ring_bytes: 1 << 14,
            max_message_bytes: 1024,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(ok().validate(), Ok(()));
        type Case = (fn(&mut Layout), &'static str);
        let cases: [Case; 7] = [
            (|l| l.shards = 0, "shards"),
            (|l| l.ingress_ring_bytes = 100_000, "ingress_ring_bytes"),
            (|l| l.ingress_ring_bytes = 1 << 15, "ingress_ring_bytes"),
            (|l| l.subscriber_ring_bytes = 5000, "subscriber_ring_bytes"),
            (|l| l.max_message_bytes = 0, "max_message_bytes"),
            (|l| l.max_message_bytes = 70_000, "max_message_bytes"),
            (|l| l.max_message_bytes = 9000, "max_message_bytes"),
        ];
        for (f, field) in cases {
            let mut l = ok();
            f(&mut l);
            let e = l.validate().unwrap_err();
            assert_eq!(e.field, field, "{l:?}: {e}");
            assert!(e.to_string().contains(field));
        }
    }

    #[test]
    fn geometry_is_aligned() {
        let g = ok().geometry();
        for o in [g.ingress_offset, g.ingress_stride, g.egress_offset] {
            assert_eq!(o % 4096, 0);
        }
        assert_eq!(g.slot_stride % 64, 0);
        assert_eq!(g.egress_stride % 64, 0);
        assert!(g.total_len >= g.egress_offset + g.egress_stride * 8);
    }

    #[test]
    fn header_round_trip_and_checks() {
        let l = ok();
        let h = Header { layout: l, geometry: l.geometry(), creator_pid: 42, nonce: 0xDEAD_BEEF };
        let mut page = vec![0u8; HEADER_BYTES as usize];
        h.encode(&mut page);
        assert_eq!(Header::decode(&page, h.geometry.total_len).unwrap(), h);
        // Truncated file.
        assert!(matches!(Header::decode(&page, h.geometry.total_len - 1), Err(BridgeError::BadHeader(_))));
        // Wrong version.
        let mut p = page.clone();
        p[off::VERSION] = 9;
        assert!(matches!(Header::decode(&p, u64::MAX), Err(BridgeError::LayoutVersion { found: 9, expected: 1 })));
        // Wrong magic.
        let mut p = page.clone();
        p[0] = b'X';
        assert!(matches!(Header::decode(&p, u64::MAX), Err(BridgeError::BadHeader(_))));
        // An offset pointing elsewhere.
        let mut p = page.clone();
        p[off::EGRESS_OFF + 6] = 1;
        assert!(matches!(Header::decode(&p, u64::MAX), Err(BridgeError::BadHeader(_))));
        // Insane layout field.
        let mut p = page;
        p[off::SHARDS..off::SHARDS + 4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(Header::decode(&p, u64::MAX), Err(BridgeError::BadHeader(_))));
    }
}
