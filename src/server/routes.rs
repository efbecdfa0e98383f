//! Which service answers a gRPC call: the path names a service and a method, split as grpc-go
//! splits it, and a call to a service or method etcd does not have gets grpc-go's answer.
//!
//! Every call goes through here, so the dispatch is a match on the service name, a look in the
//! method table the metrics keep, and a direct call of the generated server: no router, and
//! no body wrapping beyond tonic's own.

use std::convert::Infallible;

use tonic::body::Body;
use tower::Service as _;

use crate::pb::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::pb::health::health_server::HealthServer;
use crate::pb::v3electionpb::election_server::ElectionServer;
use crate::pb::v3lockpb::lock_server::LockServer;

use super::{
    auth, cluster, election, health, kv, lease, lock, maintenance, watch, Context, GrpcFuture,
};

/// The services of etcd's gRPC API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Kv,
    Watch,
    Lease,
    Cluster,
    Maintenance,
    Auth,
    Lock,
    Election,
    /// gRPC's standard health service, which etcd registers too.
    Health,
}

/// The service that serves `path`, or grpc-go's words for a path that names none.
pub(crate) fn route(path: &str) -> Result<Service, tonic::Status> {
    // grpc-go drops the leading `/` and splits at the last `/`.
    let name = path.strip_prefix('/').unwrap_or(path);
    let Some((service, method)) = name.rsplit_once('/') else {
        return Err(tonic::Status::unimplemented(format!(
            "malformed method name: {path:?}"
        )));
    };
    let found = match service {
        "etcdserverpb.KV" => Service::Kv,
        "etcdserverpb.Watch" => Service::Watch,
        "etcdserverpb.Lease" => Service::Lease,
        "etcdserverpb.Cluster" => Service::Cluster,
        "etcdserverpb.Maintenance" => Service::Maintenance,
        "etcdserverpb.Auth" => Service::Auth,
        "v3lockpb.Lock" => Service::Lock,
        "v3electionpb.Election" => Service::Election,
        "grpc.health.v1.Health" => Service::Health,
        _ => {
            return Err(tonic::Status::unimplemented(format!(
                "unknown service {service}"
            )))
        }
    };
    // The methods are those the metrics count: one table for both.
    if super::metrics::serves(service, method) {
        Ok(found)
    } else {
        Err(tonic::Status::unimplemented(format!(
            "unknown method {method} for service {service}"
        )))
    }
}

/// The gRPC services of one member, each with etcd's request size limit.
#[derive(Clone)]
pub(crate) struct Services {
    kv: KvServer<kv::KvService>,
    watch: WatchServer<watch::WatchService>,
    lease: LeaseServer<lease::LeaseService>,
    cluster: ClusterServer<cluster::ClusterService>,
    maintenance: MaintenanceServer<maintenance::MaintenanceService>,
    auth: AuthServer<auth::AuthService>,
    lock: LockServer<lock::LockService>,
    election: ElectionServer<election::ElectionService>,
    health: HealthServer<health::HealthService>,
}

impl Services {
    pub(crate) fn new(ctx: &Context) -> Self {
        let limit = ctx.max_message_bytes;
        Services {
            kv: KvServer::new(kv::KvService::new(ctx.clone())).max_decoding_message_size(limit),
            watch: WatchServer::new(watch::WatchService::new(ctx.clone()))
                .max_decoding_message_size(limit),
            lease: LeaseServer::new(lease::LeaseService::new(ctx.clone()))
                .max_decoding_message_size(limit),
            cluster: ClusterServer::new(cluster::ClusterService::new(ctx.clone()))
                .max_decoding_message_size(limit),
            maintenance: MaintenanceServer::new(maintenance::MaintenanceService::new(ctx.clone()))
                .max_decoding_message_size(limit),
            auth: AuthServer::new(auth::AuthService::new(ctx.clone()))
                .max_decoding_message_size(limit),
            lock: LockServer::new(lock::LockService::new(ctx.clone()))
                .max_decoding_message_size(limit),
            election: ElectionServer::new(election::ElectionService::new(ctx.clone()))
                .max_decoding_message_size(limit),
            health: HealthServer::new(health::HealthService).max_decoding_message_size(limit),
        }
    }

    /// Serves one call. The generated servers are always ready and cheap to clone (their
    /// service sits behind an `Arc`), so a clone serves each call.
    pub(crate) fn call(&self, request: http::Request<Body>) -> GrpcFuture {
        match route(request.uri().path()) {
            Ok(Service::Kv) => self.kv.clone().call(request),
            Ok(Service::Watch) => self.watch.clone().call(request),
            Ok(Service::Lease) => self.lease.clone().call(request),
            Ok(Service::Cluster) => self.cluster.clone().call(request),
            Ok(Service::Maintenance) => self.maintenance.clone().call(request),
            Ok(Service::Auth) => self.auth.clone().call(request),
            Ok(Service::Lock) => self.lock.clone().call(request),
            Ok(Service::Election) => self.election.clone().call(request),
            Ok(Service::Health) => self.health.clone().call(request),
            Err(status) => {
                let response = status.into_http();
                Box::pin(async move { Ok::<_, Infallible>(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_the_last_slash_as_grpc_go_does() {
        assert_eq!(route("/etcdserverpb.KV/Txn").ok(), Some(Service::Kv));
        assert_eq!(
            route("/v3electionpb.Election/Observe").ok(),
            Some(Service::Election)
        );
        assert_eq!(
            route("/grpc.health.v1.Health/Watch").ok(),
            Some(Service::Health)
        );
        let message = |path| route(path).err().map(|s| s.message().to_owned());
        assert_eq!(
            message("/etcdserverpb.KV/Nope").as_deref(),
            Some("unknown method Nope for service etcdserverpb.KV")
        );
        assert_eq!(
            message("/a/etcdserverpb.KV/Range").as_deref(),
            Some("unknown service a/etcdserverpb.KV")
        );
        assert_eq!(
            message("/Range").as_deref(),
            Some("malformed method name: \"/Range\"")
        );
    }
}
