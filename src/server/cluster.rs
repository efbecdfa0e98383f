//! The Cluster service. Its headers carry revision 0, as etcd's do.

use tonic::{Request, Response, Status};

use crate::pb::etcdserverpb::{
    cluster_server::Cluster, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};

use super::Context;

pub(crate) struct ClusterService {
    ctx: Context,
}

impl ClusterService {
    pub(crate) fn new(ctx: Context) -> Self {
        ClusterService { ctx }
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(self.ctx.identity.header(0))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        // etcd refuses bad URLs before it looks at who asks.
        crate::engine::checked_urls(&request.get_ref().peer_ur_ls)?;
        self.ctx.admin(&request)?;
        let r = request.get_ref();
        let (member, members) = self.ctx.engine.member_add(&r.peer_ur_ls, r.is_learner)?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.ctx.admin(&request)?;
        let id = request.get_ref().id;
        let members = self
            .ctx
            .engine
            .member_remove(self.ctx.identity.member_id, id)?;
        // A removed etcd member shuts down: its endpoint stops serving.
        self.ctx.endpoints.stop(id);
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.ctx.admin(&request)?;
        let r = request.get_ref();
        let members = self.ctx.engine.member_update(r.id, &r.peer_ur_ls)?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members,
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let caller = self.ctx.caller(&request)?;
        self.ctx.engine.auth(|auth| auth.check_token(&caller))?;
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.ctx.engine.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.ctx.admin(&request)?;
        let members = self.ctx.engine.member_promote(request.get_ref().id)?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members,
        }))
    }
}
