//! Range, Put, DeleteRange, Txn and Compact applied to the store, as etcd's apply layer does
//! (its `txn.go`): request in, response with `header.revision` out. The transport fills the
//! rest of the header.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::pb::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op::Request,
    response_op::Response,
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp,
    TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;

use super::error::EtcdError;
use super::lessor::Lessor;
use super::maintenance::Maintenance;
use super::mvcc::{KeyRange, Store};

/// The state the KV operations work on.
#[derive(Debug, Default, Clone)]
pub(crate) struct KvState {
    pub(crate) store: Store,
    pub(crate) lessor: Lessor,
    /// Alarms and the backend size model (`maintenance.rs`).
    pub(crate) maintenance: Maintenance,
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl KvState {
    /// A standalone Range (validated).
    pub(crate) fn range(&self, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        execute_range(&self.store, r)
    }

    /// A standalone Put (validated): one new revision, or an error and nothing written.
    pub(crate) fn put(&mut self, r: &PutRequest) -> Result<PutResponse, EtcdError> {
        if r.lease != 0 && !self.lessor.contains(r.lease) {
            return Err(EtcdError::LeaseNotFound);
        }
        let resp = self.execute_put(r)?;
        self.store.commit();
        Ok(resp)
    }

    /// A standalone DeleteRange (validated): a new revision only if something was deleted.
    pub(crate) fn delete_range(&mut self, r: &DeleteRangeRequest) -> DeleteRangeResponse {
        let resp = self.execute_delete(r);
        self.store.commit();
        resp
    }

    /// A Txn (validated): compares against the state before it, one revision if the executed
    /// branch changed anything, all or nothing.
    pub(crate) fn txn(&mut self, r: &TxnRequest) -> Result<TxnResponse, EtcdError> {
        let path = Path::of(&self.store, r);
        // Checks of the ops that will run, against the state before the txn, in op order
        // (nested txns depth first): the first failing op decides the error, as in etcd 3.7.2.
        // Branches not taken are not checked.
        path.check(r, &mut |op| {
            self.check_put(op)?;
            check_range(&self.store, op)
        })?;
        self.lessor.begin();
        match self.execute_txn(r, &path) {
            Ok(mut resp) => {
                self.store.commit();
                self.lessor.commit();
                resp.header = header(self.store.revision());
                Ok(resp)
            }
            Err(err) => {
                // Reachable only through etcd's overlap loophole (a ranged delete then an
                // ignore_value put of a key it removed), where etcd itself would crash. We
                // refuse the txn instead and leave no trace of it.
                self.store.rollback();
                self.lessor.rollback();
                Err(err)
            }
        }
    }

    /// Compact: frees history at or below `revision`.
    pub(crate) fn compact(
        &mut self,
        r: &CompactionRequest,
    ) -> Result<CompactionResponse, EtcdError> {
        self.store.compact(r.revision)?;
        Ok(CompactionResponse {
            header: header(self.store.revision()),
        })
    }

    fn check_put(&self, op: &RequestOp) -> Result<(), EtcdError> {
        let Some(Request::RequestPut(p)) = &op.request else {
            return Ok(());
        };
        // The lease first, as for a plain Put: etcd 3.7.2 answers "lease not found" for a put
        // that names a missing lease and ignores the value of a missing key.
        if p.lease != 0 && !self.lessor.contains(p.lease) {
            return Err(EtcdError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease) && self.store.get_current(&p.key).is_none() {
            return Err(EtcdError::KeyNotFound);
        }
        Ok(())
    }

    fn execute_put(&mut self, r: &PutRequest) -> Result<PutResponse, EtcdError> {
        // Only what the put needs is taken from the previous pair; the pair itself is copied
        // only when the client asked for it back.
        let (kept_value, prev_lease, prev_kv) = match self.store.get_current(&r.key) {
            None if r.ignore_value || r.ignore_lease => return Err(EtcdError::KeyNotFound),
            None => (None, 0, None),
            Some(prev) => (
                r.ignore_value.then(|| prev.value.clone()),
                prev.lease,
                r.prev_kv.then(|| prev.clone()),
            ),
        };
        let value = match kept_value {
            Some(value) => value,
            None => self.store.keep(&r.value),
        };
        let lease = if r.ignore_lease { prev_lease } else { r.lease };
        if prev_lease != 0 && prev_lease != lease {
            self.lessor.detach(prev_lease, &r.key);
        }
        if lease != 0 {
            self.lessor.attach(lease, &r.key);
        }
        let revision = self.store.put(&r.key, value, lease);
        Ok(PutResponse {
            header: header(revision),
            prev_kv,
        })
    }

    fn execute_delete(&mut self, r: &DeleteRangeRequest) -> DeleteRangeResponse {
        let deleted = self
            .store
            .delete_range(&KeyRange::new(&r.key, &r.range_end));
        for kv in &deleted {
            if kv.lease != 0 {
                self.lessor.detach(kv.lease, &kv.key);
            }
        }
        DeleteRangeResponse {
            header: header(self.store.revision()),
            deleted: deleted.len() as i64,
            prev_kvs: if r.prev_kv { deleted } else { Vec::new() },
        }
    }

    fn execute_txn(&mut self, r: &TxnRequest, path: &Path) -> Result<TxnResponse, EtcdError> {
        let ops = path.branch(r);
        let mut nested = path.nested.iter();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Request::RequestRange(q)) => {
                    Response::ResponseRange(execute_range(&self.store, q)?)
                }
                Some(Request::RequestPut(q)) => Response::ResponsePut(self.execute_put(q)?),
                Some(Request::RequestDeleteRange(q)) => {
                    Response::ResponseDeleteRange(self.execute_delete(q))
                }
                Some(Request::RequestTxn(q)) => {
                    let sub = nested.next().ok_or(EtcdError::KeyNotFound)?;
                    let mut resp = self.execute_txn(q, sub)?;
                    // etcd leaves a nested txn's header present but empty.
                    resp.header = Some(ResponseHeader::default());
                    Response::ResponseTxn(resp)
                }
                None => return Err(EtcdError::KeyNotFound),
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        Ok(TxnResponse {
            header: None,
            succeeded: path.succeeded,
            responses,
        })
    }
}

/// The branch decisions of a txn and of every nested txn on the branch taken, all made from the
/// state before the txn runs.
#[derive(Debug)]
struct Path {
    succeeded: bool,
    /// One entry per nested txn in the branch taken, in op order.
    nested: Vec<Path>,
}

impl Path {
    fn of(store: &Store, r: &TxnRequest) -> Path {
        let succeeded = r.compare.iter().all(|c| compare(store, c));
        let ops = if succeeded { &r.success } else { &r.failure };
        let nested = ops
            .iter()
            .filter_map(|op| match &op.request {
                Some(Request::RequestTxn(t)) => Some(Path::of(store, t)),
                _ => None,
            })
            .collect();
        Path { succeeded, nested }
    }

