//! The gRPC server counters etcd exports (go-grpc-prometheus's `grpc_server_started_total` and
//! `grpc_server_handled_total`), and the /health answer counters. The etcd gauges are read from
//! the engine when /metrics is asked (`etcdhttp.rs`).

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tonic::body::Body;
use tonic::{Code, Status};

use super::grpc_status;

/// Every method of the services whose series etcd creates up front, with its gRPC type.
const PRE_CREATED: &[(&str, &str, &str)] = &[
    ("etcdserverpb.KV", "Range", "unary"),
    ("etcdserverpb.KV", "RangeStream", "server_stream"),
    ("etcdserverpb.KV", "Put", "unary"),
    ("etcdserverpb.KV", "DeleteRange", "unary"),
    ("etcdserverpb.KV", "Txn", "unary"),
    ("etcdserverpb.KV", "Compact", "unary"),
    ("etcdserverpb.Watch", "Watch", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseGrant", "unary"),
    ("etcdserverpb.Lease", "LeaseRevoke", "unary"),
    ("etcdserverpb.Lease", "LeaseKeepAlive", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseTimeToLive", "unary"),
    ("etcdserverpb.Lease", "LeaseLeases", "unary"),
    ("etcdserverpb.Cluster", "MemberAdd", "unary"),
    ("etcdserverpb.Cluster", "MemberRemove", "unary"),
    ("etcdserverpb.Cluster", "MemberUpdate", "unary"),
    ("etcdserverpb.Cluster", "MemberList", "unary"),
    ("etcdserverpb.Cluster", "MemberPromote", "unary"),
    ("etcdserverpb.Maintenance", "Alarm", "unary"),
    ("etcdserverpb.Maintenance", "Status", "unary"),
    ("etcdserverpb.Maintenance", "Defragment", "unary"),
    ("etcdserverpb.Maintenance", "Hash", "unary"),
    ("etcdserverpb.Maintenance", "HashKV", "unary"),
    ("etcdserverpb.Maintenance", "Snapshot", "server_stream"),
    ("etcdserverpb.Maintenance", "MoveLeader", "unary"),
    ("etcdserverpb.Maintenance", "Downgrade", "unary"),
    ("etcdserverpb.Auth", "AuthEnable", "unary"),
    ("etcdserverpb.Auth", "AuthDisable", "unary"),
    ("etcdserverpb.Auth", "AuthStatus", "unary"),
    ("etcdserverpb.Auth", "Authenticate", "unary"),
    ("etcdserverpb.Auth", "UserAdd", "unary"),
    ("etcdserverpb.Auth", "UserGet", "unary"),
    ("etcdserverpb.Auth", "UserList", "unary"),
    ("etcdserverpb.Auth", "UserDelete", "unary"),
    ("etcdserverpb.Auth", "UserChangePassword", "unary"),
    ("etcdserverpb.Auth", "UserGrantRole", "unary"),
    ("etcdserverpb.Auth", "UserRevokeRole", "unary"),
    ("etcdserverpb.Auth", "RoleAdd", "unary"),
    ("etcdserverpb.Auth", "RoleGet", "unary"),
    ("etcdserverpb.Auth", "RoleList", "unary"),
    ("etcdserverpb.Auth", "RoleDelete", "unary"),
    ("etcdserverpb.Auth", "RoleGrantPermission", "unary"),
    ("etcdserverpb.Auth", "RoleRevokePermission", "unary"),
    ("grpc.health.v1.Health", "Check", "unary"),
    ("grpc.health.v1.Health", "List", "unary"),
    ("grpc.health.v1.Health", "Watch", "server_stream"),
];

/// Methods whose series appear only once called, as etcd's lock and election services.
const ON_FIRST_CALL: &[(&str, &str, &str)] = &[
    ("v3lockpb.Lock", "Lock", "unary"),
    ("v3lockpb.Lock", "Unlock", "unary"),
    ("v3electionpb.Election", "Campaign", "unary"),
    ("v3electionpb.Election", "Proclaim", "unary"),
    ("v3electionpb.Election", "Leader", "unary"),
    ("v3electionpb.Election", "Observe", "server_stream"),
    ("v3electionpb.Election", "Resign", "unary"),
];

/// gRPC codes as grpc-go names them in labels.
const CODES: &[(Code, &str)] = &[
    (Code::Ok, "OK"),
    (Code::Cancelled, "Canceled"),
    (Code::Unknown, "Unknown"),
    (Code::InvalidArgument, "InvalidArgument"),
    (Code::DeadlineExceeded, "DeadlineExceeded"),
    (Code::NotFound, "NotFound"),
    (Code::AlreadyExists, "AlreadyExists"),
    (Code::PermissionDenied, "PermissionDenied"),
    (Code::ResourceExhausted, "ResourceExhausted"),
    (Code::FailedPrecondition, "FailedPrecondition"),
    (Code::Aborted, "Aborted"),
    (Code::OutOfRange, "OutOfRange"),
    (Code::Unimplemented, "Unimplemented"),
    (Code::Internal, "Internal"),
    (Code::Unavailable, "Unavailable"),
    (Code::DataLoss, "DataLoss"),
    (Code::Unauthenticated, "Unauthenticated"),
];

type Method = (&'static str, &'static str, &'static str);

/// The counters of one method.
#[derive(Debug, Default)]
struct MethodCounts {
    /// Whether its series exist yet: from the start, or (lock, election) once called.
    shown: AtomicBool,
    started: AtomicU64,
    /// Per code, in `CODES` order (which is the codes' numeric order).
    handled: [AtomicU64; 17],
}

/// The server's counters, shared by all its endpoints. Atomics, not a lock: every request
/// counts itself twice, and nothing reads the counters but /metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// One entry per method of `PRE_CREATED`, then of `ON_FIRST_CALL`.
    methods: Vec<MethodCounts>,
    health_success: AtomicU64,
    health_failures: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let methods = methods()
            .enumerate()
            .map(|(i, _)| MethodCounts {
                shown: AtomicBool::new(i < PRE_CREATED.len()),
                ..MethodCounts::default()
            })
            .collect();
        Metrics {
            methods,
            health_success: AtomicU64::new(0),
            health_failures: AtomicU64::new(0),
        }
    }
}

/// Every method etcd's gRPC server serves: the two tables together.
fn methods() -> impl Iterator<Item = &'static Method> {
    PRE_CREATED.iter().chain(ON_FIRST_CALL)
}

