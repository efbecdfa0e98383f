//! The multi-version store: every key keeps each version it had until compaction, and a log of
//! changes per revision feeds history replay (watch) in revision order.
//!
//! Revisions follow etcd: a new store is at revision 1 with nothing stored, the first write makes
//! revision 2, and one write transaction makes exactly one revision whatever it changes.

use std::ops::Bound;

use bytes::{Bytes, BytesMut};
use imbl::{OrdMap, Vector};
use smallvec::SmallVec;

use crate::pb::mvccpb::KeyValue;

use super::error::EtcdError;

/// A key range as etcd encodes it: `end` empty is the single key `start`, `end == "\0"` is every
/// key from `start` on, anything else is the half-open range `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRange {
    pub(crate) start: Vec<u8>,
    pub(crate) end: RangeEnd,
}

/// The range end that makes a range of every key starting with `prefix`, as etcd clients
/// compute it: drop trailing 0xff bytes and increment the last one; all 0xff (or empty) gives
/// `"\0"`, every key from the prefix on.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Where a [`KeyRange`] stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeEnd {
    /// Only the start key.
    Single,
    /// Every key `>= start`.
    Unbounded,
    /// Keys `< end`. Empty when `end <= start`, which etcd treats as "no keys", not an error.
    Before(Vec<u8>),
}

impl KeyRange {
    /// Decodes etcd's `(key, range_end)` pair.
    pub(crate) fn new(key: &[u8], range_end: &[u8]) -> Self {
        let end = match range_end {
            [] => RangeEnd::Single,
            [0] => RangeEnd::Unbounded,
            end => RangeEnd::Before(end.to_vec()),
        };
        KeyRange {
            start: key.to_vec(),
            end,
        }
    }

    /// Whether `key` falls in the range.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            RangeEnd::Single => key == self.start.as_slice(),
            RangeEnd::Unbounded => key >= self.start.as_slice(),
            RangeEnd::Before(end) => key >= self.start.as_slice() && key < end.as_slice(),
        }
    }

    fn bounds(&self) -> Option<(Bound<&[u8]>, Bound<&[u8]>)> {
        let start = Bound::Included(self.start.as_slice());
        match &self.end {
            RangeEnd::Single => Some((start, Bound::Included(self.start.as_slice()))),
            RangeEnd::Unbounded => Some((start, Bound::Unbounded)),
            // BTreeMap::range panics on an inverted range; etcd answers "nothing".
            RangeEnd::Before(end) if end.as_slice() <= self.start.as_slice() => None,
            RangeEnd::Before(end) => Some((start, Bound::Excluded(end.as_slice()))),
        }
    }
}

/// One version of a key: a put (`Some`) or a delete tombstone (`None`) at a main revision.
#[derive(Debug, Clone)]
struct Version {
    revision: i64,
    kv: Option<KeyValue>,
}

/// A key as the index holds it: short keys inline in the tree node, so that a walk over the
/// index does not chase one more pointer per key to compare it.
type IndexKey = SmallVec<[u8; 24]>;

/// A key's retained versions, oldest first. A key with one version keeps it inline.
type Versions = SmallVec<[Version; 1]>;

/// What happened to one key at one revision, in the order it happened (etcd's sub-revisions).
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// The key now has this value.
    Put(KeyValue),
    /// The key was deleted; `key` is its name.
    Delete { key: Bytes },
}

impl Change {
    /// The key the change is about.
    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Change::Put(kv) => &kv.key,
            Change::Delete { key } => key,
        }
    }
}

/// All changes made at one revision.
#[derive(Debug, Clone)]
pub(crate) struct RevisionChanges {
    pub(crate) revision: i64,
    /// Most revisions change one key: that one is kept inline.
    pub(crate) changes: SmallVec<[Change; 1]>,
}

/// Where the store keeps the keys and values it is given: copied one after another into shared
/// chunks. A range then reads them in about the order it returns them, and cloning one (to
/// answer a read, or for a watch event) counts a reference on its chunk, whose counter stays in
/// cache, rather than on a counter of its own per key and per value. A chunk is freed once
/// nothing in it is referenced.
#[derive(Debug, Default)]
struct Arena {
    chunk: BytesMut,
}