    fn branch<'r>(&self, r: &'r TxnRequest) -> &'r [RequestOp] {
        if self.succeeded {
            &r.success
        } else {
            &r.failure
        }
    }

    /// Runs `check` on every non-txn op of the path, depth first in op order.
    fn check(
        &self,
        r: &TxnRequest,
        check: &mut impl FnMut(&RequestOp) -> Result<(), EtcdError>,
    ) -> Result<(), EtcdError> {
        let mut nested = self.nested.iter();
        for op in self.branch(r) {
            match &op.request {
                Some(Request::RequestTxn(t)) => {
                    if let Some(sub) = nested.next() {
                        sub.check(t, check)?;
                    }
                }
                _ => check(op)?,
            }
        }
        Ok(())
    }
}

/// etcd's revision check for a Range inside a txn, made against the state before the txn. It
/// differs from a plain Range: a negative revision is compared with the compact revision (-1
/// until the first compaction), so -1 passes on a fresh store and -2 is "compacted".
fn check_range(store: &Store, op: &RequestOp) -> Result<(), EtcdError> {
    let Some(Request::RequestRange(r)) = &op.request else {
        return Ok(());
    };
    match r.revision {
        0 => Ok(()),
        rev if rev > store.revision() => Err(EtcdError::FutureRevision),
        rev if rev < store.compact_revision() => Err(EtcdError::Compacted),
        _ => Ok(()),
    }
}

