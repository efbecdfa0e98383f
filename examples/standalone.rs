//! The standalone server from code: a fixed address, a fixture, and serving until Ctrl-C, for
//! etcdctl or clients in other languages. (The `test-etcd` binary does the same from the
//! command line with etcd's flag names.)
//!
//! Run with `cargo run --example standalone`, then for instance
//! `etcdctl --endpoints http://127.0.0.1:23790 get --prefix /app/`.

use test_etcd::TestEtcd;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let etcd = TestEtcd::builder()
        .listen("127.0.0.1:23790".parse()?)
        .fixture("fixtures/app.json")
        .start()?;
    println!(
        "serving {} at revision {}; Ctrl-C stops",
        etcd.endpoint(),
        etcd.revision()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
