//! The conformance suite: every scenario and every random operation sequence runs on a fresh
//! embedded server and on a fresh real etcd 3.7.2; the normalised transcripts must be equal.
//!
//! Run it alone with `cargo test --test conformance [-- FILTER]`. The random part takes
//! `CONFORMANCE_SEEDS` (how many sequences, 16 by default) and `CONFORMANCE_SEED` (the first
//! seed, 1 by default); a failing seed is printed, and `CONFORMANCE_SEED=S CONFORMANCE_SEEDS=1`
//! replays it. `TEST_ETCD_BIN` picks another etcd than the vendored 3.7.2.

/// One unary call of a service other than KV: `rpc!(session, LeaseClient, lease_grant,
/// LeaseGrantRequest { .. })`, recorded like every answer.
macro_rules! rpc {
    ($s:expr, $client:ty, $method:ident, $req:expr) => {
        $s.call(stringify!($method), $req, |c, r| async move {
            let mut client = <$client>::new(c);
            client.$method(r).await
        })
    };
}

/// As `rpc!`, for a call that may block: it runs in the background until `Session::finish`.
macro_rules! start_rpc {
    ($s:expr, $client:ty, $method:ident, $req:expr) => {
        $s.start_call(stringify!($method), $req, |c, r| async move {
            let mut client = <$client>::new(c);
            client.$method(r).await
        })
    };
}

mod auth;
mod cluster;
mod fixtures;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod random;
mod session;
mod txn;
mod watch;

/// Our own generated API code: the suite sends requests as raw as etcd receives them.
#[allow(dead_code, unused_qualifications, clippy::all)]
#[path = "../../src/pb/mod.rs"]
mod pb;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use test_etcd::{Backend, TestEtcd, TestEtcdBuilder};

use pb::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCreateRequest,
};
pub use session::Session;

/// A scenario: a name, how to configure both servers, and the steps.
pub struct Scenario {
    pub name: &'static str,
    pub configure: fn(TestEtcdBuilder) -> TestEtcdBuilder,
    pub run: fn(&mut Session),
}

/// Builder configuration that changes nothing.
pub fn defaults(b: TestEtcdBuilder) -> TestEtcdBuilder {
    b
}

/// A scenario with default servers.
pub const fn scenario(name: &'static str, run: fn(&mut Session)) -> Scenario {
    Scenario {
        name,
        configure: defaults,
        run,
    }
}

fn etcd_binary() -> PathBuf {
    match std::env::var_os(test_etcd::ETCD_BIN_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => etcd_bin_vendored::etcd_bin_path()
            .expect("etcd-bin-vendored has no etcd for this platform")
            .to_path_buf(),
    }
}

fn start(backend: Backend, configure: fn(TestEtcdBuilder) -> TestEtcdBuilder) -> TestEtcd {
    let builder = TestEtcd::builder()
        .backend(backend)
        .etcd_binary(etcd_binary());
    configure(builder)
        .start()
        .unwrap_or_else(|e| panic!("cannot start the {backend:?} backend: {e}"))
}

/// Runs `run` on both backends and returns the first difference, if any.
pub fn compare(
    name: &str,
    configure: fn(TestEtcdBuilder) -> TestEtcdBuilder,
    run: &dyn Fn(&mut Session),
) -> Result<(), String> {
    let transcripts: Vec<Vec<String>> = [Backend::Embedded, Backend::Real]
        .into_iter()
        .map(|backend| {
            let etcd = start(backend, configure);
            let mut session = Session::connect(etcd.endpoint());
            session.backend = backend;
            run(&mut session);
            session.transcript
        })
        .collect();
    let (ours, etcd) = (&transcripts[0], &transcripts[1]);
    if std::env::var_os("CONFORMANCE_DUMP").is_some() {
        println!("{}", etcd.join("\n"));
    }
    if ours == etcd {
        return Ok(());
    }
    let at = ours
        .iter()
        .zip(etcd)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(etcd.len()));
    let mut report = format!("transcripts differ at step {at}");
    if let Some(dir) = save(name, ours, etcd) {
        report.push_str(&format!(" (full transcripts in {dir})"));
    }
    report.push_str(":\n");
    for (i, line) in ours.iter().enumerate().take(at).skip(at.saturating_sub(3)) {
        report.push_str(&format!("  both [{i}] {}\n", clip(line, 0, 160)));
    }
    let (a, b) = (
        ours.get(at).map_or("(nothing)", String::as_str),
        etcd.get(at).map_or("(nothing)", String::as_str),
    );
    // Lines can be long (a txn and its answer): show the start, then where they part.
    let split = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    report.push_str(&format!("  ours [{at}] {}\n", clip(a, split, 240)));
    report.push_str(&format!("  etcd [{at}] {}\n", clip(b, split, 240)));
    if b.contains("transport error") || b.contains("tcp connect error") {
        report.push_str(
            "  (real etcd stopped answering: it crashed; TEST_ETCD_BIN can point at a wrapper \
             script that keeps its stderr)\n",
        );
    }
    Err(report)
}