/// One compare of a txn. Every key in the compare's range must satisfy it; no key at all is
/// compared as a zero pair, except that a VALUE compare on a missing key is always false.
fn compare(store: &Store, c: &Compare) -> bool {
    let (kvs, _) = store.range(
        &KeyRange::new(&c.key, &c.range_end),
        store.revision(),
        0,
        false,
    );
    if kvs.is_empty() {
        return c.target != CompareTarget::Value as i32 && compare_kv(c, &KeyValue::default());
    }
    kvs.iter().all(|kv| compare_kv(c, kv))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    // The operand is the union member matching the target; any other member (or none) counts
    // as zero / empty, as in etcd.
    let int =
        |pick: fn(&TargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(pick).unwrap_or(0);
    let ordering = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Version) => kv.version.cmp(&int(|t| match t {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&int(|t| match t {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&int(|t| match t {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&int(|t| match t {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Value) => {
            let operand = match &c.target_union {
                Some(TargetUnion::Value(v)) => v.as_slice(),
                _ => &[],
            };
            kv.value[..].cmp(operand)
        }
        // An unknown target compares as equal in etcd.
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        // An unknown result is true in etcd.
        Err(_) => true,
    }
}

/// A stored pair as a range returns it: shared key and value, or with `keys_only` no value and,
/// as etcd 3.7 serves those from its index, no lease unless values were read to sort by them.
fn returned_pair(kv: &KeyValue, keys_only: bool, sorted_by_value: bool) -> KeyValue {
    if !keys_only {
        return KeyValue::clone(kv);
    }
    KeyValue {
        key: kv.key.clone(),
        value: Bytes::new(),
        lease: if sorted_by_value { kv.lease } else { 0 },
        ..*kv
    }
}

/// Range over `store` as etcd executes it, inside or outside a txn.
fn execute_range(store: &Store, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
    let revision = store.check_read_revision(r.revision)?;
    let order = SortOrder::try_from(r.sort_order).map_err(|_| EtcdError::InvalidSortOption)?;
    let target = SortTarget::try_from(r.sort_target).map_err(|_| EtcdError::InvalidSortOption)?;
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let keys = KeyRange::new(&r.key, &r.range_end);
    if !filtered && target == SortTarget::Key && order != SortOrder::Descend {
        // Key order is the store's order. A first walk counts (it reads only the index's
        // leaves), so that the answer is allocated once at its size, then a second one copies
        // what is returned: no list grown by doubling, nor any other transient list, which for a
        // large range would add megabytes freed again at once.
        let wanted = match usize::try_from(r.limit) {
            _ if r.count_only => 0,
            Ok(limit) if limit > 0 => limit,
            _ => usize::MAX,
        };
        let count = store.live(&keys, revision).count();
        let returned = wanted.min(count);
        let mut kvs = Vec::with_capacity(returned);
        kvs.extend(
            store
                .live(&keys, revision)
                .take(returned)
                .map(|kv| returned_pair(kv, r.keys_only, false)),
        );
        return Ok(RangeResponse {
            header: header(store.revision()),
            more: !r.count_only && returned < count,
            kvs,
            count: count as i64,
        });
    }
    // Like etcd, fetch one more than the limit (to know `more`) only when nothing will be
    // sorted or filtered afterwards; the "no sort" test looks at the order alone, so NONE with
    // a non-key target sorts only the first limit+1 keys (an etcd quirk kept on purpose).
    let fetch = if order == SortOrder::None && !filtered && r.limit > 0 {
        usize::try_from(r.limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
    } else {
        0
    };
    let (mut found, count) = store.range(&keys, revision, fetch, r.count_only);
    // Filter, sort and cut the stored pairs; only what is returned gets copied.
    if filtered {
        found.retain(|kv| {
            (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
                && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
                && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
                && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
        });
    }
    let order = match (order, target) {
        (SortOrder::None, SortTarget::Key) | (SortOrder::Ascend, SortTarget::Key) => {
            SortOrder::None
        }
        (SortOrder::None, _) => SortOrder::Ascend,
        (order, _) => order,
    };
    if order != SortOrder::None {
        let by = |a: &&KeyValue, b: &&KeyValue| match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        // Stable, so that ties stay in key order as observed on etcd.
        if order == SortOrder::Descend {
            found.sort_by(|a, b| by(b, a));
        } else {
            found.sort_by(by);
        }
    }
    let mut more = false;
    if let Ok(limit) = usize::try_from(r.limit) {
        if limit > 0 && found.len() > limit {
            found.truncate(limit);
            more = true;
        }
    }
    let kvs = found
        .into_iter()
        .map(|kv| returned_pair(kv, r.keys_only, target == SortTarget::Value))
        .collect();
    Ok(RangeResponse {
        header: header(store.revision()),
        kvs,
        more,
        count: count as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::compare::CompareResult as R;
    use crate::pb::etcdserverpb::compare::CompareTarget as T;

    fn put(state: &mut KvState, key: &str, value: &str) -> i64 {
        let r = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        state
            .put(&r)
            .map(|resp| resp.header.unwrap_or_default().revision)
            .unwrap_or(-1)
    }

    fn put_op(key: &str, value: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        }
    }

    fn range_op(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn cmp(key: &str, target: T, result: R, operand: TargetUnion) -> Compare {
        Compare {
            key: key.into(),
            target: target as i32,
            result: result as i32,
            target_union: Some(operand),
            ..Default::default()
        }
    }

    #[test]
    fn the_first_failing_op_in_op_order_decides_a_txns_error() {
        // Found by the conformance suite: etcd 3.7.2 checks the path's ops in one pass, not
        // every put before every range.
        let mut state = KvState::default();
        put(&mut state, "a", "1");
        let future = RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                revision: 9,
                ..Default::default()
            })),
        };
        let missing = RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: b"missing".to_vec(),
                ignore_value: true,
                ..Default::default()
            })),
        };
        let txn = |success: Vec<RequestOp>| TxnRequest {
            success,
            ..Default::default()
        };
        assert_eq!(
            state.txn(&txn(vec![future.clone(), missing.clone()])),
            Err(EtcdError::FutureRevision)
        );
        assert_eq!(
            state.txn(&txn(vec![missing, future])),
            Err(EtcdError::KeyNotFound)
        );
        assert_eq!(state.store.revision(), 2, "nothing applied");
    }

    #[test]
    fn a_txn_put_checks_its_lease_before_the_key_it_keeps_the_value_of() {
        // Found by the random conformance sequences (seed 20173).
        let mut state = KvState::default();
        let both = RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: b"missing".to_vec(),
                ignore_value: true,
                lease: 7,
                ..Default::default()
            })),
        };
        let r = TxnRequest {
            success: vec![both],
            ..Default::default()
        };
        assert_eq!(state.txn(&r), Err(EtcdError::LeaseNotFound));
    }

    #[test]
    fn compares_on_a_missing_key_use_a_zero_pair_except_value() {
        let state = KvState::default();
        assert!(compare(
            &state.store,
            &cmp("x", T::Create, R::Equal, TargetUnion::CreateRevision(0))
        ));
        assert!(compare(
            &state.store,
            &cmp("x", T::Version, R::Equal, TargetUnion::Version(0))
        ));
        assert!(!compare(
            &state.store,
            &cmp("x", T::Mod, R::NotEqual, TargetUnion::ModRevision(0))
        ));
        assert!(!compare(
            &state.store,
            &cmp(
                "x",
                T::Value,
                R::NotEqual,
                TargetUnion::Value(b"v".to_vec())
            )
        ));
    }

    #[test]
    fn a_range_compare_needs_every_key_to_match() {
        let mut state = KvState::default();
        put(&mut state, "a", "1");
        put(&mut state, "b", "2");
        let mut c = cmp("a", T::Value, R::Greater, TargetUnion::Value(b"0".to_vec()));
        c.range_end = b"c".to_vec();
        assert!(compare(&state.store, &c));
        c.target_union = Some(TargetUnion::Value(b"1".to_vec()));
        assert!(!compare(&state.store, &c));
    }

    #[test]
    fn a_mismatched_operand_counts_as_zero() {
        let mut state = KvState::default();
        put(&mut state, "a", "1");
        // Target VERSION with a mod_revision operand compares the version against 0.
        assert!(compare(
            &state.store,
            &cmp("a", T::Version, R::Greater, TargetUnion::ModRevision(100))
        ));
    }

    #[test]
    fn a_txn_reads_its_own_writes_and_makes_one_revision() {
        let mut state = KvState::default();
        put(&mut state, "a", "old"); // 2
        let r = TxnRequest {
            success: vec![put_op("a", "new"), range_op("a"), put_op("b", "x")],
            ..Default::default()
        };
        let resp = state.txn(&r).unwrap();
        assert!(resp.succeeded);
        assert_eq!(resp.header.unwrap().revision, 3);
        let Some(Response::ResponseRange(read)) = &resp.responses[1].response else {
            panic!("not a range")
        };
        assert_eq!(read.kvs[0].value, &b"new"[..]);
        assert_eq!(read.kvs[0].mod_revision, 3);
        assert_eq!(state.store.revision(), 3);
    }

    #[test]
    fn a_txn_that_changes_nothing_makes_no_revision() {
        let mut state = KvState::default();
        put(&mut state, "a", "1");
        let r = TxnRequest {
            compare: vec![cmp(
                "a",
                T::Value,
                R::Equal,
                TargetUnion::Value(b"2".to_vec()),
            )],
            success: vec![put_op("a", "3")],
            failure: vec![range_op("a")],
        };
        let resp = state.txn(&r).unwrap();
        assert!(!resp.succeeded);
        assert_eq!(resp.header.unwrap().revision, 2);
    }

    #[test]
    fn a_failed_txn_leaves_no_trace() {
        let mut state = KvState::default();
        put(&mut state, "a", "1"); // 2
                                   // The overlap loophole: delete everything from "a", then an ignore_value put of "b"
                                   // which the delete removed. etcd crashes on this; we refuse it whole.
        put(&mut state, "b", "1"); // 3
        let r = TxnRequest {
            success: vec![
                RequestOp {
                    request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                        key: "a".into(),
                        range_end: vec![0],
                        ..Default::default()
                    })),
                },
                RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: "b".into(),
                        ignore_value: true,
                        ..Default::default()
                    })),
                },
            ],
            ..Default::default()
        };
        assert_eq!(state.txn(&r), Err(EtcdError::KeyNotFound));
        assert_eq!(state.store.revision(), 3);
        assert!(state.store.get_current(b"a").is_some());
    }

    #[test]
    fn leases_follow_their_keys() {
        let mut state = KvState::default();
        state
            .lessor
            .grant(7, 60, std::time::Duration::ZERO)
            .unwrap();
        let with_lease = PutRequest {
            key: "k".into(),
            lease: 7,
            ..Default::default()
        };
        state.put(&with_lease).unwrap();
        assert!(state.lessor.get(7).unwrap().keys.contains(b"k".as_slice()));
        // lease 0 on a put detaches
        put(&mut state, "k", "v");
        assert!(state.lessor.get(7).unwrap().keys.is_empty());
        let missing = PutRequest {
            key: "k".into(),
            lease: 8,
            ..Default::default()
        };
        assert_eq!(state.put(&missing), Err(EtcdError::LeaseNotFound));
    }

    #[test]
    fn sort_none_with_a_non_key_target_sorts_only_the_first_limit_plus_one() {
        let mut state = KvState::default();
        for i in (0..30).rev() {
            put(&mut state, &format!("k{i:02}"), "v");
        }
        let r = RangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            limit: 5,
            sort_target: SortTarget::Mod as i32,
            ..Default::default()
        };
        let keys: Vec<_> = state
            .range(&r)
            .unwrap()
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect();
        assert_eq!(keys, ["k05", "k04", "k03", "k02", "k01"]);
    }
}
