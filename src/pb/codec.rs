//! The codec every generated service and client uses: prost's, with a smaller first buffer.
//!
//! tonic gives each call an 8 KiB buffer to decode its request into and another to encode its
//! answer into. etcd's messages are mostly far smaller, and a buffer above the allocator's
//! per-thread cache size takes its slow path on every call; 1 KiB stays in that cache. A larger
//! message grows its buffer as it needs.

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// First size of a call's encode and decode buffers.
const BUFFER_BYTES: usize = 1024;
/// How much an answer stream encodes before handing it to the connection (tonic's default).
const YIELD_BYTES: usize = 32 * 1024;

/// prost's codec with [`BUFFER_BYTES`] buffers.
#[derive(Debug, Clone, Copy)]
pub struct SmallBuffers<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for SmallBuffers<T, U> {
    fn default() -> Self {
        SmallBuffers(std::marker::PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_BYTES)
}

impl<T, U> Codec for SmallBuffers<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
