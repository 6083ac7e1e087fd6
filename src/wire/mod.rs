//! The one owner of the wire layout (PROTOCOL.md): every constant and
//! field offset, zero-copy typed views to read headers, and `Repr` values
//! plus [`FrameWriter`] to write them into a caller's buffer. One file per
//! header. A view is made only after its length is checked, so its
//! accessors never go out of bounds; fields are read straight from the
//! buffer in wire byte order.

pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod tachyon;
pub mod udp;

pub use ethernet::{EthernetFrame, EthernetRepr, MacAddr};
pub use frame::{FrameHeaders, FrameWriter, Full, Layout};
pub use ipv4::{Ipv4Header, Ipv4Repr};
pub use tachyon::{FrameHeader, RecordsCheck, TachyonRepr};
pub use udp::{UdpHeader, UdpRepr};

/// Reads a big-endian u16 at `at` (network order: IP and UDP headers).
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a little-endian u16 at `at` (Tachyon fields are little-endian).
#[inline(always)]
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}
