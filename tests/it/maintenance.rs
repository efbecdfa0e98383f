//! The Maintenance service through etcd-client: Status, alarms and their effects, the space
//! quota, Defragment, Hash, HashKV, Snapshot (and restoring it), MoveLeader and Downgrade.

use etcd_client::{
    AlarmAction, AlarmOptions, AlarmType, Client, CompactionOptions, DowngradeOptions, GetOptions,
    Txn, TxnOp,
};
use sha2::{Digest, Sha256};
use test_etcd::{Error, TestEtcd};
use tonic::Code;

use crate::{client, connect, pb, status};

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
const CORRUPT: &str = "etcdserver: corrupt cluster";

async fn activate(client: &mut Client, alarm: AlarmType, member: u64) -> Vec<(u64, AlarmType)> {
    let mut options = AlarmOptions::new();
    options.with_member(member);
    let resp = client
        .alarm(AlarmAction::Activate, alarm, Some(options))
        .await
        .unwrap();
    alarms(&resp)
}

async fn deactivate(client: &mut Client, alarm: AlarmType, member: u64) -> Vec<(u64, AlarmType)> {
    let mut options = AlarmOptions::new();
    options.with_member(member);
    let resp = client
        .alarm(AlarmAction::Deactivate, alarm, Some(options))
        .await
        .unwrap();
    alarms(&resp)
}

async fn get_alarms(client: &mut Client, alarm: AlarmType) -> Vec<(u64, AlarmType)> {
    alarms(&client.alarm(AlarmAction::Get, alarm, None).await.unwrap())
}

fn alarms(resp: &etcd_client::AlarmResponse) -> Vec<(u64, AlarmType)> {
    resp.alarms()
        .iter()
        .map(|a| (a.member_id(), a.alarm()))
        .collect()
}

#[tokio::test]
async fn status_reports_what_a_fresh_single_node_reports() {
    let (_etcd, mut client) = connect().await;
    let s = client.status().await.unwrap();
    let header = s.header().unwrap();
    assert_eq!(header.revision(), 1);
    assert_eq!(s.version(), "3.7.2");
    assert_eq!((s.db_size(), s.raft_used_db_size()), (20480, 16384));
    assert_eq!(s.leader(), header.member_id(), "a single node leads");
    assert_eq!(
        (s.raft_index(), s.raft_term(), s.raft_applied_index()),
        (4, 2, 4)
    );
    assert!(s.errors().is_empty());
    assert!(!s.is_learner());
    assert_eq!(s.storage_version(), "3.7.0");
    assert_eq!(s.db_size_quota(), 2_147_483_648);
    let downgrade = s.downgrade_info().expect("always present");
    assert!(!downgrade.enabled());
    assert_eq!(downgrade.target_version(), "");
}

#[tokio::test]
async fn status_moves_with_writes() {
    let (_etcd, mut client) = connect().await;
    client.put("k", vec![b'v'; 10_000], None).await.unwrap();
    let s = client.status().await.unwrap();
    assert_eq!(s.header().unwrap().revision(), 2);
    assert!(s.raft_index() > 4);
    assert!(s.db_size() > 20480, "the backend grew: {}", s.db_size());
}

#[tokio::test]
async fn the_reported_version_is_settable() {
    let etcd = TestEtcd::builder().version("3.6.5").start().unwrap();
    let mut client = client(&etcd).await;
    let s = client.status().await.unwrap();
    assert_eq!((s.version(), s.storage_version()), ("3.6.5", "3.6.0"));
    let mut maintenance = client.maintenance_client();
    let resp = maintenance
        .downgrade(DowngradeOptions::Validate("3.5".into()))
        .await
        .unwrap();
    assert_eq!(resp.version(), "3.6");
    assert!(matches!(
        TestEtcd::builder().version("3.7").start(),
        Err(Error::Version(v)) if v == "3.7"
    ));
}