/// The size of an arena chunk.
const ARENA_CHUNK: usize = 16 * 1024;
/// Bigger keys and values get an allocation of their own, so that a chunk holds many.
const ARENA_MAX_PIECE: usize = 1024;

impl Arena {
    fn keep(&mut self, bytes: &[u8]) -> Bytes {
        if bytes.is_empty() {
            return Bytes::new();
        }
        if bytes.len() > ARENA_MAX_PIECE {
            return Bytes::copy_from_slice(bytes);
        }
        if self.chunk.capacity() < bytes.len() {
            self.chunk = BytesMut::with_capacity(ARENA_CHUNK);
        }
        self.chunk.extend_from_slice(bytes);
        self.chunk.split().freeze()
    }
}

impl Clone for Arena {
    /// A fork writes into chunks of its own (what is stored is shared either way).
    fn clone(&self) -> Self {
        Arena::default()
    }
}

/// The store: key index with full history, and the change log.
///
/// Both are persistent, so that cloning a store (a fork of a server) costs the same for a
/// hundred thousand keys as for none: the clones share every node until one of them writes,
/// and a write copies only the path to what it changes.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// The newest committed revision (or the one being written inside a write txn).
    revision: i64,
    /// Reads below this revision are refused. -1 until the first compaction, as in etcd, which
    /// makes `Compact(0)` on a fresh store legal.
    compact_revision: i64,
    index: OrdMap<IndexKey, Versions>,
    /// One entry per revision that changed something, in revision order. Revisions only grow,
    /// so a commit appends (cheaper than a map insert on every write) and compaction drops a
    /// prefix.
    log: Vector<RevisionChanges>,
    /// The revision the open write txn writes at, if one is open.
    writing: Option<i64>,
    /// The open write's changes, in order; they join the log when it commits.
    pending: SmallVec<[Change; 1]>,
    arena: Arena,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            revision: 1,
            compact_revision: -1,
            index: OrdMap::new(),
            log: Vector::new(),
            writing: None,
            pending: SmallVec::new(),
            arena: Arena::default(),
        }
    }
}

impl Store {
    /// The current revision.
    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    /// The revision of the last compaction, -1 if there was none.
    pub(crate) fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Checks a read revision as etcd's store does: `<= 0` means current.
    pub(crate) fn check_read_revision(&self, revision: i64) -> Result<i64, EtcdError> {
        if revision > self.revision {
            return Err(EtcdError::FutureRevision);
        }
        let revision = if revision <= 0 {
            self.revision
        } else {
            revision
        };
        if revision < self.compact_revision {
            return Err(EtcdError::Compacted);
        }
        Ok(revision)
    }

    /// The live pairs in `range` as of `revision` (already checked), in key order, plus the
    /// number of them. At most `limit` pairs are collected when `limit > 0`; the count is always
    /// the full count.
    pub(crate) fn range(
        &self,
        range: &KeyRange,
        revision: i64,
        limit: usize,
        count_only: bool,
    ) -> (Vec<&KeyValue>, usize) {
        let mut kvs = Vec::new();
        let mut count = 0;
        for kv in self.live(range, revision) {
            count += 1;
            if !count_only && (limit == 0 || kvs.len() < limit) {
                kvs.push(kv);
            }
        }
        (kvs, count)
    }

