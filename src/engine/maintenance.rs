//! Alarms, the space quota, the backend size model and the hashes of etcd's Maintenance service.
//!
//! There is no backend file, so its size is modelled: it starts at a fresh etcd's 20 KiB, grows
//! with every write by what the write stores (as a file that never shrinks on its own), and
//! shrinks to the size in use on Defragment. The size in use is what the retained history holds.
//! The space quota compares that file size with the quota, as etcd does.

use std::collections::{BTreeSet, VecDeque};

use prost::Message;

use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, request_op::Request, AlarmMember, AlarmRequest, AlarmResponse,
    AlarmType, CompactionRequest, CompactionResponse, PutRequest, TxnRequest,
};
use crate::pb::mvccpb::KeyValue;

use super::error::EtcdError;
use super::kv::KvState;
use super::mvcc::{Change, Store};
use super::Engine;

/// A fresh etcd's backend file, and the part of it in use (spec §3.1).
const FRESH_DB_SIZE: u64 = 20_480;
const FRESH_IN_USE: u64 = 16_384;
/// The backend's page size: reported sizes are whole pages, as a file's are.
const PAGE: u64 = 4_096;
/// What etcd's quota charges per put on top of key and value.
const KV_OVERHEAD: u64 = 256;
/// What etcd's quota charges for a LeaseGrant.
#[allow(dead_code)] // for the lease service (LeaseGrant), not built on this branch
pub(crate) const LEASE_GRANT_COST: u64 = 64;
/// How many compaction hashes are kept for HashKV, as etcd keeps them.
const KEPT_COMPACTION_HASHES: usize = 10;
/// etcd's default `--quota-backend-bytes`: 2 GiB.
pub(crate) const DEFAULT_QUOTA: u64 = 2 * 1024 * 1024 * 1024;

/// The maintenance part of the state.
#[derive(Debug, Clone)]
pub(crate) struct Maintenance {
    /// Active alarms as (type, member ID): sorted by type first, so NOSPACE comes first where
    /// etcd names "the first alarm".
    alarms: BTreeSet<(i32, u64)>,
    /// The modelled backend file size, before rounding to pages.
    file_bytes: u64,
    compaction_hashes: VecDeque<CompactionHash>,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            alarms: BTreeSet::new(),
            file_bytes: FRESH_DB_SIZE,
            compaction_hashes: VecDeque::new(),
        }
    }
}

/// The hash a compaction computed of what it kept, which HashKV answers for that revision
/// even after later compactions, as etcd does.
#[derive(Debug, Clone, Copy)]
struct CompactionHash {
    revision: i64,
    hash: u32,
    /// The compaction point in force before this compaction.
    previous: i64,
}

/// A request that the alarms may refuse.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Write<'a> {
    Put,
    Delete,
    Txn(&'a TxnRequest),
    Compact,
    LeaseGrant,
    LeaseRevoke,
}

/// The answer to HashKV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KvHash {
    pub(crate) hash: u32,
    pub(crate) compact_revision: i64,
    pub(crate) hash_revision: i64,
}

/// Sizes as Status reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Space {
    pub(crate) db_size: i64,
    pub(crate) db_size_in_use: i64,
    pub(crate) quota: i64,
}

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE).saturating_mul(PAGE)
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn kv_cost(key: &[u8], value: &[u8]) -> u64 {
    KV_OVERHEAD + key.len() as u64 + value.len() as u64
}

/// What the quota charges for a Put.
pub(crate) fn put_cost(r: &PutRequest) -> u64 {
    kv_cost(&r.key, &r.value)
}

/// What the quota charges for a Txn: its costlier branch, nested txns included. A txn without
/// puts costs nothing and always passes.
pub(crate) fn txn_cost(r: &TxnRequest) -> u64 {
    let branch = |ops: &[crate::pb::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(Request::RequestPut(p)) => put_cost(p),
                Some(Request::RequestTxn(t)) => txn_cost(t),
                _ => 0,
            })
            .sum()
    };
    branch(&r.success).max(branch(&r.failure))
}

