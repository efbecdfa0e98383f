//! The Lock service (v3lock) through etcd-client.

use std::time::Duration;

use etcd_client::{Client, LockOptions};
use test_etcd::TestEtcd;
use tonic::Code;

use crate::{client, connect, rev, status};

async fn manual() -> (TestEtcd, Client) {
    let etcd = TestEtcd::builder().manual_clock().start().expect("start");
    let client = client(&etcd).await;
    (etcd, client)
}

fn on(lease: i64) -> Option<LockOptions> {
    Some(LockOptions::new().with_lease(lease))
}

/// Waits (without a fixed sleep) until `key` exists: a blocked Lock has queued its key.
async fn until_queued(etcd: &TestEtcd, key: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while etcd.get(key).is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the waiter queues its key");
}

#[tokio::test]
async fn lock_puts_name_slash_lease_hex_on_the_lease_and_answers_at_once_when_free() {
    let (etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    let resp = client.lock("lk2", on(lease)).await.unwrap();
    let key = format!("lk2/{lease:x}");
    assert_eq!(resp.key(), key.as_bytes());
    assert_eq!(rev(resp.header()), 2, "the header of the lock txn");
    let kv = client.get(key.as_str(), None).await.unwrap();
    assert_eq!(
        (kv.kvs()[0].value(), kv.kvs()[0].lease()),
        (&b""[..], lease)
    );
    assert_eq!(etcd.revision(), 2);
}

#[tokio::test]
async fn locking_again_on_the_same_lease_is_reentrant() {
    let (etcd, mut client) = connect().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    let first = client.lock("m", on(lease)).await.unwrap();
    let again = client.lock("m", on(lease)).await.unwrap();
    assert_eq!(first.key(), again.key());
    assert_eq!(rev(again.header()), rev(first.header()));
    assert_eq!(etcd.revision(), 2, "no second put");
}

#[tokio::test]
async fn the_second_client_gets_the_lock_when_the_first_unlocks() {
    let (etcd, mut first) = connect().await;
    let mut second = client(&etcd).await;
    let a = first.lease_grant(60, None).await.unwrap().id();
    let b = first.lease_grant(60, None).await.unwrap().id();
    let held = first.lock("job", on(a)).await.unwrap();
    let waiter = tokio::spawn(async move { second.lock("job", on(b)).await });
    until_queued(&etcd, &format!("job/{b:x}")).await;
    assert!(
        !waiter.is_finished(),
        "blocked while the first holds the lock"
    );
    let unlocked = first.unlock(held.key()).await.unwrap();
    assert_eq!(rev(unlocked.header()), 4);
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.key(), format!("job/{b:x}").as_bytes());
    assert_eq!(
        rev(got.header()),
        4,
        "the header of the read after the wait"
    );
}

#[tokio::test]
async fn the_second_client_gets_the_lock_when_the_first_lease_expires() {
    let (etcd, mut first) = manual().await;
    let mut second = client(&etcd).await;
    let a = first.lease_grant(10, None).await.unwrap().id();
    let b = first.lease_grant(60, None).await.unwrap().id();
    first.lock("job", on(a)).await.unwrap();
    let waiter = tokio::spawn(async move { second.lock("job", on(b)).await });
    until_queued(&etcd, &format!("job/{b:x}")).await;
    etcd.advance(Duration::from_secs(9));
    assert!(!waiter.is_finished());
    etcd.advance(Duration::from_secs(1));
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.key(), format!("job/{b:x}").as_bytes());
    assert_eq!(etcd.get(format!("job/{a:x}")), None);
}

#[tokio::test]
async fn a_waiter_whose_lease_goes_meanwhile_gets_session_expired() {
    let (etcd, mut first) = connect().await;
    let mut second = client(&etcd).await;
    let a = first.lease_grant(60, None).await.unwrap().id();
    let b = first.lease_grant(60, None).await.unwrap().id();
    let held = first.lock("job", on(a)).await.unwrap();
    let waiter = tokio::spawn(async move { second.lock("job", on(b)).await });
    until_queued(&etcd, &format!("job/{b:x}")).await;
    first.lease_revoke(b).await.unwrap();
    first.unlock(held.key()).await.unwrap();
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(
        status(err),
        (Code::Unknown, "mutex: session is expired".into())
    );
}

#[tokio::test]
async fn lease_zero_gets_a_sixty_second_lease_nobody_renews() {
    let (etcd, mut client) = manual().await;
    let resp = client.lock("m", None).await.unwrap();
    let key = String::from_utf8(resp.key().to_vec()).unwrap();
    let kv = client.get(key.as_str(), None).await.unwrap();
    let lease = kv.kvs()[0].lease();
    assert_eq!(key, format!("m/{lease:x}"));
    let ttl = client.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    etcd.advance(Duration::from_secs(60));
    assert_eq!(etcd.get(&key), None);
}

#[tokio::test]
async fn an_unknown_lease_is_an_unknown_error_with_etcds_text() {
    let (_etcd, mut client) = connect().await;
    let err = client.lock("m", on(12345)).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::Unknown,
            "etcdserver: requested lease not found".into()
        )
    );
}

#[tokio::test]
async fn unlock_is_a_plain_delete_and_a_missing_key_is_fine() {
    let (etcd, mut client) = connect().await;
    client.put("someone/else", "x", None).await.unwrap();
    let resp = client.unlock("someone/else").await.unwrap();
    assert_eq!(rev(resp.header()), 3);
    assert_eq!(etcd.get("someone/else"), None);
    let resp = client.unlock("never/there").await.unwrap();
    assert_eq!(rev(resp.header()), 3);
}

#[tokio::test]
async fn a_cancelled_waiter_takes_its_key_out_of_the_queue() {
    let (etcd, mut first) = connect().await;
    let mut second = client(&etcd).await;
    let a = first.lease_grant(60, None).await.unwrap().id();
    let b = first.lease_grant(60, None).await.unwrap().id();
    first.lock("job", on(a)).await.unwrap();
    let waiter = tokio::spawn(async move { second.lock("job", on(b)).await });
    let key = format!("job/{b:x}");
    until_queued(&etcd, &key).await;
    waiter.abort();
    tokio::time::timeout(Duration::from_secs(5), async {
        while etcd.get(&key).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the server deletes the waiter's key");
}

#[tokio::test]
async fn dropping_the_server_fails_a_blocked_lock_promptly() {
    let (etcd, mut first) = connect().await;
    let mut second = client(&etcd).await;
    let a = first.lease_grant(60, None).await.unwrap().id();
    let b = first.lease_grant(60, None).await.unwrap().id();
    first.lock("job", on(a)).await.unwrap();
    let waiter = tokio::spawn(async move { second.lock("job", on(b)).await });
    until_queued(&etcd, &format!("job/{b:x}")).await;
    drop(etcd);
    let result = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the blocked call ends promptly")
        .unwrap();
    assert!(result.is_err(), "the client sees an error, got {result:?}");
}
