//! Differential random testing: a seeded generator of operation sequences (puts, deletes, txns
//! with compares, ranges with options, compactions, leases, watches), applied to both backends.
//!
//! Leases use client-chosen IDs from a small pool, so that grants collide and revokes miss now
//! and then; each ID has a TTL of its own, long enough never to expire during a run and far
//! enough from the others that the Leases listing (by soonest expiry) has one order.
//!
//! The requests depend on the seed only, never on answers, so both backends get exactly the same
//! requests and a seed replays the same sequence.

use crate::pb::etcdserverpb::{
    compare::{CompareTarget, TargetUnion},
    request_op::Request,
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCreateRequest,
};
use crate::{compare, defaults, lease, Session};

/// How many operations one sequence has.
const OPS: usize = 60;

/// splitmix64: tiny, fast, and good enough to pick test operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const KEYS: [&str; 6] = ["a", "b", "b1", "c", "d", "e"];

fn key(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&KEYS).as_bytes().to_vec()
}

/// A range end for `key`: none (one key), a later key, all keys after, or an empty range.
fn range_end(rng: &mut Rng) -> Vec<u8> {
    match rng.below(5) {
        0 | 1 => Vec::new(),
        2 => vec![0],
        3 => b"a".to_vec(),
        _ => key(rng),
    }
}

/// A revision around the ones this sequence can have reached by step `step`.
fn revision(rng: &mut Rng, step: usize) -> i64 {
    rng.below(step as u64 / 2 + 4) as i64 - 1
}

/// Lease IDs a sequence grants, revokes and attaches keys to; 9 is never granted.
const LEASES: [i64; 4] = [1, 2, 3, 9];

fn lease_id(rng: &mut Rng) -> i64 {
    *rng.pick(&LEASES)
}

/// Each lease ID's TTL: far apart, so that the soonest expiry is always the smallest ID's.
fn lease_ttl(id: i64) -> i64 {
    600 + 100 * id
}

fn put(rng: &mut Rng) -> PutRequest {
    PutRequest {
        key: key(rng),
        value: if rng.chance(10) {
            Vec::new()
        } else {
            format!("v{}", rng.below(5)).into_bytes()
        },
        lease: if rng.chance(20) { lease_id(rng) } else { 0 },
        prev_kv: rng.chance(40),
        ignore_value: rng.chance(5),
        ignore_lease: rng.chance(5),
    }
}

fn delete(rng: &mut Rng) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: key(rng),
        range_end: range_end(rng),
        prev_kv: rng.chance(50),
    }
}

fn range(rng: &mut Rng, step: usize) -> RangeRequest {
    RangeRequest {
        key: key(rng),
        range_end: range_end(rng),
        limit: if rng.chance(30) {
            rng.below(4) as i64
        } else {
            0
        },
        revision: if rng.chance(30) {
            revision(rng, step)
        } else {
            0
        },
        sort_order: if rng.chance(30) {
            rng.below(3) as i32
        } else {
            0
        },
        sort_target: if rng.chance(30) {
            rng.below(5) as i32
        } else {
            0
        },
        serializable: rng.chance(20),
        keys_only: rng.chance(15),
        count_only: rng.chance(10),
        min_mod_revision: if rng.chance(10) {
            revision(rng, step)
        } else {
            0
        },
        max_mod_revision: if rng.chance(10) {
            revision(rng, step)
        } else {
            0
        },
        min_create_revision: if rng.chance(10) {
            revision(rng, step)
        } else {
            0
        },
        max_create_revision: if rng.chance(10) {
            revision(rng, step)
        } else {
            0
        },
    }
}

fn compare_op(rng: &mut Rng, step: usize) -> Compare {
    let target = rng.below(5) as i32;
    let operand = match CompareTarget::try_from(target) {
        Ok(CompareTarget::Version) => TargetUnion::Version(rng.below(4) as i64),
        Ok(CompareTarget::Create) => TargetUnion::CreateRevision(revision(rng, step)),
        Ok(CompareTarget::Mod) => TargetUnion::ModRevision(revision(rng, step)),
        Ok(CompareTarget::Value) => TargetUnion::Value(format!("v{}", rng.below(5)).into_bytes()),
        _ => TargetUnion::Lease(0),
    };
    Compare {
        result: rng.below(4) as i32,
        target,
        key: key(rng),
        range_end: if rng.chance(20) {
            range_end(rng)
        } else {
            Vec::new()
        },
        target_union: Some(operand),
    }
}

fn request_op(rng: &mut Rng, step: usize, depth: usize) -> RequestOp {
    let request = match rng.below(if depth > 0 { 3 } else { 4 }) {
        0 => Request::RequestPut(put(rng)),
        1 => Request::RequestDeleteRange(delete(rng)),
        2 => Request::RequestRange(range(rng, step)),
        _ => Request::RequestTxn(txn(rng, step, depth + 1)),
    };
    RequestOp {
        request: Some(request),
    }
}

