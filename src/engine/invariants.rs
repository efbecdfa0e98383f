//! The engine's MVCC invariants, checked after every step of a sequence of requests. Two drivers
//! share these checks: seeded random sequences (the property test below; a failing seed is
//! printed, `TEST_ETCD_SEEDS=N` runs more seeds) and the coverage-guided fuzzer in `fuzz/`, which
//! builds the same [`Op`]s from its input (feature `__fuzz`).
//!
//! Invariants:
//! - the revision only grows, by exactly one for a request that changed the state, and not at
//!   all for a read or a refused request;
//! - a read at revision R equals the state right after the write that made R, for as long as R
//!   is retained, and any read that succeeds agrees with it (count, values, filters);
//! - the watch events from R on, applied to the state at R, rebuild the current state, for any
//!   key range;
//! - HashKV at R depends only on the history retained up to R;
//! - compaction never changes a read at or above the compact revision, and refuses below it;
//! - a lease holds exactly the keys attached to it: a revoked or expired lease leaves none of
//!   its keys behind, no key names a lease that is gone, and no lease outlives its deadline;
//! - a snapshot restores into an engine that answers every read as the original, and a fork
//!   and its original never see each other's writes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::pb::etcdserverpb::{
    compare::TargetUnion, request_op::Request, CompactionRequest, DeleteRangeRequest,
    LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::pb::mvccpb::{event::EventType, KeyValue};

use super::{Clock, Engine, EtcdError, KeyRange, Limits, WatchFilter, WatchRead};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// A key: one of a few short names (so that requests collide), or any bytes.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub enum Key {
    /// `k0` to `k11`.
    Small(u8),
    /// Any bytes, the empty key included.
    Raw(Vec<u8>),
}

impl Key {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Key::Small(n) => format!("k{}", n % 12).into_bytes(),
            Key::Raw(bytes) => bytes.clone(),
        }
    }
}

/// A `range_end` for a key.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub enum End {
    /// Empty: the key alone.
    Single,
    /// Up to this key (maybe before the start: an empty range).
    Key(Key),
    /// Every key with the start as prefix.
    Prefix,
    /// `"\0"`: every key from the start on.
    FromKey,
}

impl End {
    fn bytes(&self, key: &[u8]) -> Vec<u8> {
        match self {
            End::Single => Vec::new(),
            End::Key(end) => end.bytes(),
            End::Prefix => super::prefix_end(key),
            End::FromKey => vec![0],
        }
    }
}

/// A revision, relative to the current one so that inputs stay meaningful as the store grows.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub enum Rev {
    /// 0, which most requests read as "current".
    Zero,
    /// This many revisions back (maybe compacted, maybe below 1).
    Back(u8),
    /// Past the current revision.
    Ahead(u8),
    /// Any revision, negative included.
    Raw(i64),
}

impl Rev {
    fn resolve(self, current: i64) -> i64 {
        match self {
            Rev::Zero => 0,
            Rev::Back(n) => current - i64::from(n % 32),
            Rev::Ahead(n) => current + 1 + i64::from(n % 4),
            Rev::Raw(revision) => revision,
        }
    }
}

/// A lease ID: none, one granted earlier in the sequence, or any number.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub enum LeaseRef {
    /// 0.
    None,
    /// The n-th lease granted so far (modulo their count), live or not.
    Granted(u8),
    /// Any ID.
    Raw(i64),
}

/// A Put, with flags that may contradict its value or lease.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub struct Put {
    pub key: Key,
    /// The value `n`, or empty for 0.
    pub value: u8,
    pub lease: LeaseRef,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

/// A DeleteRange.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub struct Delete {
    pub key: Key,
    pub end: End,
    pub prev_kv: bool,
}

/// A Range with every option, any of them out of bounds.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub struct Range {
    pub key: Key,
    pub end: End,
    pub revision: Rev,
    pub limit: i64,
    pub sort_order: i32,
    pub sort_target: i32,
    pub serializable: bool,
    pub keys_only: bool,
    pub count_only: bool,
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

