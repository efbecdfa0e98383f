//! The gRPC server counters etcd exports (go-grpc-prometheus's `grpc_server_started_total` and
//! `grpc_server_handled_total`), and the /health answer counters. The etcd gauges are read from
//! the engine when /metrics is asked (`etcdhttp.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tonic::body::Body;
use tonic::{Code, Status};

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

#[derive(Debug, Default)]
struct Counts {
    /// Per method: started, and handled per code index in `CODES`.
    methods: BTreeMap<Method, (u64, [u64; 17])>,
    health_success: u64,
    health_failures: u64,
}

/// The server's counters, shared by all its endpoints.
#[derive(Debug)]
pub(crate) struct Metrics {
    counts: Mutex<Counts>,
}

impl Default for Metrics {
    fn default() -> Self {
        let methods = PRE_CREATED.iter().map(|m| (*m, (0, [0; 17]))).collect();
        Metrics {
            counts: Mutex::new(Counts {
                methods,
                ..Default::default()
            }),
        }
    }
}

fn method_of(path: &str) -> Option<Method> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    PRE_CREATED
        .iter()
        .chain(ON_FIRST_CALL)
        .find(|(s, m, _)| *s == service && *m == method)
        .copied()
}

impl Metrics {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Counters only ever go up: a poisoned lock still holds usable numbers.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a call to `path` as started; the returned token counts it as handled.
    pub(crate) fn started(self: &Arc<Self>, path: &str) -> Counted {
        let method = method_of(path);
        if let Some(method) = method {
            self.counts()
                .methods
                .entry(method)
                .or_insert((0, [0; 17]))
                .0 += 1;
        }
        Counted {
            metrics: method.map(|m| (Arc::clone(self), m)),
        }
    }

    fn handled(&self, method: Method, code: Code) {
        let index = CODES.iter().position(|(c, _)| *c == code).unwrap_or(2);
        if let Some(entry) = self.counts().methods.get_mut(&method) {
            entry.1[index] += 1;
        }
    }

    /// Counts one /health answer.
    pub(crate) fn health(&self, healthy: bool) {
        let mut counts = self.counts();
        if healthy {
            counts.health_success += 1;
        } else {
            counts.health_failures += 1;
        }
    }

    /// Appends the counters in Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let counts = self.counts();
        let _ = writeln!(
            out,
            "# HELP etcd_server_health_success The total number of successful health checks"
        );
        let _ = writeln!(out, "# TYPE etcd_server_health_success counter");
        let _ = writeln!(out, "etcd_server_health_success {}", counts.health_success);
        let _ = writeln!(
            out,
            "# HELP etcd_server_health_failures The total number of failed health checks"
        );
        let _ = writeln!(out, "# TYPE etcd_server_health_failures counter");
        let _ = writeln!(
            out,
            "etcd_server_health_failures {}",
            counts.health_failures
        );
        let _ = writeln!(out, "# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.");
        let _ = writeln!(out, "# TYPE grpc_server_handled_total counter");
        for ((service, method, kind), (_, handled)) in &counts.methods {
            for ((_, code), n) in CODES.iter().zip(handled) {
                let _ = writeln!(
                    out,
                    "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP grpc_server_started_total Total number of RPCs started on the server."
        );
        let _ = writeln!(out, "# TYPE grpc_server_started_total counter");
        for ((service, method, kind), (started, _)) in &counts.methods {
            let _ = writeln!(
                out,
                "grpc_server_started_total{{grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}} {started}"
            );
        }
    }
}

/// A started call, to be counted as handled with the code it ends with.
pub(crate) struct Counted {
    metrics: Option<(Arc<Metrics>, Method)>,
}

fn code_in(headers: &http::HeaderMap) -> Option<Code> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(code))
}

impl Counted {
    /// Counts the call when its status is known: now for an error answered in the headers,
    /// at the trailers otherwise.
    pub(crate) fn finish(self, response: http::Response<Body>) -> http::Response<Body> {
        let Some((metrics, method)) = self.metrics else {
            return response;
        };
        if let Some(code) = code_in(response.headers()) {
            metrics.handled(method, code);
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
    pending: Option<(Arc<Metrics>, Method)>,
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
