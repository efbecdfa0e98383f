//! The one table from etcd errors to gRPC statuses: etcd's codes, etcd's exact messages.

use tonic::{Code, Status};

use crate::engine::EtcdError;
use crate::recipes::RecipeError;

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

/// Lock and election errors: etcd's recipes return plain Go errors, which its gRPC layer does not
/// map, so every one (an etcd error such as an unknown lease included) is `Unknown` with its text.
impl From<RecipeError> for Status {
    fn from(err: RecipeError) -> Self {
        Status::unknown(err.to_string())
    }
}
