use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;

use super::fuzzing::{apply_to_store, run_ops, Op, OP_LEN};
use super::shard::path_start;
use super::*;

const NOW: u64 = 1_000;
const LATER: u64 = 2_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A key in shard `primary % 16`, without variance.
fn key(primary: u8) -> EntryKey {
    EntryKey::primary([primary; 16])
}

fn variant(primary: u8, variance: u8) -> EntryKey {
    EntryKey {
        primary: [primary; 16],
        variance: Some([variance; 16]),
    }
}

/// `body_len` bytes at `url`, meta 0 weighing nothing, no tags, expiring at `LATER`.
fn object(url: &str, body_len: usize) -> NewObject<u32> {
    NewObject {
        meta: 0,
        meta_weight: 0,
        body: Bytes::from(vec![b'x'; body_len]),
        url: Arc::from(url),
        tags: Vec::new(),
        expires: at(LATER),
    }
}

fn tagged(url: &str, tags: &[&str]) -> NewObject<u32> {
    NewObject {
        tags: tags.iter().map(|tag| Box::from(*tag)).collect(),
        ..object(url, 10)
    }
}

/// The weight the module documentation promises for an object without encodings.
fn weight(url: &str, body_len: usize, meta_weight: usize, tags: &[&str]) -> u64 {
    let tags: u64 = tags.iter().map(|tag| tag.len() as u64 + TAG_OVERHEAD).sum();
    OBJECT_OVERHEAD + (url.len() + body_len + meta_weight) as u64 + tags
}

fn stored(store: &Store<u32>, key: &EntryKey) -> bool {
    store.peek(key, at(NOW)).is_some()
}

/// Inserts and checks the invariants, which every test relies on.
fn put(store: &Store<u32>, key: EntryKey, new: NewObject<u32>) -> Insert {
    let inserted = store.insert(key, new, at(NOW));
    assert_eq!(store.check_invariants(), Ok(()));
    inserted
}

#[test]
fn a_hit_shares_the_stored_body() {
    let store = Store::new(1 << 20, 1 << 20);
    let new = NewObject {
        meta: 7,
        meta_weight: 100,
        ..object("http://a.test/x", 1000)
    };
    let body = new.body.clone();
    assert_eq!(put(&store, key(1), new), Insert::Stored { evicted: 0 });
    let hit = store.get(&key(1), at(NOW)).expect("just stored");
    assert_eq!(hit.meta, 7);
    assert_eq!(hit.body.as_ptr(), body.as_ptr(), "a hit copied the body");
    assert_eq!(hit.body.len(), 1000);
    assert_eq!(hit.expires(), at(LATER));
    let expected = weight("http://a.test/x", 1000, 100, &[]);
    assert_eq!(hit.weight() as u64, expected);
    let stats = store.stats();
    assert_eq!((stats.objects, stats.bytes), (1, expected));
    assert!(store.get(&key(2), at(NOW)).is_none());
    assert!(store.get(&variant(1, 1), at(NOW)).is_none());
}

#[test]
fn the_last_writer_wins() {
    let store = Store::new(1 << 20, 1 << 20);
    put(
        &store,
        key(1),
        NewObject {
            meta: 1,
            ..object("http://a.test/x", 100)
        },
    );
    let second = NewObject {
        meta: 2,
        ..tagged("http://a.test/y", &["t"])
    };
    assert_eq!(put(&store, key(1), second), Insert::Stored { evicted: 0 });
    let hit = store.get(&key(1), at(NOW)).expect("replaced, not removed");
    assert_eq!((hit.meta, hit.body.len()), (2, 10));
    let stats = store.stats();
    assert_eq!(stats.objects, 1);
    assert_eq!(stats.bytes, weight("http://a.test/y", 10, 0, &["t"]));
    assert_eq!((stats.evictions, stats.expired, stats.purged), (0, 0, 0));
    // The first version's index entries went with it.
    assert_eq!(store.purge_url("http://a.test/x"), 0);
    assert_eq!(store.purge_tag("t"), 1);
}

