//! The KV service.

use std::pin::Pin;

use prost::Message;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::pb::etcdserverpb::{
    kv_server::Kv,
    range_request::{SortOrder, SortTarget},
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RangeStreamResponse, TxnRequest, TxnResponse,
};

use crate::engine::{put_cost, txn_cost, EtcdError};

use super::Context;

pub(crate) struct KvService {
    ctx: Context,
}

impl KvService {
    pub(crate) fn new(ctx: Context) -> Self {
        KvService { ctx }
    }
}

type RangeChunks = Pin<Box<dyn Stream<Item = Result<RangeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        // A learner serves only serializable reads: it cannot confirm it is up to date.
        if !request.get_ref().serializable
            && self.ctx.engine.is_learner(self.ctx.identity.member_id)
        {
            return Err(EtcdError::LearnerNotSupported.into());
        }
        let caller = self.ctx.caller(&request)?;
        let mut resp = self.ctx.engine.range_as(&caller, request.get_ref())?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        // The quota comes before validation in etcd, so even an invalid put can get NOSPACE.
        let cost = put_cost(request.get_ref());
        self.ctx
            .engine
            .check_quota(cost, self.ctx.identity.member_id)?;
        let caller = self.ctx.caller(&request)?;
        let mut resp = self.ctx.engine.put_as(&caller, request.get_ref())?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let caller = self.ctx.caller(&request)?;
        let mut resp = self
            .ctx
            .engine
            .delete_range_as(&caller, request.get_ref())?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let cost = txn_cost(request.get_ref());
        self.ctx
            .engine
            .check_quota(cost, self.ctx.identity.member_id)?;
        let caller = self.ctx.caller(&request)?;
        let mut resp = self.ctx.engine.txn_as(&caller, request.get_ref())?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        self.ctx.admin(&request)?;
        let mut resp = self.ctx.engine.compact(request.get_ref())?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        Ok(Response::new(resp))
    }

    type RangeStreamStream = RangeChunks;

    /// etcd 3.7's streamed Range: one read, sent as key-ordered chunks whose size adapts to the
    /// bytes they carry; only the last chunk has the header, count and `more`.
    async fn range_stream(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let caller = self.ctx.caller(&request)?;
        let r = request.get_ref();
        let custom_order = match (
            SortOrder::try_from(r.sort_order),
            SortTarget::try_from(r.sort_target),
        ) {
            (Ok(SortOrder::None), Ok(_)) | (Ok(SortOrder::Ascend), Ok(SortTarget::Key)) => false,
            (Ok(_), Ok(_)) => true,
            // Unknown enums get the engine's "invalid sort option" below.
            _ => false,
        };
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        // Plain validation first (empty key, unknown enums), then RangeStream's own refusals,
        // then the read.
        self.ctx.engine.check_range(r)?;
        if custom_order {
            return Err(Status::unimplemented(
                "RangeStream does not support custom sort orders",
            ));
        }
        if filtered {
            return Err(Status::unimplemented(
                "RangeStream does not support revision filters",
            ));
        }
        let mut resp = self.ctx.engine.range_as(&caller, r)?;
        self.ctx.identity.fill(&mut resp.header, &self.ctx.engine);
        let chunks = chunk(resp, self.ctx.engine.max_request_bytes());
        Ok(Response::new(Box::pin(tokio_stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }
}

/// Splits one Range answer into RangeStream messages: 10 pairs first, then twice as many after a
/// message under half the request limit, half as many after one over twice it.
fn chunk(mut resp: RangeResponse, max_request_bytes: usize) -> Vec<RangeStreamResponse> {
    let mut rest = std::mem::take(&mut resp.kvs).into_iter().peekable();
    let mut messages = Vec::new();
    let mut size = 10usize;
    loop {
        let kvs: Vec<_> = rest.by_ref().take(size).collect();
        if rest.peek().is_none() {
            resp.kvs = kvs;
            messages.push(RangeStreamResponse {
                range_response: Some(resp),
            });
            return messages;
        }
        let part = RangeResponse {
            kvs,
            ..Default::default()
        };
        let bytes = part.encoded_len();
        if bytes < max_request_bytes / 2 {
            size = size.saturating_mul(2);
        } else if bytes > max_request_bytes.saturating_mul(2) {
            size = (size / 2).max(1);
        }
        messages.push(RangeStreamResponse {
            range_response: Some(part),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::mvccpb::KeyValue;

    fn answer(n: usize, value_len: usize) -> RangeResponse {
        let kvs = (0..n)
            .map(|i| KeyValue {
                key: format!("k{i:06}").into(),
                value: vec![b'v'; value_len].into(),
                ..Default::default()
            })
            .collect();
        RangeResponse {
            kvs,
            count: n as i64,
            ..Default::default()
        }
    }

    fn sizes(messages: &[RangeStreamResponse]) -> Vec<usize> {
        messages
            .iter()
            .map(|m| m.range_response.as_ref().map_or(0, |r| r.kvs.len()))
            .collect()
    }

    #[test]
    fn small_pairs_double_each_message() {
        let messages = chunk(answer(60_000, 1), 1_572_864);
        let sizes = sizes(&messages);
        assert_eq!(sizes[..3], [10, 20, 40]);
        assert_eq!(sizes.iter().sum::<usize>(), 60_000);
        assert_eq!(sizes.last(), Some(&19_050));
    }

    #[test]
    fn ten_kib_values_settle_at_eighty() {
        let sizes = sizes(&chunk(answer(1_000, 10 * 1024), 1_572_864));
        assert_eq!(sizes[..6], [10, 20, 40, 80, 80, 80]);
    }

    #[test]
    fn only_the_last_message_has_header_and_count() {
        let messages = chunk(answer(25, 1), 1_572_864);
        assert_eq!(sizes(&messages), [10, 15]);
        assert_eq!(
            messages[0].range_response.as_ref().map(|r| r.count),
            Some(0)
        );
        assert_eq!(
            messages[1].range_response.as_ref().map(|r| r.count),
            Some(25)
        );
    }
}
