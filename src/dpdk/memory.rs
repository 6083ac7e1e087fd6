//! Large per-worker tables on 2 MiB pages, on the worker's NUMA node.
//!
//! A governance table is tens of MiB probed at random: on 4 KiB pages
//! nearly every probe of a cold id also misses the TLB, and the page walk
//! is a second cache miss on top of the bucket's own. Backing the table
//! with 2 MiB pages takes the TLB out of the picture.
//!
//! Why not `rte_malloc_socket`: DPDK's heap is carved from the hugepages
//! reserved for the process and shared with the mempools; tables sized
//! for millions of ids would have to be part of that reservation, and
//! under `--no-huge` (how the tests and the virtual-device benchmarks
//! run) the heap is plain 4 KiB pages anyway. An anonymous mapping with
//! `MADV_HUGEPAGE` gets transparent huge pages in either case, and an
//! `MPOL_PREFERRED` policy puts them on the worker's node without failing
//! when that node is short of memory.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Huge page size the mapping is aligned to.
const HUGE_PAGE: usize = 2 << 20;

/// A fixed-length array of plain-data `T` in its own anonymous mapping,
/// advised onto huge pages and preferably on one NUMA node.
///
/// Besides slice access it offers [`HugeArray::masked`]: indexing by
/// `i & mask` for a mask fixed once, without a bounds check, for hash
/// tables whose probes wrap around a power-of-two prefix of the array.
pub struct HugeArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// Always below the number of initialised elements (at least one is,
    /// even when `len` is 0), so `i & mask` is always in bounds.
    mask: usize,
    /// Bytes mapped (a whole number of huge pages).
    mapped: usize,
}

// SAFETY: HugeArray owns its mapping exclusively, like a Vec<T>.
unsafe impl<T: Copy + Send> Send for HugeArray<T> {}
// SAFETY: shared access only hands out &[T], like a Vec<T>.
unsafe impl<T: Copy + Sync> Sync for HugeArray<T> {}

impl<T: Copy> HugeArray<T> {
    /// `len` copies of `fill`, on `node` if given (and if the kernel has
    /// memory there). None when the mapping fails (out of memory); the
    /// caller decides whether that is an error.
    pub fn new(len: usize, fill: T, node: Option<u32>) -> Option<Self> {
        // One element at least, so that mask 0 always names an element.
        let filled = len.max(1);
        let bytes = filled.checked_mul(std::mem::size_of::<T>())?.max(1);
        let mapped = bytes.checked_next_multiple_of(HUGE_PAGE)?;
        let ptr = map_anonymous(mapped)?;
        advise_huge(ptr, mapped);
        if let Some(node) = node {
            prefer_node(ptr, mapped, node);
        }
        let ptr = ptr.cast::<T>();
        for i in 0..filled {
            // SAFETY: i < filled and the mapping holds filled * size_of::<T>()
            // bytes, page-aligned (so aligned for any T up to 4 KiB).
            // Writing here is the first touch, which places the pages.
            unsafe { ptr.as_ptr().add(i).write(fill) };
        }
        Some(HugeArray { ptr, len, mask: 0, mapped })
    }

    /// Fixes the mask of [`HugeArray::masked`]. Panics unless `mask < len`
    /// (a programming error: the caller sizes the array for its mask).
    pub fn set_mask(&mut self, mask: usize) {
        assert!(mask < self.len, "mask {mask} beyond an array of {}", self.len);
        self.mask = mask;
    }

    /// The mask set by [`HugeArray::set_mask`] (0 until then).
    #[inline(always)]
    pub fn mask(&self) -> usize {
        self.mask
    }

    /// Element `index & mask`, without a bounds check.
    #[inline(always)]
    pub fn masked(&self, index: usize) -> &T {
        // SAFETY: index & mask <= mask, which is below the number of
        // initialised elements (set_mask checks it; 0 is always valid).
        unsafe { &*self.ptr.as_ptr().add(index & self.mask) }
    }

    /// Element `index & mask`, mutably, without a bounds check.
    #[inline(always)]
    pub fn masked_mut(&mut self, index: usize) -> &mut T {
        // SAFETY: in bounds as in `masked`; &mut self makes it exclusive.
        unsafe { &mut *self.ptr.as_ptr().add(index & self.mask) }
    }

    /// Whether the mapping starts on a huge page boundary (the kernel may
    /// still back it with small pages if it has no huge page free).
    pub fn bytes_mapped(&self) -> usize {
        self.mapped
    }
}

impl<T: Copy> Deref for HugeArray<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr points to len initialised Ts that live as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeArray<T> {
    fn drop(&mut self) {
        // SAFETY: the range is exactly the mapping made in `new`, and no
        // reference into it outlives self. T is Copy, so nothing to drop.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArray").field("len", &self.len).field("mapped", &self.mapped).finish()
    }
}

