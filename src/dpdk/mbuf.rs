//! Packet buffers: an owned [`Mbuf`], a received [`RxBurst`] and a per-queue
//! [`TxBuffer`]. Ownership is explicit: an mbuf is either in a burst, in a TX
//! buffer, or freed; dropping any of them returns the mbufs to their pool.

use super::sys;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Largest burst the fixed arrays hold (the configured burst is ≤ this).
pub const MAX_BURST: usize = 256;

/// Where an mbuf segment's data starts: `buf_addr + data_off`, inside its
/// buffer for any mbuf DPDK handed out. Only computes the address (the
/// callers' unsafe blocks read or write through it).
#[inline(always)]
fn data_start(m: &sys::rte_mbuf) -> *mut u8 {
    m.buf_addr.cast::<u8>().wrapping_add(usize::from(m.data_off))
}

/// One received packet, owned. Dropping it frees it back to its mempool.
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is the only handle to its buffer (no aliasing), and DPDK
// lets any thread free an mbuf back to its pool (threads without an lcore
// id bypass the per-lcore cache). Moving one to another thread is moving
// plain ownership, as a worker's stage does when it is launched.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// The packet bytes of the first segment (the whole packet unless
    /// [`nb_segs`](Self::nb_segs) > 1: a jumbo frame arrives as a chain).
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        // SAFETY: the mbuf is owned and valid; buf_addr + data_off points at
        // data_len initialised bytes inside its buffer.
        unsafe {
            let m = self.raw.as_ref();
            let start = data_start(m);
            std::slice::from_raw_parts(start, m.data_len as usize)
        }
    }

    /// The packet bytes of the first segment, writable (for the L2 rewrite).
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in data(); &mut self guarantees exclusive access, and a
        // received mbuf is not shared (refcnt 1, no indirect buffers from PMDs used here).
        unsafe {
            let m = self.raw.as_ref();
            let start = data_start(m);
            std::slice::from_raw_parts_mut(start, m.data_len as usize)
        }
    }

    /// Offload flags set by the PMD (e.g. IP checksum good/bad).
    #[inline(always)]
    pub fn ol_flags(&self) -> u64 {
        // SAFETY: the mbuf is valid; plain field read.
        unsafe { self.raw.as_ref().ol_flags }
    }

    /// Total packet length over all segments.
    #[inline(always)]
    pub fn pkt_len(&self) -> u32 {
        // SAFETY: the mbuf is valid; plain field read.
        unsafe { self.raw.as_ref().pkt_len }
    }

    /// Number of segments in the chain (1 for a packet that fits one mbuf).
    #[inline(always)]
    pub fn nb_segs(&self) -> u16 {
        // SAFETY: the mbuf is valid; plain field read.
        unsafe { self.raw.as_ref().nb_segs }
    }

    /// The data of every segment, in order.
    pub fn segments(&self) -> Segments<'_> {
        // SAFETY: the mbuf is owned and valid for the borrow of self.
        Segments { next: Some(unsafe { self.raw.as_ref() }) }
    }

    /// Appends `bytes` after the packet's data (a fresh mbuf is empty).
    /// Returns false, changing nothing, when the buffer has too little tailroom.
    #[inline(always)]
    pub fn append(&mut self, bytes: &[u8]) -> bool {
        let Ok(len) = u16::try_from(bytes.len()) else { return false };
        // SAFETY: the mbuf is owned; rte_pktmbuf_append only grows data_len and
        // pkt_len of the last segment when the tailroom allows, else returns NULL.
        let dst = unsafe { sys::tachyon_pktmbuf_append(self.raw.as_ptr(), len) };
        if dst.is_null() {
            return false;
        }
        // SAFETY: dst points at `len` bytes of this mbuf's buffer that were just
        // reserved for us; `bytes` cannot overlap a buffer we own exclusively.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len()) };
        true
    }

    /// A fresh, empty mbuf from `pool`; `None` when the pool is exhausted.
    #[inline(always)]
    pub fn alloc(pool: &super::Mempool) -> Option<Mbuf> {
        let mut raw: *mut sys::rte_mbuf = std::ptr::null_mut();
        // SAFETY: room for one pointer; on success DPDK stores one reset mbuf
        // we now own, on failure it stores nothing.
        let rc = unsafe { sys::tachyon_pktmbuf_alloc_bulk(pool.as_ptr(), &mut raw, 1) };
        if rc != 0 {
            return None;
        }
        NonNull::new(raw).map(|raw| Mbuf { raw })
    }

    /// The whole writable data room of a single-segment mbuf, from the start
    /// of its data to the end of its buffer: a frame is built here, then
    /// [`set_len`](Self::set_len) says how much of it is the packet.
    #[inline(always)]
    pub fn room_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mbuf is owned (&mut self); buf_addr + data_off up to
        // buf_len lies inside its buffer, which nobody else references.
        unsafe {
            let m = self.raw.as_ref();
            let start = data_start(m);
            std::slice::from_raw_parts_mut(start, (m.buf_len - m.data_off) as usize)
        }
    }

    /// Makes the first `len` bytes of [`room_mut`](Self::room_mut) the
    /// packet (one segment). `len` is clamped to the room.
    #[inline(always)]
    pub fn set_len(&mut self, len: usize) {
        // SAFETY: the mbuf is owned and single-segment; data_len and pkt_len
        // are plain fields, kept within the buffer by the clamp.
        unsafe {
            let m = self.raw.as_mut();
            let len = len.min((m.buf_len - m.data_off) as usize) as u16;
            m.data_len = len;
            m.pkt_len = len as u32;
        }
    }

    /// Gives up ownership without freeing (the caller hands it to DPDK).
    #[inline(always)]
    fn into_raw(self) -> *mut sys::rte_mbuf {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: the mbuf is owned by self and not referenced elsewhere.
        unsafe { sys::tachyon_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// A look at a packet still owned by an [`RxBurst`], handed out by
/// [`RxBurst::packets_mut`]: its fields readable, its bytes writable through
/// `&mut`. One pointer wide (the burst's own array, seen as a slice of
/// these), so a burst hands out all its packets at once.
#[repr(transparent)]
pub struct PacketRef<'a> {
    m: NonNull<sys::rte_mbuf>,
    _burst: PhantomData<&'a mut sys::rte_mbuf>,
}

impl PacketRef<'_> {
    #[inline(always)]
    fn mbuf(&self) -> &sys::rte_mbuf {
        // SAFETY: a PacketRef only exists inside a burst's slice, whose
        // borrow keeps the mbuf owned by the burst and alive.
        unsafe { self.m.as_ref() }
    }

    /// The bytes of the first segment.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let m = self.mbuf();
        // SAFETY: buf_addr + data_off points at data_len initialised bytes of
        // this mbuf, which the burst keeps alive for the borrow's lifetime.
        unsafe { std::slice::from_raw_parts(data_start(m), m.data_len as usize) }
    }

    /// The bytes of the first segment, to edit in place (the L2 rewrite).
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.mbuf();
        let (start, len) = (data_start(m), m.data_len as usize);
        // SAFETY: as in `data`; and `&mut self` can only come from
        // `RxBurst::packets_mut`, an exclusive borrow of the burst, which
        // has not handed this packet out: nothing else sees these bytes.
        unsafe { std::slice::from_raw_parts_mut(start, len) }
    }

    #[inline(always)]
    pub fn ol_flags(&self) -> u64 {
        self.mbuf().ol_flags
    }

    /// Starts loading the packet's first bytes into the cache.
    #[inline(always)]
    pub fn prefetch_data(&self) {
        super::prefetch0(data_start(self.mbuf()));
    }

    /// Total packet length over all segments.
    #[inline(always)]
    pub fn len(&self) -> u32 {
        self.mbuf().pkt_len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of segments in the chain (1 for a packet that fits one mbuf).
    #[inline(always)]
    pub fn nb_segs(&self) -> u16 {
        self.mbuf().nb_segs
    }

    /// The data of every segment, in order.
    pub fn segments(&self) -> Segments<'_> {
        Segments { next: Some(self.mbuf()) }
    }
}

