//! Fork cost against state size, and fork against loading the fixture again:
//! `cargo bench --bench fork`.

use std::time::{Duration, Instant};

use test_etcd::TestEtcd;

fn fixture(keys: usize) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = (0..keys)
        .map(|i| {
            (
                format!("/bench/key/{i:08}"),
                serde_json::Value::String("x".repeat(128)),
            )
        })
        .collect();
    serde_json::Value::Object(map)
}

/// Mean time of `f` over `n` runs (each result dropped outside the timing).
fn mean<T>(n: u32, mut f: impl FnMut() -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..n {
        let started = Instant::now();
        let value = f();
        total += started.elapsed();
        drop(value);
    }
    total / n
}

/// One "test": a read of a seeded key on its own server.
fn one_test(etcd: &TestEtcd) {
    assert!(etcd.get("/bench/key/00000001").is_some());
}

fn main() {
    let empty = TestEtcd::start();
    let start_empty = mean(200, TestEtcd::start);
    println!("start an empty server: {start_empty:?} (baseline)");
    let fork_empty = mean(200, || empty.fork().expect("fork"));
    println!(
        "fork an empty server:  {fork_empty:?} ({:.2}x start)",
        fork_empty.as_secs_f64() / start_empty.as_secs_f64()
    );
    for keys in [10_000usize, 100_000] {
        let json = fixture(keys);
        let load = mean(3, || {
            TestEtcd::builder()
                .fixture_json(json.clone())
                .start()
                .expect("load")
        });
        let seeded = TestEtcd::builder()
            .fixture_json(json)
            .start()
            .expect("load");
        let fork = mean(200, || seeded.fork().expect("fork"));
        println!(
            "{keys:>6} keys: load {load:?}, fork {fork:?} ({:.2}x an empty fork, {:.0}x faster than loading)",
            fork.as_secs_f64() / fork_empty.as_secs_f64(),
            load.as_secs_f64() / fork.as_secs_f64()
        );
    }

    // A test binary of 1,000 tests, each on its own copy of a 100k-key seed: forks of one
    // seed, against loading the fixture per test (timed over a few loads, then scaled).
    let tests = 1_000u32;
    let json = fixture(100_000);
    let seed = TestEtcd::builder()
        .fixture_json(json.clone())
        .start()
        .expect("load");
    let started = Instant::now();
    for _ in 0..tests {
        let etcd = seed.fork().expect("fork");
        one_test(&etcd);
    }
    let forked = started.elapsed();
    let loads = 3u32;
    let per_load = mean(loads, || {
        let etcd = TestEtcd::builder()
            .fixture_json(json.clone())
            .start()
            .expect("load");
        one_test(&etcd);
        etcd
    });
    let loaded = per_load * tests;
    println!(
        "{tests} tests on a 100k-key seed: forks {forked:?} in all, loading per test {loaded:?} \
         (from {loads} loads): {:.0}x faster",
        loaded.as_secs_f64() / forked.as_secs_f64()
    );
}
