//! Maps of things that expire, kept to a bound (pending sign-ins, passkey
//! challenges, logins): each insert first drops what has expired and,
//! when the map is still full, its oldest entry.

use std::collections::HashMap;
use std::hash::Hash;

/// Inserts `key`/`value` into `map`, keeping at most `max` entries: the
/// entries `live` says are over go first, then the one of least `age`.
pub fn insert<K, V, A>(
    map: &mut HashMap<K, V>,
    max: usize,
    live: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> A,
    key: K,
    value: V,
) where
    K: Clone + Eq + Hash,
    A: Ord,
{
    map.retain(|_, v| live(v));
    if map.len() >= max {
        if let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| age(v))
            .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    #[test]
    fn expired_go_first_then_the_oldest() {
        let mut m = std::collections::HashMap::new();
        for (k, t) in [("a", 1), ("b", 5), ("c", 3)] {
            super::insert(&mut m, 3, |_| true, |t: &i32| *t, k, t);
        }
        // Full: the oldest (a) makes room.
        super::insert(&mut m, 3, |_| true, |t: &i32| *t, "d", 9);
        assert!(!m.contains_key("a") && m.len() == 3);
        // Expired ones (below 6) go, and nothing else.
        super::insert(&mut m, 3, |t: &i32| *t >= 6, |t: &i32| *t, "e", 7);
        let mut keys: Vec<_> = m.keys().copied().collect();
        keys.sort();
        assert_eq!(keys, ["d", "e"]);
    }
}