#[test]
fn the_weight_counts_every_part() {
    let store = Store::new(1 << 20, 1 << 20);
    let url = "http://a.test/weighed";
    let new = NewObject {
        meta_weight: 200,
        body: Bytes::from(vec![0; 1000]),
        // Duplicates and empty tags are dropped before they are counted.
        ..tagged(url, &["a", "bb", "a", ""])
    };
    put(&store, key(3), new);
    let bare = weight(url, 1000, 200, &["a", "bb"]);
    assert_eq!(store.stats().bytes, bare);
    assert!(store.attach_encoded(&key(3), 1, Bytes::from(vec![0; 300])));
    let hit = store.peek(&key(3), at(NOW)).expect("stored");
    assert_eq!(hit.weight() as u64, bare + 300);
    assert_eq!(store.stats().bytes, bare + 300);
    assert_eq!(store.check_invariants(), Ok(()));
}

/// Five objects of one weight, in shards 0, 1, 2, 3 and 0 again; room for four.
fn four_of_five() -> (Store<u32>, [EntryKey; 5]) {
    let keys = [key(0), key(1), key(2), key(3), key(16)];
    let each = weight("http://a.test/0", 100, 0, &[]);
    let store = Store::new(4 * each, 1 << 20);
    for (n, key) in keys.iter().take(4).enumerate() {
        let url = format!("http://a.test/{n}");
        assert_eq!(
            put(&store, *key, object(&url, 100)),
            Insert::Stored { evicted: 0 }
        );
    }
    (store, keys)
}

#[test]
fn eviction_takes_the_globally_least_recently_used() {
    let (store, [k0, k1, k2, k3, k4]) = four_of_five();
    // k0, the oldest, is used: k1 becomes the oldest, in another shard.
    assert!(store.get(&k0, at(NOW)).is_some());
    assert_eq!(
        put(&store, k4, object("http://a.test/4", 100)),
        Insert::Stored { evicted: 1 }
    );
    assert!(!stored(&store, &k1), "the least recently used survived");
    assert!(stored(&store, &k0), "a recently used object was evicted");
    // A peek is no access: k2 stays the oldest.
    assert!(store.peek(&k2, at(NOW)).is_some());
    assert_eq!(
        put(&store, key(5), object("http://a.test/5", 100)),
        Insert::Stored { evicted: 1 }
    );
    assert!(!stored(&store, &k2));
    // Then k3, inserted after k0 but never used since.
    assert_eq!(
        put(&store, key(6), object("http://a.test/6", 100)),
        Insert::Stored { evicted: 1 }
    );
    assert!(!stored(&store, &k3));
    assert!(stored(&store, &k0) && stored(&store, &k4));
    let stats = store.stats();
    assert_eq!((stats.objects, stats.evictions), (4, 3));
    assert!(stats.bytes <= stats.max_bytes);
}

#[test]
fn a_meta_update_counts_as_an_access() {
    let (store, [k0, k1, _, _, k4]) = four_of_five();
    assert!(store.update_meta(&k0, 1, 0, at(LATER)));
    put(&store, k4, object("http://a.test/4", 100));
    assert!(stored(&store, &k0));
    assert!(!stored(&store, &k1));
}

#[test]
fn one_object_may_take_most_of_the_store() {
    // Far more than a shard's sixteenth: the bound is global.
    let store = Store::new(64 * 1024, 64 * 1024);
    assert_eq!(
        put(&store, key(1), object("http://a.test/big", 40 * 1024)),
        Insert::Stored { evicted: 0 }
    );
    assert!(stored(&store, &key(1)));
    assert_eq!(
        put(&store, key(2), object("http://a.test/big2", 40 * 1024)),
        Insert::Stored { evicted: 1 }
    );
    assert!(!stored(&store, &key(1)) && stored(&store, &key(2)));
}

