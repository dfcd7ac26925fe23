//! SQLite's own page cache, with a commit's truncation skipped when it provably drops nothing.
//!
//! Why: when a B-tree page splits, SQLite puts the new pages in ascending order by swapping their
//! numbers through a temporary one, the page just past the lock-byte page at 1 GiB
//! (`balance_nonroot`'s `pgnoTemp`). Its page cache (pcache1) then remembers that number as the
//! highest it ever held, and at the commit (`pager_end_transaction`) truncates itself to the
//! database's size: with the highest number far beyond the size, `pcache1TruncateUnsafe` walks
//! every bucket of its hash table (16,384 for the writer's 64 MiB) to drop pages that are not
//! there. On any database under 1 GiB that was 12–18% of the engine thread's time
//! (docs/performance.md, "SQLite's page cache").
//!
//! The wrapper installs itself as SQLite's page cache (`SQLITE_CONFIG_PCACHE2`) and forwards every
//! call to the cache SQLite would have used. It adds one thing: an upper bound on the page numbers
//! each cache can hold (Q1), so that a truncation with nothing at or past its limit is not
//! forwarded. Every other truncation is, so the cache's contents are always what SQLite's alone
//! would hold.
//!
//! **Q1.** Every page in a cache has a number `<= highest` or listed in `beyond`. Pages enter a
//! cache only through `xFetch` (which raises `highest` to the page's number) and `xRekey` (a new
//! number above `highest` is listed in `beyond`, and the old one is taken off the list); a
//! forwarded truncation to `limit` drops everything at or past it, after which `highest` may be
//! lowered to `limit - 1`. Pages that leave otherwise (evicted, discarded) only make the bound
//! looser, never wrong.

use rusqlite::ffi;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// New numbers above `highest` kept one by one; past this many, `highest` is raised instead.
const BEYOND_SLOTS: usize = 8;

/// SQLite's own page cache, which every call is forwarded to.
struct Inner(ffi::sqlite3_pcache_methods2);

// SAFETY: the methods are plain function pointers and SQLite's `pArg`, which SQLite itself hands
// to whichever thread initializes the library; nothing here is mutated after it is set.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

static INNER: OnceLock<Inner> = OnceLock::new();

/// Truncations forwarded and skipped since the process started (for tests and measurements).
static FORWARDED: AtomicU64 = AtomicU64::new(0);
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// One cache (one connection's pager): SQLite's cache, and the bound of Q1.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    highest: c_uint,
    beyond: Vec<c_uint>,
}

/// Whether the wrapper is SQLite's page cache in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Yes,
    /// SQLite was already in use (a connection was opened before the first Keel store): its own
    /// cache stays, which is correct, only slower.
    TooLate,
}

/// Installs the wrapper, once per process, before SQLite is first used (SQLite accepts a page
/// cache only then); later calls answer what the first did.
pub fn install() -> Installed {
    static RESULT: OnceLock<Installed> = OnceLock::new();
    *RESULT.get_or_init(|| {
        let mut default = std::mem::MaybeUninit::<ffi::sqlite3_pcache_methods2>::zeroed();
        // SAFETY: SQLITE_CONFIG_GETPCACHE2 writes one `sqlite3_pcache_methods2` through the pointer;
        // both calls fail with SQLITE_MISUSE, changing nothing, once the library is initialized.
        unsafe {
            if ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, default.as_mut_ptr()) != ffi::SQLITE_OK {
                return Installed::TooLate;
            }
            let default = default.assume_init();
            if INNER.set(Inner(default)).is_err() || default.xCreate.is_none() {
                return Installed::TooLate;
            }
            let ours = methods();
            if ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &ours as *const ffi::sqlite3_pcache_methods2)
                != ffi::SQLITE_OK
            {
                return Installed::TooLate;
            }
        }
        Installed::Yes
    })
}

/// Truncations forwarded to SQLite's cache and skipped, since the process started.
pub fn truncations() -> (u64, u64) {
    (FORWARDED.load(Ordering::Relaxed), SKIPPED.load(Ordering::Relaxed))
}

fn methods() -> ffi::sqlite3_pcache_methods2 {
    ffi::sqlite3_pcache_methods2 {
        iVersion: 1,
        pArg: std::ptr::null_mut(),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        xCreate: Some(create),
        xCachesize: Some(cachesize),
        xPagecount: Some(pagecount),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: Some(shrink),
    }
}

fn inner() -> &'static ffi::sqlite3_pcache_methods2 {
    &INNER.get().expect("the wrapper is installed only after SQLite's cache was kept").0
}

/// SQLite's method `$name` of its own cache (present: SQLite's default cache has all of them).
macro_rules! call {
    ($name:ident ( $($arg:expr),* )) => {
        (inner().$name.expect(concat!("SQLite's page cache has ", stringify!($name))))($($arg),*)
    };
}

