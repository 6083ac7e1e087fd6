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
pub struct HugeArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
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
        let bytes = len.checked_mul(std::mem::size_of::<T>())?.max(1);
        let mapped = bytes.checked_next_multiple_of(HUGE_PAGE)?;
        let ptr = map_anonymous(mapped)?;
        advise_huge(ptr, mapped);
        if let Some(node) = node {
            prefer_node(ptr, mapped, node);
        }
        let ptr = ptr.cast::<T>();
        for i in 0..len {
            // SAFETY: i < len and the mapping holds len * size_of::<T>()
            // bytes, page-aligned (so aligned for any T up to 4 KiB).
            // Writing here is the first touch, which places the pages.
            unsafe { ptr.as_ptr().add(i).write(fill) };
        }
        Some(HugeArray { ptr, len, mapped })
    }

    /// Starts loading element `index` into the caches without a bounds
    /// check: a prefetch of any address is harmless, and `wrapping_add`
    /// computes it without claiming it is in bounds.
    #[inline(always)]
    pub fn prefetch(&self, index: usize) {
        super::prefetch0(self.ptr.as_ptr().wrapping_add(index).cast::<u8>().cast_const());
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
    fn empty_and_absurd_sizes() {
        let empty = HugeArray::new(0, 0u8, None).unwrap();
        assert!(empty.is_empty());
        empty.prefetch(12345); // a hint, never a fault
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