/// A txn compare; `target` and `result` are raw enum numbers, the value may not match the
/// target.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub struct Compare {
    pub key: Key,
    pub end: End,
    pub target: i32,
    pub result: i32,
    pub value: CompareValue,
}

/// What a compare compares with.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub enum CompareValue {
    Version(i64),
    Create(Rev),
    Mod(Rev),
    Value(u8),
    Lease(LeaseRef),
    Missing,
}

/// One operation of a txn branch.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub enum TxnOp {
    Put(Put),
    Delete(Delete),
    Range(Range),
    Txn(Box<Txn>),
    /// A `RequestOp` with no request in it.
    Empty,
}

/// A txn, possibly nested, possibly over the op limit or with duplicate keys.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

/// One step of a sequence.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "__fuzz", derive(arbitrary::Arbitrary))]
pub enum Op {
    Put(Put),
    Delete(Delete),
    Range(Range),
    Txn(Txn),
    Compact {
        revision: Rev,
        physical: bool,
    },
    LeaseGrant {
        ttl: i16,
        id: LeaseRef,
    },
    LeaseRevoke(LeaseRef),
    LeaseKeepAlive(LeaseRef),
    /// Moves the manual clock forward this many seconds (leases fall due).
    Advance(u8),
    Watch {
        key: Key,
        end: End,
        from: Rev,
        no_put: bool,
        no_delete: bool,
        prev_kv: bool,
    },
    HashKv(Rev),
    /// Snapshots the engine and goes on with a fresh one restored from it, which must answer
    /// every read as the original did.
    Restore,
    /// Forks the engine, wipes one of the two (every key deleted, history compacted, leases
    /// revoked) and goes on with the other (the fork if `keep_fork`), which must not notice.
    Fork {
        keep_fork: bool,
    },
}

/// Applies [`Op`]s to one engine and checks the invariants after each.
pub struct Checker {
    engine: Engine,
    limits: Limits,
    /// The state after each revision, from the one below the compaction point (checked to
    /// refuse) on.
    history: BTreeMap<i64, State>,
    hashes: BTreeMap<i64, u32>,
    hashed_since: i64,
    /// Every lease ID granted, in order, for [`LeaseRef::Granted`].
    granted: Vec<i64>,
    step: usize,
    label: String,
}

impl Checker {
    /// A checker for the fuzzer: limits that make over-limit txns and too large requests cheap
    /// to reach.
    #[cfg(feature = "__fuzz")]
    pub fn fuzz() -> Self {
        Checker::new(Self::fuzz_limits(), "fuzz")
    }

    #[cfg(feature = "__fuzz")]
    fn fuzz_limits() -> Limits {
        Limits {
            max_txn_ops: 4,
            max_request_bytes: 2048,
            ..Limits::default()
        }
    }

    /// A checker on an engine restored from `snapshot`, or `None` if the snapshot is refused.
    /// What the restored engine reads at each retained revision is taken as its history, after
    /// checking that it is consistent: the watch history rebuilds the present, leases hold
    /// exactly their keys, and it snapshots to something that restores the same.
    #[cfg(feature = "__fuzz")]
    pub fn restored(snapshot: &[u8]) -> Option<Self> {
        let mut checker = Checker::new(Self::fuzz_limits(), "restored");
        checker.engine.restore(snapshot).ok()?;
        let current = checker.engine.revision();
        let compacted = checker.engine.state().store.compact_revision();
        checker.history.clear();
        // The revisions that changed something, and the ends: a damaged snapshot may claim a
        // huge revision with nothing between.
        let mut revisions: Vec<i64> = {
            let state = checker.engine.state();
            state.store.changes_since(0).map(|c| c.revision).collect()
        };
        revisions.extend([compacted.max(1), current]);
        for revision in revisions {
            let state = state_at(&checker.engine, revision);
            assert!(state.is_ok(), "restored: revision {revision} unreadable");
            checker.history.insert(revision, state.unwrap_or_default());
        }
        checker.granted = lease_ids(&checker.engine).collect();
        checker.apply(&Op::Restore);
        Some(checker)
    }

    /// The engine's snapshot.
    #[cfg(feature = "__fuzz")]
    pub fn snapshot(&self) -> Vec<u8> {
        self.engine.snapshot()
    }

