//! The Election service (v3election) through etcd-client.

use std::time::Duration;

use etcd_client::{Client, LeaderKey, ProclaimOptions, ResignOptions};
use test_etcd::TestEtcd;
use tonic::Code;

use crate::{client, connect, rev, status};

async fn manual() -> (TestEtcd, Client) {
    let etcd = TestEtcd::builder().manual_clock().start().expect("start");
    let client = client(&etcd).await;
    (etcd, client)
}

async fn until_exists(etcd: &TestEtcd, key: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while etcd.get(key).is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the candidate puts its key");
}

fn proclaim_as(leader: &LeaderKey) -> Option<ProclaimOptions> {
    Some(ProclaimOptions::new().with_leader(leader.clone()))
}

fn resign_as(leader: &LeaderKey) -> Option<ResignOptions> {
    Some(ResignOptions::new().with_leader(leader.clone()))
}

/// The next Observe message as (value, header revision).
async fn next(stream: &mut etcd_client::ObserveStream) -> (String, i64) {
    let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an observe message")
        .unwrap()
        .unwrap();
    let kv = msg.kv().unwrap();
    (kv.value_str().unwrap().to_owned(), rev(msg.header()))
}

#[tokio::test]
async fn campaign_wins_an_empty_election_at_once() {
    let (etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    let resp = client.campaign("svc", "node-1", lease).await.unwrap();
    let leader = resp.leader().unwrap();
    let key = format!("svc/{lease:x}");
    assert_eq!(
        (leader.name(), leader.key(), leader.rev(), leader.lease()),
        (&b"svc"[..], key.as_bytes(), 2, lease)
    );
    assert_eq!(rev(resp.header()), 2);
    assert_eq!(etcd.get(&key).as_deref(), Some("node-1"));
    let now = client.leader("svc").await.unwrap();
    assert_eq!(now.kv().unwrap().value(), b"node-1");
    assert_eq!(rev(now.header()), 2);
}

#[tokio::test]
async fn proclaim_updates_the_value_and_a_stale_leader_is_refused() {
    let (_etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    let resp = client.campaign("svc", "v1", lease).await.unwrap();
    let leader = resp.leader().unwrap().clone();
    let proclaimed = client.proclaim("v2", proclaim_as(&leader)).await.unwrap();
    assert_eq!(rev(proclaimed.header()), 3);
    let now = client.leader("svc").await.unwrap();
    assert_eq!(now.kv().unwrap().value(), b"v2");
    assert_eq!(now.kv().unwrap().lease(), lease, "proclaim keeps the lease");
    let stale = leader.clone().with_rev(leader.rev() + 100);
    let err = client
        .proclaim("v3", proclaim_as(&stale))
        .await
        .unwrap_err();
    assert_eq!(status(err), (Code::Unknown, "election: not leader".into()));
}

#[tokio::test]
async fn leader_of_an_empty_election_and_a_missing_leader_field_are_errors() {
    let (_etcd, mut client) = connect().await;
    let err = client.leader("nobody").await.unwrap_err();
    assert_eq!(status(err), (Code::Unknown, "election: no leader".into()));
    let err = client.proclaim("v", None).await.unwrap_err();
    let missing = (
        Code::Unknown,
        "\"leader\" field must be provided".to_owned(),
    );
    assert_eq!(status(err), missing);
    let err = client.resign(None).await.unwrap_err();
    assert_eq!(status(err), missing);
}

#[tokio::test]
async fn resign_hands_over_to_the_next_candidate() {
    let (etcd, mut first) = connect().await;
    let mut second = client(&etcd).await;
    let a = first.lease_grant(60, None).await.unwrap().id();
    let b = first.lease_grant(60, None).await.unwrap().id();
    let won = first.campaign("svc", "a", a).await.unwrap();
    let waiter = tokio::spawn(async move { second.campaign("svc", "b", b).await });
    until_exists(&etcd, &format!("svc/{b:x}")).await;
    assert!(!waiter.is_finished());
    let resigned = first
        .resign(resign_as(won.leader().unwrap()))
        .await
        .unwrap();
    assert_eq!(rev(resigned.header()), 4);
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.leader().unwrap().rev(), 3);
    assert_eq!(
        rev(got.header()),
        3,
        "the header of its campaign txn, before the wait"
    );
    let now = first.leader("svc").await.unwrap();
    assert_eq!(now.kv().unwrap().value(), b"b");
    // Resigning again, no longer leader: still a success.
    let again = first
        .resign(resign_as(won.leader().unwrap()))
        .await
        .unwrap();
    assert_eq!(rev(again.header()), 4);
}

#[tokio::test]
async fn leadership_passes_on_when_the_leaders_lease_expires() {
    let (etcd, mut first) = manual().await;
    let mut second = client(&etcd).await;
    let a = first.lease_grant(10, None).await.unwrap().id();
    let b = first.lease_grant(60, None).await.unwrap().id();
    first.campaign("svc", "a", a).await.unwrap();
    let waiter = tokio::spawn(async move { second.campaign("svc", "b", b).await });
    until_exists(&etcd, &format!("svc/{b:x}")).await;
    etcd.advance(Duration::from_secs(9));
    assert!(!waiter.is_finished());
    etcd.advance(Duration::from_secs(1));
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.leader().unwrap().lease(), b);
    let now = first.leader("svc").await.unwrap();
    assert_eq!(now.kv().unwrap().value(), b"b");
}