#[test]
fn too_large_is_refused_and_removes_the_outdated_version() {
    let url = "http://a.test/x";
    let limit = weight(url, 1000, 0, &[]);
    let store = Store::new(1 << 20, limit);
    // Exactly at the limit fits.
    assert_eq!(
        put(&store, key(1), object(url, 1000)),
        Insert::Stored { evicted: 0 }
    );
    assert_eq!(put(&store, key(1), object(url, 1001)), Insert::TooLarge);
    assert!(
        !stored(&store, &key(1)),
        "an outdated version is still served"
    );
    let stats = store.stats();
    assert_eq!((stats.objects, stats.bytes, stats.too_large), (0, 0, 1));
    assert_eq!((stats.evictions, stats.purged), (0, 0));

    // The total bound applies too, whatever the per-object one says.
    let small = Store::new(limit, u64::MAX);
    assert_eq!(put(&small, key(1), object(url, 1001)), Insert::TooLarge);
    // An absurd meta weight is refused, not overflowed.
    let huge = NewObject {
        meta_weight: usize::MAX,
        ..object(url, 1)
    };
    let unbounded = Store::new(u64::MAX, u64::MAX);
    assert_eq!(put(&unbounded, key(1), huge), Insert::TooLarge);
    assert_eq!(unbounded.stats().max_bytes, MAX_LIMIT);
}

#[test]
fn an_already_expired_insert_is_refused() {
    let store = Store::new(1 << 20, 1 << 20);
    put(&store, key(1), object("http://a.test/x", 10));
    let dead = NewObject {
        expires: at(NOW),
        ..object("http://a.test/x", 10)
    };
    assert_eq!(put(&store, key(1), dead), Insert::Expired);
    assert!(!stored(&store, &key(1)));
    assert_eq!(
        store.stats(),
        StoreStats {
            max_bytes: 1 << 20,
            max_object_bytes: 1 << 20,
            ..StoreStats::default()
        }
    );
}

#[test]
fn lookups_expire_objects_lazily() {
    let store = Store::new(1 << 20, 1 << 20);
    let new = NewObject {
        expires: at(1_500),
        ..object("http://a.test/x", 10)
    };
    put(&store, key(1), new.clone());
    put(&store, key(2), new);
    assert!(store.get(&key(1), at(1_499)).is_some());
    assert!(
        store.get(&key(1), at(1_500)).is_none(),
        "served at its expiry"
    );
    assert!(store.peek(&key(2), at(1_501)).is_none());
    let stats = store.stats();
    assert_eq!((stats.objects, stats.bytes, stats.expired), (0, 0, 2));
    // Gone, not hidden: an earlier clock does not bring it back.
    assert!(store.get(&key(1), at(NOW)).is_none());
    assert_eq!(store.stats().expired, 2);
    assert_eq!(store.check_invariants(), Ok(()));
}

#[test]
fn a_sweep_removes_exactly_the_expired() {
    let store = Store::new(1 << 20, 1 << 20);
    for (n, expires) in [1_100, 1_200, 1_300].into_iter().enumerate() {
        let new = NewObject {
            expires: at(expires),
            ..object("http://a.test/x", 10)
        };
        put(&store, key(n as u8), new);
    }
    assert_eq!(store.sweep_expired(at(1_200)), 2);
    assert!(stored(&store, &key(2)));
    assert_eq!(store.sweep_expired(at(1_200)), 0);
    let stats = store.stats();
    assert_eq!((stats.objects, stats.expired), (1, 2));
    assert_eq!(store.check_invariants(), Ok(()));
}

