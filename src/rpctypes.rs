//! The one table from etcd errors to gRPC statuses: etcd's codes, etcd's exact messages.

use tonic::{Code, Status};

use crate::engine::EtcdError;

impl From<EtcdError> for Status {
    fn from(err: EtcdError) -> Self {
        let code = match err {
            EtcdError::EmptyKey
            | EtcdError::ValueProvided
            | EtcdError::LeaseProvided
            | EtcdError::KeyNotFound
            | EtcdError::TooManyOps
            | EtcdError::DuplicateKey
            | EtcdError::InvalidSortOption
            | EtcdError::RequestTooLarge => Code::InvalidArgument,
            EtcdError::LeaseNotFound => Code::NotFound,
            EtcdError::Compacted | EtcdError::FutureRevision | EtcdError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            EtcdError::LeaseExists => Code::FailedPrecondition,
        };
        Status::new(code, err.to_string())
    }
}
