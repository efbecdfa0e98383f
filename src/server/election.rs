//! The Election service (etcd's v3election).

use std::pin::Pin;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::pb::v3electionpb::{
    election_server::Election, CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse,
    ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::recipes::election;

use super::Context;
use crate::engine::Access;

pub(crate) struct ElectionService {
    ctx: Context,
}

impl ElectionService {
    pub(crate) fn new(ctx: Context) -> Self {
        ElectionService { ctx }
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

/// Observe answers queued per stream; the observer waits for the client beyond this.
const OBSERVE_BUFFER: usize = 16;

#[tonic::async_trait]
impl Election for ElectionService {
    /// Blocks until we lead. If the client gives up (or the server stops), tonic drops this
    /// future, which resigns the candidacy.
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let r = request.get_ref();
        self.ctx
            .authorize_recipe(&request, &r.name, true, &[Access::Read, Access::Write])?;
        let mut resp = election::campaign(&self.ctx.engine, &r.name, r.lease, &r.value).await?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let r = request.get_ref();
        let name = r
            .leader
            .as_ref()
            .map(|l| l.name.as_slice())
            .unwrap_or_default();
        self.ctx
            .authorize_recipe(&request, name, true, &[Access::Read, Access::Write])?;
        let mut resp = election::proclaim(&self.ctx.engine, r.leader.as_ref(), &r.value)?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        self.ctx
            .authorize_recipe(&request, &request.get_ref().name, true, &[Access::Read])?;
        let mut resp = election::leader(&self.ctx.engine, &request.get_ref().name)?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    type ObserveStream = ObserveStream;

    /// The observer runs as a task on the server's runtime: it stops when the client goes away,
    /// and with the server.
    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        self.ctx
            .authorize_recipe(&request, &request.get_ref().name, true, &[Access::Read])?;
        let (tx, rx) = tokio::sync::mpsc::channel(OBSERVE_BUFFER);
        tokio::spawn(election::observe(
            self.ctx.engine.clone(),
            request.into_inner().name,
            tx,
        ));
        let identity = self.ctx.identity.clone();
        let stream = ReceiverStream::new(rx).map(move |mut resp| {
            let revision = resp.header.as_ref().map_or(0, |h| h.revision);
            resp.header = Some(identity.header(revision));
            Ok(resp)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let name = request
            .get_ref()
            .leader
            .as_ref()
            .map(|l| l.name.as_slice())
            .unwrap_or_default();
        self.ctx
            .authorize_recipe(&request, name, true, &[Access::Read, Access::Write])?;
        let mut resp = election::resign(&self.ctx.engine, request.get_ref().leader.as_ref())?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }
}