#[test]
fn a_meta_update_keeps_body_tags_and_encodings() {
    let store = Store::new(1 << 20, 1 << 20);
    let url = "http://a.test/x";
    let new = NewObject {
        meta: 1,
        meta_weight: 100,
        expires: at(1_500),
        ..tagged(url, &["t"])
    };
    let body = new.body.clone();
    put(&store, key(1), new);
    let gzip = Bytes::from_static(b"gz");
    assert!(store.attach_encoded(&key(1), 1, gzip.clone()));
    assert!(store.update_meta(&key(1), 2, 40, at(3_000)));
    assert_eq!(store.check_invariants(), Ok(()));
    let hit = store
        .get(&key(1), at(2_000))
        .expect("the new expiry applies");
    assert_eq!(hit.meta, 2);
    assert_eq!(hit.body.as_ptr(), body.as_ptr());
    assert_eq!(hit.encoded(1).map(|b| b.as_ptr()), Some(gzip.as_ptr()));
    assert_eq!(hit.expires(), at(3_000));
    assert_eq!(hit.weight() as u64, weight(url, 10, 40, &["t"]) + 2);
    assert_eq!(store.stats().bytes, hit.weight() as u64);
    // The expiry index moved too: a sweep at the old expiry keeps it.
    assert_eq!(store.sweep_expired(at(1_500)), 0);
    assert_eq!(store.purge_tag("t"), 1);
    assert!(
        !store.update_meta(&key(1), 3, 0, at(3_000)),
        "updated an absent object"
    );
}

#[test]
fn a_meta_update_that_overflows_the_object_limit_removes_it() {
    let url = "http://a.test/x";
    let store = Store::new(1 << 20, weight(url, 10, 100, &[]));
    put(
        &store,
        key(1),
        NewObject {
            meta_weight: 100,
            ..object(url, 10)
        },
    );
    assert!(!store.update_meta(&key(1), 1, 101, at(LATER)));
    assert!(!stored(&store, &key(1)));
    let stats = store.stats();
    assert_eq!((stats.objects, stats.bytes, stats.too_large), (0, 0, 1));
}

#[test]
fn purge_primary_takes_every_variant_and_nothing_else() {
    let store = Store::new(1 << 20, 1 << 20);
    let url = "http://a.test/x";
    for k in [
        key(0),
        variant(0, 1),
        variant(0, 2),
        key(16),
        variant(16, 1),
        key(1),
    ] {
        put(&store, k, object(url, 10));
    }
    assert_eq!(store.purge_primary(&[0; 16]), 3);
    assert_eq!(store.check_invariants(), Ok(()));
    assert!(!stored(&store, &variant(0, 2)));
    // Same shard, other primary; other shard.
    assert!(stored(&store, &key(16)) && stored(&store, &variant(16, 1)) && stored(&store, &key(1)));
    assert_eq!(store.purge_primary(&[0; 16]), 0);
    assert_eq!(store.stats().purged, 3);
}

#[test]
fn purge_url_matches_the_whole_url_exactly() {
    let store = Store::new(1 << 20, 1 << 20);
    put(&store, key(1), object("http://a.test/x", 10));
    put(&store, variant(1, 1), object("http://a.test/x", 10));
    put(&store, key(2), object("http://a.test/x?y", 10));
    put(&store, key(3), object("http://a.test/xy", 10));
    put(&store, key(4), object("http://b.test/x", 10));
    put(&store, key(5), object("https://a.test/x", 10));
    assert_eq!(store.purge_url("http://a.test/x"), 2);
    assert_eq!(store.check_invariants(), Ok(()));
    assert_eq!(store.stats().objects, 4);
    assert_eq!(store.purge_url("http://a.test/"), 0);
}

#[test]
fn purge_path_matches_the_path_and_query_exactly_on_every_host() {
    let store = Store::new(1 << 20, 1 << 20);
    put(&store, key(1), object("http://a.test/x?y=1", 10));
    put(&store, variant(1, 1), object("http://a.test/x?y=1", 10));
    put(&store, key(2), object("https://b.test:8443/x?y=1", 10));
    put(&store, key(3), object("http://a.test/x?y=12", 10));
    put(&store, key(4), object("http://a.test/x", 10));
    put(&store, key(5), object("http://a.test/x/y=1", 10));
    assert_eq!(store.purge_path("/x?y=1"), 3);
    assert_eq!(store.check_invariants(), Ok(()));
    assert_eq!(store.stats().objects, 3);
    assert_eq!(store.purge_path("/x?y"), 0);
    assert_eq!(store.purge_path("/x"), 1);
}