    /// A checker on a fresh engine with a manual clock; `label` prefixes failure messages.
    pub(crate) fn new(limits: Limits, label: impl Into<String>) -> Self {
        Checker {
            engine: Engine::with_clock(limits, Clock::manual()),
            limits,
            history: BTreeMap::from([(1, State::new())]),
            hashes: BTreeMap::new(),
            hashed_since: -1,
            granted: Vec::new(),
            step: 0,
            label: label.into(),
        }
    }

    fn lease(&self, lease: LeaseRef) -> i64 {
        match lease {
            LeaseRef::None => 0,
            LeaseRef::Granted(n) if self.granted.is_empty() => i64::from(n),
            LeaseRef::Granted(n) => self.granted[usize::from(n) % self.granted.len()],
            LeaseRef::Raw(id) => id,
        }
    }

    fn put_request(&self, p: &Put) -> PutRequest {
        PutRequest {
            key: p.key.bytes(),
            value: if p.value == 0 {
                Vec::new()
            } else {
                p.value.to_string().into_bytes()
            },
            lease: self.lease(p.lease),
            prev_kv: p.prev_kv,
            ignore_value: p.ignore_value,
            ignore_lease: p.ignore_lease,
        }
    }

    fn delete_request(d: &Delete) -> DeleteRangeRequest {
        let key = d.key.bytes();
        DeleteRangeRequest {
            range_end: d.end.bytes(&key),
            key,
            prev_kv: d.prev_kv,
        }
    }

    fn range_request(&self, r: &Range) -> RangeRequest {
        let key = r.key.bytes();
        RangeRequest {
            range_end: r.end.bytes(&key),
            key,
            limit: r.limit,
            revision: r.revision.resolve(self.engine.revision()),
            sort_order: r.sort_order,
            sort_target: r.sort_target,
            serializable: r.serializable,
            keys_only: r.keys_only,
            count_only: r.count_only,
            min_mod_revision: r.min_mod_revision,
            max_mod_revision: r.max_mod_revision,
            min_create_revision: r.min_create_revision,
            max_create_revision: r.max_create_revision,
        }
    }

    fn txn_request(&self, t: &Txn) -> TxnRequest {
        use crate::pb::etcdserverpb::Compare as PbCompare;
        let current = self.engine.revision();
        let compare = t
            .compare
            .iter()
            .map(|c| {
                let key = c.key.bytes();
                let target_union = match &c.value {
                    CompareValue::Version(v) => Some(TargetUnion::Version(*v)),
                    CompareValue::Create(r) => {
                        Some(TargetUnion::CreateRevision(r.resolve(current)))
                    }
                    CompareValue::Mod(r) => Some(TargetUnion::ModRevision(r.resolve(current))),
                    CompareValue::Value(v) => Some(TargetUnion::Value(v.to_string().into_bytes())),
                    CompareValue::Lease(l) => Some(TargetUnion::Lease(self.lease(*l))),
                    CompareValue::Missing => None,
                };
                PbCompare {
                    range_end: c.end.bytes(&key),
                    key,
                    target: c.target,
                    result: c.result,
                    target_union,
                }
            })
            .collect();
        let ops = |ops: &[TxnOp]| -> Vec<RequestOp> {
            ops.iter()
                .map(|op| RequestOp {
                    request: match op {
                        TxnOp::Put(p) => Some(Request::RequestPut(self.put_request(p))),
                        TxnOp::Delete(d) => {
                            Some(Request::RequestDeleteRange(Self::delete_request(d)))
                        }
                        TxnOp::Range(r) => Some(Request::RequestRange(self.range_request(r))),
                        TxnOp::Txn(t) => Some(Request::RequestTxn(self.txn_request(t))),
                        TxnOp::Empty => None,
                    },
                })
                .collect()
        };
        TxnRequest {
            compare,
            success: ops(&t.success),
            failure: ops(&t.failure),
        }
    }

    fn context(&self) -> String {
        format!("{} step {}", self.label, self.step)
    }

