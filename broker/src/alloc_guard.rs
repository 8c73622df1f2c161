//! Global allocator guard. kafka-protocol pre-allocates arrays by their declared element count, so a 20-byte
//! request declaring 2^31 elements asks for hundreds of GiB, and a failed malloc aborts the process. Allocations
//! of at least `HUGE` bytes are served by lazily backed `MAP_NORESERVE` mappings instead: only pages actually
//! written cost memory, and the decoder fails on the truncated input long before touching them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

use nix::libc;

pub struct GuardedAlloc;

const HUGE: usize = 1 << 30;
const PAGE: usize = 4096;

fn is_huge(size: usize, align: usize) -> bool {
    size >= HUGE && align <= PAGE
}

unsafe fn map(size: usize) -> *mut u8 {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let p = unsafe { libc::mmap(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every pointer handed out is either System's or a fresh page-aligned mapping of at least `size` bytes,
// and each is returned to the allocator that made it (decided by the same `is_huge` test on the layout).
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            unsafe { map(layout.size()) } // anonymous mappings are zero-filled
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if is_huge(layout.size(), layout.align()) {
            unsafe { libc::munmap(p.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old_huge, new_huge) = (is_huge(layout.size(), layout.align()), is_huge(new_size, layout.align()));
        if !old_huge && !new_huge {
            return unsafe { System.realloc(p, layout, new_size) };
        }
        if old_huge && new_huge {
            // Move the pages instead of copying (and thereby touching) the whole reservation.
            let q = unsafe { libc::mremap(p.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
            return if q == libc::MAP_FAILED { ptr::null_mut() } else { q.cast() };
        }
        // SAFETY: the caller guarantees new_size with layout's alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn huge_reservations_do_not_abort() {
        // 64 GiB: more than this machine has; only the written pages are backed.
        let mut v: Vec<u64> = Vec::with_capacity(8 << 30);
        v.extend([1, 2, 3]);
        v.reserve(16 << 30);
        assert_eq!(v, [1, 2, 3]);
        v.shrink_to_fit();
        assert_eq!(v, [1, 2, 3]);
        let mut small = vec![5u8; 10];
        small.reserve_exact(super::HUGE);
        small.push(7);
        small.shrink_to_fit();
        assert_eq!(small, [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 7]);
    }
}
