//! Services whose engine is not built yet. Each RPC answers what a gRPC server without that
//! method answers (etcd's own grpc-go wording), never a made-up success.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::pb::etcdserverpb as pb;
use crate::pb::v3electionpb as election;
use crate::pb::v3lockpb as lock;

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

#[tonic::async_trait]
impl pb::watch_server::Watch for Unimplemented {
    type WatchStream = BoxStream<pb::WatchResponse>;
    async fn watch(
        &self,
        _: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(unimplemented("etcdserverpb.Watch", "Watch"))
    }
}

unimplemented_service!(pb::lease_server::Lease, "etcdserverpb.Lease", {
    type LeaseKeepAliveStream = BoxStream<pb::LeaseKeepAliveResponse>;
    async fn lease_keep_alive(
        &self,
        _: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Err(unimplemented("etcdserverpb.Lease", "LeaseKeepAlive"))
    }
}
        lease_grant(pb::LeaseGrantRequest) -> pb::LeaseGrantResponse = "LeaseGrant";
        lease_revoke(pb::LeaseRevokeRequest) -> pb::LeaseRevokeResponse = "LeaseRevoke";
        lease_time_to_live(pb::LeaseTimeToLiveRequest) -> pb::LeaseTimeToLiveResponse = "LeaseTimeToLive";
        lease_leases(pb::LeaseLeasesRequest) -> pb::LeaseLeasesResponse = "LeaseLeases";
);

unimplemented_service!(pb::auth_server::Auth, "etcdserverpb.Auth", {
}
        auth_enable(pb::AuthEnableRequest) -> pb::AuthEnableResponse = "AuthEnable";
        auth_disable(pb::AuthDisableRequest) -> pb::AuthDisableResponse = "AuthDisable";
        auth_status(pb::AuthStatusRequest) -> pb::AuthStatusResponse = "AuthStatus";
        authenticate(pb::AuthenticateRequest) -> pb::AuthenticateResponse = "Authenticate";
        user_add(pb::AuthUserAddRequest) -> pb::AuthUserAddResponse = "UserAdd";
        user_get(pb::AuthUserGetRequest) -> pb::AuthUserGetResponse = "UserGet";
        user_list(pb::AuthUserListRequest) -> pb::AuthUserListResponse = "UserList";
        user_delete(pb::AuthUserDeleteRequest) -> pb::AuthUserDeleteResponse = "UserDelete";
        user_change_password(pb::AuthUserChangePasswordRequest) -> pb::AuthUserChangePasswordResponse = "UserChangePassword";
        user_grant_role(pb::AuthUserGrantRoleRequest) -> pb::AuthUserGrantRoleResponse = "UserGrantRole";
        user_revoke_role(pb::AuthUserRevokeRoleRequest) -> pb::AuthUserRevokeRoleResponse = "UserRevokeRole";
        role_add(pb::AuthRoleAddRequest) -> pb::AuthRoleAddResponse = "RoleAdd";
        role_get(pb::AuthRoleGetRequest) -> pb::AuthRoleGetResponse = "RoleGet";
        role_list(pb::AuthRoleListRequest) -> pb::AuthRoleListResponse = "RoleList";
        role_delete(pb::AuthRoleDeleteRequest) -> pb::AuthRoleDeleteResponse = "RoleDelete";
        role_grant_permission(pb::AuthRoleGrantPermissionRequest) -> pb::AuthRoleGrantPermissionResponse = "RoleGrantPermission";
        role_revoke_permission(pb::AuthRoleRevokePermissionRequest) -> pb::AuthRoleRevokePermissionResponse = "RoleRevokePermission";
);

unimplemented_service!(lock::lock_server::Lock, "v3lockpb.Lock", {
}
        lock(lock::LockRequest) -> lock::LockResponse = "Lock";
        unlock(lock::UnlockRequest) -> lock::UnlockResponse = "Unlock";
);

unimplemented_service!(election::election_server::Election, "v3electionpb.Election", {
    type ObserveStream = BoxStream<election::LeaderResponse>;
    async fn observe(&self, _: Request<election::LeaderRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        Err(unimplemented("v3electionpb.Election", "Observe"))
    }
}
        campaign(election::CampaignRequest) -> election::CampaignResponse = "Campaign";
        proclaim(election::ProclaimRequest) -> election::ProclaimResponse = "Proclaim";
        leader(election::LeaderRequest) -> election::LeaderResponse = "Leader";
        resign(election::ResignRequest) -> election::ResignResponse = "Resign";
);
