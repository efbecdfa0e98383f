//! Request validation, done before a request touches the store, in etcd's order (its
//! `v3rpc/key.go`): the first failing check decides the error.

use std::collections::HashSet;

use crate::pb::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    request_op::Request,
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use super::error::EtcdError;

pub(crate) fn range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    // etcd 3.4/3.5 crashed on an unknown sort target; 3.6+ refuse both unknown enums.
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

pub(crate) fn put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub(crate) fn delete_range(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// Validates a txn with `max_ops` operations allowed at its level: op count, compare keys, every
/// op of both branches (nested txns get what their parent leaves of the budget), then the
/// duplicate-key rule on each branch.
pub(crate) fn txn(r: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    txn_ops(r, max_ops)?;
    for branch in [&r.success, &r.failure] {
        // One op with no nested txn cannot clash with anything: skip building the key sets.
        let single = branch.len() < 2
            && !branch
                .iter()
                .any(|op| matches!(op.request, Some(Request::RequestTxn(_))));
        if !single {
            intervals(branch)?;
        }
    }
    Ok(())
}

fn txn_ops(r: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(r)) => range(r)?,
            Some(Request::RequestPut(r)) => put(r)?,
            Some(Request::RequestDeleteRange(r)) => delete_range(r)?,
            Some(Request::RequestTxn(r)) => txn_ops(r, max_ops - ops)?,
            // etcd answers an op with nothing in it this way.
            None => return Err(EtcdError::KeyNotFound),
        }
    }
    Ok(())
}

/// A deleted interval as etcd's overlap check sees it: a single key, or `[start, end)` compared
/// as plain bytes. That makes a delete up to "\0" an empty interval which never conflicts with a
/// put; etcd has the same loophole and we keep it.
struct Deleted {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Deleted {
    fn covers(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.start.as_slice(),
            Some(end) => key >= self.start.as_slice() && key < end.as_slice(),
        }
    }
}

/// etcd's duplicate-key rule over one branch: no key put twice, no put inside a delete of the
/// same level or of an earlier nested txn. Returns the keys put and the intervals deleted.
fn intervals(ops: &[RequestOp]) -> Result<(HashSet<&[u8]>, Vec<Deleted>), EtcdError> {
    // This level's deletes first, so that nested puts are checked against all of them.
    let mut dels: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Deleted {
                start: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<&[u8]> = HashSet::new();
    let covered = |dels: &[Deleted], key: &[u8]| dels.iter().any(|d| d.covers(key));
    for op in ops {
        let Some(Request::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = intervals(&nested.success)?;
        let (puts_else, dels_else) = intervals(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || covered(&dels, key) {
                return Err(EtcdError::DuplicateKey);
            }
        }
        puts.extend(puts_then.iter().copied());
        for key in puts_else {
            // Then and Else exclude each other, so the same key in both is fine.
            let clash = puts.contains(key) && !puts_then.contains(key);
            if clash || covered(&dels, key) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(key);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(p.key.as_slice()) || covered(&dels, &p.key) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(&p.key);
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn del_op(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    fn nested(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                success,
                failure,
                ..Default::default()
            })),
        }
    }

    fn check(success: Vec<RequestOp>) -> Result<(), EtcdError> {
        txn(
            &TxnRequest {
                success,
                ..Default::default()
            },
            128,
        )
    }

    #[test]
    fn duplicate_key_rule_matches_etcd() {
        let dup = Err(EtcdError::DuplicateKey);
        assert_eq!(check(vec![put_op("a"), put_op("a")]), dup);
        assert_eq!(check(vec![put_op("a"), del_op("a", "")]), dup);
        assert_eq!(check(vec![del_op("a", "c"), put_op("b")]), dup);
        assert_eq!(check(vec![del_op("a", ""), del_op("a", "")]), Ok(()));
        assert_eq!(
            check(vec![put_op("b"), del_op("a", "\0")]),
            Ok(()),
            "etcd's loophole"
        );
        assert_eq!(
            check(vec![nested(vec![put_op("x")], vec![put_op("x")])]),
            Ok(())
        );
        assert_eq!(
            check(vec![
                nested(vec![put_op("x")], vec![]),
                nested(vec![del_op("x", "")], vec![])
            ]),
            Ok(())
        );
        assert_eq!(
            check(vec![
                nested(vec![del_op("x", "")], vec![]),
                nested(vec![put_op("x")], vec![])
            ]),
            dup
        );
        assert_eq!(
            check(vec![put_op("a"), nested(vec![del_op("a", "")], vec![])]),
            dup
        );
        assert_eq!(
            check(vec![del_op("a", "b"), nested(vec![put_op("a")], vec![])]),
            dup
        );
    }

    #[test]
    fn nested_txns_share_the_op_budget() {
        let inner = |n: usize| TxnRequest {
            success: (0..n).map(|i| put_op(&i.to_string())).collect(),
            ..Default::default()
        };
        let outer = |n| TxnRequest {
            success: vec![RequestOp {
                request: Some(Request::RequestTxn(inner(n))),
            }],
            ..Default::default()
        };
        assert_eq!(txn(&outer(127), 128), Ok(()));
        assert_eq!(txn(&outer(128), 128), Err(EtcdError::TooManyOps));
    }

    #[test]
    fn an_empty_op_is_key_not_found() {
        let r = TxnRequest {
            failure: vec![RequestOp { request: None }],
            ..Default::default()
        };
        assert_eq!(txn(&r, 128), Err(EtcdError::KeyNotFound));
    }
}
