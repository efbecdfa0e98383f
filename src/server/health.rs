//! gRPC's standard health service, which etcd registers on its client port: the server as a
//! whole (service "") serves, and no other service name is known to it.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::pb::health::{
    health_check_response::ServingStatus, health_server::Health, HealthCheckRequest,
    HealthCheckResponse, HealthListRequest, HealthListResponse,
};

pub(crate) struct HealthService;

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

type Statuses = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if request.get_ref().service.is_empty() {
            Ok(Response::new(answer(ServingStatus::Serving)))
        } else {
            Err(Status::not_found("unknown service"))
        }
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Ok(Response::new(HealthListResponse {
            statuses: [(String::new(), answer(ServingStatus::Serving))].into(),
        }))
    }

    type WatchStream = Statuses;

    /// The status at once, then nothing more: it never changes here. The stream stays open
    /// until the client leaves, as a watch of a real etcd does while nothing changes.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let status = if request.get_ref().service.is_empty() {
            ServingStatus::Serving
        } else {
            ServingStatus::ServiceUnknown
        };
        let statuses = tokio_stream::once(Ok(answer(status))).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(statuses)))
    }
}
