//! The README's cookbook: every test there is printed from this file, and
//! `readme_prints_these_tests` checks that the README has not drifted from it.

#[tokio::test]
async fn leader_fails_over_when_its_lease_expires() {
    use std::time::Duration;
    use test_etcd::TestEtcd;

    // Two candidates, each campaigning with a 10 s session lease, on a manual clock.
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut node1 = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let mut node2 = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let lease1 = node1.lease_grant(10, None).await.unwrap().id();
    let lease2 = node2.lease_grant(10, None).await.unwrap().id();
    node1
        .campaign("/election/app", "node-1", lease1)
        .await
        .unwrap();
    let waiting =
        tokio::spawn(async move { node2.campaign("/election/app", "node-2", lease2).await });

    // node-2 keeps its session alive; node-1 stops (it crashed) and its lease runs out.
    etcd.advance(Duration::from_secs(6));
    let mut keeper = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let (mut renew, mut renewed) = keeper.lease_keep_alive(lease2).await.unwrap();
    renew.keep_alive().await.unwrap();
    renewed.message().await.unwrap();
    assert!(!waiting.is_finished());
    etcd.advance(Duration::from_secs(4));

    // node-2's campaign returns: it leads now.
    let won = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap();
    assert!(won.unwrap().is_ok());
    let leader = keeper.leader("/election/app").await.unwrap();
    assert_eq!(leader.kv().unwrap().value(), b"node-2");
}

#[tokio::test]
async fn a_watch_resumes_across_a_server_restart() {
    use etcd_client::WatchOptions;
    use test_etcd::TestEtcd;

    let etcd = TestEtcd::start();
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let mut watch = client
        .watch("/jobs/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    watch.message().await.unwrap(); // created
    client.put("/jobs/1", "queued", None).await.unwrap();
    let seen = watch
        .message()
        .await
        .unwrap()
        .unwrap()
        .header()
        .unwrap()
        .revision();

    // The server restarts; a job is queued while the watcher is away.
    etcd.restart();
    assert!(
        !matches!(watch.message().await, Ok(Some(_))),
        "the stream ended"
    );
    etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap()
        .put("/jobs/2", "queued", None)
        .await
        .unwrap();

    // The code under test watches again from the revision after the last one it saw. The
    // first call on the old connection may fail with a transport error: retry, as a
    // reconnecting watcher does.
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(seen + 1);
    let mut resumed = loop {
        match client.watch("/jobs/", Some(options.clone())).await {
            Ok(stream) => break stream,
            Err(err) => assert!(err.to_string().contains("transport error"), "{err}"),
        }
    };
    resumed.message().await.unwrap(); // created
    let missed = resumed.message().await.unwrap().unwrap();
    assert_eq!(missed.events()[0].kv().unwrap().key(), b"/jobs/2");
}

#[tokio::test]
async fn puts_are_retried_on_injected_timeouts() {
    use test_etcd::{EtcdFault, TestEtcd};

    /// The code under test: retries a put while etcd answers UNAVAILABLE.
    async fn put_with_retry(client: &mut etcd_client::Client, key: &str, value: &str) -> u32 {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match client.put(key, value, None).await {
                Ok(_) => return attempts,
                Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::Unavailable => {}
                Err(err) => panic!("not retryable: {err}"),
            }
        }
    }

    let etcd = TestEtcd::builder().record_requests().start().unwrap();
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let _flaky = etcd
        .fail_next("KV/Put", 2, EtcdFault::RequestTimedOut)
        .unwrap();

    let attempts = put_with_retry(&mut client, "/app/state", "ready").await;

    assert_eq!(attempts, 3);
    assert_eq!(etcd.get("/app/state").as_deref(), Some("ready"));
    let puts = etcd
        .requests()
        .iter()
        .filter(|r| r.method() == "/etcdserverpb.KV/Put")
        .count();
    assert_eq!(puts, 3);
}

#[tokio::test]
async fn config_is_loaded_from_a_fixture_and_reloaded_on_change() {
    use std::sync::{Arc, Mutex};
    use test_etcd::TestEtcd;

    /// The code under test: loads its config, then reloads it on every change.
    async fn watch_config(mut client: etcd_client::Client, config: Arc<Mutex<String>>) {
        let resp = client.get("/app/config", None).await.unwrap();
        *config.lock().unwrap() = resp.kvs()[0].value_str().unwrap().to_owned();
        let from = etcd_client::WatchOptions::new()
            .with_start_revision(resp.header().unwrap().revision() + 1);
        let mut watch = client.watch("/app/config", Some(from)).await.unwrap();
        while let Ok(Some(resp)) = watch.message().await {
            for event in resp.events() {
                *config.lock().unwrap() = event.kv().unwrap().value_str().unwrap().to_owned();
            }
        }
    }

    let etcd = TestEtcd::builder()
        .fixture_str(r#"{"kvs": [{"key": "/app/config", "json": {"log_level": "info"}}]}"#)
        .start()
        .unwrap();
    let client = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let config = Arc::new(Mutex::new(String::new()));
    tokio::spawn(watch_config(client.clone(), Arc::clone(&config)));

    // Wait (bounded) until the config is loaded and its watch is open.
    for _ in 0..500 {
        if !etcd.watchers().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(*config.lock().unwrap(), r#"{"log_level":"info"}"#);

    // An operator changes the config.
    client
        .clone()
        .put("/app/config", r#"{"log_level":"debug"}"#, None)
        .await
        .unwrap();

    for _ in 0..500 {
        if config.lock().unwrap().contains("debug") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(*config.lock().unwrap(), r#"{"log_level":"debug"}"#);
}

/// Every `rust` block of the README's Cookbook section is printed from this file, verbatim.
#[test]
fn readme_prints_these_tests() {
    let readme = include_str!("../../README.md");
    let this = include_str!("cookbook.rs");
    let cookbook = readme
        .split("\n## Cookbook\n")
        .nth(1)
        .expect("a Cookbook section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let blocks: Vec<&str> = cookbook
        .split("```rust\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .collect();
    assert_eq!(blocks.len(), 4, "four recipes");
    for block in blocks {
        assert!(
            this.contains(block),
            "README block not in cookbook.rs:\n{block}"
        );
    }
}
