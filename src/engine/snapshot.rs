//! Our snapshot format. It is not etcd's (a bbolt file): `etcdutl snapshot restore` cannot read
//! it, and a `TestEtcd` can restore only its own.
//!
//! Layout, all integers big-endian:
//!
//! ```text
//! "TESTETCD"            8 bytes, magic
//! format                u32, 1
//! body length           u64
//! body                  protobuf `Image` below
//! [SHA-256 trailer]     32 bytes, optional: what the Snapshot RPC appends (of all before it)
//! ```
//!
//! The body holds what reads and watches can still reach: the current and compacted revisions,
//! the live pairs older than the compaction point, every revision's changes from it on (in
//! order, so history replays as it happened), and the leases (ID and granted TTL; keys attach
//! through their pairs). Alarms and members are not part of it.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::pb::mvccpb::KeyValue;

use super::mvcc::{Change, KeyRange, RevisionChanges, Store};
use super::Engine;

const MAGIC: &[u8; 8] = b"TESTETCD";
const FORMAT: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8;
const TRAILER_LEN: usize = 32;

#[derive(Clone, PartialEq, Message)]
struct Image {
    #[prost(int64, tag = "1")]
    revision: i64,
    #[prost(int64, tag = "2")]
    compact_revision: i64,
    #[prost(message, repeated, tag = "3")]
    base: Vec<KeyValue>,
    #[prost(message, repeated, tag = "4")]
    history: Vec<RevisionImage>,
    #[prost(message, repeated, tag = "5")]
    leases: Vec<LeaseImage>,
}

#[derive(Clone, PartialEq, Message)]
struct RevisionImage {
    #[prost(int64, tag = "1")]
    revision: i64,
    #[prost(message, repeated, tag = "2")]
    changes: Vec<ChangeImage>,
}

/// A put carries its pair; a delete only the key.
#[derive(Clone, PartialEq, Message)]
struct ChangeImage {
    #[prost(message, optional, tag = "1")]
    put: Option<KeyValue>,
    #[prost(bytes = "vec", tag = "2")]
    deleted: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct LeaseImage {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
}

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("not a test-etcd snapshot (etcd's own bbolt snapshots cannot be restored)")]
    NotOurs,
    #[error("snapshot format {0} is newer than this test-etcd reads")]
    Format(u32),
    #[error("snapshot is truncated or has trailing bytes")]
    Length,
    #[error("the SHA-256 trailer does not match the snapshot")]
    Checksum,
    #[error("snapshot is corrupt: {0}")]
    Corrupt(&'static str),
}

/// The SHA-256 trailer the Snapshot RPC sends after the data.
pub(crate) fn trailer(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn decode(bytes: &[u8]) -> Result<Image, SnapshotError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(SnapshotError::NotOurs);
    }
    let mut format = [0u8; 4];
    format.copy_from_slice(&bytes[8..12]);
    let format = u32::from_be_bytes(format);
    if format != FORMAT {
        return Err(SnapshotError::Format(format));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[12..HEADER_LEN]);
    let len = usize::try_from(u64::from_be_bytes(len)).map_err(|_| SnapshotError::Length)?;
    let end = HEADER_LEN.checked_add(len).ok_or(SnapshotError::Length)?;
    let rest = bytes.len().checked_sub(end).ok_or(SnapshotError::Length)?;
    match rest {
        0 => {}
        TRAILER_LEN => {
            if trailer(&bytes[..end]) != bytes[end..] {
                return Err(SnapshotError::Checksum);
            }
        }
        _ => return Err(SnapshotError::Length),
    }
    let image = Image::decode(&bytes[HEADER_LEN..end])
        .map_err(|_| SnapshotError::Corrupt("undecodable body"))?;
    check(&image)?;
    Ok(image)
}

