//! Property tests: seeded random sequences of requests, with the engine's MVCC invariants checked
//! after every step. A failing seed is printed; `TEST_ETCD_SEEDS=N` runs more seeds.
//!
//! Invariants:
//! - the revision only grows, by exactly one for a request that changed the state;
//! - a read at revision R equals the state right after the write that made R;
//! - the watch events from R on, applied to the state at R, rebuild the current state;
//! - HashKV at R depends only on the history retained up to R;
//! - compaction never changes a read at or above the compact revision, and refuses below it;
//! - a revoked lease leaves none of its keys behind.

use std::collections::BTreeMap;

use crate::pb::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use crate::pb::mvccpb::event::EventType;

use super::{Engine, EtcdError, KeyRange, Limits, WatchFilter, WatchRead};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// Picks operations from the engine's own seedable generator.
struct Rng(super::auth::Random);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn key(&mut self) -> Vec<u8> {
        format!("k{}", self.below(12)).into_bytes()
    }
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

fn random_op(rng: &mut Rng, engine: &Engine, leases: &mut Vec<i64>) {
    match rng.below(10) {
        0..=3 => {
            let lease = if rng.below(4) == 0 {
                leases.last().copied().unwrap_or(0)
            } else {
                0
            };
            let r = PutRequest {
                key: rng.key(),
                value: rng.below(5).to_string().into_bytes(),
                lease,
                ..Default::default()
            };
            let _ = engine.put(&r);
        }
        4 => {
            let (a, b) = (rng.key(), rng.key());
            let range_end = if rng.below(2) == 0 { Vec::new() } else { b };
            let _ = engine.delete_range(&DeleteRangeRequest {
                key: a,
                range_end,
                prev_kv: false,
            });
        }
        5 | 6 => {
            let compare = Compare {
                key: rng.key(),
                target: CompareTarget::Value as i32,
                result: CompareResult::Equal as i32,
                target_union: Some(TargetUnion::Value(rng.below(5).to_string().into_bytes())),
                ..Default::default()
            };
            let put = |rng: &mut Rng| RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: rng.key(),
                    value: b"t".to_vec(),
                    ..Default::default()
                })),
            };
            let del = |rng: &mut Rng| RequestOp {
                request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                    key: rng.key(),
                    ..Default::default()
                })),
            };
            let r = TxnRequest {
                compare: vec![compare],
                success: vec![put(rng), del(rng)],
                failure: vec![put(rng)],
            };
            // Duplicate keys are refused as a whole: that is a no-op, also fine to check.
            let _ = engine.txn(&r);
        }
        7 => {
            let current = engine.revision();
            let target = current - rng.below(5) as i64;
            let _ = engine.compact(&CompactionRequest {
                revision: target,
                physical: false,
            });
        }
        8 => {
            if let Ok(resp) = engine.lease_grant(&LeaseGrantRequest { ttl: 60, id: 0 }) {
                leases.push(resp.id);
            }
        }
        _ => {
            if let Some(id) = leases.pop() {
                let _ = engine.lease_revoke(id);
                let keys = engine.state().lessor.get(id).map(|l| l.keys.len());
                assert_eq!(keys, None, "a revoked lease is gone with its keys");
            }
        }
    }
}

fn check_seed(seed: u64, steps: usize) {
    let engine = Engine::new(Limits::default());
    let mut rng = Rng(super::auth::Random::seeded(seed));
    let mut leases = Vec::new();
    let mut history: BTreeMap<i64, State> = BTreeMap::from([(1, State::new())]);
    let mut hashes: BTreeMap<i64, u32> = BTreeMap::new();
    let mut hashed_since = -1;
    for step in 0..steps {
        let before = engine.revision();
        let state_before = state_at(&engine, 0).unwrap_or_default();
        random_op(&mut rng, &engine, &mut leases);
        let after = engine.revision();
        let state_after = state_at(&engine, 0).unwrap_or_default();
        let context = format!("seed {seed} step {step}");
        assert!(
            after == before || after == before + 1,
            "{context}: revision {before} -> {after}"
        );
        if state_after != state_before {
            assert_eq!(after, before + 1, "{context}: a change makes one revision");
        }
        history.insert(after, state_after.clone());
        let compacted = engine.state().store.compact_revision();
        if compacted != hashed_since {
            // HashKV covers the history after the compaction point, as etcd's does: a new
            // compaction starts new hashes.
            hashes.clear();
            hashed_since = compacted;
        }
        // Every retained revision still reads as it was written.
        for (revision, expected) in history.range(compacted.max(1)..) {
            assert_eq!(
                &state_at(&engine, *revision).unwrap_or_default(),
                expected,
                "{context}: read at {revision}"
            );
            if let Ok(hash) = engine.hash_kv(*revision) {
                let first = *hashes.entry(*revision).or_insert(hash.hash);
                assert_eq!(first, hash.hash, "{context}: HashKV at {revision} changed");
            }
        }
        if compacted > 1 {
            let below = state_at(&engine, compacted - 1);
            assert_eq!(
                below,
                Err(EtcdError::Compacted),
                "{context}: below the compaction point"
            );
        }
        // Replaying the watch events from a retained revision rebuilds the current state.
        let from = compacted.max(1);
        if let Some(base) = history.get(&from) {
            let all = WatchFilter {
                range: KeyRange::new(&[0], &[0]),
                no_put: false,
                no_delete: false,
                prev_kv: false,
            };
            let WatchRead::Events { batches, .. } = engine.watch_read(&all, from + 1, usize::MAX)
            else {
                panic!("{context}: history from {from} is retained");
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
            assert_eq!(replayed, state_after, "{context}: watch replay from {from}");
        }
    }
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
