//! Knowing when the client of a request has gone, so that heavy work stops with it.
//!
//! actix-web keeps running a handler after its HTTP/1 client hung up (it only finds out when
//! it writes the answer). So each connection keeps a duplicate of its socket (taken in
//! `on_connect`), and [`gone`] watches that duplicate: end-of-stream or a reset means the
//! client closed the connection. Bytes waiting to be read (a pipelined request) say nothing,
//! so then it looks again a little later.

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use actix_web::HttpRequest;

/// How often to look again while bytes of a next request wait in the socket.
const RECHECK: Duration = Duration::from_millis(500);

/// Unread bytes past which a client counts as gone: a pipelined request is far smaller, and a
/// client that keeps sending junk must not keep its heavy request alive by never looking
/// closed.
const MAX_PENDING: usize = 64 * 1024;

/// A connection's socket, duplicated (the same connection, another descriptor).
#[derive(Clone)]
struct ClientSocket(Arc<OwnedFd>);

/// For `HttpServer::on_connect`: keeps a duplicate of each plain TCP connection's socket.
pub fn remember_socket(connection: &dyn Any, data: &mut Extensions) {
    if let Some(stream) = connection.downcast_ref::<TcpStream>() {
        match stream.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                data.insert(ClientSocket(Arc::new(fd)));
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch a connection for hang-ups"),
        }
    }
}

/// Resolves when the client of `req` has closed its connection; never, when that cannot be
/// known (a connection without a remembered socket, or one that cannot be watched).
pub async fn gone(req: &HttpRequest) {
    let socket = req.conn_data::<ClientSocket>().cloned();
    let watched = match socket {
        Some(ClientSocket(fd)) => watch(&fd).await,
        None => Err(std::io::Error::other("no socket")),
    };
    if let Err(e) = watched {
        tracing::debug!(error = %e, "not watching this connection for hang-ups");
        std::future::pending::<()>().await;
    }
}

/// `Ok` once the peer has closed; `Err` when the socket cannot be watched at all.
async fn watch(fd: &OwnedFd) -> std::io::Result<()> {
    let std_stream = std::net::TcpStream::from(fd.try_clone()?);
    std_stream.set_nonblocking(true)?;
    let stream = tokio::net::TcpStream::from_std(std_stream)?;
    let mut pending = vec![0u8; MAX_PENDING];
    loop {
        match stream.peek(&mut pending).await {
            // End of stream: the client closed its side.
            Ok(0) => return Ok(()),
            // More than any request: junk, to keep the work alive.
            Ok(n) if n >= MAX_PENDING => return Ok(()),
            // The start of another request: still there; look again later.
            Ok(_) => tokio::time::sleep(RECHECK).await,
            // A reset: the connection is unusable, the client is gone.
            Err(_) => return Ok(()),
        }
    }
}