    /// Runs one operation, then checks every invariant.
    pub fn apply(&mut self, op: &Op) {
        let before = self.engine.revision();
        let state_before = state_at(&self.engine, 0).unwrap_or_default();
        let leases_before = self.engine.lease_leases().leases.len();
        let mut reads_only = false;
        let mut expired_at_most = 0;
        match op {
            Op::Put(p) => {
                let _ = self.engine.put(&self.put_request(p));
            }
            Op::Delete(d) => {
                let _ = self.engine.delete_range(&Self::delete_request(d));
            }
            Op::Range(r) => {
                reads_only = true;
                let request = self.range_request(r);
                if let Ok(resp) = self.engine.range(&request) {
                    self.check_range_answer(&request, &resp.kvs, resp.count, resp.more);
                }
            }
            Op::Txn(t) => {
                // Duplicate keys or too many ops are refused as a whole: a no-op, also checked.
                let _ = self.engine.txn(&self.txn_request(t));
            }
            Op::Compact { revision, physical } => {
                let revision = revision.resolve(before);
                let result = self.engine.compact(&CompactionRequest {
                    revision,
                    physical: *physical,
                });
                if revision > before {
                    assert_eq!(
                        result.err(),
                        Some(EtcdError::FutureRevision),
                        "{}: compact at {revision} past {before}",
                        self.context()
                    );
                }
            }
            Op::LeaseGrant { ttl, id } => {
                let r = LeaseGrantRequest {
                    ttl: i64::from(*ttl),
                    id: self.lease(*id),
                };
                if let Ok(resp) = self.engine.lease_grant(&r) {
                    self.granted.push(resp.id);
                }
            }
            Op::LeaseRevoke(lease) => {
                let id = self.lease(*lease);
                if self.engine.lease_revoke(id).is_ok() {
                    let gone = self.engine.state().lessor.get(id).is_none();
                    assert!(
                        gone,
                        "{}: lease {id} revoked but still there",
                        self.context()
                    );
                }
            }
            Op::LeaseKeepAlive(lease) => {
                reads_only = true;
                let _ = self.engine.lease_renew(self.lease(*lease));
            }
            Op::Advance(secs) => {
                self.engine.advance(Duration::from_secs(u64::from(*secs)));
                expired_at_most = leases_before;
            }
            Op::Watch {
                key,
                end,
                from,
                no_put,
                no_delete,
                prev_kv,
            } => {
                reads_only = true;
                let key = key.bytes();
                let filter = WatchFilter {
                    range: KeyRange::new(&key, &end.bytes(&key)),
                    no_put: *no_put,
                    no_delete: *no_delete,
                    prev_kv: *prev_kv,
                };
                self.check_watch(&filter, from.resolve(before));
            }
            Op::HashKv(revision) => {
                reads_only = true;
                let _ = self.engine.hash_kv(revision.resolve(before));
            }
            Op::Fork { keep_fork } => {
                reads_only = true;
                let fork = self.engine.fork();
                let wiped = if *keep_fork {
                    std::mem::replace(&mut self.engine, fork)
                } else {
                    fork
                };
                wipe(&wiped);
            }
            Op::Restore => {
                reads_only = true;
                let snapshot = self.engine.snapshot();
                let restored = Engine::with_clock(self.limits, Clock::manual());
                if let Err(err) = restored.restore(&snapshot) {
                    panic!("{}: a snapshot does not restore: {err}", self.context());
                }
                let again = restored.snapshot();
                assert!(
                    again == snapshot,
                    "{}: restore changed the snapshot",
                    self.context()
                );
                self.engine = restored;
                // HashKV at a compaction point answers the hash the compaction kept, which
                // etcd holds in memory only: a restored server computes it afresh (over what
                // the compaction left), so earlier answers are not comparable.
                self.hashes.clear();
            }
        }
        let after = self.engine.revision();
        let state_after = state_at(&self.engine, 0).unwrap_or_default();
        let context = self.context();
        if reads_only {
            assert_eq!(after, before, "{context}: a read moved the revision");
        } else if expired_at_most > 0 {
            // Each lease that expires with keys is one revoke, so one revision.
            assert!(
                before <= after && after - before <= expired_at_most as i64,
                "{context}: {expired_at_most} leases expiring moved {before} -> {after}"
            );
            // Expiry revisions made inside this step are taken as read; later steps check they
            // never change.
            for revision in before + 1..after {
                if let Ok(state) = state_at(&self.engine, revision) {
                    self.history.insert(revision, state);
                }
            }
        } else {
            assert!(
                after == before || after == before + 1,
                "{context}: revision {before} -> {after}"
            );
        }
        if state_after != state_before {
            assert!(after > before, "{context}: a change without a new revision");
        }
        if after == before {
            assert_eq!(
                state_after, state_before,
                "{context}: same revision, new state"
            );
        }
        self.history.insert(after, state_after.clone());
        self.check_history(&state_after);
        self.check_leases();
        self.step += 1;
    }