/// Whether a txn holds a put anywhere, nested and untaken branches included: NOSPACE refuses
/// such a txn whatever its compares decide.
fn has_put(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_)) => true,
            Some(Request::RequestTxn(t)) => has_put(t),
            _ => false,
        })
}

impl Maintenance {
    fn has(&self, alarm: AlarmType) -> bool {
        self.alarms.iter().any(|(a, _)| *a == alarm as i32)
    }

    fn db_size(&self) -> u64 {
        pages(self.file_bytes)
    }
}

/// The bytes the retained history holds, as the backend's pages in use.
fn in_use(store: &Store) -> u64 {
    let base: u64 = store
        .compacted_base()
        .map(|kv| kv_cost(&kv.key, &kv.value))
        .sum();
    let history: u64 = store
        .changes_since(0)
        .flat_map(|entry| &entry.changes)
        .map(change_cost)
        .sum();
    FRESH_IN_USE + base + history
}

fn change_cost(change: &Change) -> u64 {
    match change {
        Change::Put(kv) => kv_cost(&kv.key, &kv.value),
        Change::Delete { key } => kv_cost(key, b""),
    }
}

/// CRC-32C (Castagnoli), the checksum etcd's hashes use.
#[derive(Debug, Clone, Copy)]
struct Crc32c(u32);

impl Crc32c {
    const POLY: u32 = 0x82f6_3b78;

    fn new() -> Self {
        Crc32c(!0)
    }

    fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.0;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ Self::POLY
                } else {
                    crc >> 1
                };
            }
        }
        self.0 = crc;
    }

    fn finish(self) -> u32 {
        !self.0
    }
}

/// CRC-32C of `bytes`.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = Crc32c::new();
    crc.update(bytes);
    crc.finish()
}

/// The hash of every retained version up to `revision`, each fed with its revision and
/// position, so that equal histories hash equal and any difference in a key, a value, a
/// lease, a version or a revision changes it. Seeded with the bucket name, as etcd's.
///
/// As etcd's, a version at or below the compaction point `compacted` counts only if it is
/// still its key's newest up to `revision` and not a deletion (unless no key is alive then),
/// and a deletion at the compaction point never counts: so a HashKV after a compaction can
/// differ from the same HashKV before it (found by the conformance suite against 3.7.2).
fn hash_kv_at(store: &Store, revision: i64, compacted: i64) -> u32 {
    let mut crc = Crc32c::new();
    crc.update(b"key");
    // (revision, position in it, the put or None for a deletion, key)
    let mut versions: Vec<(i64, usize, Option<&KeyValue>, &[u8])> = store
        .compacted_base()
        .filter(|kv| kv.mod_revision <= revision)
        .map(|kv| (kv.mod_revision, 0, Some(kv), &kv.key[..]))
        .collect();
    for entry in store
        .changes_since(0)
        .take_while(|e| e.revision <= revision)
    {
        for (sub, change) in entry.changes.iter().enumerate() {
            versions.push(match change {
                Change::Put(kv) => (entry.revision, sub, Some(kv), &kv.key[..]),
                Change::Delete { key } => (entry.revision, sub, None, &key[..]),
            });
        }
    }
    versions.sort_by_key(|v| (v.0, v.1));
    // Each key's newest version up to `revision`, if it is a put: what etcd's index keeps.
    let mut newest: std::collections::HashMap<&[u8], (i64, usize, bool)> =
        std::collections::HashMap::new();
    for v in &versions {
        newest.insert(v.3, (v.0, v.1, v.2.is_some()));
    }
    let any_alive = newest.values().any(|n| n.2);
    for (rev, sub, kv, key) in versions {
        if rev <= compacted && any_alive && newest.get(key) != Some(&(rev, sub, true)) {
            continue;
        }
        if rev == compacted && kv.is_none() {
            continue;
        }
        crc.update(&rev.to_be_bytes());
        crc.update(&(sub as u64).to_be_bytes());
        match kv {
            Some(kv) => {
                crc.update(b"p");
                crc.update(&kv.encode_to_vec());
            }
            None => {
                crc.update(b"t");
                crc.update(&(key.len() as u64).to_be_bytes());
                crc.update(key);
            }
        }
    }
    crc.finish()
}

