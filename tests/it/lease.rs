//! The Lease service through etcd-client, with the manual clock for every expiry.

use std::time::Duration;

use etcd_client::{GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions};
use test_etcd::TestEtcd;
use tonic::Code;

use crate::{client, connect, rev, status};

async fn manual() -> (TestEtcd, etcd_client::Client) {
    let etcd = TestEtcd::builder().manual_clock().start().expect("start");
    let client = client(&etcd).await;
    (etcd, client)
}

fn with_lease(id: i64) -> Option<PutOptions> {
    Some(PutOptions::new().with_lease(id))
}

#[tokio::test]
async fn grant_picks_unique_positive_ids_two_apart() {
    let (_etcd, mut client) = connect().await;
    let a = client.lease_grant(60, None).await.unwrap();
    let b = client.lease_grant(60, None).await.unwrap();
    assert!(a.id() > 0);
    assert_eq!(b.id() - a.id(), 2);
    assert_eq!(a.ttl(), 60);
    assert_eq!(rev(a.header()), 1, "a grant makes no revision");
}

#[tokio::test]
async fn grant_takes_client_ids_and_refuses_duplicates() {
    let (_etcd, mut client) = connect().await;
    let id = |id| Some(LeaseGrantOptions::new().with_id(id));
    assert_eq!(client.lease_grant(30, id(1234)).await.unwrap().id(), 1234);
    assert_eq!(client.lease_grant(30, id(-5)).await.unwrap().id(), -5);
    let err = client.lease_grant(30, id(1234)).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::FailedPrecondition,
            "etcdserver: lease already exists".into()
        )
    );
    // A revoked ID can be granted again.
    client.lease_revoke(1234).await.unwrap();
    assert_eq!(client.lease_grant(30, id(1234)).await.unwrap().id(), 1234);
}

#[tokio::test]
async fn grant_raises_small_ttls_to_two_and_refuses_huge_ones() {
    let (_etcd, mut client) = connect().await;
    for ttl in [1, 0, -5] {
        assert_eq!(client.lease_grant(ttl, None).await.unwrap().ttl(), 2);
    }
    assert_eq!(
        client.lease_grant(9_000_000_000, None).await.unwrap().ttl(),
        9_000_000_000
    );
    let err = client.lease_grant(9_000_000_001, None).await.unwrap_err();
    assert_eq!(
        status(err),
        (Code::OutOfRange, "etcdserver: too large lease TTL".into())
    );
}

#[tokio::test]
async fn revoke_deletes_every_attached_key_in_one_revision() {
    let (etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    for key in ["c", "a", "b"] {
        client.put(key, "v", with_lease(lease)).await.unwrap();
    }
    client.put("free", "v", None).await.unwrap();
    let resp = client.lease_revoke(lease).await.unwrap();
    assert_eq!(rev(resp.header()), 6, "three keys, one revision");
    assert_eq!(etcd.get("a"), None);
    assert_eq!(etcd.get("free").as_deref(), Some("v"));
    let before = GetOptions::new().with_all_keys().with_revision(5);
    assert_eq!(client.get("", Some(before)).await.unwrap().count(), 4);
    let after = client
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(after.count(), 1);
}

#[tokio::test]
async fn revoking_an_unknown_lease_is_not_found() {
    let (_etcd, mut client) = connect().await;
    for id in [0, 42] {
        let err = client.lease_revoke(id).await.unwrap_err();
        assert_eq!(
            status(err),
            (
                Code::NotFound,
                "etcdserver: requested lease not found".into()
            )
        );
    }
    let empty = client.lease_grant(10, None).await.unwrap().id();
    let resp = client.lease_revoke(empty).await.unwrap();
    assert_eq!(rev(resp.header()), 1, "no keys, no revision");
}

#[tokio::test]
async fn put_with_an_unknown_lease_is_not_found_and_ignore_lease_keeps_it() {
    let (etcd, mut client) = manual().await;
    let err = client.put("k", "v", with_lease(99)).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::NotFound,
            "etcdserver: requested lease not found".into()
        )
    );
    let lease = client.lease_grant(10, None).await.unwrap().id();
    client.put("k", "v1", with_lease(lease)).await.unwrap();
    let keep = PutOptions::new().with_ignore_lease();
    client.put("k", "v2", Some(keep)).await.unwrap();
    etcd.advance(Duration::from_secs(10));
    assert_eq!(
        etcd.get("k"),
        None,
        "the key kept its lease and went with it"
    );
}

