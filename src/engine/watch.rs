//! What a watcher sees: the events of the store's change log that fall in its range and pass its
//! filters, grouped by revision. Watchers keep no queue of their own: each remembers the next
//! revision it needs and reads it from the history the store keeps anyway, so a slow reader
//! costs no memory and misses nothing until compaction overtakes it.

use crate::pb::mvccpb::{event::EventType, Event, KeyValue};

use super::mvcc::{Change, KeyRange, Store};

/// Which changes a watcher wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchFilter {
    pub(crate) range: KeyRange,
    pub(crate) no_put: bool,
    pub(crate) no_delete: bool,
    pub(crate) prev_kv: bool,
}

/// The events of one revision, in the order they happened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RevisionEvents {
    pub(crate) revision: i64,
    pub(crate) events: Vec<Event>,
}

/// The result of reading a watcher's next events.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WatchRead {
    /// Events from the revision asked for, up to `next - 1` (revisions without a matching event
    /// are skipped); read again from `next`.
    Events {
        batches: Vec<RevisionEvents>,
        next: i64,
        /// The store's revision at the time of the read.
        current: i64,
    },
    /// The revision asked for is compacted; the watcher cannot go on.
    Compacted { compact_revision: i64 },
}

/// Reads the events for `filter` from revision `from` on, stopping after `max_revisions`
/// revisions that have events for it.
pub(crate) fn read(
    store: &Store,
    filter: &WatchFilter,
    from: i64,
    max_revisions: usize,
) -> WatchRead {
    let current = store.revision();
    if from < store.compact_revision() {
        return WatchRead::Compacted {
            compact_revision: store.compact_revision(),
        };
    }
    let mut batches: Vec<RevisionEvents> = Vec::new();
    let mut next = from.max(current + 1);
    for changes in store.changes_since(from) {
        if changes.revision > current {
            break;
        }
        if batches.len() == max_revisions {
            next = changes.revision;
            break;
        }
        let events: Vec<Event> = changes
            .changes
            .iter()
            .filter(|change| filter.range.contains(change.key()))
            .filter_map(|change| event(store, filter, changes.revision, change))
            .collect();
        if !events.is_empty() {
            batches.push(RevisionEvents {
                revision: changes.revision,
                events,
            });
        }
    }
    WatchRead::Events {
        batches,
        next,
        current,
    }
}

fn event(store: &Store, filter: &WatchFilter, revision: i64, change: &Change) -> Option<Event> {
    let (kind, kv) = match change {
        Change::Put(kv) if !filter.no_put => (EventType::Put, KeyValue::clone(kv)),
        // A delete event carries only the key and the revision of the delete.
        Change::Delete { key } if !filter.no_delete => (
            EventType::Delete,
            KeyValue {
                key: key.clone(),
                mod_revision: revision,
                ..Default::default()
            },
        ),
        _ => return None,
    };
    // The previous pair is the key as of the revision before, if that is still readable: never
    // for a creation, and silently absent once compacted.
    let created = kind == EventType::Put && kv.create_revision == kv.mod_revision;
    let prev_kv = if filter.prev_kv && !created && revision > store.compact_revision() {
        store.get(&kv.key, revision - 1).cloned()
    } else {
        None
    };
    Some(Event {
        r#type: kind as i32,
        kv: Some(kv),
        prev_kv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(key: &str, end: &str) -> WatchFilter {
        WatchFilter {
            range: KeyRange::new(key.as_bytes(), end.as_bytes()),
            no_put: false,
            no_delete: false,
            prev_kv: true,
        }
    }

    fn put(store: &mut Store, key: &str, value: &str) {
        store.put(key.as_bytes(), value.to_owned().into(), 0);
        store.commit();
    }

    fn revisions(read: &WatchRead) -> Vec<i64> {
        match read {
            WatchRead::Events { batches, .. } => batches.iter().map(|b| b.revision).collect(),
            WatchRead::Compacted { .. } => panic!("compacted"),
        }
    }

    #[test]
    fn reads_only_the_watched_range_from_the_asked_revision() {
        let mut store = Store::default();
        put(&mut store, "a", "1"); // 2
        put(&mut store, "b", "1"); // 3
        put(&mut store, "a", "2"); // 4
        let read = read(&store, &filter("a", ""), 3, 100);
        assert_eq!(revisions(&read), [4]);
        let WatchRead::Events {
            batches,
            next,
            current,
        } = read
        else {
            unreachable!()
        };
        assert_eq!((next, current), (5, 4));
        assert_eq!(
            batches[0].events[0]
                .prev_kv
                .as_ref()
                .map(|kv| kv.value.to_vec()),
            Some(b"1".to_vec())
        );
    }

    #[test]
    fn stops_after_the_asked_number_of_revisions() {
        let mut store = Store::default();
        for i in 0..10 {
            put(&mut store, "k", &i.to_string()); // 2..=11
        }
        let read = read(&store, &filter("k", ""), 2, 3);
        assert_eq!(revisions(&read), [2, 3, 4]);
        let WatchRead::Events { next, .. } = read else {
            unreachable!()
        };
        assert_eq!(next, 5);
    }

    #[test]
    fn deletes_carry_only_key_and_revision_and_creations_no_prev() {
        let mut store = Store::default();
        put(&mut store, "k", "v"); // 2
        store.delete_range(&KeyRange::new(b"k", b""));
        store.commit(); // 3
        let WatchRead::Events { batches, .. } = read(&store, &filter("k", ""), 2, 10) else {
            panic!()
        };
        assert_eq!(
            batches[0].events[0].prev_kv, None,
            "a creation has no previous pair"
        );
        let delete = &batches[1].events[0];
        assert_eq!(delete.r#type, EventType::Delete as i32);
        let kv = delete.kv.clone().unwrap();
        assert_eq!(
            (&kv.key[..], kv.mod_revision, kv.version, kv.value.len()),
            (&b"k"[..], 3, 0, 0)
        );
        assert_eq!(
            delete.prev_kv.as_ref().map(|kv| kv.value.to_vec()),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn a_compacted_start_is_reported() {
        let mut store = Store::default();
        put(&mut store, "k", "1");
        put(&mut store, "k", "2");
        store.compact(3).unwrap();
        assert_eq!(
            read(&store, &filter("k", ""), 2, 10),
            WatchRead::Compacted {
                compact_revision: 3
            }
        );
        assert_eq!(revisions(&read(&store, &filter("k", ""), 3, 10)), [3]);
    }

    #[test]
    fn filters_drop_whole_revisions_when_nothing_is_left() {
        let mut store = Store::default();
        put(&mut store, "k", "1"); // 2
        store.delete_range(&KeyRange::new(b"k", b""));
        store.commit(); // 3
        let mut no_put = filter("k", "");
        no_put.no_put = true;
        assert_eq!(revisions(&read(&store, &no_put, 1, 10)), [3]);
    }
}
