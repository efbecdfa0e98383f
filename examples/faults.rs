//! Faults on demand, as a client sees them: refused requests, injected etcd errors, delays,
//! ended streams, a compaction cancel, an alarm and a restart.
//!
//! Run with `cargo run --example faults`.

use std::time::{Duration, Instant};

use test_etcd::{Alarm, EtcdFault, TestEtcd};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let etcd = TestEtcd::builder().record_requests().start()?;
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    client.put("/app/leader", "node-1", None).await?;

    // An etcd that is down: every new call fails with UNAVAILABLE until the guard drops.
    let down = etcd.refuse_requests();
    println!(
        "refused:   {}",
        client.get("/app/leader", None).await.unwrap_err()
    );
    drop(down);

    // The next two puts fail with etcd's own timeout error; the third is served.
    let _flaky = etcd.fail_next("KV/Put", 2, EtcdFault::RequestTimedOut)?;
    for attempt in 1..=3 {
        match client.put("/app/leader", "node-2", None).await {
            Ok(_) => println!("put:       served on attempt {attempt}"),
            Err(err) => println!("put:       attempt {attempt} failed: {err}"),
        }
    }

    // A slow server.
    let slow = etcd.delay("KV/Range", Duration::from_millis(100))?;
    let started = Instant::now();
    client.get("/app/leader", None).await?;
    println!("delayed:   a get took {:?}", started.elapsed());
    drop(slow);

    // A watcher cancelled as compacted, then every stream ended as on a dropped connection.
    let mut watch = client.watch("/app/", None).await?;
    watch.message().await?;
    etcd.cancel_watches_compacted();
    if let Some(resp) = watch.message().await? {
        println!(
            "compacted: canceled={} compact_revision={}",
            resp.canceled(),
            resp.compact_revision()
        );
    }
    let mut watch = client.watch("/app/", None).await?;
    watch.message().await?;
    etcd.end_streams();
    println!(
        "ended:     {:?}",
        watch.message().await.map(|m| m.is_some())
    );

    // A NOSPACE alarm refuses puts until it is disarmed.
    let full = etcd.raise_alarm(Alarm::NoSpace);
    let refused = client.put("/app/x", "1", None).await;
    println!(
        "alarm:     {}",
        refused
            .map(|_| "served".to_owned())
            .unwrap_or_else(|e| e.to_string())
    );
    drop(full);

    // A restart on the same port with the same data.
    etcd.restart();
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    let leader = client.get("/app/leader", None).await?;
    println!("restarted: /app/leader = {}", leader.kvs()[0].value_str()?);

    println!("requests received: {}", etcd.requests().len());
    Ok(())
}