/// The first 80 characters of `line`, then `width` characters around byte `at` where it parts
/// from its counterpart.
fn clip(line: &str, at: usize, width: usize) -> String {
    let chars: Vec<char> = line.chars().collect();
    let at = line[..at.min(line.len())].chars().count();
    if chars.len() <= 80 + width {
        return line.to_owned();
    }
    let head: String = chars[..80].iter().collect();
    let from = at.saturating_sub(width / 3).max(80);
    let window: String = chars[from..(from + width).min(chars.len())]
        .iter()
        .collect();
    if from == 80 {
        format!("{head}{window}…")
    } else {
        format!("{head} … {window}…")
    }
}

/// Writes both transcripts where a failing run can be read in full.
fn save(name: &str, ours: &[String], etcd: &[String]) -> Option<String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("conformance");
    std::fs::create_dir_all(&dir).ok()?;
    let file = name.replace(' ', "-");
    std::fs::write(dir.join(format!("{file}.ours.txt")), ours.join("\n")).ok()?;
    std::fs::write(dir.join(format!("{file}.etcd.txt")), etcd.join("\n")).ok()?;
    Some(
        dir.join(format!("{file}.{{ours,etcd}}.txt"))
            .display()
            .to_string(),
    )
}

fn all_scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    all.extend(kv::scenarios());
    all.extend(txn::scenarios());
    all.extend(watch::scenarios());
    all.extend(lease::scenarios());
    all.extend(auth::scenarios());
    all.extend(maintenance::scenarios());
    all.extend(cluster::scenarios());
    all.extend(lock::scenarios());
    all.extend(fixtures::scenarios());
    all
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// A job for the worker threads: one scenario or one random sequence.
enum Job {
    Scenario(Scenario),
    Random(u64),
}

impl Job {
    fn name(&self) -> String {
        match self {
            Job::Scenario(s) => s.name.to_owned(),
            Job::Random(seed) => format!("random seed {seed}"),
        }
    }

    fn run(&self) -> Result<(), String> {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match self {
            Job::Scenario(s) => compare(s.name, s.configure, &s.run),
            Job::Random(seed) => random::compare_seed(*seed).map_err(|e| {
                format!(
                    "{e}replay with: CONFORMANCE_SEED={seed} CONFORMANCE_SEEDS=1 \
                     cargo test --test conformance -- random\n"
                )
            }),
        }));
        outcome.unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Err(format!("panicked: {text}\n"))
        })
    }
}