#[tokio::test]
async fn alarms_are_activated_listed_and_deactivated() {
    let (_etcd, mut client) = connect().await;
    assert_eq!(
        activate(&mut client, AlarmType::Nospace, 12345).await,
        [(12345, AlarmType::Nospace)]
    );
    assert_eq!(
        activate(&mut client, AlarmType::Nospace, 12345).await,
        [(12345, AlarmType::Nospace)],
        "a duplicate returns the stored entry"
    );
    assert_eq!(
        activate(&mut client, AlarmType::None, 1).await,
        [],
        "NONE does nothing"
    );
    activate(&mut client, AlarmType::Corrupt, 7).await;
    assert_eq!(
        get_alarms(&mut client, AlarmType::None).await,
        [(12345, AlarmType::Nospace), (7, AlarmType::Corrupt)]
    );
    assert_eq!(
        get_alarms(&mut client, AlarmType::Corrupt).await,
        [(7, AlarmType::Corrupt)]
    );
    let errors = client.status().await.unwrap().errors().to_vec();
    assert_eq!(
        errors,
        ["memberID:12345 alarm:NOSPACE", "memberID:7 alarm:CORRUPT"]
    );

    assert_eq!(
        deactivate(&mut client, AlarmType::Corrupt, 7).await,
        [(7, AlarmType::Corrupt)]
    );
    assert_eq!(
        deactivate(&mut client, AlarmType::Corrupt, 7).await,
        [],
        "already gone"
    );
    let resp = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(
        resp.header().unwrap().revision(),
        1,
        "alarm headers carry the kv revision"
    );
}

fn put_in_untaken_branch() -> Txn {
    Txn::new()
        .when([])
        .and_then([TxnOp::get("k", None)])
        .or_else([TxnOp::put("k", "v", None)])
}

#[tokio::test]
async fn nospace_refuses_what_takes_space_until_deactivated() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "v", None).await.unwrap();
    let member = client.status().await.unwrap().header().unwrap().member_id();
    activate(&mut client, AlarmType::Nospace, member).await;

    let refused = (Code::ResourceExhausted, NO_SPACE.to_owned());
    assert_eq!(
        status(client.put("k", "v2", None).await.unwrap_err()),
        refused
    );
    assert_eq!(
        status(client.txn(put_in_untaken_branch()).await.unwrap_err()),
        refused
    );

    // Reads, deletes and compaction go on.
    assert_eq!(client.get("k", None).await.unwrap().kvs().len(), 1);
    let delete_only = Txn::new().and_then([TxnOp::delete("gone", None)]);
    client.txn(delete_only).await.unwrap();
    client.delete("k", None).await.unwrap();
    client.compact(2, None).await.unwrap();

    deactivate(&mut client, AlarmType::Nospace, member).await;
    client.put("k", "v3", None).await.unwrap();
}

#[tokio::test]
async fn corrupt_refuses_every_write_and_serves_reads() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "v", None).await.unwrap();
    activate(&mut client, AlarmType::Corrupt, 1).await;
    activate(&mut client, AlarmType::Nospace, 1).await;

    let refused = (Code::DataLoss, CORRUPT.to_owned());
    assert_eq!(
        status(client.put("k", "v2", None).await.unwrap_err()),
        refused,
        "CORRUPT wins over NOSPACE"
    );
    assert_eq!(status(client.delete("k", None).await.unwrap_err()), refused);
    let delete_only = Txn::new().and_then([TxnOp::delete("k", None)]);
    assert_eq!(status(client.txn(delete_only).await.unwrap_err()), refused);
    assert_eq!(status(client.compact(1, None).await.unwrap_err()), refused);

    assert_eq!(client.get("k", None).await.unwrap().kvs().len(), 1);
    let serializable = GetOptions::new().with_serializable();
    assert_eq!(
        client
            .get("k", Some(serializable))
            .await
            .unwrap()
            .kvs()
            .len(),
        1
    );
    let read_only = Txn::new().and_then([TxnOp::get("k", None)]);
    assert!(client.txn(read_only).await.unwrap().succeeded());

    deactivate(&mut client, AlarmType::Corrupt, 1).await;
    deactivate(&mut client, AlarmType::Nospace, 1).await;
    client.put("k", "v3", None).await.unwrap();
}