/// The data of each segment of an mbuf chain, first to last.
pub struct Segments<'a> {
    next: Option<&'a sys::rte_mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let m = self.next?;
        // SAFETY: a segment's `next` is NULL or the following segment of the
        // same chain, which its head's owner keeps alive for 'a; buf_addr +
        // data_off points at data_len initialised bytes of that segment.
        unsafe {
            self.next = m.next.as_ref();
            let start = data_start(m);
            Some(std::slice::from_raw_parts(start, m.data_len as usize))
        }
    }
}

/// What the PMD said of the IPv4 header checksum: (verified good, found
/// bad). `RTE_MBUF_F_RX_IP_CKSUM_NONE` (both bits) means the header's
/// integrity was verified even though the checksum field is not right in
/// the data (DPDK's definition), so it counts as good, not as unknown.
#[inline(always)]
pub fn ip_checksum_flags(ol_flags: u64) -> (bool, bool) {
    // GOOD and NONE are the two values with the GOOD bit: one bit test.
    const _: () = assert!(sys::RTE_MBUF_F_RX_IP_CKSUM_NONE & sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD != 0);
    let good = ol_flags & sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD as u64 != 0;
    (good, ol_flags & sys::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64 == sys::RTE_MBUF_F_RX_IP_CKSUM_BAD as u64)
}