#[tokio::test]
async fn keys_expire_exactly_when_the_manual_clock_passes_the_ttl() {
    let (etcd, mut client) = manual().await;
    let lease = client.lease_grant(5, None).await.unwrap().id();
    client
        .put("session", "me", with_lease(lease))
        .await
        .unwrap();
    etcd.advance(Duration::from_millis(4_999));
    assert_eq!(etcd.get("session").as_deref(), Some("me"));
    let ttl = client.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(
        (ttl.ttl(), ttl.granted_ttl()),
        (0, 5),
        "truncated toward zero"
    );
    etcd.advance(Duration::from_millis(1));
    assert_eq!(etcd.get("session"), None);
    assert_eq!(etcd.revision(), 3, "the put, then the expiry's delete");
    let ttl = client.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(ttl.ttl(), -1, "an expired lease is unknown");
}

#[tokio::test]
async fn a_real_clock_never_expires_a_lease_before_its_ttl() {
    let (etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    client.put("k", "v", with_lease(lease)).await.unwrap();
    // Jumping the real clock ahead is how a test expires a lease without a manual clock.
    etcd.advance(Duration::from_secs(59));
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
    etcd.advance(Duration::from_secs(1));
    assert_eq!(etcd.get("k"), None);
}

#[tokio::test]
async fn keep_alive_restarts_the_ttl_and_answers_the_granted_ttl() {
    let (etcd, mut client) = manual().await;
    let lease = client.lease_grant(10, None).await.unwrap().id();
    client.put("k", "v", with_lease(lease)).await.unwrap();
    let (mut keeper, mut answers) = client.lease_keep_alive(lease).await.unwrap();
    etcd.advance(Duration::from_secs(8));
    keeper.keep_alive().await.unwrap();
    let answer = answers.message().await.unwrap().unwrap();
    assert_eq!((answer.id(), answer.ttl()), (lease, 10));
    assert_eq!(rev(answer.header()), 2);
    etcd.advance(Duration::from_secs(9));
    assert_eq!(
        etcd.get("k").as_deref(),
        Some("v"),
        "renewed at 8 s, due at 18 s"
    );
    etcd.advance(Duration::from_secs(1));
    assert_eq!(etcd.get("k"), None);
    keeper.keep_alive().await.unwrap();
    let answer = answers.message().await.unwrap().unwrap();
    assert_eq!(
        (answer.id(), answer.ttl()),
        (lease, 0),
        "gone: TTL 0, no error"
    );
}

#[tokio::test]
async fn keep_alive_of_an_unknown_lease_is_ttl_zero_and_the_stream_stays_open() {
    use crate::pb::etcdserverpb::{lease_client::LeaseClient, LeaseKeepAliveRequest};
    let (etcd, mut client) = connect().await;
    let known = client.lease_grant(30, None).await.unwrap().id();
    // etcd-client refuses to open a keeper on a TTL-0 answer, so this speaks the stream itself.
    let mut raw = LeaseClient::new(crate::raw::channel(&etcd).await);
    let (requests, rx) = tokio::sync::mpsc::channel(4);
    // As etcd, the server answers the call with its first answer: the first request goes first.
    let ids = [77, 0, known];
    requests
        .send(LeaseKeepAliveRequest { id: ids[0] })
        .await
        .unwrap();
    let mut answers = raw
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            requests.send(LeaseKeepAliveRequest { id }).await.unwrap();
        }
        let answer = answers.message().await.unwrap().unwrap();
        let expected = if id == known { 30 } else { 0 };
        assert_eq!((answer.id, answer.ttl), (id, expected));
        assert_eq!(answer.header.unwrap().revision, 1);
    }
    // The client closing its side ends the stream cleanly.
    drop(requests);
    assert!(answers.message().await.unwrap().is_none());
}