/// The invariants the store relies on, so that a damaged snapshot is an error, not a store
/// that answers nonsense.
fn check(image: &Image) -> Result<(), SnapshotError> {
    let corrupt = SnapshotError::Corrupt;
    if image.revision < 1 || image.compact_revision > image.revision {
        return Err(corrupt("revisions out of order"));
    }
    if image
        .base
        .iter()
        .any(|kv| kv.key.is_empty() || kv.mod_revision >= image.compact_revision)
    {
        return Err(corrupt(
            "a pair before the compaction point is not before it",
        ));
    }
    // The store keeps one version per key below the point, and relies on key order.
    if image.base.windows(2).any(|w| w[0].key >= w[1].key) {
        return Err(corrupt(
            "pairs before the compaction point are not in key order",
        ));
    }
    // etcd grants a client's negative ID as given; only 0 is no lease.
    if image.leases.iter().any(|l| l.id == 0) {
        return Err(corrupt("a lease ID is 0"));
    }
    let mut last = image.compact_revision.max(1) - 1;
    for entry in &image.history {
        if entry.revision <= last || entry.revision > image.revision {
            return Err(corrupt("history revisions out of order"));
        }
        last = entry.revision;
        for change in &entry.changes {
            match &change.put {
                Some(kv) if kv.key.is_empty() || kv.mod_revision != entry.revision => {
                    return Err(corrupt("a put does not belong to its revision"));
                }
                None if change.deleted.is_empty() => return Err(corrupt("empty delete")),
                _ => {}
            }
        }
    }
    Ok(())
}

