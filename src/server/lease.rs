//! The Lease service.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::pb::etcdserverpb::{
    lease_server::Lease, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

use super::Context;
use crate::engine::{Access, LEASE_GRANT_COST};

pub(crate) struct LeaseService {
    ctx: Context,
}

impl LeaseService {
    pub(crate) fn new(ctx: Context) -> Self {
        LeaseService { ctx }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        // The quota comes first in etcd, then the token.
        let member = self.ctx.identity.member_id;
        self.ctx.engine.check_quota(LEASE_GRANT_COST, member)?;
        let caller = self.ctx.caller(&request)?;
        self.ctx.engine.auth(|auth| auth.check_token(&caller))?;
        let mut resp = self.ctx.engine.lease_grant(request.get_ref())?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let caller = self.ctx.caller(&request)?;
        let id = request.get_ref().id;
        self.ctx
            .engine
            .authorize_lease(&caller, id, Access::Write)?;
        let mut resp = self.ctx.engine.lease_revoke(request.get_ref().id)?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    /// One answer per request, in order. The stream ends when the client closes its side (or on
    /// a transport error), and with the server: its task lives on the server's runtime.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let ctx = self.ctx.clone();
        let credentials = super::auth::Credentials::of(&request);
        let answers = request.into_inner().map(move |req| {
            let id = req.map_err(super::oversize::status)?.id;
            let caller = ctx.identify(&credentials)?;
            ctx.engine.authorize_lease(&caller, id, Access::Write)?;
            // An unknown (or expired) lease is TTL 0, not an error: the stream stays open.
            let (ttl, revision) = ctx.engine.lease_renew(id);
            Ok(LeaseKeepAliveResponse {
                header: Some(ctx.identity.header(revision)),
                id,
                ttl,
            })
        });
        let mut answers = Box::pin(answers);
        // etcd (grpc-go) sends a stream's headers with its first answer, so a stream whose
        // first request is refused ends with that error alone, which a client sees when it
        // opens the stream (found by the conformance suite against 3.7.2). Wait for that
        // answer before answering the call; a closing connection stops the wait.
        let (stop, _open) = self.ctx.hooks.connection();
        let first = tokio::select! {
            first = answers.next() => first,
            () = stop.cancelled() => return Err(Status::cancelled("connection closed")),
        };
        let first = match first {
            Some(Err(status)) => return Err(status),
            first => first,
        };
        Ok(Response::new(Box::pin(
            tokio_stream::iter(first).chain(answers),
        )))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let caller = self.ctx.caller(&request)?;
        let r = request.get_ref();
        if r.keys {
            self.ctx
                .engine
                .authorize_lease(&caller, r.id, Access::Read)?;
        } else {
            self.ctx.engine.auth(|auth| auth.check_token(&caller))?;
        }
        let mut resp = self.ctx.engine.lease_time_to_live(request.get_ref());
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let caller = self.ctx.caller(&request)?;
        self.ctx
            .engine
            .authorize_leases(&caller, None, Access::Read)?;
        let mut resp = self.ctx.engine.lease_leases();
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }
}