/// A private anonymous mapping of `bytes`, aligned to a huge page: maps
/// one huge page more and trims the ends, so THP can back every page.
fn map_anonymous(bytes: usize) -> Option<NonNull<u8>> {
    let padded = bytes.checked_add(HUGE_PAGE)?;
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            padded,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let head = aligned - start;
    let tail = padded - head - bytes;
    // SAFETY: both ranges lie inside the mapping just made and nothing
    // refers to them; unmapping the slack keeps [aligned, aligned+bytes).
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + bytes) as *mut libc::c_void, tail);
        }
    }
    NonNull::new(aligned as *mut u8)
}

/// Asks for transparent huge pages (a hint: failure leaves small pages).
fn advise_huge(ptr: NonNull<u8>, bytes: usize) {
    // SAFETY: madvise on a range this module mapped; MADV_HUGEPAGE changes
    // only how the kernel backs it, never its contents.
    unsafe { libc::madvise(ptr.as_ptr().cast(), bytes, libc::MADV_HUGEPAGE) };
}

/// Prefers `node` for the pages of the range (a hint: a node without free
/// memory, or a kernel without NUMA, falls back to any node).
fn prefer_node(ptr: NonNull<u8>, bytes: usize, node: u32) {
    const MAX_NODES: u32 = 1024;
    if node >= MAX_NODES {
        return;
    }
    let mut mask = [0u64; (MAX_NODES / 64) as usize];
    mask[(node / 64) as usize] = 1 << (node % 64);
    // SAFETY: mbind reads `mask` (MAX_NODES bits) and sets the policy of a
    // range this module mapped; it never changes the range's contents.
    unsafe {
        libc::syscall(
            libc::SYS_mbind,
            ptr.as_ptr(),
            bytes,
            libc::MPOL_PREFERRED,
            mask.as_ptr(),
            u64::from(MAX_NODES),
            0u32,
        )
    };
}

/// Starts loading the cache line holding `value` into every cache level,
/// without waiting for it (DPDK's `rte_prefetch0`).
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint that never faults and changes no memory;
    // the address comes from a reference, so it is even valid.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_len_copies_and_is_huge_page_aligned() {
        let mut a = HugeArray::new(100_000, 7u64, Some(0)).unwrap();
        assert_eq!(a.len(), 100_000);
        assert!(a.iter().all(|&v| v == 7));
        assert_eq!(a.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(a.bytes_mapped() % HUGE_PAGE, 0);
        a[99_999] = 9;
        assert_eq!(a[99_999], 9);
    }

    #[test]
    fn masked_access_wraps_within_the_mask() {
        let mut a = HugeArray::new(20, 0u32, None).unwrap();
        a.set_mask(15);
        for i in 0..20 {
            a[i] = i as u32;
        }
        assert_eq!(*a.masked(3), 3);
        assert_eq!(*a.masked(16 + 5), 5, "index 21 wraps to 5");
        *a.masked_mut(usize::MAX) = 99;
        assert_eq!(a[15], 99);
        assert_eq!(a[19], 19, "elements beyond the mask are not reached");
    }

    #[test]
    #[should_panic(expected = "beyond an array")]
    fn a_mask_beyond_the_array_is_refused() {
        HugeArray::new(16, 0u8, None).unwrap().set_mask(16);
    }

    #[test]
    fn empty_and_absurd_sizes() {
        let empty = HugeArray::new(0, 0u8, None).unwrap();
        assert!(empty.is_empty());
        assert_eq!(*empty.masked(12345), 0, "mask 0 names the one element kept");
        assert!(HugeArray::new(usize::MAX / 2, 0u64, None).is_none(), "size overflow is None, not a panic");
    }

    #[test]
    fn backed_by_huge_pages_where_the_kernel_offers_them() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if !(thp.contains("[always]") || thp.contains("[madvise]")) {
            return; // THP off on this machine: nothing to check.
        }
        let a = HugeArray::new(8 << 20, 1u8, None).unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let header = format!("{:x}-", a.as_ptr() as usize);
        // The mapping's header line, then its "Key: value" lines up to
        // the next header (whose first word is an address range).
        let huge_kb: u64 = smaps
            .lines()
            .skip_while(|l| !l.starts_with(&header))
            .skip(1)
            .take_while(|l| l.split_whitespace().next().is_some_and(|w| w.ends_with(':')))
            .find_map(|l| l.strip_prefix("AnonHugePages:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("mapping found in smaps");
        assert!(huge_kb >= 2048, "no huge page backs an 8 MiB table ({huge_kb} kB)");
    }
}