#[tokio::test]
async fn campaigning_again_on_the_same_lease_keeps_the_place_and_updates_the_value() {
    let (etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    client.campaign("svc", "v1", lease).await.unwrap();
    let again = client.campaign("svc", "v2", lease).await.unwrap();
    assert_eq!(again.leader().unwrap().rev(), 2, "same candidacy");
    assert_eq!(
        rev(again.header()),
        2,
        "the header of the txn, before the proclaim"
    );
    assert_eq!(etcd.get(format!("svc/{lease:x}")).as_deref(), Some("v2"));
    assert_eq!(etcd.revision(), 3);
}

#[tokio::test]
async fn lease_zero_and_unknown_leases_behave_as_in_etcd() {
    let (etcd, mut client) = manual().await;
    let resp = client.campaign("svc", "v", 0).await.unwrap();
    let lease = resp.leader().unwrap().lease();
    let ttl = client.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    etcd.advance(Duration::from_secs(60));
    assert!(
        client.leader("svc").await.is_err(),
        "the candidacy went with its lease"
    );
    let err = client.campaign("svc", "v", 4242).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::Unknown,
            "etcdserver: requested lease not found".into()
        )
    );
}

#[tokio::test]
async fn observe_follows_proclaims_and_leader_changes() {
    let (etcd, mut client) = manual().await;
    let mut observer = client.clone();
    let a = client.lease_grant(10, None).await.unwrap().id();
    let b = client.lease_grant(60, None).await.unwrap().id();
    let won = client.campaign("svc", "a1", a).await.unwrap();
    let mut stream = observer.observe("svc").await.unwrap();
    assert_eq!(next(&mut stream).await, ("a1".to_owned(), 2));
    client
        .proclaim("a2", proclaim_as(won.leader().unwrap()))
        .await
        .unwrap();
    assert_eq!(next(&mut stream).await, ("a2".to_owned(), 3));
    let mut second = client.clone();
    let waiter = tokio::spawn(async move { second.campaign("svc", "b1", b).await });
    until_exists(&etcd, &format!("svc/{b:x}")).await;
    etcd.advance(Duration::from_secs(10));
    waiter.await.unwrap().unwrap();
    // The old leader's delete is not sent; the next leader is, with the read's header.
    assert_eq!(next(&mut stream).await, ("b1".to_owned(), 5));
}

#[tokio::test]
async fn observe_with_no_leader_waits_for_the_first_candidate() {
    let (_etcd, mut client) = connect().await;
    let mut observer = client.clone();
    let mut stream = observer.observe("svc").await.unwrap();
    client.put("other", "x", None).await.unwrap();
    let lease = client.lease_grant(60, None).await.unwrap().id();
    client.campaign("svc", "first", lease).await.unwrap();
    assert_eq!(next(&mut stream).await, ("first".to_owned(), 3));
}

#[tokio::test]
async fn dropping_the_server_ends_observe_and_fails_a_blocked_campaign() {
    let (etcd, mut client) = connect().await;
    let mut observer = client.clone();
    let mut second = client.clone();
    let a = client.lease_grant(60, None).await.unwrap().id();
    let b = client.lease_grant(60, None).await.unwrap().id();
    client.campaign("svc", "a", a).await.unwrap();
    let mut stream = observer.observe("svc").await.unwrap();
    next(&mut stream).await;
    let waiter = tokio::spawn(async move { second.campaign("svc", "b", b).await });
    until_exists(&etcd, &format!("svc/{b:x}")).await;
    drop(etcd);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the observe stream ends promptly");
    assert!(end.is_err(), "the observer sees an error, got {end:?}");
    let blocked = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the blocked campaign ends promptly")
        .unwrap();
    assert!(
        blocked.is_err(),
        "the candidate sees an error, got {blocked:?}"
    );
}

#[tokio::test]
async fn proclaim_puts_with_the_leader_keys_lease_so_lease_zero_moves_it_to_a_new_one() {
    let (_etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    let won = client.campaign("svc", "v1", lease).await.unwrap();
    let leader = won.leader().unwrap().clone();
    let without_lease = leader.clone().with_lease(0);
    client
        .proclaim("v2", proclaim_as(&without_lease))
        .await
        .unwrap();
    let kv = client.leader("svc").await.unwrap();
    let moved_to = kv.kv().unwrap().lease();
    assert_ne!(
        moved_to, lease,
        "etcd's server grants a session lease for lease 0"
    );
    let ttl = client.lease_time_to_live(moved_to, None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    let unknown = leader.with_lease(999);
    let err = client
        .proclaim("v3", proclaim_as(&unknown))
        .await
        .unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::Unknown,
            "etcdserver: requested lease not found".into()
        )
    );
}

#[tokio::test]
async fn a_fixture_can_seed_an_elected_leader_that_loses_its_lease() {
    let etcd = TestEtcd::builder()
        .manual_clock()
        .fixture("fixtures/sessions.json")
        .start()
        .unwrap();
    let mut client = client(&etcd).await;
    let leader = client.leader("/svc/api/leader").await.unwrap();
    assert_eq!(leader.kv().unwrap().value(), b"node-1");
    assert_eq!(leader.kv().unwrap().lease(), 0x694d_1a2b_3c4d_5e6f);
    etcd.advance(Duration::from_secs(30));
    assert_eq!(
        etcd.get("/svc/api/node-1"),
        None,
        "the 30 s lease went first"
    );
    etcd.advance(Duration::from_secs(30));
    let err = client.leader("/svc/api/leader").await.unwrap_err();
    assert_eq!(status(err), (Code::Unknown, "election: no leader".into()));
    assert_eq!(etcd.get("/svc/config/replicas").as_deref(), Some("3"));
}