    /// The live pairs in `range` as of `revision` (already checked), in key order.
    pub(crate) fn live<'s, 'r>(
        &'s self,
        range: &'r KeyRange,
        revision: i64,
    ) -> impl Iterator<Item = &'s KeyValue> + use<'s, 'r> {
        range
            .bounds()
            .into_iter()
            .flat_map(move |bounds| self.index.range::<_, [u8]>(bounds))
            .filter_map(move |(_, versions)| live_at(versions, revision))
    }

    /// The live pair for `key` as of `revision`.
    pub(crate) fn get(&self, key: &[u8], revision: i64) -> Option<&KeyValue> {
        self.index
            .get(key)
            .and_then(|versions| live_at(versions, revision))
    }

    /// The live pair for `key` now (inside a write txn: including the txn's writes).
    pub(crate) fn get_current(&self, key: &[u8]) -> Option<&KeyValue> {
        self.get(key, self.revision)
    }

    /// Opens a write at the next revision if none is open yet, and returns that revision.
    fn begin_write(&mut self) -> i64 {
        match self.writing {
            Some(rev) => rev,
            None => {
                let rev = self.revision + 1;
                self.writing = Some(rev);
                self.revision = rev;
                rev
            }
        }
    }

    /// A copy of `bytes` (a value about to be put) kept with the store's other keys and values.
    pub(crate) fn keep(&mut self, bytes: &[u8]) -> Bytes {
        self.arena.keep(bytes)
    }

    /// Puts `value` under `key` with `lease`, at the revision of the open write, which it
    /// returns.
    pub(crate) fn put(&mut self, key: &[u8], value: Bytes, lease: i64) -> i64 {
        let rev = self.begin_write();
        // One lookup serves both reading the previous version and appending the new one.
        let versions = self.index.get_mut(key);
        // A key written before shares its name with its previous version.
        let (name, create_revision, version) =
            match versions.as_deref().and_then(|v| v.last()?.kv.as_ref()) {
                Some(prev) => (prev.key.clone(), prev.create_revision, prev.version + 1),
                None => (self.arena.keep(key), rev, 1),
            };
        // The pair is stored by value twice (its version and its log entry), not behind a
        // shared pointer: history lives as long as the store, and one small allocation per write
        // kept for good splinters the allocator's free memory, which then slows every request's
        // short-lived allocations. The copies share the key and value bytes.
        let kv = KeyValue {
            key: name,
            create_revision,
            mod_revision: rev,
            version,
            value,
            lease,
        };
        let logged = Change::Put(kv.clone());
        let put = Version {
            revision: rev,
            kv: Some(kv),
        };
        match versions {
            Some(versions) => versions.push(put),
            None => {
                self.index
                    .insert(IndexKey::from_slice(key), smallvec::smallvec![put]);
            }
        }
        self.log_change(logged);
        rev
    }

    /// Deletes every live key in `range` at the revision of the open write (opened only if
    /// something is deleted). Returns the deleted pairs in key order.
    pub(crate) fn delete_range(&mut self, range: &KeyRange) -> Vec<KeyValue> {
        let (doomed, _) = self.range(range, self.revision, 0, false);
        let doomed: Vec<KeyValue> = doomed.into_iter().cloned().collect();
        if doomed.is_empty() {
            return doomed;
        }
        let rev = self.begin_write();
        for kv in &doomed {
            if let Some(versions) = self.index.get_mut(&kv.key[..]) {
                versions.push(Version {
                    revision: rev,
                    kv: None,
                });
            }
            self.log_change(Change::Delete {
                key: kv.key.clone(),
            });
        }
        doomed
    }

    fn log_change(&mut self, change: Change) {
        if self.writing.is_some() {
            self.pending.push(change);
        }
    }

    /// Closes the open write, if any, keeping its changes. Returns the revision it made.
    pub(crate) fn commit(&mut self) -> Option<i64> {
        let revision = self.writing.take()?;
        // One insert per revision, at its end: the log only ever sees whole revisions.
        let changes = std::mem::take(&mut self.pending);
        self.log.push_back(RevisionChanges { revision, changes });
        Some(revision)
    }

    /// Undoes every change of the open write, as if it had never begun.
    pub(crate) fn rollback(&mut self) {
        let Some(rev) = self.writing.take() else {
            return;
        };
        for change in std::mem::take(&mut self.pending) {
            let key = change.key();
            let now_empty = match self.index.get_mut(key) {
                Some(versions) => {
                    versions.retain(|v| v.revision != rev);
                    versions.is_empty()
                }
                None => false,
            };
            if now_empty {
                self.index.remove(key);
            }
        }
        self.revision = rev - 1;
    }

    /// Compacts history at `revision`: reads below it fail from now on and the versions only
    /// they could see are freed.
    pub(crate) fn compact(&mut self, revision: i64) -> Result<(), EtcdError> {
        if revision <= self.compact_revision {
            return Err(EtcdError::Compacted);
        }
        if revision > self.revision {
            return Err(EtcdError::FutureRevision);
        }
        self.compact_revision = revision;
        let keys: Vec<IndexKey> = self.index.keys().cloned().collect();
        for key in keys {
            let Some(versions) = self.index.get(&key) else {
                continue;
            };
            // Keep the newest version at or below the compaction point (the value a read at
            // `revision` sees) and everything after it; a tombstone below the point is
            // unreadable and goes too. A tombstone exactly at the point stays, as in etcd.
            let newer = versions.partition_point(|v| v.revision <= revision);
            let keep_from = match newer.checked_sub(1) {
                Some(i) if versions[i].kv.is_some() || versions[i].revision == revision => i,
                _ => newer,
            };
            if keep_from == versions.len() {
                self.index.remove(&key);
            } else if keep_from > 0 {
                if let Some(versions) = self.index.get_mut(&key) {
                    versions.drain(..keep_from);
                    versions.shrink_to_fit();
                }
            }
        }
        self.log = self.log.skip(self.log_position(revision));
        Ok(())
    }

    /// The changes made at `revision` (none if it made no revision or was compacted away).
    pub(crate) fn changes_at(&self, revision: i64) -> &[Change] {
        // Most callers ask for the newest revision: the log's last entry, found without a search.
        let entry = match self.log.last() {
            Some(newest) if newest.revision == revision => Some(newest),
            _ => self
                .log
                .binary_search_by_key(&revision, |entry| entry.revision)
                .ok()
                .and_then(|at| self.log.get(at)),
        };
        entry.map_or(&[], |entry| entry.changes.as_slice())
    }

    /// The changes made at revisions `>= from`, in revision order (history still kept only).
    pub(crate) fn changes_since(&self, from: i64) -> impl Iterator<Item = &RevisionChanges> {
        self.log
            .focus()
            .narrow(self.log_position(from)..)
            .into_iter()
    }

    /// Where in the log the first revision `>= revision` is (the log's length if none is).
    fn log_position(&self, revision: i64) -> usize {
        match self
            .log
            .binary_search_by_key(&revision, |entry| entry.revision)
        {
            Ok(at) | Err(at) => at,
        }
    }

    /// Number of keys with any retained version (live or tombstoned); for tests and inspection.
    #[cfg(test)]
    pub(crate) fn indexed_keys(&self) -> usize {
        self.index.len()
    }

    /// Number of versions retained over all keys; for tests and inspection.
    #[cfg(test)]
    pub(crate) fn retained_versions(&self) -> usize {
        self.index.values().map(|versions| versions.len()).sum()
    }
}