#[tokio::test]
async fn the_space_quota_raises_nospace_for_the_member() {
    let etcd = TestEtcd::builder()
        .quota_backend_bytes(100_000)
        .start()
        .unwrap();
    let mut client = client(&etcd).await;
    let member = client.status().await.unwrap().header().unwrap().member_id();
    let value = vec![b'x'; 20_000];
    let mut accepted = 0;
    let err = loop {
        match client.put("big", value.clone(), None).await {
            Ok(_) => accepted += 1,
            Err(err) => break err,
        }
        assert!(accepted < 10, "the quota never fired");
    };
    assert_eq!(
        accepted, 3,
        "20 KiB file + 3 puts fits in 100 000 bytes, a 4th does not"
    );
    assert_eq!(status(err), (Code::ResourceExhausted, NO_SPACE.to_owned()));
    assert_eq!(
        get_alarms(&mut client, AlarmType::Nospace).await,
        [(member, AlarmType::Nospace)]
    );
    assert_eq!(client.status().await.unwrap().db_size_quota(), 100_000);
    assert!(client.get("big", None).await.is_ok(), "reads go on");
    // A put that costs nothing more still waits for the alarm to go.
    client.defragment().await.unwrap();
    assert_eq!(
        status(client.put("small", "v", None).await.unwrap_err()).0,
        Code::ResourceExhausted
    );

    // Freeing space: compact away old versions, defragment, deactivate.
    let revision = client
        .get("big", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    client.defragment().await.unwrap();
    deactivate(&mut client, AlarmType::Nospace, member).await;
    client.put("small", "v", None).await.unwrap();
}

#[tokio::test]
async fn defragment_shrinks_the_backend_and_has_no_header() {
    let (_etcd, mut client) = connect().await;
    for _ in 0..5 {
        client.put("k", vec![b'v'; 8_000], None).await.unwrap();
    }
    client.compact(6, None).await.unwrap();
    let before = client.status().await.unwrap();
    assert!(
        before.raft_used_db_size() < before.db_size(),
        "compaction freed pages"
    );
    let resp = client.defragment().await.unwrap();
    assert!(resp.header().is_none());
    let after = client.status().await.unwrap();
    assert!(after.db_size() < before.db_size());
    assert_eq!(after.db_size(), after.raft_used_db_size());
}

#[tokio::test]
async fn hash_is_stable_until_a_write() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "v", None).await.unwrap();
    let first = client.hash().await.unwrap();
    assert_eq!(first.header().unwrap().revision(), 2);
    assert_eq!(client.hash().await.unwrap().hash(), first.hash());
    client.put("k", "w", None).await.unwrap();
    assert_ne!(client.hash().await.unwrap().hash(), first.hash());
}

#[tokio::test]
async fn hash_kv_is_equal_for_equal_histories_and_differs_otherwise() {
    let fixture = r#"{"a": "1", "b": "2", "c": "3"}"#;
    let one = TestEtcd::builder().fixture_str(fixture).start().unwrap();
    let two = TestEtcd::builder().fixture_str(fixture).start().unwrap();
    let other = TestEtcd::builder()
        .fixture_str(r#"{"a": "1", "b": "2", "c": "4"}"#)
        .start()
        .unwrap();
    let (mut c1, mut c2, mut c3) = (client(&one).await, client(&two).await, client(&other).await);
    let h1 = c1.hash_kv(0).await.unwrap();
    assert_eq!(h1.hash(), c2.hash_kv(0).await.unwrap().hash());
    assert_ne!(
        h1.hash(),
        c3.hash_kv(0).await.unwrap().hash(),
        "one changed byte"
    );
    assert_eq!((h1.compact_version(), h1.hash_revision()), (-1, 4));
    assert_eq!(h1.header().unwrap().revision(), 4);
    // Before the differing write, the histories are equal.
    assert_eq!(
        c1.hash_kv(3).await.unwrap().hash(),
        c3.hash_kv(3).await.unwrap().hash()
    );
    assert_eq!(
        status(c1.hash_kv(5).await.unwrap_err()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".to_owned()
        )
    );
}

#[tokio::test]
async fn hash_kv_answers_compaction_points_as_etcd_does() {
    let (_etcd, mut client) = connect().await;
    for i in 0..6 {
        client.put("k", i.to_string(), None).await.unwrap(); // revisions 2..=7
    }
    client.compact(4, None).await.unwrap();
    client.compact(6, None).await.unwrap();
    let at = |r: etcd_client::HashKvResponse| (r.compact_version(), r.hash_revision());
    assert_eq!(at(client.hash_kv(4).await.unwrap()), (-1, 4));
    assert_eq!(at(client.hash_kv(6).await.unwrap()), (4, 6));
    assert_eq!(at(client.hash_kv(0).await.unwrap()), (6, 7));
    assert_eq!(
        status(client.hash_kv(5).await.unwrap_err()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted".to_owned()
        )
    );
}

/// Every message of a Snapshot stream.
async fn snapshot_messages(client: &mut Client) -> Vec<etcd_client::SnapshotResponse> {
    let mut stream = client.snapshot().await.unwrap();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        messages.push(message);
    }
    messages
}

