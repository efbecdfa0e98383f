//! A server seeded from the example fixture, forked per test case: the pattern for suites that
//! share a large seed.
//!
//! Run with `cargo run --example fixture_seeded`.

use etcd_client::GetOptions;
use test_etcd::TestEtcd;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Load once...
    let seed = TestEtcd::builder().fixture("fixtures/app.json").start()?;
    for case in ["scale-up", "failover"] {
        // ...and give each case its own copy, which costs about the same for any seed size.
        let etcd = seed.fork()?;
        let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
        let services = client
            .get("/app/services/", Some(GetOptions::new().with_prefix()))
            .await?;
        client.put("/app/leader", case, None).await?;
        println!(
            "{case}: {} service keys, leader now {:?}",
            services.count(),
            etcd.get("/app/leader")
        );
    }
    // The seed never saw the cases' writes.
    assert_eq!(seed.get("/app/leader").as_deref(), Some("node-1"));
    Ok(())
}