    /// Every retained revision reads as it was written, compacted ones refuse, HashKV is
    /// stable, and the watch history from the compaction point rebuilds the present.
    fn check_history(&mut self, current: &State) {
        let context = self.context();
        let compacted = self.engine.state().store.compact_revision();
        if compacted != self.hashed_since {
            // HashKV covers the history after the compaction point, as etcd's does: a new
            // compaction starts new hashes.
            self.hashes.clear();
            self.hashed_since = compacted;
        }
        for (revision, expected) in self.history.range(compacted.max(1)..) {
            assert_eq!(
                &state_at(&self.engine, *revision).unwrap_or_default(),
                expected,
                "{context}: read at {revision}"
            );
            if let Ok(hash) = self.engine.hash_kv(*revision) {
                let first = *self.hashes.entry(*revision).or_insert(hash.hash);
                assert_eq!(first, hash.hash, "{context}: HashKV at {revision} changed");
            }
        }
        if compacted > 1 {
            let below = state_at(&self.engine, compacted - 1);
            assert_eq!(
                below,
                Err(EtcdError::Compacted),
                "{context}: below the compaction point"
            );
            // Nothing older is kept around to check.
            self.history = self.history.split_off(&(compacted - 1));
        }
        let from = compacted.max(1);
        if let Some(base) = self.history.get(&from) {
            let all = WatchFilter {
                range: KeyRange::new(&[0], &[0]),
                no_put: false,
                no_delete: false,
                prev_kv: false,
            };
            let replayed = self.replay(&all, base, from + 1);
            assert_eq!(&replayed, current, "{context}: watch replay from {from}");
        }
    }