#[tokio::test]
async fn snapshot_streams_32_kib_chunks_then_a_sha256_trailer() {
    let (_etcd, mut client) = connect().await;
    for i in 0..10 {
        client
            .put(format!("k{i}"), vec![b'v'; 10_000], None)
            .await
            .unwrap();
    }
    let messages = snapshot_messages(&mut client).await;
    let (trailer, data) = messages.split_last().unwrap();
    assert!(data.len() >= 4, "100 KB of values take several messages");
    let blob: Vec<u8> = data.iter().flat_map(|m| m.blob().to_vec()).collect();
    let mut remaining = blob.len() as u64;
    for m in data {
        assert!(m.blob().len() <= 32 * 1024);
        remaining -= m.blob().len() as u64;
        assert_eq!(m.remaining_bytes(), remaining);
    }
    assert!(data[..data.len() - 1]
        .iter()
        .all(|m| m.blob().len() == 32 * 1024));
    assert_eq!(trailer.remaining_bytes(), 0);
    assert_eq!(trailer.blob(), Sha256::digest(&blob).as_slice());
    assert!(messages
        .iter()
        .all(|m| m.header().is_none() && m.version() == "3.7.0"));
}

#[tokio::test]
async fn a_snapshot_restores_keys_history_and_compaction_point() {
    let (etcd, mut client) = connect().await;
    client.put("a", "1", None).await.unwrap(); // 2
    client.put("a", "2", None).await.unwrap(); // 3
    client.put("b", "1", None).await.unwrap(); // 4
    client.delete("b", None).await.unwrap(); // 5
    client.put("c", "1", None).await.unwrap(); // 6
    client.compact(3, None).await.unwrap();
    // What a client saves: every blob, trailer included.
    let saved: Vec<u8> = snapshot_messages(&mut client)
        .await
        .iter()
        .flat_map(|m| m.blob().to_vec())
        .collect();

    let copy = TestEtcd::builder().restore_snapshot(saved).start().unwrap();
    let mut restored = crate::client(&copy).await;
    assert_eq!(copy.revision(), 6);
    assert_eq!(copy.snapshot(), etcd.snapshot());
    let a = restored.get("a", None).await.unwrap();
    assert_eq!(
        (
            a.kvs()[0].value(),
            a.kvs()[0].create_revision(),
            a.kvs()[0].version()
        ),
        (&b"2"[..], 2, 2)
    );
    let at_4 = restored
        .get("b", Some(GetOptions::new().with_revision(4)))
        .await
        .unwrap();
    assert_eq!(at_4.kvs()[0].value(), b"1", "retained history is readable");
    let compacted = restored
        .get("a", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap_err();
    assert_eq!(
        status(compacted).0,
        Code::OutOfRange,
        "the compaction point came along"
    );
    assert_eq!(
        restored.hash_kv(0).await.unwrap().hash(),
        client.hash_kv(0).await.unwrap().hash()
    );
    let next = restored.put("d", "1", None).await.unwrap();
    assert_eq!(next.header().unwrap().revision(), 7);
}

#[tokio::test]
async fn a_lease_with_a_negative_id_survives_a_snapshot() {
    // Found by fuzzing: etcd grants a client's negative lease ID as given, and a snapshot
    // holding one was refused as corrupt.
    let (etcd, mut client) = connect().await;
    let grant = client
        .lease_grant(60, Some(etcd_client::LeaseGrantOptions::new().with_id(-5)))
        .await
        .unwrap();
    assert_eq!(grant.id(), -5);
    let leased = etcd_client::PutOptions::new().with_lease(-5);
    client.put("held", "v", Some(leased)).await.unwrap();

    let copy = TestEtcd::builder()
        .restore_snapshot(etcd.snapshot())
        .start()
        .unwrap();

    let leases = copy.leases();
    assert_eq!(leases.len(), 1);
    assert_eq!(
        (leases[0].id, &leases[0].keys),
        (-5, &vec![b"held".to_vec()])
    );
    let mut restored = crate::client(&copy).await;
    restored.lease_revoke(-5).await.unwrap();
    assert_eq!(copy.get("held"), None, "the key went with its lease");
}

#[tokio::test]
async fn restoring_anything_else_is_an_error() {
    let err = TestEtcd::builder()
        .restore_snapshot(b"not a snapshot".to_vec())
        .start()
        .unwrap_err();
    assert!(matches!(err, Error::Snapshot(_)), "{err:?}");
    let mut damaged = TestEtcd::start().snapshot();
    damaged.extend_from_slice(&[0; 32]);
    let err = TestEtcd::builder()
        .restore_snapshot(damaged)
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
}

#[tokio::test]
async fn move_leader_on_a_single_node() {
    let (_etcd, mut client) = connect().await;
    let me = client.status().await.unwrap().leader();
    let resp = client.move_leader(me).await.unwrap();
    assert!(
        resp.header().is_none(),
        "MoveLeader answers without a header"
    );
    for target in [12345, 0] {
        assert_eq!(
            status(client.move_leader(target).await.unwrap_err()),
            (
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee".to_owned()
            )
        );
    }
}

#[tokio::test]
async fn downgrade_validates_enables_and_cancels() {
    let (_etcd, mut client) = connect().await;
    let mut m = client.maintenance_client();
    let resp = m
        .downgrade(DowngradeOptions::Validate("3.6".into()))
        .await
        .unwrap();
    assert_eq!(resp.version(), "3.7");
    assert!(resp.header().is_some());
    for bad in ["x", "1.2.3.4"] {
        assert_eq!(
            status(
                m.downgrade(DowngradeOptions::Validate(bad.into()))
                    .await
                    .unwrap_err()
            ),
            (
                Code::InvalidArgument,
                "etcdserver: wrong downgrade target version format".to_owned()
            )
        );
    }
    for wrong in ["3.7", "3.5", "3.8"] {
        assert_eq!(
            status(
                m.downgrade(DowngradeOptions::Enable(wrong.into()))
                    .await
                    .unwrap_err()
            ),
            (
                Code::InvalidArgument,
                "etcdserver: invalid downgrade target version".to_owned()
            )
        );
    }
    m.downgrade(DowngradeOptions::Enable("3.6.0".into()))
        .await
        .unwrap();
    let info = client.status().await.unwrap();
    let info = info.downgrade_info().unwrap();
    assert!(info.enabled());
    assert_eq!(info.target_version(), "3.6.0");
    assert_eq!(
        status(
            m.downgrade(DowngradeOptions::Validate("3.6".into()))
                .await
                .unwrap_err()
        ),
        (
            Code::FailedPrecondition,
            "etcdserver: cluster has a downgrade job in progress".to_owned()
        )
    );
    m.downgrade(DowngradeOptions::Cancel).await.unwrap();
    m.downgrade(DowngradeOptions::Cancel).await.unwrap();
    assert!(!client
        .status()
        .await
        .unwrap()
        .downgrade_info()
        .unwrap()
        .enabled());
}

#[tokio::test]
async fn an_unknown_downgrade_action_is_an_unknown_method() {
    let etcd = TestEtcd::start();
    let channel = tonic::transport::Endpoint::from_shared(etcd.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = pb::etcdserverpb::maintenance_client::MaintenanceClient::new(channel);
    let request = pb::etcdserverpb::DowngradeRequest {
        action: 9,
        version: "3.6".into(),
    };
    let err = raw.downgrade(request).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "etcdserver: unknown method")
    );
}
