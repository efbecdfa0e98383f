//! Campaign, Proclaim, Resign, Leader and Observe, as etcd's v3election serves them with the
//! client's election recipe.

use tokio::sync::mpsc;

use crate::engine::{Change, Engine};
use crate::pb::etcdserverpb::{
    request_op::Request, response_op::Response, DeleteRangeRequest, PutRequest, ResponseHeader,
    TxnRequest,
};
use crate::pb::mvccpb::KeyValue;
use crate::pb::v3electionpb::{
    CampaignResponse, LeaderKey, LeaderResponse, ProclaimResponse, ResignResponse,
};

use super::{
    create_revision_of, created_at, first_created, get, op, own_key, prefix_of, session_lease,
    wait_deletes, OnCancel, RecipeError,
};

/// Becomes a candidate in election `name` with `value` on `lease` (0: a fresh 60 s lease), and
/// waits until every older candidate is gone. The answer carries the header of the first txn,
/// even after waiting, as etcd's does.
pub(crate) async fn campaign(
    engine: &Engine,
    name: &[u8],
    lease: i64,
    value: &[u8],
) -> Result<CampaignResponse, RecipeError> {
    let lease = session_lease(engine, lease)?;
    let prefix = prefix_of(name);
    let key = own_key(&prefix, lease);
    let txn = engine.txn(&TxnRequest {
        compare: vec![created_at(&key, 0)],
        success: vec![op(Request::RequestPut(PutRequest {
            key: key.clone(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        }))],
        failure: vec![get(&key)],
    })?;
    let mut leader = LeaderKey {
        name: name.to_vec(),
        key,
        rev: txn.header.as_ref().map_or(0, |h| h.revision),
        lease,
    };
    if !txn.succeeded {
        // Already a candidate on this lease: keep the place in line, update the value.
        leader.rev = create_revision_of(&txn, 0);
        if existing_value(&txn) != Some(value) {
            if let Err(err) = proclaim(engine, Some(&leader), value) {
                let _ = resign(engine, Some(&leader));
                return Err(err);
            }
        }
    }
    // A cancelled or failed wait withdraws the candidacy.
    let waiting = OnCancel::new(|| {
        let _ = resign(engine, Some(&leader));
    });
    wait_deletes(engine, &prefix, leader.rev - 1).await?;
    waiting.disarm();
    Ok(CampaignResponse {
        header: txn.header,
        leader: Some(leader),
    })
}

/// The value of the key a failed campaign txn read.
fn existing_value(txn: &crate::pb::etcdserverpb::TxnResponse) -> Option<&[u8]> {
    match txn.responses.first().and_then(|r| r.response.as_ref()) {
        Some(Response::ResponseRange(range)) => range.kvs.first().map(|kv| &kv.value[..]),
        _ => None,
    }
}

/// Sets the leader's value, if `leader` still is the leader key it names (same create
/// revision). As in etcd, the put names `leader.lease`, so a leader key given with lease 0 moves
/// to a fresh 60 s lease.
pub(crate) fn proclaim(
    engine: &Engine,
    leader: Option<&LeaderKey>,
    value: &[u8],
) -> Result<ProclaimResponse, RecipeError> {
    let leader = leader.ok_or(RecipeError::MissingLeader)?;
    let lease = session_lease(engine, leader.lease)?;
    let txn = engine.txn(&TxnRequest {
        compare: vec![created_at(&leader.key, leader.rev)],
        success: vec![op(Request::RequestPut(PutRequest {
            key: leader.key.clone(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        }))],
        failure: Vec::new(),
    })?;
    if !txn.succeeded {
        return Err(RecipeError::NotLeader);
    }
    Ok(ProclaimResponse { header: txn.header })
}

/// Deletes the leader key if it is still the one `leader` names; succeeds either way. (Like
/// etcd, a `leader` with lease 0 still gets a session: a 60 s lease nobody uses.)
pub(crate) fn resign(
    engine: &Engine,
    leader: Option<&LeaderKey>,
) -> Result<ResignResponse, RecipeError> {
    let leader = leader.ok_or(RecipeError::MissingLeader)?;
    session_lease(engine, leader.lease)?;
    let txn = engine.txn(&TxnRequest {
        compare: vec![created_at(&leader.key, leader.rev)],
        success: vec![op(Request::RequestDeleteRange(DeleteRangeRequest {
            key: leader.key.clone(),
            ..Default::default()
        }))],
        failure: Vec::new(),
    })?;
    Ok(ResignResponse { header: txn.header })
}

/// The current leader: the oldest key under `name/`.
pub(crate) fn leader(engine: &Engine, name: &[u8]) -> Result<LeaderResponse, RecipeError> {
    let mut resp = first_created(engine, &prefix_of(name))?;
    let kv = resp.kvs.pop().ok_or(RecipeError::NoLeader)?;
    Ok(LeaderResponse {
        header: resp.header,
        kv: Some(kv),
    })
}

/// Sends the leader of `name`, then every put to its key, then (once it is deleted) the next
/// leader, and so on, until the receiver is dropped. With no leader yet, the first key put under
/// `name/` is sent as the leader, with its mod revision as the header revision. Ends (the sender
/// is dropped) if history the observer still needed has been compacted away.
pub(crate) async fn observe(engine: Engine, name: Vec<u8>, out: mpsc::Sender<LeaderResponse>) {
    let prefix = prefix_of(&name);
    let mut revisions = engine.subscribe();
    loop {
        let Ok(current) = first_created(&engine, &prefix) else {
            return;
        };
        let read_at = current.header.as_ref().map_or(0, |h| h.revision);
        let (revision, kv) = match current.kvs.into_iter().next() {
            Some(kv) => (read_at, kv),
            None => {
                // The first put under the prefix from the read on, whatever key it is.
                let first_put = |change: &Change| match change {
                    Change::Put(kv) if kv.key.starts_with(&prefix) => Some(KeyValue::clone(kv)),
                    _ => None,
                };
                match follow(&engine, &mut revisions, &out, read_at, first_put).await {
                    Some(kv) => (kv.mod_revision, kv),
                    None => return,
                }
            }
        };
        let key = kv.key.clone();
        if !send(&out, revision, kv).await {
            return;
        }
        // Every later put to the leader key is sent; its delete ends this leader's turn.
        let mut next = revision + 1;
        'turn: loop {
            let Ok(changes) = engine.changes_from(next) else {
                return;
            };
            for at in &changes {
                for change in &at.changes {
                    match change {
                        Change::Delete { key: deleted } if *deleted == key => break 'turn,
                        Change::Put(kv)
                            if kv.key == key
                                && !send(&out, at.revision, KeyValue::clone(kv)).await =>
                        {
                            return
                        }
                        _ => {}
                    }
                }
                next = at.revision + 1;
            }
            if !wait_for_change(&mut revisions, &out).await {
                return;
            }
        }
    }
}

/// Scans changes from revision `from` on (waiting for new ones) until `pick` chooses one.
/// `None` if the receiver went away or the history was compacted.
async fn follow<T>(
    engine: &Engine,
    revisions: &mut tokio::sync::watch::Receiver<i64>,
    out: &mpsc::Sender<LeaderResponse>,
    mut from: i64,
    pick: impl Fn(&Change) -> Option<T>,
) -> Option<T> {
    loop {
        let changes = engine.changes_from(from).ok()?;
        for at in &changes {
            if let Some(found) = at.changes.iter().find_map(&pick) {
                return Some(found);
            }
            from = at.revision + 1;
        }
        if !wait_for_change(revisions, out).await {
            return None;
        }
    }
}

/// Waits for a new revision; `false` if the observer's client went away first.
async fn wait_for_change(
    revisions: &mut tokio::sync::watch::Receiver<i64>,
    out: &mpsc::Sender<LeaderResponse>,
) -> bool {
    tokio::select! {
        changed = revisions.changed() => changed.is_ok(),
        _ = out.closed() => false,
    }
}

async fn send(out: &mpsc::Sender<LeaderResponse>, revision: i64, kv: KeyValue) -> bool {
    let resp = LeaderResponse {
        header: Some(ResponseHeader {
            revision,
            ..Default::default()
        }),
        kv: Some(kv),
    };
    out.send(resp).await.is_ok()
}