    /// The state at `from - 1` (`base`) with the watch events from `from` on applied.
    fn replay(&self, filter: &WatchFilter, base: &State, from: i64) -> State {
        let WatchRead::Events { batches, .. } = self.engine.watch_read(filter, from, usize::MAX)
        else {
            panic!("{}: history from {from} is retained", self.context());
        };
        let mut replayed = base.clone();
        for event in batches.iter().flat_map(|b| &b.events) {
            let kv = event.kv.clone().unwrap_or_default();
            if event.r#type == EventType::Delete as i32 {
                replayed.remove(&kv.key[..]);
            } else {
                replayed.insert(kv.key.to_vec(), kv.value.to_vec());
            }
        }
        replayed
    }

    /// A watch from `from`: refused if compacted, else its events are in revision order, in
    /// range, and (unfiltered) rebuild the range's current state from the state before `from`.
    fn check_watch(&self, filter: &WatchFilter, from: i64) {
        let context = self.context();
        let current = self.engine.revision();
        let compacted = self.engine.state().store.compact_revision();
        match self.engine.watch_read(filter, from, usize::MAX) {
            WatchRead::Compacted { compact_revision } => {
                assert!(from < compacted, "{context}: watch from {from} refused");
                assert_eq!(compact_revision, compacted, "{context}: compact revision");
            }
            WatchRead::Events { batches, next, .. } => {
                assert!(from >= compacted, "{context}: watch from compacted {from}");
                assert_eq!(next, from.max(current + 1), "{context}: read everything");
                let mut last = from.max(1) - 1;
                for batch in &batches {
                    assert!(
                        batch.revision > last,
                        "{context}: watch batches out of order"
                    );
                    assert!(
                        batch.revision <= current,
                        "{context}: event from the future"
                    );
                    last = batch.revision;
                    // A compacted previous revision sends no prev_kv at all.
                    let previous = (batch.revision > compacted)
                        .then(|| self.history.get(&(batch.revision - 1)))
                        .flatten();
                    for event in &batch.events {
                        let kv = event.kv.clone().unwrap_or_default();
                        assert!(
                            filter.range.contains(&kv.key),
                            "{context}: event out of range"
                        );
                        assert_eq!(kv.mod_revision, batch.revision, "{context}: event revision");
                        let put = event.r#type != EventType::Delete as i32;
                        assert!(!(put && filter.no_put), "{context}: filtered put sent");
                        assert!(put || !filter.no_delete, "{context}: filtered delete sent");
                        if let (true, Some(previous)) = (filter.prev_kv, previous) {
                            // Several changes to one key in a txn make one event each; only
                            // the first sees the state before the revision.
                            if batch.events.iter().filter(|e| same_key(e, &kv)).count() == 1 {
                                let prev = event.prev_kv.as_ref().map(|p| &p.value[..]);
                                let expected = previous.get(&kv.key[..]).map(|v| &v[..]);
                                assert_eq!(prev, expected, "{context}: prev_kv");
                            }
                        }
                    }
                }
                let start = from.max(1);
                if let (false, false, Some(base)) = (
                    filter.no_put,
                    filter.no_delete,
                    self.history.get(&(start - 1)),
                ) {
                    let in_range = |state: &State| -> State {
                        state
                            .iter()
                            .filter(|(k, _)| filter.range.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    };
                    let replayed = in_range(&self.replay(filter, &in_range(base), start));
                    let now = in_range(&state_at(&self.engine, 0).unwrap_or_default());
                    assert_eq!(replayed, now, "{context}: range watch replay from {start}");
                }
            }
        }
    }

    /// A successful Range agrees with the recorded state at its revision.
    fn check_range_answer(&self, r: &RangeRequest, kvs: &[KeyValue], count: i64, more: bool) {
        let context = self.context();
        let revision = if r.revision <= 0 {
            self.engine.revision()
        } else {
            r.revision
        };
        let Some(state) = self.history.get(&revision) else {
            return;
        };
        let range = KeyRange::new(&r.key, &r.range_end);
        let expected = state.keys().filter(|k| range.contains(k)).count();
        assert_eq!(
            count, expected as i64,
            "{context}: Range count at {revision}"
        );
        if r.limit > 0 {
            assert!(
                kvs.len() as i64 <= r.limit,
                "{context}: Range past its limit"
            );
        }
        if r.count_only {
            assert!(kvs.is_empty(), "{context}: count_only returned pairs");
        }
        assert!(!more || r.limit > 0, "{context}: more without a limit");
        for kv in kvs {
            let value = state.get(&kv.key[..]).map(|v| &v[..]);
            assert!(value.is_some(), "{context}: Range returned a missing key");
            if r.keys_only {
                assert!(kv.value.is_empty(), "{context}: keys_only returned a value");
            } else {
                assert_eq!(
                    Some(&kv.value[..]),
                    value,
                    "{context}: Range value at {revision}"
                );
            }
            assert!(
                kv.mod_revision <= revision,
                "{context}: Range from the future"
            );
        }
    }

    /// Each lease holds exactly the live keys that name it.
    fn check_leases(&self) {
        let context = self.context();
        let state = self.engine.state();
        let (kvs, _) =
            state
                .store
                .range(&KeyRange::new(&[0], &[0]), state.store.revision(), 0, false);
        for kv in kvs.iter().filter(|kv| kv.lease != 0) {
            let held = state
                .lessor
                .get(kv.lease)
                .is_some_and(|lease| lease.keys.contains(&kv.key[..]));
            assert!(
                held,
                "{context}: key {:?} names a lease that does not hold it",
                kv.key
            );
        }
        // With a manual clock, a lease falls due only when the clock is advanced, which expires
        // it at once.
        let now = self.engine.clock().now();
        for lease in state.lessor.leases() {
            assert!(
                lease.expiry > now,
                "{context}: lease {} is past its deadline",
                lease.id
            );
            for key in &lease.keys {
                let attached = state
                    .store
                    .get_current(key)
                    .is_some_and(|kv| kv.lease == lease.id);
                assert!(
                    attached,
                    "{context}: lease {} holds a key left behind",
                    lease.id
                );
            }
        }
    }

    /// Revokes every lease left and checks that none left a key behind.
    pub fn finish(&mut self) {
        let ids: Vec<i64> = lease_ids(&self.engine).collect();
        for id in ids {
            self.apply(&Op::LeaseRevoke(LeaseRef::Raw(id)));
        }
        let leased = state_at_full(&self.engine)
            .into_iter()
            .find(|kv| kv.lease != 0);
        assert_eq!(
            leased.map(|kv| kv.key),
            None,
            "{}: key left after its lease",
            self.label
        );
    }
}