impl KvState {
    /// Refuses what the active alarms refuse: CORRUPT every write (reads go on), NOSPACE what
    /// would take space. CORRUPT wins when both are active.
    pub(crate) fn admit(&self, write: Write<'_>) -> Result<(), EtcdError> {
        let alarms = &self.maintenance;
        let writes = match write {
            Write::Txn(r) => !super::is_read_only(r),
            _ => true,
        };
        if writes && alarms.has(AlarmType::Corrupt) {
            return Err(EtcdError::Corrupt);
        }
        let takes_space = match write {
            Write::Put | Write::LeaseGrant => true,
            Write::Txn(r) => has_put(r),
            Write::Delete | Write::Compact | Write::LeaseRevoke => false,
        };
        if takes_space && alarms.has(AlarmType::Nospace) {
            return Err(EtcdError::NoSpace);
        }
        Ok(())
    }

    /// Grows the modelled file by what the write at `revision` stored.
    pub(crate) fn account_growth(&mut self, revision: i64) {
        let grown: u64 = self
            .store
            .changes_at(revision)
            .iter()
            .map(change_cost)
            .sum();
        self.maintenance.file_bytes = self.maintenance.file_bytes.saturating_add(grown);
    }

    /// Sets the modelled file to a freshly written one holding exactly the retained history.
    pub(crate) fn account_growth_from_scratch(&mut self) {
        self.maintenance.file_bytes = in_use(&self.store) + (FRESH_DB_SIZE - FRESH_IN_USE);
    }

    /// Compacts and keeps the hash of what the compaction kept, for HashKV.
    pub(crate) fn compact_and_hash(
        &mut self,
        r: &CompactionRequest,
    ) -> Result<CompactionResponse, EtcdError> {
        let previous = self.store.compact_revision();
        let resp = self.compact(r)?;
        let hash = hash_kv_at(&self.store, r.revision, previous);
        let kept = &mut self.maintenance.compaction_hashes;
        kept.push_back(CompactionHash {
            revision: r.revision,
            hash,
            previous,
        });
        if kept.len() > KEPT_COMPACTION_HASHES {
            kept.pop_front();
        }
        Ok(resp)
    }
}

impl Engine {
    /// etcd's quota check, made before a request is validated: a write that would take the
    /// backend to the quota is refused, and raises NOSPACE for the member that refused it.
    /// A request that costs nothing always passes.
    pub(crate) fn check_quota(&self, cost: u64, member_id: u64) -> Result<(), EtcdError> {
        if cost == 0 {
            return Ok(());
        }
        let quota = self.shared.limits.quota_backend_bytes;
        let mut state = self.state();
        if state.maintenance.db_size().saturating_add(cost) < quota {
            return Ok(());
        }
        state
            .maintenance
            .alarms
            .insert((AlarmType::Nospace as i32, member_id));
        Err(EtcdError::NoSpace)
    }

    /// Alarm GET, ACTIVATE or DEACTIVATE (the header is left to the transport).
    pub(crate) fn alarm(&self, r: &AlarmRequest) -> AlarmResponse {
        // Every Alarm request is a raft entry in etcd, GET included.
        self.note_entry();
        let mut state = self.state();
        let alarms = &mut state.maintenance.alarms;
        let entry = (r.alarm, r.member_id);
        let known = matches!(
            AlarmType::try_from(r.alarm),
            Ok(AlarmType::Nospace | AlarmType::Corrupt)
        );
        let listed: Vec<(i32, u64)> = match AlarmAction::try_from(r.action) {
            Ok(AlarmAction::Get) => alarms
                .iter()
                .filter(|(a, _)| r.alarm == AlarmType::None as i32 || *a == r.alarm)
                .copied()
                .collect(),
            Ok(AlarmAction::Activate) if known => {
                alarms.insert(entry);
                vec![entry]
            }
            Ok(AlarmAction::Deactivate) if alarms.remove(&entry) => vec![entry],
            _ => Vec::new(),
        };
        AlarmResponse {
            header: None,
            alarms: listed
                .into_iter()
                .map(|(alarm, member_id)| AlarmMember { member_id, alarm })
                .collect(),
        }
    }