/// Whether `service` has a method `method`.
pub(super) fn serves(service: &str, method: &str) -> bool {
    index(service, method).is_some()
}

/// The index in `methods()` of `method` of `service`. The method is compared first: that
/// rejects most entries on their length.
fn index(service: &str, method: &str) -> Option<usize> {
    methods().position(|(s, m, _)| *m == method && *s == service)
}

/// The method's index in `methods()`.
fn method_of(path: &str) -> Option<usize> {
    // Every call looks its path up. Method names are short: a scan back from the end finds the
    // slash sooner than a search from the start.
    let slash = path.bytes().rposition(|b| b == b'/')?;
    let service = path.get(..slash)?.strip_prefix('/')?;
    let method = path.get(slash + 1..)?;
    index(service, method)
}

impl Metrics {
    /// Counts a call to `path` as started; the returned token counts it as handled.
    pub(crate) fn started(self: &Arc<Self>, path: &str) -> Counted {
        let method = method_of(path);
        if let Some(counts) = method.and_then(|i| self.methods.get(i)) {
            counts.shown.store(true, Ordering::Relaxed);
            counts.started.fetch_add(1, Ordering::Relaxed);
        }
        Counted {
            metrics: method.map(|m| (Arc::clone(self), m)),
        }
    }

    fn handled(&self, method: usize, code: Code) {
        // Codes outside grpc's 17 count as Unknown, as grpc-go reports them.
        let index = match code as usize {
            i if i < CODES.len() => i,
            _ => Code::Unknown as usize,
        };
        if let Some(counts) = self.methods.get(method) {
            counts.handled[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one /health answer.
    pub(crate) fn health(&self, healthy: bool) {
        let counter = if healthy {
            &self.health_success
        } else {
            &self.health_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the counters in Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP etcd_server_health_success The total number of successful health checks"
        );
        let _ = writeln!(out, "# TYPE etcd_server_health_success counter");
        let _ = writeln!(
            out,
            "etcd_server_health_success {}",
            read(&self.health_success)
        );
        let _ = writeln!(
            out,
            "# HELP etcd_server_health_failures The total number of failed health checks"
        );
        let _ = writeln!(out, "# TYPE etcd_server_health_failures counter");
        let _ = writeln!(
            out,
            "etcd_server_health_failures {}",
            read(&self.health_failures)
        );
        // Series in label order, as Prometheus clients print them.
        let mut shown: Vec<(&Method, &MethodCounts)> = methods()
            .zip(&self.methods)
            .filter(|(_, counts)| counts.shown.load(Ordering::Relaxed))
            .collect();
        shown.sort_by_key(|(method, _)| **method);
        let _ = writeln!(out, "# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.");
        let _ = writeln!(out, "# TYPE grpc_server_handled_total counter");
        for ((service, method, kind), counts) in &shown {
            for ((_, code), n) in CODES.iter().zip(&counts.handled) {
                let _ = writeln!(
                    out,
                    "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}} {}",
                    read(n)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP grpc_server_started_total Total number of RPCs started on the server."
        );
        let _ = writeln!(out, "# TYPE grpc_server_started_total counter");
        for ((service, method, kind), counts) in &shown {
            let _ = writeln!(
                out,
                "grpc_server_started_total{{grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}} {}",
                read(&counts.started)
            );
        }
    }
}

/// A started call, to be counted as handled with the code it ends with.
pub(crate) struct Counted {
    metrics: Option<(Arc<Metrics>, usize)>,
}

fn code_in(headers: &http::HeaderMap) -> Option<Code> {
    let code = grpc_status(headers)?.to_str().ok()?.parse::<i32>().ok()?;
    Some(Code::from_i32(code))
}

impl Counted {
    /// Counts the call when its status is known: now for an error answered in the headers
    /// and for a unary answer, at the trailers of a stream otherwise.
    pub(crate) fn finish(self, response: http::Response<Body>) -> http::Response<Body> {
        let Some((metrics, method)) = self.metrics else {
            return response;
        };
        if let Some(code) = code_in(response.headers()) {
            metrics.handled(method, code);
            return response;
        }
        // A unary handler that answers with a message has succeeded (a failure answers in the
        // headers), as grpc-go counts it when the handler returns: no need to watch its body.
        if methods()
            .nth(method)
            .is_some_and(|(_, _, kind)| *kind == "unary")
        {
            metrics.handled(method, Code::Ok);
            return response;
        }
        response.map(|inner| {
            Body::new(CountedBody {
                inner,
                pending: Some((metrics, method)),
            })
        })
    }
}

/// A response body that counts its call when the trailers carrying the status pass.
struct CountedBody {
    inner: Body,
    pending: Option<(Arc<Metrics>, usize)>,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(code) = frame.trailers_ref().and_then(code_in) {
                if let Some((metrics, method)) = this.pending.take() {
                    metrics.handled(method, code);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_counts_under_its_own_label() {
        // `handled` indexes `CODES` by the code's number.
        for (number, (code, _)) in CODES.iter().enumerate() {
            assert_eq!(*code as usize, number);
        }
        let metrics = Arc::new(Metrics::default());
        metrics
            .started("/etcdserverpb.KV/Put")
            .finish(Status::not_found("x").into_http());
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("grpc_server_handled_total{grpc_code=\"NotFound\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1"));
        assert!(out.contains("grpc_server_started_total{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1"));
        // Lock's series appear once it is called.
        assert!(!out.contains("v3lockpb.Lock"));
        let _ = metrics.started("/v3lockpb.Lock/Lock");
        out.clear();
        metrics.render(&mut out);
        assert!(out.contains("grpc_server_started_total{grpc_method=\"Lock\",grpc_service=\"v3lockpb.Lock\",grpc_type=\"unary\"} 1"));
    }
}
