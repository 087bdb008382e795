//! The process's memory allocators: mimalloc for Rust, glibc's malloc for librdkafka (C), both told to keep
//! freed memory mapped.
//!
//! Why: a snapshot frees and reallocates the same few megabytes (Desk pages, Avro buffers, librdkafka's
//! message copies and batches) thousands of times a second. Left to their defaults, mimalloc handed freed
//! pages back to the kernel after a second and glibc trimmed its heaps and mapped large batches afresh, so
//! the next use took a page fault and a zeroed page each time: 7 % of the snapshot's CPU went to page faults.
//! Keeping the memory cost 20-30 MiB more peak RSS and saved about a tenth of the snapshot's CPU per record
//! (200,000 tickets, nineteen runs with and without taken in turn: 24.7 against 22.2 µs on average).
//! An operator's `MIMALLOC_PURGE_DELAY`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES`
//! wins.
// The only unsafe code of the crate: two C calls that change allocator settings, made once at start-up.
#![allow(unsafe_code)]

/// mimalloc: every record is parsed into many small JSON values and freed again; with glibc's allocator
/// that churn cost about a third of the JSON parse (measured in `make bench`). Built without transparent huge
/// pages (`no_thp`): zeroing each fresh 2 MiB page cost 3 % of a snapshot's CPU and raised peak RSS by a third.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, which `libmimalloc-sys` does not name).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// glibc's `M_MMAP_THRESHOLD` at its 64-bit maximum: librdkafka's batches come from the heap, not fresh
/// mappings (setting it also stops glibc from moving the threshold itself).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// glibc's `M_TRIM_THRESHOLD`: free heap above this much is given back.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Applies the settings; called first thing in `main`, before any thread starts.
pub fn keep_freed_memory() {
    let set = |name: &str| std::env::var_os(name).is_some();
    if !set("MIMALLOC_PURGE_DELAY") {
        // SAFETY: sets one of mimalloc's option slots (an integer; -1 = never purge). No pointers involved.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !set("GLIBC_TUNABLES") {
        // SAFETY: mallopt takes its own lock and only changes glibc's thresholds; it returns 0 on a value it
        // refuses, which leaves the default in place.
        unsafe {
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
            if !set("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_slot_is_mimallocs() {
        // SAFETY: reads an option slot.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc v3's default purge delay (ms), unless the environment set one.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(before, 1000);
        }
        keep_freed_memory();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(after, -1);
        }
    }
}
