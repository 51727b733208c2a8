//! glibc malloc settings for a long-running daemon whose requests can
//! carry large values (a 1 MiB pod annotation is copied into the store,
//! the containerd extension and the pause container's spec).
//!
//! By default glibc raises its mmap threshold to the size of the largest
//! mmapped block freed so far (up to 32 MiB), so after one large request
//! every later large buffer comes from the heap arenas, where freeing it
//! leaves the pages mapped. Fixing the threshold keeps buffers of 128 KiB
//! and more in their own mappings, returned to the kernel on free, and a
//! fixed trim threshold returns the top of the heap above 512 KiB.

/// Applies the settings; call before any thread starts. A no-op where
/// the allocator is not glibc's. The crate's one `unsafe` block: `mallopt`
/// has no safe binding, and no environment setting reaches a daemon that
/// others start.
#[allow(unsafe_code)]
pub fn release_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
        const TRIM_THRESHOLD: libc::c_int = 512 * 1024;
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