#[tokio::test]
async fn time_to_live_lists_keys_on_request_and_answers_minus_one_when_unknown() {
    let (etcd, mut client) = manual().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    client.put("b", "v", with_lease(lease)).await.unwrap();
    client.put("a", "v", with_lease(lease)).await.unwrap();
    etcd.advance(Duration::from_millis(1_500));
    let plain = client.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(
        (plain.id(), plain.ttl(), plain.granted_ttl()),
        (lease, 58, 60)
    );
    assert!(plain.keys().is_empty());
    let keys = Some(LeaseTimeToLiveOptions::new().with_keys());
    let with_keys = client
        .lease_time_to_live(lease, keys.clone())
        .await
        .unwrap();
    let mut listed = with_keys.keys().to_vec();
    listed.sort();
    assert_eq!(listed, [b"a".to_vec(), b"b".to_vec()]);
    let unknown = client.lease_time_to_live(5, keys).await.unwrap();
    assert_eq!(
        (unknown.id(), unknown.ttl(), unknown.granted_ttl()),
        (5, -1, 0)
    );
    assert!(unknown.keys().is_empty());
    assert_eq!(rev(unknown.header()), 3);
}

#[tokio::test]
async fn leases_are_listed_soonest_expiry_first() {
    let (_etcd, mut client) = manual().await;
    for (id, ttl) in [(1, 30), (2, 10), (3, 20), (4, 5)] {
        let id = Some(LeaseGrantOptions::new().with_id(id));
        client.lease_grant(ttl, id).await.unwrap();
    }
    let resp = client.leases().await.unwrap();
    let ids: Vec<i64> = resp.leases().iter().map(|l| l.id()).collect();
    assert_eq!(ids, [4, 2, 3, 1]);
    assert_eq!(rev(resp.header()), 1);
}

#[tokio::test]
async fn a_txn_attaches_keys_to_a_lease() {
    use etcd_client::{Txn, TxnOp};
    let (etcd, mut client) = manual().await;
    let lease = client.lease_grant(10, None).await.unwrap().id();
    let txn = Txn::new().and_then([
        TxnOp::put("x", "1", Some(PutOptions::new().with_lease(lease))),
        TxnOp::put("y", "2", Some(PutOptions::new().with_lease(lease))),
    ]);
    client.txn(txn).await.unwrap();
    let revision = etcd.revision();
    etcd.advance(Duration::from_secs(10));
    assert_eq!((etcd.get("x"), etcd.get("y")), (None, None));
    assert_eq!(etcd.revision(), revision + 1);
}

#[tokio::test]
async fn fixture_leases_attach_their_keys_and_expire_on_the_clock() {
    let etcd = TestEtcd::builder()
        .manual_clock()
        .fixture_str(
            r#"{"kvs": [{"key": "/svc/a", "value": "x", "lease": "session"},
                        {"key": "/svc/b", "value": "y"}],
                "leases": [{"name": "session", "ttl": 30, "id": 1234}]}"#,
        )
        .start()
        .unwrap();
    let mut client = client(&etcd).await;
    let ttl = Some(LeaseTimeToLiveOptions::new().with_keys());
    let resp = client.lease_time_to_live(1234, ttl).await.unwrap();
    assert_eq!((resp.ttl(), resp.granted_ttl()), (30, 30));
    assert_eq!(resp.keys(), [b"/svc/a".to_vec()]);
    let kv = client.get("/svc/a", None).await.unwrap();
    assert_eq!(kv.kvs()[0].lease(), 1234);
    etcd.advance(Duration::from_secs(30));
    assert_eq!(etcd.get("/svc/a"), None);
    assert_eq!(etcd.get("/svc/b").as_deref(), Some("y"));
}

