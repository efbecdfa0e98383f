//! Fixtures, version 2: `history`, etcdctl's JSON output, and dumps that load back.

use std::time::Duration;

use etcd_client::{EventType, GetOptions, LeaseGrantOptions, PutOptions, Txn, TxnOp, WatchOptions};
use serde_json::json;
use test_etcd::TestEtcd;
use tonic::Code;

use crate::{client, status};

const WAIT: Duration = Duration::from_secs(5);

fn start(fixture: &str) -> TestEtcd {
    TestEtcd::builder()
        .fixture_str(fixture)
        .start()
        .expect("the fixture loads")
}

/// The error a fixture gives, as displayed.
fn error(fixture: &str) -> String {
    TestEtcd::builder()
        .fixture_str(fixture)
        .start()
        .expect_err("the fixture is refused")
        .to_string()
}

/// Loads `dump` into a new server and dumps that: it must be the same document.
fn assert_round_trip(dump: &serde_json::Value) {
    let copy = TestEtcd::builder()
        .fixture_json(dump.clone())
        .start()
        .unwrap_or_else(|err| panic!("the dump loads: {err}\n{dump:#}"));
    assert_eq!(&copy.dump(), dump);
}

const HISTORY: &str = r#"{
  "leases": [{"name": "session", "ttl": 60, "id": 100}],
  "history": [
    {"put": "/cfg/a", "value": "1"},
    {"put": "/cfg/a", "value": "2"},
    {"put": "/cfg/b", "json": {"x": 1}, "lease": "session"},
    {"delete": "/cfg/a"},
    {"put": "/cfg/a", "value": "3"},
    {"compact": 3},
    {"grant": "other", "ttl": 30, "id": 7},
    {"put": "/tmp/x", "value": "t", "lease": "other"},
    {"revoke": "other"}
  ]
}"#;

#[tokio::test]
async fn a_history_sets_revisions_versions_and_the_compaction_point() {
    let etcd = start(HISTORY);
    let mut c = client(&etcd).await;
    assert_eq!(etcd.revision(), 8);
    let a = c.get("/cfg/a", None).await.unwrap();
    let kv = &a.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version()
        ),
        (&b"3"[..], 6, 6, 1)
    );
    let b = c.get("/cfg/b", None).await.unwrap();
    assert_eq!(
        (b.kvs()[0].value(), b.kvs()[0].lease()),
        (&br#"{"x":1}"#[..], 100)
    );
    // Revision 3 is readable, 2 is compacted.
    let old = c
        .get("/cfg/a", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap();
    assert_eq!(old.kvs()[0].value(), b"2");
    let err = c
        .get("/cfg/a", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted".into()
        )
    );
    // The revoked lease took its key in its own revision.
    assert_eq!(etcd.get("/tmp/x"), None);
    assert_eq!(
        etcd.leases().iter().map(|l| l.id).collect::<Vec<_>>(),
        [100]
    );
}

#[tokio::test]
async fn a_watch_from_an_old_revision_replays_the_history() {
    let etcd = start(HISTORY);
    let mut c = client(&etcd).await;
    let options = WatchOptions::new().with_prefix().with_start_revision(4);
    let mut stream = c.watch("/cfg/", Some(options)).await.unwrap();
    let mut events = Vec::new();
    while events.len() < 3 {
        let resp = tokio::time::timeout(WAIT, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for e in resp.events() {
            let kv = e.kv().unwrap();
            events.push((
                e.event_type(),
                kv.key_str().unwrap().to_owned(),
                kv.mod_revision(),
            ));
        }
    }
    assert_eq!(
        events,
        [
            (EventType::Put, "/cfg/b".into(), 4),
            (EventType::Delete, "/cfg/a".into(), 5),
            (EventType::Put, "/cfg/a".into(), 6),
        ]
    );
}

#[test]
fn changes_that_give_the_same_revision_make_one_revision() {
    let etcd = start(
        r#"{"history": [
            {"put": "a", "value": "1"},
            {"put": "b", "value": "1", "revision": 2},
            {"put": "c", "value": "1", "revision": 10, "create_revision": 4, "version": 3}
        ]}"#,
    );
    assert_eq!(etcd.revision(), 10);
    let kvs = etcd.range("");
    let revs: Vec<_> = kvs
        .iter()
        .map(|kv| (kv.mod_revision, kv.create_revision, kv.version))
        .collect();
    assert_eq!(revs, [(2, 2, 1), (2, 2, 1), (10, 4, 3)]);
}

#[test]
fn kvs_apply_after_the_history() {
    let etcd = start(
        r#"{"kvs": [{"key": "later", "value": "x", "lease": "s"}],
            "leases": [{"name": "s", "ttl": 30}],
            "history": [{"put": "a", "value": "1", "lease": "s"}]}"#,
    );
    assert_eq!(etcd.revision(), 3);
    let leases = etcd.leases();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].keys, [b"a".to_vec(), b"later".to_vec()]);
}

