//! The body of an API request, read within limits: at most [`MAX_BODY_BYTES`], and all of it
//! within [`BODY_DEADLINE`] (a client sending a byte now and then would otherwise hold a
//! connection forever). Both refusals are JSON errors like every other.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures::StreamExt;

use super::ApiError;

/// Largest request body we read: a query is a handful of short fields.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long the whole body may take to arrive.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// A request body read within the limits.
pub struct Body(pub Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, ApiError>>>>;

    fn from_request(_req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut payload = payload.take();
        Box::pin(async move {
            let read = async {
                let mut buf = BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(|e| ApiError::BadBody(e.to_string()))?;
                    if buf.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(ApiError::TooLarge(MAX_BODY_BYTES));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(Body(buf.freeze()))
            };
            tokio::time::timeout(BODY_DEADLINE, read)
                .await
                .map_err(|_| ApiError::SlowBody(BODY_DEADLINE))?
        })
    }
}