    /// The active alarms, NOSPACE first.
    pub(crate) fn alarms(&self) -> Vec<AlarmMember> {
        self.state()
            .maintenance
            .alarms
            .iter()
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// The modelled backend sizes and the quota.
    pub(crate) fn space(&self) -> Space {
        let state = self.state();
        let db_size = state.maintenance.db_size();
        Space {
            db_size: as_i64(db_size),
            db_size_in_use: as_i64(pages(in_use(&state.store)).min(db_size)),
            quota: as_i64(self.shared.limits.quota_backend_bytes),
        }
    }

    /// The number of live keys.
    pub(crate) fn key_count(&self) -> usize {
        let state = self.state();
        let all = super::mvcc::KeyRange::new(b"\0", b"\0");
        state.store.range(&all, state.store.revision(), 0, true).1
    }

    /// Defragment: the file shrinks to what is in use. Alarms stay, as in etcd.
    pub(crate) fn defragment(&self) {
        let mut state = self.state();
        let used = in_use(&state.store);
        state.maintenance.file_bytes = used.max(FRESH_IN_USE);
    }

    /// Hash: the whole state (keys with their history, compaction point, leases), stable
    /// while nothing is written.
    pub(crate) fn hash(&self) -> u32 {
        crc32c(&self.snapshot())
    }

    /// HashKV at `revision` (0: the current one).
    pub(crate) fn hash_kv(&self, revision: i64) -> Result<KvHash, EtcdError> {
        let state = self.state();
        // A compaction point answers with the hash its compaction kept, looked up before
        // `0` means "current" (so after Compact(0) a HashKV(0) answers the stored hash).
        let kept = state
            .maintenance
            .compaction_hashes
            .iter()
            .rev()
            .find(|h| h.revision == revision);
        if let Some(kept) = kept {
            return Ok(KvHash {
                hash: kept.hash,
                compact_revision: kept.previous,
                hash_revision: kept.revision,
            });
        }
        // etcd 3.7.2 checks neither compaction nor the future for a negative revision: it
        // hashes what is at or below it (nothing) and echoes it.
        if revision < 0 {
            return Ok(KvHash {
                hash: hash_kv_at(&state.store, revision, state.store.compact_revision()),
                compact_revision: state.store.compact_revision(),
                hash_revision: revision,
            });
        }
        let revision = state.store.check_read_revision(revision)?;
        Ok(KvHash {
            hash: hash_kv_at(&state.store, revision, state.store.compact_revision()),
            compact_revision: state.store.compact_revision(),
            hash_revision: revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Limits;
    use crate::pb::etcdserverpb::{DeleteRangeRequest, PutRequest};

    fn put(engine: &Engine, key: &str, value: &str) {
        engine
            .put(&PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })
            .unwrap();
    }

    fn compact(engine: &Engine, revision: i64) {
        engine
            .compact(&CompactionRequest {
                revision,
                ..Default::default()
            })
            .unwrap();
    }

    fn hash(engine: &Engine) -> u32 {
        engine.hash_kv(0).unwrap().hash
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn equal_histories_hash_equal() {
        let (a, b) = (
            Engine::new(Limits::default()),
            Engine::new(Limits::default()),
        );
        for e in [&a, &b] {
            put(e, "k1", "v1");
            put(e, "k2", "v2");
            put(e, "k1", "v3");
        }
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn one_changed_byte_changes_the_hash() {
        let (a, b) = (
            Engine::new(Limits::default()),
            Engine::new(Limits::default()),
        );
        put(&a, "key", "value-a");
        put(&b, "key", "value-b");
        assert_ne!(hash(&a), hash(&b));
        let c = Engine::new(Limits::default());
        put(&c, "kez", "value-a");
        assert_ne!(hash(&a), hash(&c));
    }

    #[test]
    fn a_delete_changes_the_hash_and_old_revisions_keep_theirs() {
        let e = Engine::new(Limits::default());
        put(&e, "k", "v"); // 2
        let at_2 = hash(&e);
        e.delete_range(&DeleteRangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .unwrap(); // 3
        assert_ne!(hash(&e), at_2);
        assert_eq!(e.hash_kv(2).unwrap().hash, at_2);
        assert_eq!(e.hash_kv(2).unwrap().hash_revision, 2);
        assert_eq!(e.hash_kv(2).unwrap().compact_revision, -1);
    }

    #[test]
    fn hash_kv_reports_compactions_as_etcd_does() {
        let e = Engine::new(Limits::default());
        for i in 0..6 {
            put(&e, "k", &i.to_string()); // 2..=7
        }
        assert_eq!(e.hash_kv(8), Err(EtcdError::FutureRevision));
        compact(&e, 4);
        compact(&e, 6);
        let at = |rev| e.hash_kv(rev).unwrap();
        assert_eq!((at(4).compact_revision, at(4).hash_revision), (-1, 4));
        assert_eq!((at(6).compact_revision, at(6).hash_revision), (4, 6));
        assert_eq!((at(7).compact_revision, at(7).hash_revision), (6, 7));
        assert_eq!(e.hash_kv(5), Err(EtcdError::Compacted));
    }

    #[test]
    fn hash_kv_of_a_negative_revision_hashes_nothing_as_etcd_does() {
        // etcd 3.7.2 checks neither compaction nor the future for it and echoes the revision.
        let e = Engine::new(Limits::default());
        let empty = e.hash_kv(0).unwrap().hash;
        put(&e, "k", "1");
        put(&e, "k", "2");
        let at = |rev| e.hash_kv(rev).unwrap();
        assert_eq!(
            (at(-1).hash, at(-1).compact_revision, at(-1).hash_revision),
            (empty, -1, -1)
        );
        assert_eq!(at(-5).hash_revision, -5);
        compact(&e, 3);
        assert_eq!(
            (at(-1).hash, at(-1).compact_revision, at(-1).hash_revision),
            (empty, 3, -1)
        );
    }

    #[test]
    fn after_a_compaction_hash_kv_leaves_out_versions_superseded_by_its_revision() {
        // etcd 3.7.2: below the compaction point only each key's newest version counts.
        let superseded = Engine::new(Limits::default());
        let kept = Engine::new(Limits::default());
        for (e, last) in [(&superseded, "a"), (&kept, "c")] {
            put(e, "a", "1");
            put(e, "b", "1");
            put(e, last, "2");
        }
        for e in [&superseded, &kept] {
            let before = e.hash_kv(4).unwrap().hash;
            compact(e, 3);
            let after = e.hash_kv(4).unwrap().hash;
            assert_eq!(before == after, std::ptr::eq(e, &kept));
        }
    }

    #[test]
    fn a_compaction_keeps_the_hash_of_later_revisions() {
        let (a, b) = (
            Engine::new(Limits::default()),
            Engine::new(Limits::default()),
        );
        for e in [&a, &b] {
            put(e, "k", "1");
            put(e, "k", "2");
            put(e, "j", "3");
        }
        compact(&a, 3);
        compact(&b, 3);
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(a.hash_kv(3).unwrap().hash, b.hash_kv(3).unwrap().hash);
    }

    #[test]
    fn txn_cost_is_the_costlier_branch_with_nested_puts() {
        let put = |k: &str, v: &str| crate::pb::etcdserverpb::RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })),
        };
        let nested = TxnRequest {
            failure: vec![put("a", "bb")],
            ..Default::default()
        };
        let txn = TxnRequest {
            success: vec![put("k", "v")],
            failure: vec![crate::pb::etcdserverpb::RequestOp {
                request: Some(Request::RequestTxn(nested)),
            }],
            ..Default::default()
        };
        assert_eq!(txn_cost(&txn), 259);
        assert!(has_put(&txn));
        assert_eq!(txn_cost(&TxnRequest::default()), 0);
    }
}
