//! `test-etcd`: the server standalone, for etcdctl and clients in other languages. It takes
//! etcd's own flag names for what it supports, so a script that starts etcd can start this.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use test_etcd::{TestEtcd, TestEtcdBuilder};

const USAGE: &str = "\
usage: test-etcd [flags]

Serves an in-memory, etcd-compatible gRPC API until SIGINT or SIGTERM.

flags (etcd's names; --flag=value or --flag value):
  --listen-client-urls URL     where to serve, http://HOST:PORT (default http://127.0.0.1:2379)
  --advertise-client-urls URL  the URL to print and advertise (default: the listen URL)
  --name NAME                  member name (default \"default\")
  --max-request-bytes N        largest write request (default 1572864)
  --max-txn-ops N              most operations per txn (default 128)
  --quota-backend-bytes N      backend size that raises NOSPACE (default 2 GiB)
  --auth-token-ttl N           seconds an unused auth token stays valid (default 300)
  --bcrypt-cost N              accepted (4 to 31) and without effect: passwords are salted
                               SHA-256 here, so logins stay fast whatever the cost
  --fixture FILE               seed from a JSON fixture; repeat to layer several (not an etcd flag)
  -h, --help                   this text
";

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    listen: SocketAddr,
    advertise: Option<String>,
    builder: TestEtcdBuilder,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 2379).into();
    let mut advertise = None;
    let mut builder = TestEtcd::builder();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" || arg == "-help" {
            return Ok(None);
        }
        // Go's flag package takes one or two dashes, and the value after `=` or as the next
        // argument.
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag.to_owned(), None),
        };
        let known = [
            "listen-client-urls",
            "advertise-client-urls",
            "name",
            "max-request-bytes",
            "max-txn-ops",
            "quota-backend-bytes",
            "auth-token-ttl",
            "bcrypt-cost",
            "fixture",
        ];
        if !known.contains(&name.as_str()) {
            return Err(format!(
                "flag --{name} is not supported by test-etcd (see --help)"
            ));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("flag --{name} needs a value")),
        };
        match name.as_str() {
            "listen-client-urls" => listen = parse_url(&value)?,
            "advertise-client-urls" => advertise = Some(value),
            "name" => {}
            "max-request-bytes" => {
                builder = builder.max_request_bytes(parse_number(&name, &value)?)
            }
            "max-txn-ops" => builder = builder.max_txn_ops(parse_number(&name, &value)?),
            "quota-backend-bytes" => {
                builder = builder.quota_backend_bytes(parse_number(&name, &value)? as u64)
            }
            "bcrypt-cost" => {
                // etcd refuses costs outside bcrypt's range; scripts passing one expect that.
                let cost = parse_number(&name, &value)?;
                if !(4..=31).contains(&cost) {
                    return Err(format!("flag --bcrypt-cost must be 4 to 31, got {cost}"));
                }
            }
            "auth-token-ttl" => {
                let seconds = parse_number(&name, &value)? as u64;
                builder = builder.auth_token_ttl(std::time::Duration::from_secs(seconds))
            }
            _ => builder = builder.fixture(absolute(&value)),
        }
    }
    Ok(Some(Options {
        listen,
        advertise,
        builder,
    }))
}

/// The first URL of an etcd URL list, as a socket address. Only plain http is served.
fn parse_url(list: &str) -> Result<SocketAddr, String> {
    let first = list.split(',').next().unwrap_or_default().trim();
    let Some(host_port) = first.strip_prefix("http://") else {
        return Err(format!(
            "listen URL {first:?} must be http://HOST:PORT (TLS is not served)"
        ));
    };
    let host_port = host_port.trim_end_matches('/');
    let host_port = host_port.replace("localhost:", "127.0.0.1:");
    host_port
        .parse()
        .map_err(|_| format!("listen URL {first:?} must be http://IP:PORT"))
}

fn parse_number(name: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("flag --{name} needs a number, got {value:?}"))
}

/// Fixture paths on the command line are relative to the working directory, as a user typing
/// them expects (the library resolves relative paths against the test crate instead).
fn absolute(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    match std::env::current_dir() {
        Ok(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("test-etcd: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let etcd = match options.builder.listen(options.listen).start() {
        Ok(etcd) => etcd,
        Err(err) => {
            eprintln!("test-etcd: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("test-etcd: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The signal handlers go in before the ready line: a script that stops the server right
    // after reading it must find them in place.
    let signals = {
        let _entered = runtime.enter();
        Signals::install()
    };
    let endpoint = options.advertise.unwrap_or_else(|| etcd.endpoint());
    println!(
        "test-etcd serving etcd v3 API on {endpoint} (revision {})",
        etcd.revision()
    );
    runtime.block_on(signals.wait());
    etcd.shutdown();
    ExitCode::SUCCESS
}

/// SIGINT and SIGTERM, registered as soon as this is made.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let (Some(mut term), Some(mut interrupt)) = (self.term, self.interrupt) {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
