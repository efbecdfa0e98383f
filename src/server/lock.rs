//! The Lock service (etcd's v3lock).

use tonic::{Request, Response, Status};

use crate::pb::v3lockpb::{
    lock_server::Lock, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use crate::recipes::lock;

use super::Context;
use crate::engine::Access;

pub(crate) struct LockService {
    ctx: Context,
}

impl LockService {
    pub(crate) fn new(ctx: Context) -> Self {
        LockService { ctx }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    /// Blocks until the lock is ours. If the client gives up (or the server stops), tonic drops
    /// this future, which withdraws our key from the queue.
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let r = request.get_ref();
        self.ctx
            .authorize_recipe(&request, &r.name, true, &[Access::Read, Access::Write])?;
        let mut resp = lock::lock(&self.ctx.engine, &r.name, r.lease).await?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        self.ctx
            .authorize_recipe(&request, &request.get_ref().key, false, &[Access::Write])?;
        let mut resp = lock::unlock(&self.ctx.engine, &request.get_ref().key)?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }
}
