//! Watch delivery next to the plain put rate, in one run: `cargo bench --bench watch`.
//!
//! Rounds alternate between puts with no watcher and puts with N watchers reading everything,
//! so that machine noise hits both alike; figures are reported as ratios to the baseline.

use std::time::{Duration, Instant};

use etcd_client::{Client, WatchOptions};
use test_etcd::TestEtcd;

const PUTS: usize = 3_000;
const ROUNDS: usize = 3;

/// Puts `PUTS` keys one after another; returns the time each put was acknowledged.
async fn put_burst(client: &mut Client, round: usize) -> Vec<Instant> {
    let mut acked = Vec::with_capacity(PUTS);
    for i in 0..PUTS {
        client
            .put(format!("bench/{round}/{i:06}"), [0u8; 128].to_vec(), None)
            .await
            .expect("put");
        acked.push(Instant::now());
    }
    acked
}

struct Round {
    elapsed: Duration,
    /// Time from a put's acknowledgement to its event's arrival, per watcher and event.
    latencies: Vec<Duration>,
    delivered: usize,
    delivery_elapsed: Duration,
}

async fn round(etcd: &TestEtcd, watchers: usize, round: usize) -> Round {
    let mut client = Client::connect(etcd.endpoints(), None)
        .await
        .expect("connect");
    let mut readers = Vec::new();
    for _ in 0..watchers {
        let mut watch_client = Client::connect(etcd.endpoints(), None)
            .await
            .expect("connect");
        let mut stream = watch_client
            .watch(
                format!("bench/{round}/"),
                Some(WatchOptions::new().with_prefix()),
            )
            .await
            .expect("watch");
        stream.message().await.expect("created").expect("open");
        readers.push(tokio::spawn(async move {
            let _keep = watch_client;
            let mut arrivals = Vec::with_capacity(PUTS);
            while arrivals.len() < PUTS {
                let resp = stream.message().await.expect("events").expect("open");
                let now = Instant::now();
                arrivals.extend(resp.events().iter().map(|_| now));
            }
            arrivals
        }));
    }
    let started = Instant::now();
    let acked = put_burst(&mut client, round).await;
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    let mut last_arrival = started;
    for reader in readers {
        let arrivals = reader.await.expect("reader");
        for (ack, arrival) in acked.iter().zip(&arrivals) {
            latencies.push(arrival.saturating_duration_since(*ack));
            last_arrival = last_arrival.max(*arrival);
        }
    }
    Round {
        elapsed,
        latencies,
        delivered: watchers * PUTS,
        delivery_elapsed: last_arrival - started,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let etcd = TestEtcd::start();
        println!("watch delivery, {PUTS} puts of 128 bytes per round, {ROUNDS} interleaved rounds");
        for watchers in [1usize, 10, 100] {
            let (mut base, mut with) = (Duration::ZERO, Duration::ZERO);
            let (mut latencies, mut delivered, mut delivery) = (Vec::new(), 0, Duration::ZERO);
            for r in 0..ROUNDS {
                base += round(&etcd, 0, r * 1000 + watchers).await.elapsed;
                let w = round(&etcd, watchers, r * 1000 + watchers + 500).await;
                with += w.elapsed;
                latencies.extend(w.latencies);
                delivered += w.delivered;
                delivery += w.delivery_elapsed;
            }
            latencies.sort();
            let put_rate = |d: Duration| (PUTS * ROUNDS) as f64 / d.as_secs_f64();
            println!(
                "{watchers:>3} watchers: puts/s {:>8.0} vs {:>8.0} without (ratio {:.2}); events delivered/s {:>9.0} ({:.2}x the put rate without); latency ack->event p50 {:?} p99 {:?}",
                put_rate(with),
                put_rate(base),
                put_rate(with) / put_rate(base),
                delivered as f64 / delivery.as_secs_f64(),
                (delivered as f64 / delivery.as_secs_f64()) / put_rate(base),
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
            );
        }
    });
}
