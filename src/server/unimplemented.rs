//! Services whose engine is not built yet. Each RPC answers what a gRPC server without that
//! method answers (etcd's own grpc-go wording), never a made-up success.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::pb::etcdserverpb as pb;

/// Stands in for every service that is not implemented yet.
pub(crate) struct Unimplemented;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn unimplemented(service: &str, method: &str) -> Status {
    Status::unimplemented(format!("unknown method {method} for service {service}"))
}

/// Implements a service trait whose unary methods all answer Unimplemented; `extra` holds the
/// streaming methods, written out by hand.
macro_rules! unimplemented_service {
    ($trait:path, $service:literal, { $($extra:tt)* } $($fn:ident($req:ty) -> $resp:ty = $method:literal;)*) => {
        #[tonic::async_trait]
        impl $trait for Unimplemented {
            $($extra)*
            $(
                async fn $fn(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(unimplemented($service, $method))
                }
            )*
        }
    };
}

unimplemented_service!(pb::cluster_server::Cluster, "etcdserverpb.Cluster", {
}
        member_add(pb::MemberAddRequest) -> pb::MemberAddResponse = "MemberAdd";
        member_remove(pb::MemberRemoveRequest) -> pb::MemberRemoveResponse = "MemberRemove";
        member_update(pb::MemberUpdateRequest) -> pb::MemberUpdateResponse = "MemberUpdate";
        member_list(pb::MemberListRequest) -> pb::MemberListResponse = "MemberList";
        member_promote(pb::MemberPromoteRequest) -> pb::MemberPromoteResponse = "MemberPromote";
);

unimplemented_service!(pb::maintenance_server::Maintenance, "etcdserverpb.Maintenance", {
    type SnapshotStream = BoxStream<pb::SnapshotResponse>;
    async fn snapshot(&self, _: Request<pb::SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(unimplemented("etcdserverpb.Maintenance", "Snapshot"))
    }
}
        alarm(pb::AlarmRequest) -> pb::AlarmResponse = "Alarm";
        status(pb::StatusRequest) -> pb::StatusResponse = "Status";
        defragment(pb::DefragmentRequest) -> pb::DefragmentResponse = "Defragment";
        hash(pb::HashRequest) -> pb::HashResponse = "Hash";
        hash_kv(pb::HashKvRequest) -> pb::HashKvResponse = "HashKV";
        move_leader(pb::MoveLeaderRequest) -> pb::MoveLeaderResponse = "MoveLeader";
        downgrade(pb::DowngradeRequest) -> pb::DowngradeResponse = "Downgrade";
);
