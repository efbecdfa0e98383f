//! grpc-go, and so etcd, refuses a message over the receive limit with RESOURCE_EXHAUSTED
//! "grpc: received message larger than max (N vs. M)"; tonic says OUT_OF_RANGE in its own words.
//! Clients match on etcd's answer, so the refusal is rewritten on its way out.

use http::{HeaderValue, Response};
use tonic::Status;

use super::grpc_status;

const TONIC_PREFIX: &str = "Error, decoded message length too large: found ";

/// Rewrites tonic's "message too large" status into grpc-go's, leaving every other response as
/// it is.
pub(crate) fn as_grpc_go<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers();
    if grpc_status(headers).map(HeaderValue::as_bytes) != Some(b"11") {
        return response;
    }
    let Some(message) = headers.get("grpc-message").and_then(|m| m.to_str().ok()) else {
        return response;
    };
    let Some(rewritten) = rewrite(message) else {
        return response;
    };
    if let Ok(value) = HeaderValue::from_str(&rewritten) {
        let headers = response.headers_mut();
        headers.insert("grpc-status", HeaderValue::from_static("8"));
        headers.insert("grpc-message", value);
    }
    response
}

/// The same rewrite for a status met inside a stream handler (a Watch or KeepAlive request over
/// the limit ends the stream with grpc-go's status).
pub(crate) fn status(status: Status) -> Status {
    match grpc_go_text(status.message()) {
        Some(text) if status.code() == tonic::Code::OutOfRange => Status::resource_exhausted(text),
        _ => status,
    }
}

/// The grpc-go text for tonic's message as it appears in the header (percent-encoded), if it
/// is tonic's size refusal.
fn rewrite(message: &str) -> Option<String> {
    // The header encodes spaces (and nothing else that this message contains) as %20.
    let text = grpc_go_text(&message.replace("%20", " "))?;
    Some(text.replace(' ', "%20"))
}

fn grpc_go_text(message: &str) -> Option<String> {
    let rest = message.strip_prefix(TONIC_PREFIX)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    let (found, limit): (u64, u64) = (found.parse().ok()?, limit.parse().ok()?);
    Some(format!(
        "grpc: received message larger than max ({found} vs. {limit})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_size_refusal_becomes_grpc_gos() {
        let tonic = "Error,%20decoded%20message%20length%20too%20large:%20found%202200012%20bytes,%20the%20limit%20is:%202097152%20bytes";
        let expected = "grpc: received message larger than max (2200012 vs. 2097152)";
        assert_eq!(rewrite(tonic), Some(expected.replace(' ', "%20")));
        assert_eq!(
            rewrite("etcdserver: mvcc: required revision has been compacted"),
            None
        );
    }

    #[test]
    fn other_responses_are_untouched() {
        let response = Response::builder()
            .header("grpc-status", "11")
            .header(
                "grpc-message",
                "etcdserver: mvcc: required revision is a future revision",
            )
            .body(())
            .unwrap();
        let out = as_grpc_go(response);
        assert_eq!(out.headers()["grpc-status"], "11");
    }
}