/// What a snapshot keeps of a store (see `engine::snapshot`): everything a read or a watch can
/// still reach.
impl Store {
    /// The live pairs older than the compaction point: all that compaction kept of the history
    /// before it. Everything from the point on is in [`Store::changes_since`].
    pub(crate) fn compacted_base(&self) -> impl Iterator<Item = &KeyValue> {
        let point = self.compact_revision;
        self.index
            .values()
            .filter_map(|versions| versions.first())
            .filter(move |v| v.revision < point)
            .filter_map(|v| v.kv.as_ref())
    }

    /// Rebuilds a store from what [`Store::compacted_base`] and [`Store::changes_since`] gave
    /// (the caller checked that revisions increase and stay within `revision`).
    pub(crate) fn restore(
        revision: i64,
        compact_revision: i64,
        base: Vec<KeyValue>,
        log: Vec<RevisionChanges>,
    ) -> Store {
        let mut index: OrdMap<IndexKey, Versions> = OrdMap::new();
        let mut push = |key: &[u8], version: Version| match index.get_mut(key) {
            Some(versions) => versions.push(version),
            None => {
                index.insert(IndexKey::from_slice(key), smallvec::smallvec![version]);
            }
        };
        for kv in base {
            push(
                &kv.key.clone(),
                Version {
                    revision: kv.mod_revision,
                    kv: Some(kv),
                },
            );
        }
        let mut changes = Vector::new();
        for entry in log {
            for change in &entry.changes {
                let kv = match change {
                    Change::Put(kv) => Some(kv.clone()),
                    Change::Delete { .. } => None,
                };
                push(
                    change.key(),
                    Version {
                        revision: entry.revision,
                        kv,
                    },
                );
            }
            changes.push_back(entry);
        }
        Store {
            revision,
            compact_revision,
            index,
            log: changes,
            writing: None,
            pending: SmallVec::new(),
            arena: Arena::default(),
        }
    }
}