#[tokio::test]
async fn a_later_fixture_naming_the_same_lease_id_extends_it() {
    let etcd = TestEtcd::builder()
        .manual_clock()
        .fixture_str(r#"{"leases": [{"name": "s", "ttl": 5, "id": 7}], "kvs": [{"key": "a", "value": "1", "lease": "s"}]}"#)
        .fixture_str(r#"{"leases": [{"name": "t", "ttl": 50, "id": 7}], "kvs": [{"key": "b", "value": "2", "lease": "t"}]}"#)
        .start()
        .unwrap();
    etcd.advance(Duration::from_secs(49));
    assert_eq!(
        (etcd.get("a").as_deref(), etcd.get("b").as_deref()),
        (Some("1"), Some("2"))
    );
    etcd.advance(Duration::from_secs(1));
    assert_eq!((etcd.get("a"), etcd.get("b")), (None, None));
}

#[test]
fn an_unknown_lease_name_in_a_fixture_names_file_line_and_path() {
    let err = TestEtcd::builder()
        .fixture_str(r#"{"kvs": [{"key": "k", "value": "v", "lease": "nope"}]}"#)
        .start()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "<string>:1:46: at $.kvs[0].lease: unknown lease `nope`: the fixture has no `leases`"
    );
}

#[tokio::test]
async fn dropping_the_server_ends_a_keep_alive_stream_with_an_error() {
    let (etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    let (mut keeper, mut answers) = client.lease_keep_alive(lease).await.unwrap();
    keeper.keep_alive().await.unwrap();
    answers.message().await.unwrap().unwrap();
    drop(etcd);
    let end = tokio::time::timeout(Duration::from_secs(5), answers.message())
        .await
        .expect("the stream ends promptly");
    assert!(end.is_err(), "the client sees an error, got {end:?}");
}

/// How late, after its deadline, a lease expires on the real clock. Not a timed test: run it with
/// `cargo test --release --test it lateness -- --ignored --nocapture` to print the figures.
#[tokio::test]
#[ignore]
async fn lateness_of_real_clock_expiry() {
    let etcd = TestEtcd::start();
    let mut client = client(&etcd).await;
    const LEASES: usize = 500;
    // Long enough for every grant to be made before the first deadline, so that each expiry is
    // watched for as it happens.
    const TTL: i64 = 5;
    let mut leases = Vec::new();
    for i in 0..LEASES {
        // The deadline is set while the grant is served: after this instant.
        let asked = std::time::Instant::now();
        let lease = client.lease_grant(TTL, None).await.unwrap().id();
        let key = format!("k{i}");
        client
            .put(key.as_str(), "v", with_lease(lease))
            .await
            .unwrap();
        leases.push((key, asked));
        // Spread the deadlines so that each is its own wake-up.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let granting = leases.last().map(|(_, at)| at.duration_since(leases[0].1));
    assert!(
        granting < Some(Duration::from_secs(TTL as u64 - 1)),
        "granting took {granting:?}"
    );
    let mut late = Vec::new();
    for (key, granted) in leases {
        // Counted from before the grant: an upper bound, over by at most the grant's round trip.
        let deadline = granted + Duration::from_secs(TTL as u64);
        loop {
            if etcd.get(&key).is_none() {
                late.push(std::time::Instant::now().saturating_duration_since(deadline));
                break;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    late.sort();
    let pct = |p: usize| late[(late.len() - 1) * p / 100];
    println!(
        "expiry lateness over {LEASES} leases: min {:?} p50 {:?} p90 {:?} p99 {:?} max {:?}",
        late[0],
        pct(50),
        pct(90),
        pct(99),
        late[late.len() - 1]
    );
}

#[tokio::test(start_paused = true)]
async fn the_tests_paused_tokio_clock_does_not_move_the_servers_clock() {
    let (etcd, mut client) = manual().await;
    let lease = client.lease_grant(5, None).await.unwrap().id();
    client.put("k", "v", with_lease(lease)).await.unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
    let ttl = client.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(ttl.ttl(), 5);
    etcd.advance(Duration::from_secs(5));
    assert_eq!(etcd.get("k"), None);
}
