//! Reads of the state for a test's assertions, and the state changes of a simulated restart:
//! nothing here answers a client request.

use std::time::Duration;

use super::mvcc::{RevisionChanges, Store};
use super::{Change, Engine, KeyRange, KvState};
use crate::fixture::{FixtureHistory, HistoryChange, HistoryKv};
use crate::pb::mvccpb::KeyValue;

impl Engine {
    /// Every lease as `(id, granted TTL, time left, keys)`, soonest expiry first.
    pub(crate) fn inspect_leases(&self) -> Vec<(i64, i64, Duration, Vec<Vec<u8>>)> {
        let now = self.now();
        self.state()
            .lessor
            .by_expiry()
            .map(|l| {
                let keys = l.keys.iter().cloned().collect();
                (l.id, l.ttl, l.expiry.saturating_sub(now), keys)
            })
            .collect()
    }

    /// What a member restart changes: simple tokens are gone (etcd keeps them in memory only)
    /// and the raft term goes up (the restarted members elect a leader again). Keys, history,
    /// leases with their deadlines, users and roles stay.
    pub(crate) fn restart(&self) {
        self.auth(|auth| auth.drop_tokens());
        self.cluster().new_term();
    }

    /// A restart that lost its data directory: an empty store, no leases, no users or roles,
    /// no alarms. Members stay, and the raft term goes up as for any restart.
    pub(crate) fn wipe(&self) {
        {
            let mut state = self.state();
            *state = KvState::default();
            state.account_growth_from_scratch();
        }
        self.auth(|auth| *auth = Default::default());
        self.cluster().new_term();
        self.shared.revisions.send_replace(1);
        self.leases_changed();
    }
}

/// A store image as fixtures (version 2) describe it: built by a `history` fixture or etcdctl's
/// output, and written by `TestEtcd::dump`.
impl Engine {
    /// Whether nothing was written yet: a history fixture needs a fresh store.
    pub(crate) fn is_fresh(&self) -> bool {
        let state = self.state();
        state.store.revision() == 1
            && state.store.compact_revision() < 0
            && state.lessor.leases().next().is_none()
    }

    /// Replaces the fresh state with `image`. Leases start their full TTL now, as a snapshot's.
    pub(crate) fn restore_history(&self, image: &FixtureHistory) {
        let kv = |kv: &HistoryKv| KeyValue {
            key: kv.key.clone().into(),
            value: kv.value.clone().into(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        };
        let log = image
            .log
            .iter()
            .map(|(revision, changes)| RevisionChanges {
                revision: *revision,
                changes: changes
                    .iter()
                    .map(|change| match change {
                        HistoryChange::Put(put) => Change::Put(kv(put)),
                        HistoryChange::Delete(key) => Change::Delete {
                            key: key.clone().into(),
                        },
                    })
                    .collect(),
            })
            .collect();
        let base = image.base.iter().map(kv).collect();
        let store = Store::restore(image.revision, image.compact_revision, base, log);
        let now = self.now();
        {
            let mut state = self.state();
            for (id, ttl) in &image.leases {
                // The fixture checked IDs are unique and TTLs in range.
                let _ = state.lessor.grant(*id, *ttl, now);
            }
            let (live, _) = store.range(&KeyRange::new(b"\0", b"\0"), store.revision(), 0, false);
            for kv in live.iter().filter(|kv| kv.lease != 0) {
                state.lessor.attach(kv.lease, &kv.key);
            }
            state.store = store;
            state.account_growth_from_scratch();
        }
        self.shared.revisions.send_replace(image.revision);
        self.leases_changed();
    }

    /// The state as a store image: what `dump` writes.
    pub(crate) fn history_image(&self) -> FixtureHistory {
        let kv = |kv: &KeyValue| HistoryKv {
            key: kv.key.to_vec(),
            value: kv.value.to_vec(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        };
        let state = self.state();
        let store = &state.store;
        let mut leases: Vec<(i64, i64)> = state.lessor.leases().map(|l| (l.id, l.ttl)).collect();
        leases.sort_unstable();
        FixtureHistory {
            revision: store.revision(),
            compact_revision: store.compact_revision(),
            base: store.compacted_base().map(kv).collect(),
            log: store
                .changes_since(0)
                .map(|entry| {
                    let changes = entry
                        .changes
                        .iter()
                        .map(|change| match change {
                            Change::Put(put) => HistoryChange::Put(kv(put)),
                            Change::Delete { key } => HistoryChange::Delete(key.to_vec()),
                        })
                        .collect();
                    (entry.revision, changes)
                })
                .collect(),
            leases,
            compacted_log: Vec::new(),
            named: Vec::new(),
        }
    }
}