#[test]
fn a_slash_prefix_matches_the_path_on_every_host() {
    let store = Store::new(1 << 20, 1 << 20);
    let urls = [
        ("http://a.test/img/1.png", true),
        ("https://b.test/img/2.png?v=1", true),
        ("c.test/img/3.png", true),
        ("http://a.test/image.png", false),
        ("http://a.test/css/img/x", false),
        ("http://d.test?q=/img/", false),
        ("http://img", false),
    ];
    for (n, (url, _)) in urls.iter().enumerate() {
        put(&store, key(n as u8), object(url, 10));
    }
    assert_eq!(store.purge_prefix("/img/"), 3);
    assert_eq!(store.check_invariants(), Ok(()));
    for (n, (url, purged)) in urls.iter().enumerate() {
        assert_eq!(stored(&store, &key(n as u8)), !purged, "{url}");
    }
    // `/` is every object that has a path; a query-only or empty path has none.
    assert_eq!(store.purge_prefix("/"), 2);
    assert_eq!(store.stats().objects, 2);
}

#[test]
fn any_other_prefix_matches_the_whole_url() {
    let store = Store::new(1 << 20, 1 << 20);
    let urls = [
        ("http://a.test/", true),
        ("http://a.test/x/y", true),
        ("https://a.test/x", false),
        ("http://b.test/a.test/", false),
        ("http://a.test.example/", false),
    ];
    for (n, (url, _)) in urls.iter().enumerate() {
        put(&store, key(n as u8), object(url, 10));
    }
    assert_eq!(store.purge_prefix("http://a.test/"), 2);
    for (n, (url, purged)) in urls.iter().enumerate() {
        assert_eq!(stored(&store, &key(n as u8)), !purged, "{url}");
    }
    assert_eq!(store.purge_prefix("zzz"), 0);
    assert_eq!(store.purge_prefix(""), 3, "the empty prefix is every URL's");
    assert_eq!(store.check_invariants(), Ok(()));
}

#[test]
fn purge_tag_matches_any_of_an_object_s_tags() {
    let store = Store::new(1 << 20, 1 << 20);
    put(&store, key(1), tagged("http://a.test/1", &["a", "b"]));
    put(&store, key(2), tagged("http://a.test/2", &["b", "c"]));
    put(&store, key(18), tagged("http://a.test/3", &["c"]));
    put(&store, key(4), tagged("http://a.test/4", &[]));
    assert_eq!(store.purge_tag("b"), 2);
    assert_eq!(store.check_invariants(), Ok(()));
    // Object 1's other tag went with it.
    assert_eq!(store.purge_tag("a"), 0);
    assert_eq!(store.purge_tag("C"), 0, "tags are case-sensitive");
    assert_eq!(store.purge_tag("c"), 1);
    assert_eq!(store.purge_tag(""), 0);
    assert!(stored(&store, &key(4)));
    assert_eq!(store.stats().purged, 3);
}

#[test]
fn purge_all_empties_every_shard() {
    let store = Store::new(1 << 20, 1 << 20);
    for n in 0..40 {
        put(&store, key(n), tagged("http://a.test/x", &["t"]));
    }
    assert_eq!(store.purge_all(), 40);
    assert_eq!(store.check_invariants(), Ok(()));
    let stats = store.stats();
    assert_eq!((stats.objects, stats.bytes, stats.purged), (0, 0, 40));
    assert_eq!(
        put(&store, key(1), object("http://a.test/x", 10)),
        Insert::Stored { evicted: 0 }
    );
    assert_eq!(store.purge_all(), 1);
}

#[test]
fn remove_takes_one_object_and_counts_as_purged() {
    let store = Store::new(1 << 20, 1 << 20);
    put(&store, key(1), object("http://a.test/x", 10));
    put(&store, variant(1, 1), object("http://a.test/x", 10));
    assert!(store.remove(&key(1)));
    assert!(!store.remove(&key(1)));
    assert!(stored(&store, &variant(1, 1)));
    assert_eq!(store.stats().purged, 1);
    assert_eq!(store.check_invariants(), Ok(()));
}