/// The live pair in `versions` as of `revision`, if the newest version at or before it is a put.
fn live_at(versions: &[Version], revision: i64) -> Option<&KeyValue> {
    // Most reads are of the newest version: no search through a long history for those.
    if let Some(newest) = versions.last().filter(|v| v.revision <= revision) {
        return newest.kv.as_ref();
    }
    let at = versions.partition_point(|v| v.revision <= revision);
    at.checked_sub(1).and_then(|i| versions[i].kv.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_keys_and_values_read_back_whatever_their_size() {
        let mut store = Store::default();
        let big = vec![7u8; ARENA_MAX_PIECE + 1];
        // Enough pieces to fill several chunks.
        let pieces: Vec<Vec<u8>> = (0..ARENA_CHUNK / 20)
            .map(|i| format!("value {i}").repeat(i % 13).into_bytes())
            .chain([Vec::new(), big])
            .collect();
        let kept: Vec<Bytes> = pieces.iter().map(|p| store.keep(p)).collect();
        for (piece, kept) in pieces.iter().zip(&kept) {
            assert_eq!(&kept[..], &piece[..]);
        }
        // A fork stores into chunks of its own; what both already hold stays as it was.
        let mut fork = store.clone();
        let a = store.keep(b"after");
        let b = fork.keep(b"forked");
        assert_eq!((&a[..], &b[..]), (&b"after"[..], &b"forked"[..]));
        assert_eq!(&kept[1][..], &pieces[1][..]);
    }

    fn put(store: &mut Store, key: &str, value: &str) -> i64 {
        store.put(key.as_bytes(), value.to_owned().into(), 0);
        store.commit().unwrap_or_default()
    }

    fn delete(store: &mut Store, key: &str) -> Option<i64> {
        store.delete_range(&KeyRange::new(key.as_bytes(), b""));
        store.commit()
    }

    fn value_at(store: &Store, key: &str, revision: i64) -> Option<String> {
        store
            .get(key.as_bytes(), revision)
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    }

    #[test]
    fn prefix_ends_skip_trailing_ff_bytes() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff, 0xff]), [0]);
        assert_eq!(prefix_end(b""), [0]);
    }

    #[test]
    fn a_new_store_is_at_revision_one_and_the_first_write_makes_two() {
        let mut store = Store::default();
        assert_eq!(store.revision(), 1);
        assert_eq!(put(&mut store, "a", "1"), 2);
        assert_eq!(store.revision(), 2);
    }

    #[test]
    fn versions_count_puts_and_a_delete_restarts_the_key() {
        let mut store = Store::default();
        put(&mut store, "k", "1");
        put(&mut store, "k", "2");
        let kv = store.get_current(b"k").cloned().unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
        assert_eq!(delete(&mut store, "k"), Some(4));
        assert!(store.get_current(b"k").is_none());
        put(&mut store, "k", "3");
        let kv = store.get_current(b"k").cloned().unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
    }

    #[test]
    fn deleting_nothing_makes_no_revision() {
        let mut store = Store::default();
        put(&mut store, "a", "1");
        assert_eq!(delete(&mut store, "missing"), None);
        assert_eq!(store.revision(), 2);
    }

    #[test]
    fn historical_reads_see_the_state_at_their_revision() {
        let mut store = Store::default();
        put(&mut store, "k", "v1"); // 2
        put(&mut store, "k", "v2"); // 3
        delete(&mut store, "k"); // 4
        assert_eq!(value_at(&store, "k", 1), None);
        assert_eq!(value_at(&store, "k", 2).as_deref(), Some("v1"));
        assert_eq!(value_at(&store, "k", 3).as_deref(), Some("v2"));
        assert_eq!(value_at(&store, "k", 4), None);
    }

    #[test]
    fn ranges_follow_etcds_range_end_rules() {
        let mut store = Store::default();
        for k in ["a", "b", "c", "d"] {
            put(&mut store, k, k);
        }
        let keys = |start: &[u8], end: &[u8]| -> Vec<Vec<u8>> {
            let (kvs, _) = store.range(&KeyRange::new(start, end), store.revision(), 0, false);
            kvs.iter().map(|kv| kv.key.to_vec()).collect()
        };
        assert_eq!(keys(b"b", b""), vec![b"b".to_vec()]);
        assert_eq!(keys(b"b", b"d"), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(b"b", b"\0").len(), 3);
        assert_eq!(keys(b"\0", b"\0").len(), 4);
        assert!(
            keys(b"c", b"a").is_empty(),
            "an inverted range is empty, not an error"
        );
    }

    #[test]
    fn count_ignores_the_limit() {
        let mut store = Store::default();
        for k in ["a", "b", "c"] {
            put(&mut store, k, k);
        }
        let (kvs, count) = store.range(&KeyRange::new(b"a", b"\0"), store.revision(), 1, false);
        assert_eq!((kvs.len(), count), (1, 3));
    }

    #[test]
    fn read_revisions_are_checked_against_current_and_compacted() {
        let mut store = Store::default();
        put(&mut store, "k", "1"); // 2
        put(&mut store, "k", "2"); // 3
        assert_eq!(store.check_read_revision(0), Ok(3));
        assert_eq!(store.check_read_revision(-5), Ok(3));
        assert_eq!(store.check_read_revision(4), Err(EtcdError::FutureRevision));
        store.compact(3).unwrap();
        assert_eq!(store.check_read_revision(2), Err(EtcdError::Compacted));
        assert_eq!(store.check_read_revision(3), Ok(3));
    }

    #[test]
    fn compaction_frees_history_and_keeps_what_later_reads_need() {
        let mut store = Store::default();
        put(&mut store, "live", "1"); // 2
        put(&mut store, "live", "2"); // 3
        put(&mut store, "gone", "1"); // 4
        delete(&mut store, "gone"); // 5
        put(&mut store, "late", "1"); // 6
        store.compact(5).unwrap();
        // "live" keeps only its version 3; "gone" keeps its tombstone at exactly 5.
        assert_eq!(store.retained_versions(), 3);
        assert_eq!(value_at(&store, "live", 5).as_deref(), Some("2"));
        store.compact(6).unwrap();
        assert_eq!(
            store.indexed_keys(),
            2,
            "the tombstone below the point is freed"
        );
        assert_eq!(
            store
                .changes_since(0)
                .map(|c| c.revision)
                .collect::<Vec<_>>(),
            vec![6]
        );
    }

    #[test]
    fn compact_refuses_old_and_future_revisions() {
        let mut store = Store::default();
        assert_eq!(store.compact(0), Ok(()), "compact revision starts at -1");
        assert_eq!(store.compact(0), Err(EtcdError::Compacted));
        assert_eq!(store.compact(-1), Err(EtcdError::Compacted));
        assert_eq!(store.compact(2), Err(EtcdError::FutureRevision));
        assert_eq!(store.compact(1), Ok(()));
    }

    #[test]
    fn a_write_txn_is_one_revision_and_rollback_undoes_it() {
        let mut store = Store::default();
        put(&mut store, "a", "1"); // 2
        store.put(b"a", Bytes::from_static(b"2"), 0);
        store.put(b"b", Bytes::from_static(b"1"), 0);
        store.delete_range(&KeyRange::new(b"a", b""));
        assert_eq!(store.revision(), 3);
        assert!(
            store.changes_since(3).next().is_none(),
            "the log holds whole revisions only"
        );
        let mut committed = store.clone();
        assert_eq!(committed.commit(), Some(3));
        assert_eq!(
            committed.changes_since(3).next().map(|c| c.changes.len()),
            Some(3)
        );
        store.rollback();
        assert_eq!(store.revision(), 2);
        assert_eq!(value_at(&store, "a", 2).as_deref(), Some("1"));
        assert!(store.get_current(b"b").is_none());
        assert_eq!(store.indexed_keys(), 1);
        assert_eq!(store.changes_since(0).count(), 1);
    }
}
