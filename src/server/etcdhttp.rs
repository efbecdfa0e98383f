//! etcd's HTTP endpoints on the client port (spec §6.2): `/health`, `/livez`, `/readyz`,
//! `/version` and `/metrics`, answered to HTTP/1.x requests with etcd's status codes, bodies
//! and headers. Named after etcd's `etcdhttp` package.

use std::fmt::Write as _;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tonic::body::Body;

use crate::pb::etcdserverpb::AlarmType;

use super::Context;

const TEXT: &str = "text/plain; charset=utf-8";

/// Answers one HTTP/1.x request.
pub(crate) fn respond<B>(ctx: &Context, request: &Request<B>) -> Response<Body> {
    let mut response = if request.method() == Method::OPTIONS {
        // etcd's CORS handler answers every preflight itself.
        plain(StatusCode::OK, "", TEXT)
    } else {
        route(ctx, request)
    };
    let headers = response.headers_mut();
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    response
}

fn route<B>(ctx: &Context, request: &Request<B>) -> Response<Body> {
    let path = request.uri().path();
    let query = Query::parse(request.uri().query().unwrap_or(""));
    let get_only = |f: &dyn Fn() -> Response<Body>| {
        if request.method() == Method::GET {
            f()
        } else {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            response
        }
    };
    match path {
        "/health" => get_only(&|| health(ctx, &query)),
        "/version" => get_only(&|| version(ctx)),
        "/metrics" => metrics(ctx),
        _ => match probe(path) {
            Some((probe, only)) => checks(ctx, probe, only, &query),
            None => error(StatusCode::NOT_FOUND, "404 page not found"),
        },
    }
}

fn plain(
    status: StatusCode,
    body: impl Into<String>,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(Body::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An error as Go's `http.Error` writes it: the text plus a newline, no sniffing.
fn error(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = plain(status, format!("{text}\n"), TEXT);
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The query parameters etcd's handlers read.
struct Query<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Query<'a> {
    fn parse(query: &'a str) -> Self {
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        Query { pairs }
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &'a str> + '_ {
        let name = name.to_owned();
        self.pairs
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| *v)
    }

    fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| *k == name)
    }
}