/// The packets of one `rte_eth_rx_burst` (or fresh mbufs from
/// [`RxBurst::alloc_from`]), handed out one at a time.
pub struct RxBurst {
    pkts: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
    next: usize,
}

impl Default for RxBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl RxBurst {
    pub fn new() -> Self {
        RxBurst { pkts: [std::ptr::null_mut(); MAX_BURST], len: 0, next: 0 }
    }

    /// Receives up to `max` packets from `queue`; returns how many arrived.
    /// Packets not yet taken from the previous burst are freed first.
    #[inline(always)]
    pub fn receive(&mut self, queue: &mut super::port::RxQueue, max: usize) -> usize {
        self.free_rest();
        let max = max.min(MAX_BURST) as u16;
        // SAFETY: RxQueue is the only handle to this (port, queue), so no other
        // thread polls it; pkts has room for max pointers.
        let n = unsafe { sys::tachyon_rx_burst(queue.port, queue.queue, self.pkts.as_mut_ptr(), max) };
        self.len = n as usize;
        self.next = 0;
        self.len
    }

    /// Refills the burst with `n` empty mbufs from `pool`, all or none (one
    /// `rte_pktmbuf_alloc_bulk`); returns how many it holds now.
    /// Packets not yet taken from the previous burst are freed first.
    #[inline(always)]
    pub fn alloc_from(&mut self, pool: &super::Mempool, n: usize) -> usize {
        self.free_rest();
        let n = n.min(MAX_BURST);
        // SAFETY: pkts has room for n pointers; on success DPDK fills all n with
        // reset mbufs we now own, on failure it hands out none.
        let rc = unsafe { sys::tachyon_pktmbuf_alloc_bulk(pool.as_ptr(), self.pkts.as_mut_ptr(), n as u32) };
        self.len = if rc == 0 { n } else { 0 };
        self.next = 0;
        self.len
    }