#[tokio::test]
async fn etcdctl_json_output_loads() {
    // `etcdctl get "" --prefix -w json` (keys and values in base64).
    let output = r#"{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":12,"raft_term":2},
      "kvs":[{"key":"L2FwcC9sZWFkZXI=","create_revision":2,"mod_revision":9,"version":3,"value":"bm9kZS0x"},
             {"key":"L2FwcC9tb2Rl","create_revision":5,"mod_revision":5,"version":1,"value":"cHJpbWFyeQ==","lease":7587869}],
      "count":2}"#;
    let etcd = start(output);
    assert_eq!(etcd.revision(), 12);
    let mut c = client(&etcd).await;
    let resp = c.get("/app/leader", None).await.unwrap();
    let kv = &resp.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version()
        ),
        (&b"node-1"[..], 2, 9, 3)
    );
    assert_eq!(resp.header().unwrap().revision(), 12);
    assert_eq!(etcd.get("/app/mode").as_deref(), Some("primary"));
    assert!(
        etcd.leases().is_empty(),
        "etcdctl's output has no lease TTLs"
    );
    // Nothing is known before the newest change.
    let err = c
        .get("/app/mode", Some(GetOptions::new().with_revision(5)))
        .await
        .unwrap_err();
    assert_eq!(status(err).0, Code::OutOfRange);
    let at_nine = c
        .get("/app/mode", Some(GetOptions::new().with_revision(9)))
        .await
        .unwrap();
    assert_eq!(at_nine.kvs()[0].value(), b"primary");
    assert_round_trip(&etcd.dump());
}

#[test]
fn a_history_dump_loads_back_identically() {
    let etcd = start(HISTORY);
    let dump = etcd.dump();
    assert_round_trip(&dump);
    assert_eq!(
        dump["leases"],
        json!([{"name": "64", "id": 100, "ttl": 60}])
    );
}

#[tokio::test]
async fn a_dump_of_client_writes_loads_back_identically() {
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut c = client(&etcd).await;
    let lease = c.lease_grant(30, None).await.unwrap().id();
    let gone = c.lease_grant(30, None).await.unwrap().id();
    c.put("k", "1", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    c.put(vec![0xff, 0x00], vec![0xfe], None).await.unwrap();
    c.put("old", "x", Some(PutOptions::new().with_lease(gone)))
        .await
        .unwrap();
    let txn = Txn::new().and_then([
        TxnOp::put("t1", "a", None),
        TxnOp::put("t2", "b", None),
        TxnOp::delete("k", None),
    ]);
    c.txn(txn).await.unwrap();
    c.compact(4, None).await.unwrap();
    c.put("t1", "again", None).await.unwrap();
    c.lease_revoke(gone).await.unwrap();
    let before = etcd.dump();

    assert_round_trip(&before);

    let copy = TestEtcd::builder().fixture_json(before).start().unwrap();
    assert_eq!(copy.revision(), etcd.revision());
    assert_eq!(copy.range(""), etcd.range(""));
    let mut cc = client(&copy).await;
    let at5 = cc
        .get("t", Some(GetOptions::new().with_prefix().with_revision(5)))
        .await
        .unwrap();
    assert_eq!(at5.kvs().len(), 2, "the txn's revision is one revision");
    let hash = |r: etcd_client::HashKvResponse| r.hash();
    assert_eq!(
        hash(cc.hash_kv(0).await.unwrap()),
        hash(c.hash_kv(0).await.unwrap()),
        "the same history, hash for hash"
    );
}

#[tokio::test]
async fn a_dump_with_negative_lease_ids_loads_back_identically() {
    // etcd grants a client's negative lease ID as given; a revoked one stays in the history.
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut c = client(&etcd).await;
    for id in [-7, -9] {
        c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(id)))
            .await
            .unwrap();
    }
    c.put("live", "1", Some(PutOptions::new().with_lease(-7)))
        .await
        .unwrap();
    c.put("gone", "2", Some(PutOptions::new().with_lease(-9)))
        .await
        .unwrap();
    c.lease_revoke(-9).await.unwrap();
    let dump = etcd.dump();
    assert_round_trip(&dump);
    let copy = TestEtcd::builder().fixture_json(dump).start().unwrap();
    let mut cc = client(&copy).await;
    let old = cc
        .get("gone", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap();
    assert_eq!(
        old.kvs()[0].lease(),
        -9,
        "the revoked lease's ID, as written"
    );
    assert_eq!(copy.range("live")[0].lease, -7);
}

#[test]
fn write_fixture_writes_a_file_that_loads() {
    let etcd = start(HISTORY);
    let path = std::env::temp_dir().join(format!("test-etcd-it-{}.json", std::process::id()));
    etcd.write_fixture(&path).unwrap();
    let copy = TestEtcd::builder().fixture(&path).start().unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(copy.dump(), etcd.dump());
}

#[test]
fn write_fixture_reports_an_unwritable_path() {
    let etcd = TestEtcd::start();
    let err = etcd.write_fixture("/nonexistent-dir/x/y.json").unwrap_err();
    assert!(matches!(err, test_etcd::Error::Write { .. }), "{err}");
}

