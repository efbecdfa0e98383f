//! Leases on a manual clock: a session key expires exactly when the test says time has passed,
//! with no sleeping.
//!
//! Run with `cargo run --example manual_clock`.

use std::time::Duration;

use etcd_client::PutOptions;
use test_etcd::TestEtcd;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Arrange: a server whose clock moves only when told, and a key on a 30 s lease.
    let etcd = TestEtcd::builder().manual_clock().start()?;
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    let lease = client.lease_grant(30, None).await?.id();
    client
        .put(
            "/workers/w1",
            "alive",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;

    // Act: 29 seconds pass, then one more.
    etcd.advance(Duration::from_secs(29));
    let before = etcd.get("/workers/w1");
    etcd.advance(Duration::from_secs(1));

    // Assert: the key lived exactly its TTL.
    assert_eq!(before.as_deref(), Some("alive"));
    assert_eq!(etcd.get("/workers/w1"), None);
    println!("the worker's key expired after exactly 30 s of server time");
    Ok(())
}
