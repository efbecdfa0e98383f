//! test-etcd next to a real etcd and a do-nothing tonic server (the ceiling for this client on
//! this machine), in one run, interleaved: `cargo bench --bench compare`.
//!
//! Prints a table of figures and ratios (ours / ceiling, ours / etcd) and writes it to
//! `target/bench-compare.md`. Run by `cargo test` (a debug build, without `--bench`), it does a
//! smoke run with tiny sizes so that the harness keeps building and working.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, Txn, TxnOp};
use test_etcd::TestEtcd;

#[allow(dead_code, unused_qualifications, clippy::all)]
#[path = "../src/pb/mod.rs"]
mod pb;

/// Sizes of one run.
#[derive(Clone, Copy)]
struct Sizes {
    /// How long each target runs in a throughput cell. With 4 s, one cell's ratio differed by
    /// up to 0.07 between full runs of the same build.
    cell: Duration,
    concurrency: &'static [usize],
    range_keys: usize,
    range_rounds: usize,
    fixture_keys: usize,
    idle_servers: usize,
    watch_puts: usize,
    /// How many starts the start-to-first-RPC figure is the median of.
    start_trials: usize,
}

const FULL: Sizes = Sizes {
    cell: Duration::from_secs(8),
    concurrency: &[1, 16, 64],
    range_keys: 10_000,
    range_rounds: 60,
    fixture_keys: 100_000,
    idle_servers: 1_000,
    watch_puts: 2_000,
    start_trials: 21,
};

const SMOKE: Sizes = Sizes {
    cell: Duration::from_millis(80),
    concurrency: &[1, 4],
    range_keys: 100,
    range_rounds: 2,
    fixture_keys: 1_000,
    idle_servers: 10,
    watch_puts: 50,
    start_trials: 3,
};

/// One server under test: where it listens, and what keeps it alive.
enum Target {
    Ours(TestEtcd),
    Etcd {
        endpoint: String,
        child: Child,
        dir: std::path::PathBuf,
    },
    Ceiling {
        endpoint: String,
        _server: ceiling::Server,
    },
}