fn main() {
    // Options cargo passes to every test binary (like --nocapture) are not filters.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));

    let first_seed = env_number("CONFORMANCE_SEED", 1);
    let seeds = env_number("CONFORMANCE_SEEDS", 16);
    let mut jobs: Vec<Job> = all_scenarios()
        .into_iter()
        .map(Job::Scenario)
        .chain((first_seed..first_seed + seeds).map(Job::Random))
        .filter(|job| wanted(&job.name()))
        .collect();
    jobs.reverse();
    let scenario_count = jobs
        .iter()
        .filter(|j| matches!(j, Job::Scenario(_)))
        .count();
    let random_count = jobs.len() - scenario_count;

    println!("\nrunning {} conformance checks", jobs.len());
    if wanted("backend_selection") {
        backend_selection();
        println!("conformance backend_selection ... ok");
    }
    let started = Instant::now();
    let queue = Mutex::new(jobs);
    let failures = Mutex::new(Vec::new());
    let passed = AtomicUsize::new(0);
    let threads = env_number("CONFORMANCE_THREADS", 2).max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let job = queue.lock().expect("queue").pop();
                let Some(job) = job else { return };
                let name = job.name();
                match job.run() {
                    Ok(()) => {
                        passed.fetch_add(1, Ordering::Relaxed);
                        println!("conformance {name} ... ok");
                    }
                    Err(report) => {
                        println!("conformance {name} ... FAILED");
                        failures.lock().expect("failures").push((name, report));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("failures");
    for (name, report) in &failures {
        println!("\n---- {name} ----\n{report}");
    }
    let passed = passed.into_inner();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; finished in {:.2}s",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "conformance summary: {scenario_count} scenarios and {random_count} random sequences \
         compared between the embedded engine and real etcd\n"
    );
    if !failures.is_empty() {
        std::process::exit(101);
    }
}

/// `TEST_ETCD_BACKEND` switches guards whose builder did not choose. Run before any other thread
/// exists, since it changes the process environment.
fn backend_selection() {
    let saved: Vec<_> = [
        test_etcd::BACKEND_ENV,
        test_etcd::ETCD_BIN_ENV,
        test_etcd::ENDPOINTS_ENV,
    ]
    .map(|name| (name, std::env::var_os(name)))
    .into();
    std::env::set_var(test_etcd::ETCD_BIN_ENV, etcd_binary());
    std::env::set_var(test_etcd::BACKEND_ENV, "real");
    let etcd = TestEtcd::builder()
        .fixture_str(r#"{"k": "v"}"#)
        .start()
        .expect("a real etcd");
    assert_eq!(etcd.backend(), Backend::Real);
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
    // `existing` shares that etcd, under a prefix of its own.
    std::env::set_var(test_etcd::BACKEND_ENV, "existing");
    std::env::set_var(test_etcd::ENDPOINTS_ENV, etcd.endpoints().join(","));
    let guest = TestEtcd::builder()
        .fixture_str(r#"{"k": "guest"}"#)
        .start()
        .expect("a guard on existing endpoints");
    assert_eq!(guest.backend(), Backend::Existing);
    assert_eq!(guest.get("k").as_deref(), Some("guest"));
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
    drop(guest);
    std::env::remove_var(test_etcd::ENDPOINTS_ENV);
    let err = TestEtcd::builder().start().expect_err("no endpoints");
    assert!(matches!(err, test_etcd::Error::NoEndpoints), "{err}");
    std::env::set_var(test_etcd::BACKEND_ENV, "real");
    drop(etcd);
    let etcd = TestEtcd::builder().backend(Backend::Embedded).start();
    assert_eq!(
        etcd.expect("embedded").backend(),
        Backend::Embedded,
        "the builder wins"
    );
    std::env::set_var(test_etcd::BACKEND_ENV, "embedded");
    assert_eq!(TestEtcd::start().backend(), Backend::Embedded);
    std::env::set_var(test_etcd::BACKEND_ENV, "etcd");
    let err = TestEtcd::builder().start().expect_err("an unknown backend");
    assert!(
        matches!(&err, test_etcd::Error::UnknownBackend(v) if v == "etcd"),
        "{err}"
    );
    for (name, value) in saved {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

// Request builders, so that scenarios read as etcd operations.

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        ..Default::default()
    }
}

pub fn range(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        range_end: b(end),
        ..Default::default()
    }
}

/// Every key.
pub fn all() -> RangeRequest {
    range("\0", "\0")
}

pub fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..Default::default()
    }
}

pub fn del(key: &str, end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(key),
        range_end: b(end),
        ..Default::default()
    }
}

pub fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(put(key, value))),
    }
}

pub fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(r)),
    }
}

pub fn op_del(key: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(del(key, end))),
    }
}

pub fn op_txn(t: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestTxn(t)),
    }
}

pub fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

pub fn cmp(
    key: &str,
    target: CompareTarget,
    result: CompareResult,
    operand: TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: b(key),
        range_end: Vec::new(),
        target_union: Some(operand),
    }
}

pub fn watch_key(key: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: b(key),
        ..Default::default()
    }
}

pub fn watch_range(key: &str, end: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: b(key),
        range_end: b(end),
        ..Default::default()
    }
}

/// Lets a fixed pause pass, for timers (progress notifications).
pub fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
