//! A bounded stress run: many writes while one watcher reads slowly and a hundred read normally;
//! every watcher must get every event once, in order.

use std::time::Duration;

use etcd_client::{Client, WatchOptions, WatchStream};

use crate::connect;

/// Reads until `writes` events have arrived; returns their revisions.
async fn drain(mut stream: WatchStream, writes: usize, pause: Option<Duration>) -> Vec<i64> {
    let mut revisions = Vec::with_capacity(writes);
    while revisions.len() < writes {
        let resp = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("events keep coming")
            .unwrap()
            .expect("stream open");
        revisions.extend(resp.events().iter().map(|e| e.kv().unwrap().mod_revision()));
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    revisions
}

async fn watch_all(client: &mut Client) -> WatchStream {
    let mut stream = client
        .watch("s/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(stream.message().await.unwrap().unwrap().created());
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_or_repeated_under_a_write_burst() {
    const WRITES: usize = 100_000;
    const PER_TXN: usize = 100;
    let (etcd, mut writer) = connect().await;
    let slow = tokio::spawn(drain(
        watch_all(&mut writer).await,
        WRITES,
        Some(Duration::from_millis(20)),
    ));
    let mut readers = Vec::new();
    for _ in 0..100 {
        readers.push(tokio::spawn(drain(
            watch_all(&mut writer).await,
            WRITES,
            None,
        )));
    }
    // Writes in txns of 100 puts each, so the burst stays a few seconds long.
    for t in 0..WRITES / PER_TXN {
        let ops: Vec<_> = (0..PER_TXN)
            .map(|i| etcd_client::TxnOp::put(format!("s/{t:04}/{i:03}"), "v", None))
            .collect();
        writer
            .txn(etcd_client::Txn::new().and_then(ops))
            .await
            .unwrap();
    }
    let expected: Vec<i64> = (0..WRITES as i64).map(|i| 2 + i / PER_TXN as i64).collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected);
    }
    assert_eq!(
        slow.await.unwrap(),
        expected,
        "the slow reader misses nothing either"
    );
    assert_eq!(etcd.revision(), 1 + (WRITES / PER_TXN) as i64);
}
