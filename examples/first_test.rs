//! The setup of a first test: an empty server, a client on it, and assertions on both sides.
//!
//! Run with `cargo run --example first_test`.

use test_etcd::TestEtcd;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Arrange: a fresh server on a free loopback port, and an ordinary etcd client.
    let etcd = TestEtcd::start();
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;

    // Act: whatever the code under test does with etcd.
    client.put("/service/leader", "node-1", None).await?;

    // Assert: through the client, or directly on the server's state.
    let resp = client.get("/service/leader", None).await?;
    assert_eq!(resp.kvs()[0].value_str()?, "node-1");
    assert_eq!(etcd.get("/service/leader").as_deref(), Some("node-1"));
    assert_eq!(etcd.revision(), 2);
    println!(
        "leader is {:?} at revision {}",
        etcd.get("/service/leader"),
        etcd.revision()
    );
    Ok(())
    // Dropping `etcd` stops the server and frees its port.
}