    /// Takes the next packet of the burst.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.next == self.len {
            return None;
        }
        let raw = self.pkts[self.next];
        self.next += 1;
        NonNull::new(raw).map(|raw| Mbuf { raw })
    }

    /// The packets not taken yet, to read and edit in place.
    #[inline(always)]
    pub fn packets_mut(&mut self) -> &mut [PacketRef<'_>] {
        let untaken = &mut self.pkts[self.next..self.len];
        // SAFETY: PacketRef is a transparent NonNull<rte_mbuf>, laid out as
        // the array's pointers; pkts[next..len] are valid, non-null mbufs
        // this burst owns (DPDK fills them) and has not handed out, and the
        // exclusive borrow of self keeps them alive and unshared.
        unsafe { std::slice::from_raw_parts_mut(untaken.as_mut_ptr().cast::<PacketRef<'_>>(), untaken.len()) }
    }

    /// Takes every packet not taken yet, in order. Those the iterator has
    /// not yielded when it is dropped are freed then.
    #[inline(always)]
    pub fn drain(&mut self) -> Drain<'_> {
        let start = self.next;
        self.next = self.len;
        Drain { untaken: self.pkts[start..self.len].iter() }
    }

    /// Sends every packet not taken yet on `tx`, in order, straight from
    /// the burst's array (after anything `tx` already queued): no copy into
    /// the buffer, no look at the packets. The caller has already given
    /// them their L2 header and says what their `pkt_len`s add up to (for
    /// the byte count). What the queue refuses is freed and counted.
    #[inline(always)]
    pub fn send_all(&mut self, tx: &mut TxBuffer, bytes: u64) -> TxOutcome {
        debug_assert_eq!(bytes, self.packets_mut().iter().map(|p| u64::from(p.len())).sum::<u64>());
        let mut out = tx.flush();
        let (start, n) = (self.next, self.len - self.next);
        self.next = self.len;
        if n == 0 {
            return out;
        }
        let pkts = self.pkts[start..].as_mut_ptr();
        // SAFETY: the TxBuffer's queue is this thread's only handle to it;
        // ownership of pkts[start..start + n] passes to the PMD for those it
        // takes (this burst no longer counts them as its own: next = len).
        let sent = unsafe { sys::tachyon_tx_burst(tx.queue.port, tx.queue.queue, pkts, n as u16) } as usize;
        out.merge(finish_send(&self.pkts[start..start + n], sent, bytes));
        out
    }

    fn free_rest(&mut self) {
        if self.next < self.len {
            // SAFETY: pkts[next..len] are owned, not yet handed out.
            unsafe {
                sys::tachyon_pktmbuf_free_bulk(self.pkts.as_mut_ptr().add(self.next), (self.len - self.next) as u32)
            };
        }
        self.len = 0;
        self.next = 0;
    }
}

/// The packets of a burst, handed out as owned [`Mbuf`]s (see [`RxBurst::drain`]).
pub struct Drain<'a> {
    untaken: std::slice::Iter<'a, *mut sys::rte_mbuf>,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline(always)]
    fn next(&mut self) -> Option<Mbuf> {
        // A received pointer is never null; `NonNull::new` only keeps the
        // type honest (one predictable branch).
        self.untaken.next().and_then(|&raw| NonNull::new(raw)).map(|raw| Mbuf { raw })
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let rest = self.untaken.as_slice();
        if !rest.is_empty() {
            // SAFETY: the burst gave these up to the drain, which never
            // yielded them: they are owned here and freed once.
            unsafe { sys::tachyon_pktmbuf_free_bulk(rest.as_ptr().cast_mut(), rest.len() as u32) };
        }
    }
}

impl Drop for RxBurst {
    fn drop(&mut self) {
        self.free_rest();
    }
}

/// Result of flushing a [`TxBuffer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    pub sent: u32,
    /// Packets the queue refused; they were freed.
    pub refused: u32,
    pub bytes_sent: u64,
}

impl TxOutcome {
    fn merge(&mut self, other: TxOutcome) {
        self.sent += other.sent;
        self.refused += other.refused;
        self.bytes_sent += other.bytes_sent;
    }
}

/// Packets waiting for one `rte_eth_tx_burst` on one TX queue.
pub struct TxBuffer {
    queue: super::port::TxQueue,
    pkts: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
    /// Bytes of the packets queued: one add per push. When the queue
    /// refuses some, their lengths are read back from the mbufs we still
    /// own, so the common case keeps no per-packet lengths.
    bytes: u64,
}