impl Engine {
    /// The state in our snapshot format, without the trailer.
    pub(crate) fn snapshot(&self) -> Vec<u8> {
        let state = self.state();
        let store = &state.store;
        let mut leases: Vec<LeaseImage> = state
            .lessor
            .leases()
            .map(|l| LeaseImage {
                id: l.id,
                ttl: l.ttl,
            })
            .collect();
        leases.sort_by_key(|l| l.id);
        let image = Image {
            revision: store.revision(),
            compact_revision: store.compact_revision(),
            base: store.compacted_base().map(KeyValue::clone).collect(),
            history: store
                .changes_since(0)
                .map(|entry| RevisionImage {
                    revision: entry.revision,
                    changes: entry
                        .changes
                        .iter()
                        .map(|change| match change {
                            Change::Put(kv) => ChangeImage {
                                put: Some(KeyValue::clone(kv)),
                                deleted: Vec::new(),
                            },
                            Change::Delete { key } => ChangeImage {
                                put: None,
                                deleted: key.to_vec(),
                            },
                        })
                        .collect(),
                })
                .collect(),
            leases,
        };
        drop(state);
        let body = image.encode_to_vec();
        let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT.to_be_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Replaces the (fresh) state with a snapshot's: keys, history, compaction point, leases.
    /// The trailer, if present, is checked.
    pub(crate) fn restore(&self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let image = decode(bytes)?;
        let log = image
            .history
            .into_iter()
            .map(|entry| RevisionChanges {
                revision: entry.revision,
                changes: entry
                    .changes
                    .into_iter()
                    .map(|change| match change.put {
                        Some(kv) => Change::Put(kv),
                        None => Change::Delete {
                            key: change.deleted.into(),
                        },
                    })
                    .collect(),
            })
            .collect();
        let store = Store::restore(image.revision, image.compact_revision, image.base, log);
        let revision = store.revision();
        {
            let mut state = self.state();
            // Restored leases start a full TTL from now, as etcd's do after a restore. Built
            // aside, so that a refused snapshot leaves the state as it was.
            let now = self.shared.clock.now();
            let mut lessor = state.lessor.clone();
            for lease in &image.leases {
                lessor
                    .grant(lease.id, lease.ttl, now)
                    .map_err(|_| SnapshotError::Corrupt("a lease cannot be granted"))?;
            }
            // A live key naming a lease the snapshot lacks would be a key no revoke or expiry
            // ever deletes (found by fuzzing).
            let (live, _) = store.range(&KeyRange::new(b"\0", b"\0"), revision, 0, false);
            for kv in live.iter().filter(|kv| kv.lease != 0) {
                if !lessor.contains(kv.lease) {
                    return Err(SnapshotError::Corrupt(
                        "a key is attached to a missing lease",
                    ));
                }
                lessor.attach(kv.lease, &kv.key);
            }
            state.lessor = lessor;
            state.store = store;
            // A restored member starts with a freshly written, unfragmented file.
            state.maintenance = Default::default();
            state.account_growth_from_scratch();
        }
        self.shared.revisions.send_replace(revision);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Limits;
    use crate::pb::etcdserverpb::{CompactionRequest, PutRequest, RangeRequest};

    fn engine_with_history() -> Engine {
        let e = Engine::new(Limits::default());
        e.write(|state| {
            state
                .lessor
                .grant(7, 60, std::time::Duration::ZERO)
                .map(drop)
        })
        .unwrap();
        for (k, v, lease) in [("a", "1", 0), ("b", "2", 7), ("a", "3", 0), ("c", "4", 0)] {
            e.put(&PutRequest {
                key: k.into(),
                value: v.into(),
                lease,
                ..Default::default()
            })
            .unwrap();
        }
        e.compact(&CompactionRequest {
            revision: 3,
            ..Default::default()
        })
        .unwrap();
        e
    }

    #[test]
    fn a_snapshot_restores_to_the_same_state() {
        let e = engine_with_history();
        let bytes = e.snapshot();
        let r = Engine::new(Limits::default());
        r.restore(&bytes).unwrap();
        assert_eq!(r.snapshot(), bytes);
        assert_eq!(r.revision(), 5);
        assert_eq!(r.hash_kv(0), e.hash_kv(0));
        let old = r.range(&RangeRequest {
            key: b"a".to_vec(),
            revision: 3,
            ..Default::default()
        });
        assert_eq!(old.unwrap().kvs[0].value, &b"1"[..]);
        assert!(r
            .range(&RangeRequest {
                key: b"a".to_vec(),
                revision: 2,
                ..Default::default()
            })
            .is_err());
    }

    #[test]
    fn the_trailer_is_accepted_and_checked() {
        let mut bytes = engine_with_history().snapshot();
        bytes.extend(trailer(&bytes));
        assert_eq!(Engine::new(Limits::default()).restore(&bytes), Ok(()));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            Engine::new(Limits::default()).restore(&bytes),
            Err(SnapshotError::Checksum)
        );
    }

    /// `bytes` with its image changed by `edit`.
    fn edited(bytes: &[u8], edit: impl FnOnce(&mut Image)) -> Vec<u8> {
        let mut image = decode(bytes).unwrap();
        edit(&mut image);
        let body = image.encode_to_vec();
        let mut out = bytes[..HEADER_LEN - 8].to_vec();
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_negative_lease_id_restores() {
        // Found by fuzzing: etcd grants a client's negative ID, and its snapshot was refused.
        let e = Engine::new(Limits::default());
        let grant = crate::pb::etcdserverpb::LeaseGrantRequest { id: -5, ttl: 60 };
        assert_eq!(e.lease_grant(&grant).map(|r| r.id), Ok(-5));
        e.put(&PutRequest {
            key: b"k".to_vec(),
            lease: -5,
            ..Default::default()
        })
        .unwrap();
        let r = Engine::new(Limits::default());
        assert_eq!(r.restore(&e.snapshot()), Ok(()));
        let keys = r.state().lessor.get(-5).map(|l| l.keys.len());
        assert_eq!(keys, Some(1), "the lease and its key are back");
    }

    #[test]
    fn a_key_attached_to_a_lease_the_snapshot_lacks_is_refused() {
        // Found by fuzzing: restored, such a key outlived every revoke and expiry.
        let bytes = engine_with_history().snapshot();
        let fresh = Engine::new(Limits::default());
        let without_lease = edited(&bytes, |image| image.leases.clear());
        assert_eq!(
            fresh.restore(&without_lease),
            Err(SnapshotError::Corrupt(
                "a key is attached to a missing lease"
            ))
        );
        assert!(fresh.is_fresh(), "a refused snapshot changes nothing");
        let twice = edited(&bytes, |image| {
            let lease = image.leases[0].clone();
            image.leases.push(lease);
        });
        assert_eq!(
            fresh.restore(&twice),
            Err(SnapshotError::Corrupt("a lease cannot be granted"))
        );
        let too_long = edited(&bytes, |image| image.leases[0].ttl = i64::MAX);
        assert_eq!(
            fresh.restore(&too_long),
            Err(SnapshotError::Corrupt("a lease cannot be granted"))
        );
        assert_eq!(fresh.restore(&bytes), Ok(()));
    }

    #[test]
    fn foreign_or_damaged_data_is_refused() {
        let fresh = || Engine::new(Limits::default());
        assert_eq!(fresh().restore(b"bbolt"), Err(SnapshotError::NotOurs));
        let bytes = engine_with_history().snapshot();
        assert_eq!(
            fresh().restore(&bytes[..bytes.len() - 1]),
            Err(SnapshotError::Length)
        );
        let mut newer = bytes.clone();
        newer[11] = 2;
        assert_eq!(fresh().restore(&newer), Err(SnapshotError::Format(2)));
    }
}
