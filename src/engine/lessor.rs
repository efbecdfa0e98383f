//! Leases and the keys attached to them. This is the part the KV service needs (a put names a
//! lease that must exist; keys move between leases); grants, keep-alives and expiry build on it.

use std::collections::{BTreeSet, HashMap};

/// One granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) id: i64,
    pub(crate) ttl: i64,
    /// Keys attached to the lease, in key order.
    pub(crate) keys: BTreeSet<Vec<u8>>,
}

/// The lease table.
#[derive(Debug, Default)]
pub(crate) struct Lessor {
    leases: HashMap<i64, Lease>,
    /// Attach/detach steps of the open write txn, undone in reverse if it is rolled back.
    journal: Option<Vec<Step>>,
}

#[derive(Debug)]
enum Step {
    Attached(i64, Vec<u8>),
    Detached(i64, Vec<u8>),
}

impl Lessor {
    /// Adds a lease; an existing lease with the same ID is kept.
    pub(crate) fn grant(&mut self, id: i64, ttl: i64) {
        self.leases.entry(id).or_insert_with(|| Lease {
            id,
            ttl,
            keys: BTreeSet::new(),
        });
    }

    /// Whether lease `id` exists.
    pub(crate) fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// The lease `id`, if granted.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Every granted lease, in no particular order.
    pub(crate) fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Attaches `key` to lease `id` (no-op for a lease that does not exist).
    pub(crate) fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            if lease.keys.insert(key.to_vec()) {
                if let Some(journal) = &mut self.journal {
                    journal.push(Step::Attached(id, key.to_vec()));
                }
            }
        }
    }

    /// Detaches `key` from lease `id`.
    pub(crate) fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            if lease.keys.remove(key) {
                if let Some(journal) = &mut self.journal {
                    journal.push(Step::Detached(id, key.to_vec()));
                }
            }
        }
    }

    /// Starts recording attach/detach steps so that [`Lessor::rollback`] can undo them.
    pub(crate) fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps the recorded steps.
    pub(crate) fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes the recorded steps.
    pub(crate) fn rollback(&mut self) {
        for step in self.journal.take().unwrap_or_default().into_iter().rev() {
            match step {
                Step::Attached(id, key) => {
                    if let Some(lease) = self.leases.get_mut(&id) {
                        lease.keys.remove(&key);
                    }
                }
                Step::Detached(id, key) => {
                    if let Some(lease) = self.leases.get_mut(&id) {
                        lease.keys.insert(key);
                    }
                }
            }
        }
    }
}
