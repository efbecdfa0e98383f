//! Leases and the keys attached to them: the lease table with each lease's deadline on the
//! server's clock, the IDs the server picks, and the attach/detach journal a txn rolls back.
//!
//! Time comes in as an argument (a [`Duration`] on the server's clock), so this table never reads
//! a clock itself and tests can drive it with plain numbers.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::EtcdError;

/// The smallest TTL a lease gets: etcd raises anything below 1.5 election timeouts (1.5 s with
/// default timings) to whole seconds, so TTLs of 1, 0 and -5 all become 2.
pub(crate) const MIN_TTL: i64 = 2;

/// The largest TTL etcd grants (about 285 years); one more second is "too large lease TTL".
pub(crate) const MAX_TTL: i64 = 9_000_000_000;

/// One granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) id: i64,
    /// The granted TTL in seconds (after raising it to the minimum).
    pub(crate) ttl: i64,
    /// When the lease expires, on the server's clock.
    pub(crate) expiry: Duration,
    /// Keys attached to the lease, in key order.
    pub(crate) keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    /// Whole seconds left at `now`, truncated toward zero as etcd's TimeToLive shows them; 0 once
    /// the deadline has passed.
    pub(crate) fn remaining_secs(&self, now: Duration) -> i64 {
        i64::try_from(self.expiry.saturating_sub(now).as_secs()).unwrap_or(i64::MAX)
    }
}

/// The lease table.
#[derive(Debug, Default, Clone)]
pub(crate) struct Lessor {
    leases: HashMap<i64, Lease>,
    /// `(expiry, id)` of every lease, so the next deadline is the first entry.
    deadlines: BTreeSet<(Duration, i64)>,
    ids: IdGenerator,
    /// Attach/detach steps of the open write txn, undone in reverse if it is rolled back.
    journal: Option<Vec<Step>>,
}

#[derive(Debug, Clone)]
enum Step {
    Attached(i64, Vec<u8>),
    Detached(i64, Vec<u8>),
}

/// Lease IDs as an etcd member picks them: the low 16 bits of the member ID, then 40 bits of the
/// Unix time in milliseconds when the server started, then a counter; the low 48 bits count up
/// together. etcd spends one ID on the lease and one on its raft proposal, so its consecutive
/// grants differ by 2, and so do ours.
#[derive(Debug, Clone)]
struct IdGenerator {
    next: u64,
}

/// The low 16 bits of the member ID in our response headers (`8e9e05c52164694d`).
const MEMBER_ID_LOW16: u64 = 0x694d;

impl Default for IdGenerator {
    fn default() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        IdGenerator {
            next: (MEMBER_ID_LOW16 << 48) | ((millis & 0xff_ffff_ffff) << 8),
        }
    }
}

impl IdGenerator {
    fn next_id(&mut self) -> i64 {
        const LOW48: u64 = (1 << 48) - 1;
        let counter = (self.next & LOW48).wrapping_add(2) & LOW48;
        self.next = (self.next & !LOW48) | counter;
        // Positive, as etcd clears the top bit; never 0, which means "no lease".
        match (self.next & (u64::MAX >> 1)) as i64 {
            0 => self.next_id(),
            id => id,
        }
    }
}

impl Lessor {
    /// Grants a lease at `now` (clock time): ID 0 asks the server to pick one; a TTL below the
    /// minimum is raised to it. Returns the lease as stored.
    pub(crate) fn grant(&mut self, id: i64, ttl: i64, now: Duration) -> Result<&Lease, EtcdError> {
        if ttl > MAX_TTL {
            return Err(EtcdError::LeaseTtlTooLarge);
        }
        // etcd does not retry when the ID it picked is taken: that grant fails as a duplicate.
        let id = if id == 0 { self.ids.next_id() } else { id };
        if self.leases.contains_key(&id) {
            return Err(EtcdError::LeaseExists);
        }
        let ttl = ttl.max(MIN_TTL);
        let expiry = now.saturating_add(ttl_duration(ttl));
        self.deadlines.insert((expiry, id));
        let lease = self.leases.entry(id).or_insert(Lease {
            id,
            ttl,
            expiry,
            keys: BTreeSet::new(),
        });
        Ok(lease)
    }

    /// Restarts lease `id`'s full TTL from `now`. Returns the granted TTL, or `None` if there is
    /// no such lease.
    pub(crate) fn renew(&mut self, id: i64, now: Duration) -> Option<i64> {
        let lease = self.leases.get_mut(&id)?;
        self.deadlines.remove(&(lease.expiry, id));
        lease.expiry = now.saturating_add(ttl_duration(lease.ttl));
        self.deadlines.insert((lease.expiry, id));
        Some(lease.ttl)
    }

    /// Gives lease `id` a new TTL (with the same limits as a grant) counted from `now`.
    pub(crate) fn reset(&mut self, id: i64, ttl: i64, now: Duration) -> Result<i64, EtcdError> {
        if ttl > MAX_TTL {
            return Err(EtcdError::LeaseTtlTooLarge);
        }
        let lease = self.leases.get_mut(&id).ok_or(EtcdError::LeaseNotFound)?;
        lease.ttl = ttl.max(MIN_TTL);
        self.renew(id, now);
        Ok(id)
    }

    /// Removes lease `id` and returns it (with the keys that were attached).
    pub(crate) fn remove(&mut self, id: i64) -> Option<Lease> {
        let lease = self.leases.remove(&id)?;
        self.deadlines.remove(&(lease.expiry, id));
        Some(lease)
    }

    /// The soonest deadline of any lease.
    pub(crate) fn next_expiry(&self) -> Option<Duration> {
        self.deadlines.first().map(|(expiry, _)| *expiry)
    }

    /// The leases whose deadline is at or before `now`, soonest first.
    pub(crate) fn expired(&self, now: Duration) -> Vec<i64> {
        self.deadlines
            .iter()
            .take_while(|(expiry, _)| *expiry <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Every lease, soonest deadline first (the order etcd's leader lists them in).
    pub(crate) fn by_expiry(&self) -> impl Iterator<Item = &Lease> {
        self.deadlines
            .iter()
            .filter_map(|(_, id)| self.leases.get(id))
    }

    /// Whether lease `id` exists.
    pub(crate) fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// The lease `id`, if granted.
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

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}
