//! A bounded map whose entries lapse at a time of their own: what the denylist and the
//! back-channel logout's replay guard remember.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct ExpiringMap<V> {
    /// Entries held, read without the lock: the usual answer is "none".
    len: AtomicUsize,
    /// Key → (value, end in Unix seconds).
    entries: Mutex<HashMap<String, (V, u64)>>,
    max_entries: usize,
}

impl<V: Copy> ExpiringMap<V> {
    pub fn new(max_entries: usize) -> Self {
        Self { len: AtomicUsize::new(0), entries: Mutex::new(HashMap::new()), max_entries }
    }

    /// Sets `key` until `until`, the value merged with a live one by `merge`. When full,
    /// what has lapsed goes first, then the entry ending soonest.
    pub fn upsert(&self, key: &str, value: V, until: u64, now: u64, merge: impl FnOnce(V, V) -> V) {
        let mut entries = self.entries.lock().expect("expiring map lock");
        let (value, until) = match entries.get(key) {
            Some(&(old, old_until)) if old_until > now => (merge(old, value), until.max(old_until)),
            _ => (value, until),
        };
        if entries.len() >= self.max_entries && !entries.contains_key(key) {
            entries.retain(|_, (_, end)| *end > now);
            if entries.len() >= self.max_entries
                && let Some(soonest) = entries.iter().min_by_key(|(_, (_, end))| *end).map(|(key, _)| key.clone())
            {
                entries.remove(&soonest);
            }
        }
        entries.insert(key.to_owned(), (value, until));
        self.len.store(entries.len(), Ordering::Relaxed);
    }

    /// The live value of `key`.
    pub fn get(&self, key: &str, now: u64) -> Option<V> {
        if self.is_empty() {
            return None;
        }
        self.entries.lock().expect("expiring map lock").get(key).filter(|(_, end)| *end > now).map(|(value, _)| *value)
    }

    pub fn remove(&self, key: &str) {
        let mut entries = self.entries.lock().expect("expiring map lock");
        entries.remove(key);
        self.len.store(entries.len(), Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_lapse_by_themselves_and_merge_while_live() {
        let map = ExpiringMap::new(10);
        assert_eq!(map.get("a", 100), None);
        map.upsert("a", 1, 200, 100, u64::max);
        assert_eq!(map.get("a", 150), Some(1));
        map.upsert("a", 0, 180, 150, u64::max);
        assert_eq!(map.get("a", 190), Some(1), "merged, and the later end kept");
        assert_eq!(map.get("b", 150), None);
        assert_eq!(map.get("a", 200), None, "over by itself");
        map.upsert("a", 0, 300, 250, u64::max);
        assert_eq!(map.get("a", 260), Some(0), "a lapsed entry is not merged");
    }

    #[test]
    fn bounded_by_dropping_what_ends_soonest() {
        let max = 1000;
        let map = ExpiringMap::new(max);
        for i in 0..max as u64 {
            map.upsert(&i.to_string(), (), 1_000 + i, 0, |_, _| ());
        }
        map.upsert("new", (), 5_000_000, 0, |_, _| ());
        assert_eq!(map.len(), max);
        assert_eq!(map.get("0", 1), None, "the soonest-ending entry made room");
        assert!(map.get("1", 1).is_some() && map.get("new", 1).is_some());
    }
}