impl TxBuffer {
    pub fn new(queue: super::port::TxQueue) -> Self {
        TxBuffer { queue, pkts: [std::ptr::null_mut(); MAX_BURST], len: 0, bytes: 0 }
    }

    /// The port this buffer sends on.
    pub fn port(&self) -> u16 {
        self.queue.port
    }

    /// Queues a packet. Returns the outcome of a flush when the buffer was full.
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Option<TxOutcome> {
        let flushed = if self.len == MAX_BURST { Some(self.flush()) } else { None };
        self.bytes += u64::from(m.pkt_len());
        self.pkts[self.len] = m.into_raw();
        self.len += 1;
        flushed
    }

    /// Number of packets waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sends what is queued; what the queue refuses is freed and counted.
    #[inline(always)]
    pub fn flush(&mut self) -> TxOutcome {
        if self.len == 0 {
            return TxOutcome::default();
        }
        // SAFETY: TxQueue is the only handle to this (port, queue); pkts[..len]
        // are owned mbufs whose ownership passes to the PMD for those it takes.
        let sent = unsafe {
            sys::tachyon_tx_burst(self.queue.port, self.queue.queue, self.pkts.as_mut_ptr(), self.len as u16)
        } as usize;
        let out = finish_send(&self.pkts[..self.len], sent, self.bytes);
        self.len = 0;
        self.bytes = 0;
        out
    }
}

/// After `tx_burst` took the first `sent` of `pkts` (of `bytes` in all):
/// frees the rest, which the queue refused, and counts both.
#[inline(always)]
fn finish_send(pkts: &[*mut sys::rte_mbuf], sent: usize, bytes: u64) -> TxOutcome {
    let refused = &pkts[sent..];
    let mut bytes_sent = bytes;
    if !refused.is_empty() {
        for &raw in refused {
            // SAFETY: the PMD did not take these: they are still ours.
            bytes_sent -= u64::from(unsafe { (*raw).pkt_len });
        }
        // SAFETY: as above; the caller forgets them after this (freed once).
        unsafe { sys::tachyon_pktmbuf_free_bulk(refused.as_ptr().cast_mut(), refused.len() as u32) };
    }
    TxOutcome { sent: sent as u32, refused: refused.len() as u32, bytes_sent }
}

impl Drop for TxBuffer {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: pkts[..len] are owned mbufs that were never sent.
            unsafe { sys::tachyon_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
            self.len = 0;
            self.bytes = 0;
        }
    }
}

/// Dropped packets collected during a burst and freed together with one
/// `rte_pktmbuf_free_bulk` (cheaper than one free per packet).
pub struct FreeBatch {
    pkts: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
}

impl Default for FreeBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl FreeBatch {
    pub fn new() -> Self {
        FreeBatch { pkts: [std::ptr::null_mut(); MAX_BURST], len: 0 }
    }

    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) {
        if self.len == MAX_BURST {
            self.flush();
        }
        self.pkts[self.len] = m.into_raw();
        self.len += 1;
    }

    /// Frees everything collected so far.
    #[inline(always)]
    pub fn flush(&mut self) {
        if self.len > 0 {
            // SAFETY: pkts[..len] are owned mbufs nobody else references.
            unsafe { sys::tachyon_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }
}

impl Drop for FreeBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_checksum_flags_follow_dpdk_definitions() {
        let flag = |f: u32| u64::from(f) | 1 << 40; // unrelated bits are ignored
        assert_eq!(ip_checksum_flags(flag(sys::RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN)), (false, false));
        assert_eq!(ip_checksum_flags(flag(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD)), (true, false));
        assert_eq!(ip_checksum_flags(flag(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD)), (false, true));
        assert_eq!(ip_checksum_flags(flag(sys::RTE_MBUF_F_RX_IP_CKSUM_NONE)), (true, false));
    }
}