fn health(ctx: &Context, query: &Query<'_>) -> Response<Body> {
    let excluded: Vec<&str> = query.all("exclude").collect();
    let serializable = query.all("serializable").any(|v| v == "true");
    let alarm = ctx
        .engine
        .alarms()
        .into_iter()
        .map(|a| AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name()))
        .find(|name| !excluded.contains(name));
    let reason = match alarm {
        Some(name) => Some(format!("ALARM {name}")),
        None if !serializable && ctx.engine.cluster_view().leader == 0 => {
            Some("RAFT NO LEADER".to_owned())
        }
        None => None,
    };
    ctx.metrics.health(reason.is_none());
    match reason {
        None => plain(StatusCode::OK, r#"{"health":"true","reason":""}"#, TEXT),
        Some(reason) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(r#"{{"health":"false","reason":"{reason}"}}"#),
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Livez,
    Readyz,
}

const LIVEZ_CHECKS: &[&str] = &["serializable_read"];
const READYZ_CHECKS: &[&str] = &[
    "data_corruption",
    "serializable_read",
    "linearizable_read",
    "non_learner",
];

/// `/livez`, `/readyz` or one of their single-check paths.
fn probe(path: &str) -> Option<(Probe, Option<&str>)> {
    let (probe, rest) = if let Some(rest) = path.strip_prefix("/livez") {
        (Probe::Livez, rest)
    } else {
        (Probe::Readyz, path.strip_prefix("/readyz")?)
    };
    match rest {
        "" => Some((probe, None)),
        _ => Some((probe, Some(rest.strip_prefix('/')?))),
    }
}

/// Runs one check: `None` when it passes, else why it failed.
fn check(ctx: &Context, name: &str) -> Option<String> {
    match name {
        "data_corruption" => ctx
            .engine
            .alarms()
            .iter()
            .any(|a| a.alarm == AlarmType::Corrupt as i32)
            .then(|| "alarm activated: CORRUPT".to_owned()),
        "linearizable_read" => {
            (ctx.engine.cluster_view().leader == 0).then(|| "etcdserver: no leader".to_owned())
        }
        "non_learner" => ctx
            .engine
            .is_learner(ctx.identity.member_id)
            .then(|| "not supported for learner".to_owned()),
        _ => None,
    }
}

fn checks(ctx: &Context, probe: Probe, only: Option<&str>, query: &Query<'_>) -> Response<Body> {
    let all = match probe {
        Probe::Livez => LIVEZ_CHECKS,
        Probe::Readyz => READYZ_CHECKS,
    };
    let names: Vec<&str> = match only {
        Some(one) if all.contains(&one) => vec![one],
        Some(_) => return error(StatusCode::NOT_FOUND, "404 page not found"),
        None => all.to_vec(),
    };
    let excluded: Vec<&str> = query.all("exclude").collect();
    let mut report = String::new();
    let mut failed = false;
    for name in names {
        if excluded.contains(&name) {
            let _ = writeln!(report, "[+]{name} excluded: ok");
            continue;
        }
        match check(ctx, name) {
            None => {
                let _ = writeln!(report, "[+]{name} ok");
            }
            Some(reason) => {
                failed = true;
                let _ = writeln!(report, "[-]{name} failed: {reason}");
            }
        }
    }
    if failed {
        return error(StatusCode::SERVICE_UNAVAILABLE, &report);
    }
    let body = if query.has("verbose") {
        format!("{report}ok\n")
    } else {
        "ok\n".to_owned()
    };
    plain(StatusCode::OK, body, TEXT)
}

fn version(ctx: &Context) -> Response<Body> {
    let version = ctx.engine.cluster_view().version;
    let cluster = version.cluster();
    let body =
        format!(r#"{{"etcdserver":"{version}","etcdcluster":"{cluster}","storage":"{cluster}"}}"#);
    plain(StatusCode::OK, body, "application/json")
}

/// A number as Go's Prometheus client prints it (`strconv.FormatFloat(v, 'g', -1, 64)`):
/// plain below a million, exponent notation from there (`2.147483648e+09`).
fn go_number(n: u64) -> String {
    if n < 1_000_000 {
        return n.to_string();
    }
    let digits = n.to_string();
    let exponent = digits.len() - 1;
    let mantissa = digits.trim_end_matches('0');
    let (first, rest) = mantissa.split_at(1);
    if rest.is_empty() {
        format!("{first}e+{exponent:02}")
    } else {
        format!("{first}.{rest}e+{exponent:02}")
    }
}

fn gauge(out: &mut String, name: &str, help: &str, kind: &str, labels: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name}{labels} {}", go_number(value));
}

fn metrics(ctx: &Context) -> Response<Body> {
    let engine = &ctx.engine;
    let view = engine.cluster_view();
    let space = engine.space();
    let revision = engine.revision();
    let raft_index = view.raft_index(revision);
    let member = ctx.identity.member_id;
    let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut out = String::new();
    let o = &mut out;
    gauge(
        o,
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        "gauge",
        "",
        u64::from(view.leader != 0),
    );
    gauge(
        o,
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        "gauge",
        "",
        u64::from(view.leader == member),
    );
    // Each term of the simulation began with a leader change, the bootstrap election included.
    gauge(
        o,
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
        "counter",
        "",
        view.raft_term.saturating_sub(1),
    );
    gauge(
        o,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        "gauge",
        "",
        raft_index,
    );
    gauge(
        o,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        "gauge",
        "",
        raft_index,
    );
    gauge(
        o,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        "gauge",
        "",
        0,
    );
    gauge(
        o,
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
        "counter",
        "",
        0,
    );
    gauge(
        o,
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        "gauge",
        &format!("{{server_version=\"{}\"}}", view.version),
        1,
    );
    gauge(
        o,
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        "gauge",
        &format!("{{cluster_version=\"{}\"}}", view.version.major_minor()),
        1,
    );
    gauge(
        o,
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        "gauge",
        &format!("{{server_id=\"{member:x}\"}}"),
        1,
    );
    gauge(
        o,
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        "gauge",
        "",
        as_u64(space.db_size),
    );
    gauge(
        o,
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        "gauge",
        "",
        as_u64(space.db_size_in_use),
    );
    gauge(
        o,
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes.",
        "gauge",
        "",
        as_u64(space.quota),
    );
    gauge(
        o,
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        "gauge",
        "",
        as_u64(revision),
    );
    gauge(
        o,
        "etcd_debugging_mvcc_keys_total",
        "Total number of keys.",
        "gauge",
        "",
        engine.key_count() as u64,
    );
    ctx.metrics.render(o);
    plain(
        StatusCode::OK,
        out,
        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_gos_prometheus_client_prints_them() {
        assert_eq!(go_number(20_480), "20480");
        assert_eq!(go_number(2_147_483_648), "2.147483648e+09");
        assert_eq!(go_number(1_000_000), "1e+06");
    }

    #[test]
    fn probe_paths() {
        assert_eq!(probe("/readyz"), Some((Probe::Readyz, None)));
        assert_eq!(
            probe("/livez/serializable_read"),
            Some((Probe::Livez, Some("serializable_read")))
        );
        assert_eq!(probe("/readyzz"), None);
        assert_eq!(probe("/healthz"), None);
    }
}