#[rstest::rstest]
#[case::two_verbs(
    r#"{"history": [{"put": "a", "value": "1", "delete": "a"}]}"#,
    "<string>:1:41: at $.history[0].delete: `delete` conflicts with `put`: an entry is one change"
)]
#[case::no_verb(
    r#"{"history": [{"value": "1"}]}"#,
    "<string>:1:14: at $.history[0]: missing the change: an entry needs one of `put`, `delete`, `grant`, `revoke`, `compact`"
)]
#[case::unknown_field(
    r#"{"history": [{"put": "a", "value": "1", "ttl": 3}]}"#,
    "<string>:1:41: at $.history[0].ttl: unknown field `ttl` here, expected one of `put`, `value`, `value_base64`, `json`, `lease`, `lease_id`, `revision`, `create_revision`, `version`"
)]
#[case::missing_value(
    r#"{"history": [{"put": "a"}]}"#,
    "<string>:1:14: at $.history[0]: missing value: a put needs one of `value`, `value_base64`, `json`"
)]
#[case::revision_back(
    "{\"history\": [\n  {\"put\": \"a\", \"value\": \"1\"},\n  {\"put\": \"b\", \"value\": \"1\"},\n  {\"put\": \"c\", \"value\": \"1\", \"revision\": 2}\n]}",
    "<string>:4:3: at $.history[2]: revision 2 is not after the store's revision 3 (the previous change's revision joins it)"
)]
#[case::future_compaction(
    r#"{"history": [{"put": "a", "value": "1"}, {"compact": 5}]}"#,
    "<string>:1:54: at $.history[1].compact: cannot compact at 5: the store is at revision 2 (etcd: required revision is a future revision)"
)]
#[case::compacted_twice(
    r#"{"history": [{"put": "a", "value": "1"}, {"compact": 2}, {"compact": 2}]}"#,
    "<string>:1:70: at $.history[2].compact: cannot compact at 2: already compacted at 2 (etcd: required revision has been compacted)"
)]
#[case::unknown_lease(
    r#"{"history": [{"put": "a", "value": "1", "lease": "nope"}]}"#,
    "<string>:1:50: at $.history[0].lease: unknown lease `nope`: no lease of that name is granted here"
)]
#[case::revoked_lease(
    r#"{"history": [{"grant": "s", "ttl": 5}, {"revoke": "s"}, {"revoke": "s"}]}"#,
    "<string>:1:68: at $.history[2].revoke: unknown lease `s`: no lease of that name is granted here"
)]
#[case::grant_taken_name(
    r#"{"leases": [{"name": "s", "ttl": 5}], "history": [{"grant": "s", "ttl": 5}]}"#,
    "<string>:1:61: at $.history[0].grant: a lease needs a new, non-empty name; `s` is taken or empty"
)]
#[case::live_key_on_a_gone_lease(
    r#"{"history": [{"put": "a", "value": "1", "lease_id": 9}]}"#,
    "<string>:1:14: at $.history[0]: the key is still alive at the end on lease 9, which is not granted then"
)]
#[case::bad_base64(
    r#"{"history": [{"put_base64": "@@", "value": "1"}]}"#,
    "<string>:1:29: at $.history[0].put_base64: invalid base64: Invalid symbol 64, offset 0."
)]
#[case::history_not_an_array(
    r#"{"history": {"put": "a"}}"#,
    "<string>:1:13: at $.history: expected a string value, found an object (a full-form fixture needs `history` to be an array)"
)]
#[case::revision_below_the_history(
    r#"{"history": [{"put": "a", "value": "1"}], "revision": 1}"#,
    "<string>:1:55: at $.revision: expected a revision of at least 2 (the history's last), found number 1"
)]
#[case::etcdctl_bad_base64(
    r#"{"header": {"revision": 3}, "kvs": [{"key": "!", "create_revision": 2, "mod_revision": 2, "version": 1}]}"#,
    "<string>:1:45: at $.kvs[0].key: invalid base64: Invalid symbol 33, offset 0."
)]
#[case::etcdctl_after_the_header(
    r#"{"header": {"revision": 3}, "kvs": [{"key": "YQ==", "create_revision": 2, "mod_revision": 4, "version": 1}]}"#,
    "<string>:1:91: at $.kvs[0].mod_revision: mod_revision is after the header's revision"
)]
#[case::etcdctl_missing_version(
    r#"{"header": {"revision": 3}, "kvs": [{"key": "YQ==", "create_revision": 2, "mod_revision": 2}]}"#,
    "<string>:1:37: at $.kvs[0]: missing `version`"
)]
fn every_mistake_is_positioned(#[case] fixture: &str, #[case] expected: &str) {
    assert_eq!(error(fixture), expected);
}

#[test]
fn a_history_must_load_first() {
    let err = TestEtcd::builder()
        .fixture_str(r#"{"a": "1"}"#)
        .fixture_str(r#"{"history": [{"put": "b", "value": "1"}]}"#)
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("load it first"), "{err}");
}