#[test]
fn encoded_bodies_are_accounted_and_replaced_per_coding() {
    let store = Store::new(1 << 20, 1 << 20);
    let url = "http://a.test/x";
    put(&store, key(1), object(url, 1000));
    let bare = weight(url, 1000, 0, &[]);
    assert!(store.attach_encoded(&key(1), 1, Bytes::from(vec![0; 300])));
    let smaller = Bytes::from(vec![0; 100]);
    assert!(store.attach_encoded(&key(1), 1, smaller.clone()));
    assert!(store.attach_encoded(&key(1), 2, Bytes::from(vec![0; 50])));
    assert_eq!(store.stats().bytes, bare + 150);
    let hit = store.get(&key(1), at(NOW)).expect("stored");
    assert_eq!(hit.encoded(1).map(|b| b.as_ptr()), Some(smaller.as_ptr()));
    assert_eq!(hit.encoded(2).map(|b| b.len()), Some(50));
    assert_eq!(hit.encoded(3), None);
    assert!(
        !store.attach_encoded(&key(2), 1, Bytes::new()),
        "attached to an absent object"
    );
    assert_eq!(store.check_invariants(), Ok(()));
}

#[test]
fn an_encoded_body_that_would_not_fit_is_refused() {
    let url = "http://a.test/x";
    let store = Store::new(1 << 20, weight(url, 1000, 0, &[]) + 100);
    put(&store, key(1), object(url, 1000));
    assert!(store.attach_encoded(&key(1), 1, Bytes::from(vec![0; 100])));
    assert!(!store.attach_encoded(&key(1), 1, Bytes::from(vec![0; 101])));
    assert!(!store.attach_encoded(&key(1), 2, Bytes::from(vec![0; 1])));
    let hit = store
        .peek(&key(1), at(NOW))
        .expect("a refused attach removes nothing");
    assert_eq!(hit.encoded(1).map(|b| b.len()), Some(100));
    assert_eq!(store.stats().bytes, weight(url, 1000, 0, &[]) + 100);
}

#[test]
fn an_encoded_body_evicts_others_when_the_total_overflows() {
    let url = "http://a.test/x";
    let each = weight(url, 1000, 0, &[]);
    let store = Store::new(2 * each, 1 << 20);
    put(&store, key(1), object(url, 1000));
    put(&store, key(2), object(url, 1000));
    assert!(store.attach_encoded(&key(2), 1, Bytes::from(vec![0; 10])));
    assert!(!stored(&store, &key(1)) && stored(&store, &key(2)));
    let stats = store.stats();
    assert_eq!((stats.bytes, stats.evictions), (each + 10, 1));
}

#[test]
fn lowering_the_limits_evicts_the_least_recently_used() {
    let (store, [k0, k1, k2, k3, _]) = four_of_five();
    let each = weight("http://a.test/0", 100, 0, &[]);
    assert!(store.get(&k0, at(NOW)).is_some());
    assert_eq!(store.set_limits(2 * each, 1), 2);
    assert_eq!(store.check_invariants(), Ok(()));
    assert!(stored(&store, &k0) && stored(&store, &k3));
    assert!(!stored(&store, &k1) && !stored(&store, &k2));
    let stats = store.stats();
    assert_eq!(
        (stats.max_bytes, stats.max_object_bytes, stats.evictions),
        (2 * each, 1, 2)
    );
    // Stored objects above a lowered object limit stay; new ones are refused.
    assert!(stored(&store, &k0));
    assert_eq!(
        put(&store, k1, object("http://a.test/1", 100)),
        Insert::TooLarge
    );
    assert_eq!(store.set_limits(u64::MAX, u64::MAX), 0);
    assert_eq!(store.stats().max_bytes, MAX_LIMIT);
}