impl Target {
    fn endpoint(&self) -> String {
        match self {
            Target::Ours(etcd) => etcd.endpoint(),
            Target::Etcd { endpoint, .. } | Target::Ceiling { endpoint, .. } => endpoint.clone(),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Target::Etcd { child, dir, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Spawns the vendored etcd with fsync off, as fast as it goes; returns once it answers.
async fn spawn_etcd() -> (Target, Duration) {
    let bin = etcd_bin_vendored::etcd_bin_path().expect("etcd for this platform");
    let started = Instant::now();
    for _attempt in 0..5 {
        let (client, peer) = (free_port(), free_port());
        let dir =
            std::env::temp_dir().join(format!("test-etcd-bench-{}-{client}", std::process::id()));
        let child = Command::new(bin)
            .args(["--name", "bench", "--data-dir"])
            .arg(&dir)
            .args([
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster=bench=http://127.0.0.1:{peer}"),
                "--unsafe-no-fsync".to_owned(),
                "--log-level=error".to_owned(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        let endpoint = format!("http://127.0.0.1:{client}");
        let mut target = Target::Etcd {
            endpoint: endpoint.clone(),
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = Client::connect([endpoint.as_str()], None).await {
                if c.get("probe", None).await.is_ok() {
                    return (target, started.elapsed());
                }
            }
            if let Target::Etcd { child, .. } = &mut target {
                if child.try_wait().ok().flatten().is_some() {
                    break; // lost a port race: try other ports
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    panic!("etcd did not start");
}

async fn first_answer(endpoint: &str) {
    let mut c = Client::connect([endpoint], None).await.expect("connect");
    c.get("probe", None).await.expect("first answer");
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Put,
    Range,
    RangeSerializable,
    Txn,
}

/// How many slices a throughput cell is cut into; the targets take turns slice by slice. Many
/// short slices put each target's turns close in time, so that the pooled rates are steady from
/// run to run (8 slices of half a second let one-client ratios swing by 10%).
const SLICES: usize = 32;

/// One slice: `op` on every client at once for `length`; the latency of every call, and how
/// long the slice really took (the last calls end after `length`).
async fn slice(clients: &[Client], op: Op, length: Duration) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let stop = started + length;
    let mut tasks = Vec::new();
    for (n, c) in clients.iter().enumerate() {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let key = format!("bench/key/{n:04}");
            let value = vec![b'v'; 128];
            while Instant::now() < stop {
                let t = Instant::now();
                let ok = match op {
                    Op::Put => c.put(key.as_str(), value.clone(), None).await.is_ok(),
                    Op::Range => c.get(key.as_str(), None).await.is_ok(),
                    Op::RangeSerializable => c
                        .get(key.as_str(), Some(GetOptions::new().with_serializable()))
                        .await
                        .is_ok(),
                    Op::Txn => c
                        .txn(Txn::new().and_then([TxnOp::put(key.as_str(), value.clone(), None)]))
                        .await
                        .is_ok(),
                };
                assert!(ok, "{op:?} failed");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    (all, started.elapsed())
}

/// One throughput cell, interleaved: `clients` connections per target, connected first; then
/// the targets take turns for `SLICES` slices of `cell / SLICES` each. In each turn ours and the
/// ceiling run back to back (which goes first alternates, as the slice after another one runs
/// on a busier machine), then etcd, and then the harness waits until etcd's process is quiet
/// (see `settle`): etcd keeps working for a while after a burst (its Go runtime's collector,
/// raft housekeeping), and that work would otherwise fall on whichever target came next.
/// Per target (in the order ours, etcd, ceiling): ops/s over all its slices (calls over the
/// time its slices took), p50/p99 latency over all its calls, and the p99 of each of its turns.
async fn throughput(
    endpoints: &[String],
    etcd_pid: u32,
    op: Op,
    clients: usize,
    cell: Duration,
) -> Vec<Cell> {
    let mut connected = Vec::new();
    for e in endpoints {
        let mut list = Vec::new();
        for _ in 0..clients {
            list.push(Client::connect([e.as_str()], None).await.expect("connect"));
        }
        connected.push(list);
    }
    let length = cell / SLICES as u32;
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); endpoints.len()];
    let mut busy = vec![Duration::ZERO; endpoints.len()];
    let mut turn_p99s: Vec<Vec<f64>> = vec![Vec::new(); endpoints.len()];
    for turn in 0..SLICES {
        let order = if turn % 2 == 0 { [0, 2, 1] } else { [2, 0, 1] };
        for target in order {
            let (mut calls, took) = slice(&connected[target], op, length).await;
            busy[target] += took;
            calls.sort();
            turn_p99s[target].push(pct(&calls, 0.99).as_secs_f64());
            latencies[target].extend(calls);
        }
        settle(etcd_pid).await;
    }
    latencies
        .into_iter()
        .zip(busy)
        .zip(turn_p99s)
        .map(|((mut all, took), turn_p99)| {
            all.sort();
            Cell {
                rate: all.len() as f64 / took.as_secs_f64(),
                p50: pct(&all, 0.5),
                p99: pct(&all, 0.99),
                turn_p99,
            }
        })
        .collect()
}

/// One target's figures in a throughput cell.
struct Cell {
    /// Calls per second over the time its slices took.
    rate: f64,
    /// Latency percentiles over all its calls.
    p50: Duration,
    p99: Duration,
    /// The p99 of each turn's slice, in turn order. A pooled p99 follows the machine's worst
    /// moments (a slice during which the host stole the CPU sets it alone). In one turn ours and
    /// the ceiling run back to back, so their per-turn ratio compares them under the same
    /// conditions; etcd's slice comes after both.
    turn_p99: Vec<f64>,
}

/// CPU time used so far by every thread of process `pid` (from the scheduler's own
/// accounting, in nanoseconds); 0 if it cannot be read.
fn cpu_time(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Waits (at most a second) until process `pid` uses under 5% of a core over 20 ms.
async fn settle(pid: u32) {
    let window = Duration::from_millis(20);
    for _ in 0..50 {
        let before = cpu_time(pid);
        tokio::time::sleep(window).await;
        if cpu_time(pid).saturating_sub(before) < window.as_nanos() as u64 / 20 {
            return;
        }
    }
}

/// The median of `ours[i] / theirs[i]`: measurements taken in turns, compared turn by turn.
fn median_ratio(ours: &[f64], theirs: &[f64]) -> f64 {
    let mut r: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    r.sort_by(f64::total_cmp);
    r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p) as usize)
        .copied()
        .unwrap_or_default()
}

/// Ranges over the `big/` prefix, one round per target in turn (so that a noisy moment hits
/// every target alike): each target's median time, and the medians of the per-round ratios
/// ours/ceiling and ours/etcd.
async fn big_range(endpoints: &[String], rounds: usize, keys: usize) -> (Vec<Duration>, f64, f64) {
    let mut clients = Vec::new();
    for e in endpoints {
        clients.push(Client::connect([e.as_str()], None).await.expect("connect"));
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); clients.len()];
    for round in 0..rounds {
        // Each round starts with the next target, as the throughput slices do.
        let n = clients.len();
        for target in (0..n).map(|t| (t + round) % n) {
            let (c, t) = (&mut clients[target], &mut times[target]);
            let start = Instant::now();
            let resp = c
                .get("big/", Some(GetOptions::new().with_prefix()))
                .await
                .expect("range");
            t.push(start.elapsed());
            assert_eq!(resp.kvs().len(), keys);
        }
    }
    let secs = |t: &Vec<Duration>| t.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
    let (vs_etcd, vs_ceiling) = (
        median_ratio(&secs(&times[0]), &secs(&times[1])),
        median_ratio(&secs(&times[0]), &secs(&times[2])),
    );
    let medians = times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    (medians, vs_ceiling, vs_etcd)
}

async fn fill_big(endpoint: &str, keys: usize) {
    let mut c = Client::connect([endpoint], None).await.expect("connect");
    for chunk in (0..keys).collect::<Vec<_>>().chunks(100) {
        let ops: Vec<_> = chunk
            .iter()
            .map(|i| TxnOp::put(format!("big/{i:06}"), vec![b'v'; 128], None))
            .collect();
        c.txn(Txn::new().and_then(ops)).await.expect("fill");
    }
}

/// Watch delivery with `watchers` watching during a burst of puts: events/s and p50/p99
/// latency from the put's acknowledgement to the event's arrival.
async fn watch_burst(
    endpoint: &str,
    watchers: usize,
    puts: usize,
    round: usize,
) -> (f64, Duration, Duration) {
    let prefix = format!("w{round}/");
    let mut readers = Vec::new();
    for _ in 0..watchers {
        let mut c = Client::connect([endpoint], None).await.expect("connect");
        let mut stream = c
            .watch(
                prefix.as_str(),
                Some(etcd_client::WatchOptions::new().with_prefix()),
            )
            .await
            .expect("watch");
        stream.message().await.expect("created");
        readers.push(tokio::spawn(async move {
            let _keep = c;
            let mut arrivals = Vec::with_capacity(puts);
            while arrivals.len() < puts {
                let resp = stream.message().await.expect("events").expect("open");
                let now = Instant::now();
                arrivals.extend(resp.events().iter().map(|_| now));
            }
            arrivals
        }));
    }
    let mut writer = Client::connect([endpoint], None).await.expect("connect");
    let started = Instant::now();
    let mut acks = Vec::with_capacity(puts);
    for i in 0..puts {
        writer
            .put(format!("{prefix}{i:06}"), vec![b'v'; 128], None)
            .await
            .expect("put");
        acks.push(Instant::now());
    }
    let mut latencies = Vec::new();
    let mut last = started;
    for r in readers {
        let arrivals = r.await.expect("reader");
        for (a, b) in acks.iter().zip(&arrivals) {
            latencies.push(b.saturating_duration_since(*a));
            last = last.max(*b);
        }
    }
    latencies.sort();
    let rate = (watchers * puts) as f64 / (last - started).as_secs_f64();
    (rate, pct(&latencies, 0.5), pct(&latencies, 0.99))
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { FULL } else { SMOKE };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(run(sizes));
    println!("{report}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-compare.md");
    if full {
        let _ = std::fs::write(&path, &report);
        println!("written to {}", path.display());
    }
}

async fn run(sizes: Sizes) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| measure | test-etcd | real etcd 3.7.2 | ceiling | ours/ceiling | ours/etcd |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    // Memory first, while the process is fresh (later phases leave freed memory behind).
    // Loading a large fixture, and memory per key.
    let fixture: serde_json::Map<String, serde_json::Value> = (0..sizes.fixture_keys)
        .map(|i| {
            (
                format!("/fixture/key/{i:08}"),
                serde_json::Value::String("x".repeat(128)),
            )
        })
        .collect();
    let fixture = serde_json::Value::Object(fixture);
    let before = rss_bytes();
    let t = Instant::now();
    let loaded = TestEtcd::builder()
        .fixture_json(fixture)
        .start()
        .expect("load");
    let load = t.elapsed();
    let per_key = rss_bytes().saturating_sub(before) as f64 / sizes.fixture_keys as f64;
    let _ = writeln!(
        out,
        "| load {} keys from a fixture | {} | - | - | - | - |",
        sizes.fixture_keys,
        ms(load)
    );
    let _ = writeln!(
        out,
        "| memory per key (128-byte values) | {per_key:.0} B | - | - | - | - |"
    );
    drop(loaded);

    // Idle servers in one process.
    let (rss0, threads0) = (rss_bytes(), threads());
    let idle: Vec<TestEtcd> = (0..sizes.idle_servers).map(|_| TestEtcd::start()).collect();
    let per_server = rss_bytes().saturating_sub(rss0) as f64 / idle.len() as f64;
    let per_threads = (threads() - threads0) as f64 / idle.len() as f64;
    let _ = writeln!(
        out,
        "| {} idle servers in one process | {:.0} KiB and {per_threads:.1} threads each | - | - | - | - |",
        idle.len(),
        per_server / 1024.0
    );
    drop(idle);

    // Start alone (bind, thread, runtime), then start to first answered RPC (with a new client's
    // connection, as a test would).
    let starts = 50u32;
    let t = Instant::now();
    for _ in 0..starts {
        drop(TestEtcd::start());
    }
    let _ = writeln!(
        out,
        "| TestEtcd::start() + drop | {} | - | - | - | - |",
        ms(t.elapsed() / starts)
    );
    // Start to first answered RPC, with a new client's connection as a test would make: the
    // median of alternating trials, since one start is a noisy sample.
    let mut ours_starts = Vec::new();
    let mut ceiling_starts = Vec::new();
    for _ in 0..sizes.start_trials {
        let t = Instant::now();
        let started = TestEtcd::start();
        first_answer(&started.endpoint()).await;
        ours_starts.push(t.elapsed());
        drop(started);
        let t = Instant::now();
        let started = ceiling::start(0);
        first_answer(&started.endpoint()).await;
        ceiling_starts.push(t.elapsed());
    }
    let median = |mut d: Vec<Duration>| {
        d.sort();
        d[d.len() / 2]
    };
    let (ours_start, ceiling_start) = (median(ours_starts), median(ceiling_starts));
    let (etcd, etcd_start) = spawn_etcd().await;
    let _ = writeln!(
        out,
        "| start to first RPC (median of {}; etcd: one spawn) | {} | {} | {} | {:.2} | {:.4} |",
        sizes.start_trials,
        ms(ours_start),
        ms(etcd_start),
        ms(ceiling_start),
        ours_start.as_secs_f64() / ceiling_start.as_secs_f64(),
        ours_start.as_secs_f64() / etcd_start.as_secs_f64()
    );
    let ours = TestEtcd::start();
    let ceiling = ceiling::start(sizes.range_keys);
    let etcd_pid = match &etcd {
        Target::Etcd { child, .. } => child.id(),
        _ => 0,
    };
    let targets = [Target::Ours(ours), etcd, ceiling];
    let endpoints: Vec<String> = targets.iter().map(Target::endpoint).collect();

    // Throughput and latency, the three targets taking turns slice by slice in each cell.
    for op in [Op::Put, Op::Range, Op::RangeSerializable, Op::Txn] {
        for &clients in sizes.concurrency {
            let cells = throughput(&endpoints, etcd_pid, op, clients, sizes.cell).await;
            let _ = writeln!(
                out,
                "| {op:?} x{clients} ops/s | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
                cells[0].rate,
                cells[1].rate,
                cells[2].rate,
                cells[0].rate / cells[2].rate,
                cells[0].rate / cells[1].rate
            );
            // Latency ratios for both percentiles: p50/p99.
            let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
            let name = format!("{op:?} x{clients} p50/p99");
            let _ = writeln!(
                out,
                "| {name} | {}/{} | {}/{} | {}/{} | {:.2}/{:.2} | {:.2}/{:.2} |",
                ms(cells[0].p50),
                ms(cells[0].p99),
                ms(cells[1].p50),
                ms(cells[1].p99),
                ms(cells[2].p50),
                ms(cells[2].p99),
                ratio(cells[0].p50, cells[2].p50),
                ratio(cells[0].p99, cells[2].p99),
                ratio(cells[0].p50, cells[1].p50),
                ratio(cells[0].p99, cells[1].p99),
            );
            let _ = writeln!(
                out,
                "| {op:?} x{clients} p99 by turn (median of the per-turn ratios) | - | - | - | {:.2} | {:.2} |",
                median_ratio(&cells[0].turn_p99, &cells[2].turn_p99),
                median_ratio(&cells[0].turn_p99, &cells[1].turn_p99),
            );
        }
    }

    // A range over many keys (the ceiling answers the same data from memory).
    fill_big(&endpoints[0], sizes.range_keys).await;
    fill_big(&endpoints[1], sizes.range_keys).await;
    let (big, vs_ceiling, vs_etcd) =
        big_range(&endpoints, sizes.range_rounds, sizes.range_keys).await;
    let _ = writeln!(
        out,
        "| range of {} keys (median; ratios: median per round) | {} | {} | {} | {:.2} | {:.2} |",
        sizes.range_keys,
        ms(big[0]),
        ms(big[1]),
        ms(big[2]),
        vs_ceiling,
        vs_etcd
    );

    // Watch delivery (ours and etcd; the ceiling does not watch).
    for (round, watchers) in [1usize, 100].into_iter().enumerate() {
        let watchers = if sizes.idle_servers < 100 {
            watchers.min(4)
        } else {
            watchers
        };
        let ours = watch_burst(&endpoints[0], watchers, sizes.watch_puts, round).await;
        let etcd = watch_burst(&endpoints[1], watchers, sizes.watch_puts, round).await;
        let _ =
            writeln!(
            out,
            "| watch x{watchers} events/s, p50/p99 | {:.0}, {}/{} | {:.0}, {}/{} | - | - | {:.2} |",
            ours.0, ms(ours.1), ms(ours.2), etcd.0, ms(etcd.1), ms(etcd.2), ours.0 / etcd.0
        );
    }
    drop(targets);

    out
}

/// The ceiling: a tonic server with our generated KV service that does no work at all.
mod ceiling {
    use super::*;
    use crate::pb::etcdserverpb::{
        kv_server::{Kv, KvServer},
        request_op, response_op, CompactionRequest, CompactionResponse, DeleteRangeRequest,
        DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
        RangeStreamResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
    };
    use crate::pb::mvccpb::KeyValue;
    use tonic::{Request, Response, Status};

    pub(super) struct Server {
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    struct Ceiling {
        one: RangeResponse,
        big: Arc<RangeResponse>,
    }

    fn header() -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 1,
            member_id: 1,
            revision: 1,
            raft_term: 1,
        })
    }

    #[tonic::async_trait]
    impl Kv for Ceiling {
        async fn range(&self, r: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
            // The same answer sizes as a real store: one pair, or the whole `big/` prefix.
            if r.get_ref().key.starts_with(b"big/") {
                return Ok(Response::new(RangeResponse::clone(&self.big)));
            }
            Ok(Response::new(self.one.clone()))
        }
        async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
            Ok(Response::new(PutResponse {
                header: header(),
                prev_kv: None,
            }))
        }
        async fn delete_range(
            &self,
            _: Request<DeleteRangeRequest>,
        ) -> Result<Response<DeleteRangeResponse>, Status> {
            Ok(Response::new(DeleteRangeResponse {
                header: header(),
                ..Default::default()
            }))
        }
        async fn txn(&self, r: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
            // The same answer shape as a real store: one response per op of the branch.
            let responses = r
                .get_ref()
                .success
                .iter()
                .map(|op| ResponseOp {
                    response: Some(match op.request {
                        Some(request_op::Request::RequestRange(_)) => {
                            response_op::Response::ResponseRange(self.one.clone())
                        }
                        Some(request_op::Request::RequestDeleteRange(_)) => {
                            response_op::Response::ResponseDeleteRange(DeleteRangeResponse {
                                header: header(),
                                ..Default::default()
                            })
                        }
                        _ => response_op::Response::ResponsePut(PutResponse {
                            header: header(),
                            prev_kv: None,
                        }),
                    }),
                })
                .collect();
            Ok(Response::new(TxnResponse {
                header: header(),
                succeeded: true,
                responses,
            }))
        }
        async fn compact(
            &self,
            _: Request<CompactionRequest>,
        ) -> Result<Response<CompactionResponse>, Status> {
            Ok(Response::new(CompactionResponse { header: header() }))
        }
        type RangeStreamStream = tokio_stream::Empty<Result<RangeStreamResponse, Status>>;
        async fn range_stream(
            &self,
            _: Request<RangeRequest>,
        ) -> Result<Response<Self::RangeStreamStream>, Status> {
            Ok(Response::new(tokio_stream::empty()))
        }
    }

    pub(super) fn start(big_keys: usize) -> Target {
        let kv = |key: String| KeyValue {
            key: key.into_bytes().into(),
            value: vec![b'v'; 128].into(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            lease: 0,
        };
        let one = RangeResponse {
            header: header(),
            kvs: vec![kv("bench/key/0000".into())],
            more: false,
            count: 1,
        };
        let big = RangeResponse {
            header: header(),
            kvs: (0..big_keys).map(|i| kv(format!("big/{i:06}"))).collect(),
            more: false,
            count: big_keys as i64,
        };
        let service = Ceiling {
            one,
            big: Arc::new(big),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Like test-etcd, on a thread and current-thread runtime of its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                use tokio_stream::StreamExt;
                // As test-etcd does: no Nagle delay on small answers.
                let incoming =
                    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
                        conn.inspect(|s| {
                            let _ = s.set_nodelay(true);
                        })
                    });
                let serve = tonic::transport::Server::builder()
                    .add_service(KvServer::new(service))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stopped.await;
                    });
                let _ = serve.await;
            });
        });
        Target::Ceiling {
            endpoint: format!("http://{addr}"),
            _server: Server { _stop: stop },
        }
    }
}