fn txn(rng: &mut Rng, step: usize, depth: usize) -> TxnRequest {
    let compares = rng.below(3) as usize;
    let success = rng.below(4) as usize;
    let failure = rng.below(3) as usize;
    TxnRequest {
        compare: (0..compares).map(|_| compare_op(rng, step)).collect(),
        success: (0..success).map(|_| request_op(rng, step, depth)).collect(),
        failure: (0..failure).map(|_| request_op(rng, step, depth)).collect(),
    }
}

/// etcd 3.7.2 crashes on a txn that deletes up to "\0" (which its duplicate check misses) and
/// then puts with ignore_value or ignore_lease a key that delete removed (our engine refuses
/// that txn; README lists the difference). Such a txn keeps its puts but loses their ignore
/// flags.
fn avoid_etcd_crash(t: &mut TxnRequest) {
    fn ops(t: &mut TxnRequest) -> impl Iterator<Item = &mut RequestOp> {
        t.success.iter_mut().chain(t.failure.iter_mut())
    }
    fn open_delete(t: &mut TxnRequest) -> bool {
        ops(t).any(|op| match &mut op.request {
            Some(Request::RequestDeleteRange(d)) => d.range_end == [0],
            Some(Request::RequestTxn(nested)) => open_delete(nested),
            _ => false,
        })
    }
    fn clear_ignores(t: &mut TxnRequest) {
        for op in ops(t) {
            match &mut op.request {
                Some(Request::RequestPut(p)) => {
                    p.ignore_value = false;
                    p.ignore_lease = false;
                }
                Some(Request::RequestTxn(nested)) => clear_ignores(nested),
                _ => {}
            }
        }
    }
    if open_delete(t) {
        clear_ignores(t);
    }
}

/// One sequence: a watcher on every key from the start, the operations, a late watcher
/// replaying history, then every event the watchers got.
fn sequence(seed: u64, s: &mut Session) {
    let mut rng = Rng(seed);
    let live = s.watch();
    s.create(
        live,
        WatchCreateRequest {
            key: vec![0],
            range_end: vec![0],
            prev_kv: true,
            ..Default::default()
        },
    );
    s.recv(live);
    // A second watcher, on a stream of its own: a random range, filter and prev_kv.
    let picky = s.watch();
    let mut filters = Vec::new();
    if rng.chance(30) {
        filters.push(rng.below(2) as i32);
    }
    s.create(
        picky,
        WatchCreateRequest {
            key: key(&mut rng),
            range_end: range_end(&mut rng),
            filters,
            prev_kv: rng.chance(50),
            ..Default::default()
        },
    );
    let picky_created = s.recv(picky).is_some_and(|r| !r.canceled);
    // Two leases from the start, so that many puts attach keys.
    for id in [1, 2] {
        lease::grant_lease(s, lease_ttl(id), id);
    }
    for step in 0..OPS {
        match rng.below(100) {
            0..=24 => {
                s.put(put(&mut rng));
            }
            25..=36 => {
                s.delete(delete(&mut rng));
            }
            37..=52 => {
                s.range(range(&mut rng, step));
            }
            53..=78 => {
                let mut t = txn(&mut rng, step, 0);
                avoid_etcd_crash(&mut t);
                s.txn(t);
            }
            79..=83 => s.compact(revision(&mut rng, step)),
            84..=89 => {
                let id = lease_id(&mut rng);
                lease::grant_lease(s, lease_ttl(id), id);
            }
            90..=93 => lease::revoke_lease(s, lease_id(&mut rng)),
            94..=96 => {
                let id = lease_id(&mut rng);
                lease::time_to_live(s, id, rng.chance(70));
            }
            97..=98 => lease::list_leases(s),
            _ => {
                let (a, b) = (lease_id(&mut rng), lease_id(&mut rng));
                s.keep_alive(&[a, b]);
            }
        }
    }
    let late = s.watch();
    let start = rng.below(12) as i64 + 1;
    let late_key = key(&mut rng);
    s.create(
        late,
        WatchCreateRequest {
            key: late_key.clone(),
            range_end: range_end(&mut rng),
            start_revision: start,
            prev_kv: rng.chance(50),
            ..Default::default()
        },
    );
    let created = s.recv(late).is_some_and(|r| !r.canceled);
    // A last write that both watchers see marks the end of their events.
    let end = s
        .txn(TxnRequest {
            success: vec![
                RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: late_key,
                        ..Default::default()
                    })),
                },
                RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: b"\xff end".to_vec(),
                        ..Default::default()
                    })),
                },
            ],
            ..Default::default()
        })
        .and_then(|r| r.header)
        .map_or(0, |h| h.revision);
    s.record("live watcher's events:");
    s.events_until(live, end);
    if picky_created {
        // It may not see the end marker: then its events end with a wait for nothing more.
        s.record("picky watcher's events:");
        s.events_until_quiet(picky, end);
    }
    // A watcher of the future (start after the end) has nothing to show.
    if created && start <= end {
        s.record("late watcher's events:");
        s.events_until(late, end);
    }
}

pub fn compare_seed(seed: u64) -> Result<(), String> {
    compare(&format!("random-{seed}"), defaults, &|s: &mut Session| {
        sequence(seed, s)
    })
}