#[test]
fn each_removal_is_counted_once_in_its_counter() {
    let url = "http://a.test/x";
    let each = weight(url, 10, 0, &[]);
    let store = Store::new(2 * each, 1 << 20);
    put(&store, key(1), object(url, 10));
    put(
        &store,
        key(2),
        NewObject {
            expires: at(1_500),
            ..object(url, 10)
        },
    );
    put(&store, key(3), object(url, 10)); // evicts key(1)
    put(&store, key(3), object(url, 10)); // a replacement: no counter
    assert!(store.get(&key(2), at(1_500)).is_none()); // expired
    put(&store, key(4), object(url, 10));
    put(&store, key(5), object(url, 10)); // evicts key(3)
    assert!(store.remove(&key(4)));
    assert_eq!(store.purge_url(url), 1); // key(5)
    assert_eq!(put(&store, key(6), object(url, 1 << 20)), Insert::TooLarge);
    assert_eq!(
        store.stats(),
        StoreStats {
            objects: 0,
            bytes: 0,
            max_bytes: 2 * each,
            max_object_bytes: 1 << 20,
            evictions: 2,
            expired: 1,
            purged: 2,
            too_large: 1,
        }
    );
}

#[test]
fn the_path_and_query_starts_after_the_authority() {
    let rows = [
        ("http://a.test/x?y=1", "/x?y=1"),
        ("https://a.test:8443/", "/"),
        ("http://a.test", ""),
        ("http://a.test?q=/x", "?q=/x"),
        ("http://a.test#f", "#f"),
        ("a.test/x", "/x"),
        ("/x/y", "/x/y"),
        ("a.test/x?u=http://b.test/y", "/x?u=http://b.test/y"),
        ("http://é.test/é", "/é"),
        ("", ""),
        ("://", ""),
    ];
    for (url, path) in rows {
        assert_eq!(&url[path_start(url)..], path, "{url}");
    }
}

#[test]
fn the_store_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Store<Arc<String>>>();
    shared::<Hit<Arc<String>>>();
}

#[test]
fn fixed_operation_sequences_match_the_model() {
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0; 7 * 100],
        vec![0xff; 7 * 100],
        (0..=255).collect(),
        (0..7 * 300).map(|i| (i * 37 % 251) as u8).collect(),
    ];
    // Fill a small store with every key, then run each other opcode over it.
    let mut scripted = Vec::new();
    for opcode in 0..16 {
        for key in 0..15 {
            scripted.extend_from_slice(&[0, key, key % 10, key, key * 8, key, 5]);
            scripted.extend_from_slice(&[opcode, key, key * 3, key, key, key, key]);
        }
    }
    inputs.push(scripted);
    for input in inputs {
        assert_eq!(run_ops(&input), Ok(()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random sequences of every operation: after each, the store answers what the model
    /// does (so no lookup returns a purged, removed, evicted or expired object, and every
    /// eviction takes the least recently used), its stats match, its invariants hold and
    /// it is within its bound.
    #[test]
    fn random_operations_match_the_model(
        data in prop::collection::vec(any::<u8>(), 0..OP_LEN * 400),
    ) {
        prop_assert_eq!(run_ops(&data), Ok(()));
    }
}

#[test]
fn concurrent_operations_keep_the_accounting_exact() {
    const THREADS: u64 = 4;
    const OPS: usize = 5_000;
    let store = Store::new(
        fuzzing::INITIAL_MAX_BYTES,
        fuzzing::INITIAL_MAX_OBJECT_BYTES,
    );
    let hits = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (store, hits) = (&store, &hits);
            scope.spawn(move || {
                let mut state =
                    0x9E37_79B9_7F4A_7C15_u64 ^ thread.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                let mut now = at(NOW);
                for seq in 0..OPS {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let op = Op::decode(&state.to_le_bytes()[..OP_LEN]);
                    // Limits changes and full purges are rarer than the mix decodes.
                    if matches!(op, Op::SetLimits { .. } | Op::PurgeAll) && seq % 50 != 0 {
                        continue;
                    }
                    let seq = u32::try_from(seq).unwrap_or(u32::MAX);
                    let answer = apply_to_store(store, op, &mut now, seq);
                    if matches!(answer, fuzzing::Answer::Lookup(Some(_))) {
                        hits.fetch_add(1, Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(store.check_invariants(), Ok(()));
    let stats = store.stats();
    assert!(stats.bytes <= stats.max_bytes, "{stats:?}");
    assert!(hits.load(Relaxed) > 0, "the threads never shared an object");
}