/// # Safety
/// Called by SQLite, with `p` a pointer `create` returned and not yet destroyed.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: `p` came from `Box::into_raw` in `create`; SQLite uses a cache from one thread at
    // a time (one connection's pager).
    unsafe { &mut *(p as *mut Cache) }
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    // SAFETY: forwarded as SQLite called it, with SQLite's own argument.
    unsafe { call!(xInit(inner().pArg)) }
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    // SAFETY: as `init`.
    unsafe { call!(xShutdown(inner().pArg)) }
}

unsafe extern "C" fn create(page_size: c_int, extra: c_int, purgeable: c_int) -> *mut ffi::sqlite3_pcache {
    // SAFETY: forwarded as SQLite called it.
    let inner = unsafe { call!(xCreate(page_size, extra, purgeable)) };
    if inner.is_null() {
        return inner;
    }
    let cache = Box::new(Cache { inner, highest: 0, beyond: Vec::new() });
    Box::into_raw(cache) as *mut ffi::sqlite3_pcache
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, pages: c_int) {
    // SAFETY: `p` is one of ours (SQLite's contract); its inner cache is SQLite's.
    unsafe { call!(xCachesize(cache(p).inner, pages)) }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    // SAFETY: as `cachesize`.
    unsafe { call!(xPagecount(cache(p).inner)) }
}

unsafe extern "C" fn fetch(p: *mut ffi::sqlite3_pcache, key: c_uint, create: c_int) -> *mut ffi::sqlite3_pcache_page {
    // SAFETY: as `cachesize`.
    let cache = unsafe { cache(p) };
    let page = unsafe { call!(xFetch(cache.inner, key, create)) };
    if !page.is_null() {
        cache.highest = cache.highest.max(key);
    }
    page
}

unsafe extern "C" fn unpin(p: *mut ffi::sqlite3_pcache, page: *mut ffi::sqlite3_pcache_page, discard: c_int) {
    // SAFETY: as `cachesize`; `page` is SQLite's, passed back as it gave it.
    unsafe { call!(xUnpin(cache(p).inner, page, discard)) }
}

unsafe extern "C" fn rekey(p: *mut ffi::sqlite3_pcache, page: *mut ffi::sqlite3_pcache_page, old: c_uint, new: c_uint) {
    // SAFETY: as `unpin`.
    let cache = unsafe { cache(p) };
    cache.renumbered(old, new);
    unsafe { call!(xRekey(cache.inner, page, old, new)) }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    // SAFETY: as `cachesize`.
    let cache = unsafe { cache(p) };
    if cache.holds_nothing_from(limit) {
        SKIPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    FORWARDED.fetch_add(1, Ordering::Relaxed);
    unsafe { call!(xTruncate(cache.inner, limit)) };
    cache.truncated(limit);
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: `p` came from `Box::into_raw` in `create`, and SQLite destroys a cache once.
    let cache = unsafe { Box::from_raw(p as *mut Cache) };
    unsafe { call!(xDestroy(cache.inner)) }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: as `cachesize`.
    unsafe { call!(xShrink(cache(p).inner)) }
}

impl Cache {
    /// A page moved from `old` to `new` (Q1).
    fn renumbered(&mut self, old: c_uint, new: c_uint) {
        if let Some(at) = self.beyond.iter().position(|&k| k == old) {
            self.beyond.swap_remove(at);
        }
        if new > self.highest {
            if self.beyond.len() < BEYOND_SLOTS {
                self.beyond.push(new);
            } else {
                self.highest = new;
            }
        }
    }

    /// By Q1, whether no page numbered `limit` or more can be in the cache.
    fn holds_nothing_from(&self, limit: c_uint) -> bool {
        self.highest < limit && self.beyond.iter().all(|&k| k < limit)
    }

    /// Everything at or past `limit` was dropped.
    fn truncated(&mut self, limit: c_uint) {
        self.highest = self.highest.min(limit.saturating_sub(1));
        self.beyond.retain(|&k| k < limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Cache {
        Cache { inner: std::ptr::null_mut(), highest: 0, beyond: Vec::new() }
    }

    #[test]
    fn a_swap_through_a_temporary_number_leaves_nothing_beyond_the_pages_held() {
        let mut c = cache();
        c.highest = 900;
        // balance_nonroot's three renumberings: A to the temporary number, B to A, A to B.
        c.renumbered(700, 262_145);
        assert!(!c.holds_nothing_from(901), "the temporary number is past the limit");
        c.renumbered(500, 700);
        c.renumbered(262_145, 500);
        assert!(c.holds_nothing_from(901));
        assert!(!c.holds_nothing_from(900), "page 900 may be held");
    }

    #[test]
    fn a_truncation_lowers_the_bound_and_many_new_numbers_raise_it() {
        let mut c = cache();
        c.highest = 1_000;
        c.truncated(401);
        assert!(c.holds_nothing_from(401));
        for n in 0..=BEYOND_SLOTS as c_uint {
            c.renumbered(10 + n, 5_000 + n);
        }
        assert!(!c.holds_nothing_from(5_000 + BEYOND_SLOTS as c_uint), "the ninth raised the bound");
        c.truncated(300);
        assert!(c.holds_nothing_from(300) && c.beyond.is_empty());
    }
}
