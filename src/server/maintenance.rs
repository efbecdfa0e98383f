//! The Maintenance service. Defragment, MoveLeader and every Snapshot message carry no header,
//! as etcd's do.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::engine::snapshot_trailer;
use crate::pb::etcdserverpb::{
    maintenance_server::Maintenance, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest,
    DefragmentResponse, DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse,
    HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};

use super::Context;

/// Snapshot data goes out in messages of this many bytes, as etcd sends it.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

pub(crate) struct MaintenanceService {
    ctx: Context,
}

impl MaintenanceService {
    pub(crate) fn new(ctx: Context) -> Self {
        MaintenanceService { ctx }
    }

    fn header(&self) -> Option<crate::pb::etcdserverpb::ResponseHeader> {
        Some(self.ctx.identity.header(self.ctx.engine.revision()))
    }
}

/// The Snapshot stream: the data in 32 KiB messages, each telling how many bytes follow it,
/// then one message holding the SHA-256 of all the data. Every message names the storage
/// version.
fn snapshot_messages(data: Vec<u8>, version: String) -> Vec<SnapshotResponse> {
    let total = data.len();
    let mut sent = 0;
    let mut messages: Vec<SnapshotResponse> = data
        .chunks(SNAPSHOT_CHUNK)
        .map(|blob| {
            sent += blob.len();
            SnapshotResponse {
                header: None,
                remaining_bytes: (total - sent) as u64,
                blob: blob.to_vec(),
                version: version.clone(),
            }
        })
        .collect();
    messages.push(SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: snapshot_trailer(&data),
        version,
    });
    messages
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        // GET needs a token only; changing alarms is for root.
        if request.get_ref().action
            == crate::pb::etcdserverpb::alarm_request::AlarmAction::Get as i32
        {
            let caller = self.ctx.caller(&request)?;
            self.ctx.engine.auth(|auth| auth.check_token(&caller))?;
        } else {
            self.ctx.admin(&request)?;
        }
        let mut resp = self.ctx.engine.alarm(request.get_ref());
        resp.header = self.header();
        Ok(Response::new(resp))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let caller = self.ctx.caller(&request)?;
        self.ctx.engine.auth(|auth| auth.check_token(&caller))?;
        let engine = &self.ctx.engine;
        let revision = engine.revision();
        let view = engine.cluster_view();
        let space = engine.space();
        let mut errors = Vec::new();
        if view.leader == 0 {
            errors.push("etcdserver: no leader".to_owned());
        }
        for alarm in engine.alarms() {
            let name = AlarmType::try_from(alarm.alarm).map_or("UNKNOWN", |a| a.as_str_name());
            // 3.7.2 dropped the trailing space older releases had here.
            errors.push(format!("memberID:{} alarm:{name}", alarm.member_id));
        }
        let raft_index = view.raft_index(revision);
        Ok(Response::new(StatusResponse {
            header: Some(self.ctx.identity.header(revision)),
            version: view.version.to_string(),
            db_size: space.db_size,
            leader: view.leader,
            raft_index,
            raft_term: view.raft_term,
            raft_applied_index: raft_index,
            errors,
            db_size_in_use: space.db_size_in_use,
            is_learner: engine.is_learner(self.ctx.identity.member_id),
            storage_version: view.version.cluster(),
            db_size_quota: space.quota,
            downgrade_info: Some(view.downgrade),
        }))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.ctx.admin(&request)?;
        self.ctx.engine.defragment();
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.ctx.admin(&request)?;
        let hash = self.ctx.engine.hash();
        Ok(Response::new(HashResponse {
            header: self.header(),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.ctx.admin(&request)?;
        let h = self.ctx.engine.hash_kv(request.get_ref().revision)?;
        Ok(Response::new(HashKvResponse {
            header: self.header(),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.hash_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.ctx.admin(&request)?;
        let data = self.ctx.engine.snapshot();
        let version = self.ctx.engine.cluster_view().version.cluster();
        let messages = snapshot_messages(data, version);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.ctx.admin(&request)?;
        let target = request.get_ref().target_id;
        self.ctx
            .engine
            .move_leader(self.ctx.identity.member_id, target)?;
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }

    async fn downgrade(
        &self,
        request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        self.ctx.admin(&request)?;
        let r = request.get_ref();
        let version = self.ctx.engine.downgrade(r.action, &r.version)?;
        Ok(Response::new(DowngradeResponse {
            header: self.header(),
            version,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_messages_count_down_and_end_with_the_checksum() {
        let data = vec![7u8; SNAPSHOT_CHUNK * 2 + 10];
        let messages = snapshot_messages(data.clone(), "3.7.0".to_owned());
        let remaining: Vec<u64> = messages.iter().map(|m| m.remaining_bytes).collect();
        assert_eq!(remaining, [SNAPSHOT_CHUNK as u64 + 10, 10, 0, 0]);
        assert_eq!(messages[3].blob, snapshot_trailer(&data));
        assert_eq!(messages[3].blob.len(), 32);
        assert!(messages
            .iter()
            .all(|m| m.version == "3.7.0" && m.header.is_none()));
    }
}