/// Changes everything a write can change in `engine`.
fn wipe(engine: &Engine) {
    let all = DeleteRangeRequest {
        key: vec![0],
        range_end: vec![0],
        prev_kv: false,
    };
    let _ = engine.delete_range(&all);
    let _ = engine.put(&PutRequest {
        key: b"k0".to_vec(),
        value: b"wiped".to_vec(),
        ..Default::default()
    });
    let _ = engine.compact(&CompactionRequest {
        revision: engine.revision(),
        physical: true,
    });
    for lease in engine.lease_leases().leases {
        let _ = engine.lease_revoke(lease.id);
    }
    engine.advance(Duration::from_secs(1 << 40));
}

fn same_key(event: &crate::pb::mvccpb::Event, kv: &KeyValue) -> bool {
    event.kv.as_ref().is_some_and(|e| e.key == kv.key)
}

fn state_at(engine: &Engine, revision: i64) -> Result<State, EtcdError> {
    let r = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision,
        ..Default::default()
    };
    Ok(engine
        .range(&r)?
        .kvs
        .into_iter()
        .map(|kv| (kv.key.to_vec(), kv.value.to_vec()))
        .collect())
}

fn state_at_full(engine: &Engine) -> Vec<KeyValue> {
    let r = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    engine.range(&r).map(|resp| resp.kvs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Picks operations from the engine's own seedable generator: mostly well-formed writes on
    /// a few keys (so that they collide), and some of every other kind the fuzzer makes.
    struct Rng(crate::engine::auth::Random);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0.next() % n
        }

        fn small(&mut self, n: u64) -> u8 {
            self.below(n) as u8
        }

        fn key(&mut self) -> Key {
            match self.below(20) {
                0 => Key::Raw(Vec::new()),
                1 => Key::Raw(vec![0xff, 0]),
                _ => Key::Small(self.small(12)),
            }
        }

        fn end(&mut self) -> End {
            match self.below(6) {
                0 | 1 => End::Single,
                2 | 3 => End::Key(self.key()),
                4 => End::Prefix,
                _ => End::FromKey,
            }
        }

        fn rev(&mut self) -> Rev {
            match self.below(6) {
                0 => Rev::Zero,
                1 => Rev::Ahead(self.small(3)),
                2 => Rev::Raw(-(self.below(3) as i64)),
                _ => Rev::Back(self.small(6)),
            }
        }

        fn lease(&mut self) -> LeaseRef {
            match self.below(8) {
                0 => LeaseRef::Raw(self.below(3) as i64),
                1 | 2 => LeaseRef::Granted(self.small(256)),
                _ => LeaseRef::None,
            }
        }

        fn put(&mut self) -> Put {
            let odd = self.below(10) == 0;
            Put {
                key: self.key(),
                value: 1 + self.small(5),
                lease: self.lease(),
                prev_kv: self.below(2) == 0,
                ignore_value: odd && self.below(2) == 0,
                ignore_lease: odd && self.below(2) == 0,
            }
        }

        fn delete(&mut self) -> Delete {
            Delete {
                key: self.key(),
                end: self.end(),
                prev_kv: self.below(2) == 0,
            }
        }

        fn range(&mut self) -> Range {
            Range {
                key: self.key(),
                end: self.end(),
                revision: self.rev(),
                limit: self.below(4) as i64 - 1,
                sort_order: self.below(4) as i32,
                sort_target: self.below(6) as i32,
                serializable: false,
                keys_only: self.below(4) == 0,
                count_only: self.below(4) == 0,
                min_mod_revision: self.below(3) as i64,
                max_mod_revision: 0,
                min_create_revision: 0,
                max_create_revision: self.below(2) as i64 * 5,
            }
        }

        fn compare(&mut self) -> Compare {
            let value = match self.below(6) {
                0 => CompareValue::Version(self.below(3) as i64),
                1 => CompareValue::Create(self.rev()),
                2 => CompareValue::Mod(self.rev()),
                3 => CompareValue::Lease(self.lease()),
                4 => CompareValue::Missing,
                _ => CompareValue::Value(1 + self.small(5)),
            };
            Compare {
                key: self.key(),
                end: if self.below(4) == 0 {
                    self.end()
                } else {
                    End::Single
                },
                target: self.below(5) as i32,
                result: self.below(4) as i32,
                value,
            }
        }

        fn txn_op(&mut self, depth: u32) -> TxnOp {
            match self.below(9) {
                0..=3 => TxnOp::Put(self.put()),
                4 | 5 => TxnOp::Delete(self.delete()),
                6 => TxnOp::Range(self.range()),
                7 if depth < 2 => TxnOp::Txn(Box::new(self.txn(depth + 1))),
                _ => TxnOp::Empty,
            }
        }

        fn txn(&mut self, depth: u32) -> Txn {
            // Up to 5 ops per branch, one over the small limit the fuzzer uses.
            let branch = |rng: &mut Rng| {
                let n = rng.below(4) + rng.below(3);
                (0..n).map(|_| rng.txn_op(depth)).collect::<Vec<_>>()
            };
            Txn {
                compare: (0..self.below(3)).map(|_| self.compare()).collect(),
                success: branch(self),
                failure: branch(self),
            }
        }

        fn op(&mut self) -> Op {
            match self.below(20) {
                0..=5 => Op::Put(self.put()),
                6 | 7 => Op::Delete(self.delete()),
                8 | 9 => Op::Txn(self.txn(0)),
                10 => Op::Range(self.range()),
                11 => Op::Compact {
                    revision: self.rev(),
                    physical: self.below(2) == 0,
                },
                12 | 13 => Op::LeaseGrant {
                    ttl: self.below(40) as i16 - 2,
                    id: self.lease(),
                },
                14 => Op::LeaseRevoke(self.lease()),
                15 => Op::LeaseKeepAlive(self.lease()),
                16 => Op::Advance(self.small(20)),
                17 if self.below(4) == 0 => Op::Restore,
                17 if self.below(3) == 0 => Op::Fork {
                    keep_fork: self.below(2) == 0,
                },
                17 | 18 => Op::Watch {
                    key: self.key(),
                    end: self.end(),
                    from: self.rev(),
                    no_put: self.below(4) == 0,
                    no_delete: self.below(4) == 0,
                    prev_kv: self.below(2) == 0,
                },
                _ => Op::HashKv(self.rev()),
            }
        }
    }

    fn check_seed(seed: u64, steps: usize) {
        let limits = Limits {
            max_txn_ops: 4,
            ..Limits::default()
        };
        let mut checker = Checker::new(limits, format!("seed {seed}"));
        let mut rng = Rng(crate::engine::auth::Random::seeded(seed));
        for _ in 0..steps {
            let op = rng.op();
            checker.apply(&op);
        }
        checker.finish();
    }

    #[test]
    fn random_request_sequences_keep_the_mvcc_invariants() {
        let seeds: u64 = std::env::var("TEST_ETCD_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(40);
        for seed in 0..seeds {
            check_seed(seed, 150);
        }
    }
}

/// The IDs of the leases `engine` holds.
fn lease_ids(engine: &Engine) -> impl Iterator<Item = i64> {
    engine.lease_leases().leases.into_iter().map(|l| l.id)
}
