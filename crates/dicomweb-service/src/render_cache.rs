//! Bounded in-memory caches of what is costly to make again: rendered images and thumbnails, so that a study
//! browser asking again for the thumbnails it showed a minute ago (or a second viewer asking for the same ones)
//! costs no read of the file and no decode; and transcoded frames (a JPEG lossless slice decoded for a viewer
//! that scrolls back to it). Each has its own budget, so frames streaming through cannot empty the thumbnails.
//!
//! Invariant: an entry is keyed by the blob key of the stored file it was drawn from (which names the version of
//! the instance: a re-store is a new blob key), the frame and every rendering option, and it is looked up only
//! after the catalogue has answered which stored file the request is about. So a deleted instance is never drawn
//! from the cache (the lookup before it answers 404), nor is an older version of a replaced one; their entries
//! are never read again and age out of the least recently used end.

use std::sync::Mutex;

use lru::LruCache;

use bytes::Bytes;

use crate::render::RenderedImage;

/// What an entry weighs against the budget.
pub(crate) trait Weighed: Clone {
    fn weight(&self) -> usize;
}

impl Weighed for RenderedImage {
    fn weight(&self) -> usize {
        self.bytes.len()
    }
}

impl Weighed for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// Rendered images and thumbnails.
pub(crate) type RenderedCache = BoundedCache<RenderedImage>;
/// Frames transcoded for a frame retrieve.
pub(crate) type FrameCache = BoundedCache<Bytes>;

/// Images larger than this share of the capacity are not kept: one large rendering must not empty the cache of
/// the thumbnails it exists for.
const LARGEST_SHARE: usize = 16;

pub(crate) struct BoundedCache<V> {
    capacity_bytes: usize,
    inner: Mutex<Entries<V>>,
}

struct Entries<V> {
    images: LruCache<String, V>,
    bytes: usize,
}

impl<V: Weighed> BoundedCache<V> {
    /// A cache holding at most `capacity_bytes` of encoded images (0: nothing is cached).
    pub(crate) fn new(capacity_bytes: usize) -> Self {
        BoundedCache {
            capacity_bytes,
            // Unbounded by count: bounded by bytes, below.
            inner: Mutex::new(Entries {
                images: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// The key of a rendering of `frame` of the stored file `blob_key` with `options` (their `Debug` form,
    /// which names every field).
    pub(crate) fn key(blob_key: &str, frame: u32, options: &impl std::fmt::Debug) -> String {
        format!("{blob_key}\n{frame}\n{options:?}")
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        entries.images.get(key).cloned()
    }

    pub(crate) fn insert(&self, key: String, image: V) {
        let size = image.weight() + key.len();
        if size > self.capacity_bytes / LARGEST_SHARE {
            return;
        }
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = entries.images.put(key.clone(), image) {
            entries.bytes -= old.weight() + key.len();
        }
        entries.bytes += size;
        while entries.bytes > self.capacity_bytes {
            match entries.images.pop_lru() {
                Some((k, v)) => entries.bytes -= v.weight() + k.len(),
                None => break,
            }
        }
    }

    /// Entries and bytes held (for tests).
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (entries.images.len(), entries.bytes)
    }
}

impl<V> std::fmt::Debug for BoundedCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedCache")
            .field("capacity_bytes", &self.capacity_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize) -> RenderedImage {
        RenderedImage {
            media_type: "image/jpeg",
            bytes: Bytes::from(vec![7u8; len]),
        }
    }

    #[test]
    fn the_least_recently_used_images_leave_first_and_the_bytes_stay_within_capacity() {
        let cache = RenderedCache::new(16 * 1000);
        for n in 0..40 {
            cache.insert(format!("k{n}"), image(900));
            // Keep k0 in use: it must survive every eviction.
            assert!(cache.get("k0").is_some(), "k0 evicted after {n}");
        }
        let (count, bytes) = cache.held();
        assert!(bytes <= 16 * 1000, "{bytes} bytes held");
        assert!(count >= 15, "only {count} images held");
        assert!(
            cache.get("k1").is_none(),
            "k1 should have been evicted first"
        );
        assert!(cache.get("k39").is_some());
    }

    #[test]
    fn an_image_too_large_for_its_share_is_not_kept_and_evicts_nothing() {
        let cache = RenderedCache::new(16 * 1000);
        cache.insert("small".into(), image(100));
        cache.insert("large".into(), image(2000));
        assert!(cache.get("large").is_none());
        assert!(cache.get("small").is_some());
    }

    #[test]
    fn a_zero_capacity_keeps_nothing() {
        let cache = RenderedCache::new(0);
        cache.insert("k".into(), image(1));
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn keys_differ_by_stored_file_frame_and_options() {
        let a = RenderedCache::key("blob/1", 1, &("jpeg", 90));
        assert_ne!(a, RenderedCache::key("blob/2", 1, &("jpeg", 90)));
        assert_ne!(a, RenderedCache::key("blob/1", 2, &("jpeg", 90)));
        assert_ne!(a, RenderedCache::key("blob/1", 1, &("jpeg", 75)));
    }
}
