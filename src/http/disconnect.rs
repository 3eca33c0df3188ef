//! Noticing that a client hung up, so that the call it waits for can be
//! cancelled.
//!
//! actix-web gives a handler no signal when its client goes away
//! (actix/actix-web#3462); PostgREST has the same hole (PostgREST#3517: hung-up
//! `pg_sleep` calls exhausting the pool). This module owns the watch on the
//! client's socket and nothing else: what a hang-up cancels, and how, is the
//! execute stage's business (`crate::pipeline::execute::run`).
//!
//! How it works. [`on_connect`] is the `HttpServer::on_connect` hook: it sees
//! each accepted `TcpStream` once, duplicates its descriptor (`dup(2)`: the
//! same socket under a second number) and registers the duplicate with the
//! worker's tokio reactor for read readiness. epoll reports `EPOLLRDHUP` when
//! the peer's FIN has arrived, even while unread bytes are queued before it.
//! The [`Peer`] goes into the connection's data, which every request on the
//! connection reaches through `HttpRequest::conn_data`; [`finish_or_cancel`]
//! waits on [`Peer::hung_up`] next to the transaction.
//!
//! What counts as a hang-up: the peer closed its side (FIN) and nothing it
//! sent is left unread — `recv(MSG_PEEK)` returns 0 — or the socket is in
//! error (`ECONNRESET` and the like). New bytes are never a hang-up: the next
//! request of a keep-alive connection or a pipelined request only make the
//! socket readable, and readiness without `EPOLLRDHUP` is cleared without a
//! system call. When the FIN waits behind unread bytes (a pipelined request
//! actix has not read yet), the socket is peeked again every
//! [`RECHECK`] until actix has read them. Nothing is ever read from the
//! duplicate (only peeked), so actix sees every byte. TCP cannot tell a
//! half-close (`shutdown(SHUT_WR)`, then waiting for the answer) from a close:
//! both send FIN, and both are taken as a hang-up, as nginx does (499).
//!
//! Why this is sound: the duplicate lives in the connection's data, which
//! actix drops with the connection (and clears from pooled `HttpRequest`s), so
//! it never outlives the connection by more than that drop, and its number
//! cannot be reused for another connection while it is held. Only HTTP/1 over
//! plain TCP is served (no HTTP/2, no TLS listener); any other stream gets no
//! `Peer`, and its requests are simply never cancelled.

use std::any::Any;
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use actix_web::dev::Extensions;
use tokio::io::unix::AsyncFd;
use tokio::io::{Interest, Ready};
use tokio_util::sync::CancellationToken;

/// How often a FIN queued behind unread bytes is looked at again.
pub const RECHECK: Duration = Duration::from_millis(50);

/// The watch on one client connection's socket.
pub struct Peer {
    /// A duplicate of actix's descriptor, registered for read readiness.
    fd: AsyncFd<std::net::TcpStream>,
}

/// `HttpServer::on_connect`: give the connection a [`Peer`] when it is a TCP
/// stream. A failure only costs cancellation for this connection.
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match Peer::watch(tcp) {
        Ok(peer) => {
            data.insert(peer);
        }
        Err(e) => tracing::debug!(error = %e, "cannot watch the connection for a hang-up"),
    }
}

/// What peeking at the socket showed.
#[derive(Debug, PartialEq, Eq)]
enum Peeked {
    /// EOF with nothing left unread, or an error: the client is gone.
    Gone,
    /// Unread bytes (the next request): not a hang-up.
    Data,
    /// Nothing to read yet.
    Empty,
}

impl Peer {
    fn watch(tcp: &actix_web::rt::net::TcpStream) -> io::Result<Peer> {
        let dup = tcp.as_fd().try_clone_to_owned()?;
        // One open file description: the duplicate shares actix's O_NONBLOCK,
        // so peeking never blocks the worker.
        let stream = std::net::TcpStream::from(dup);
        if tokio::runtime::Handle::try_current().is_err() {
            // Registering outside a runtime would panic.
            return Err(io::Error::other("no tokio runtime on this thread"));
        }
        // SAFETY: `stream` owns the duplicate and is only ever reached through
        // `get_ref`, so the descriptor stays open, stays the same and refers
        // to the same socket for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register_with_interest(stream, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Peer { fd })
    }

    /// Resolves once the client has hung up; pending as long as it has not.
    pub async fn hung_up(&self) {
        loop {
            let Ok(mut guard) = self.fd.ready(Interest::READABLE).await else {
                // The reactor refused the descriptor: no signal, ever.
                return std::future::pending().await;
            };
            if !guard.ready().is_read_closed() {
                // Bytes only (or readiness left from this request's own): not
                // a hang-up. Wait for the next edge.
                guard.clear_ready_matching(Ready::READABLE);
                continue;
            }
            drop(guard);
            // READ_CLOSED is final in tokio: from here on, peek.
            match self.peek() {
                Peeked::Gone => return,
                Peeked::Data | Peeked::Empty => tokio::time::sleep(RECHECK).await,
            }
        }
    }

    fn peek(&self) -> Peeked {
        let mut byte = [0u8; 1];
        match self.fd.get_ref().peek(&mut byte) {
            Ok(0) => Peeked::Gone,
            Ok(_) => Peeked::Data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Peeked::Empty,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Peeked::Empty,
            Err(_) => Peeked::Gone,
        }
    }
}

/// Await `work`; if the client hangs up first, fire `cancel` and await `work`
/// still, so that it ends its own way (cancelled and rolled back, or
/// committed when it was too late to cancel). Without a `peer` (a test
/// service, a non-TCP stream) this is `work.await`.
pub async fn finish_or_cancel<F: Future>(
    peer: Option<&Peer>,
    work: F,
    cancel: &CancellationToken,
) -> F::Output {
    let Some(peer) = peer else {
        return work.await;
    };
    let mut work = std::pin::pin!(work);
    tokio::select! {
        biased;
        out = &mut work => return out,
        () = peer.hung_up() => {
            tracing::debug!("the client hung up; cancelling its call");
            cancel.cancel();
        }
    }
    work.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A connected pair on loopback: (our accepted side as actix gets it, the client).
    async fn pair() -> (actix_web::rt::net::TcpStream, std::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server, client)
    }

    async fn settles(peer: &Peer) -> bool {
        tokio::time::timeout(Duration::from_millis(300), peer.hung_up())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn bytes_are_not_a_hang_up_and_are_left_unread() {
        let (server, mut client) = pair().await;
        let peer = Peer::watch(&server).expect("watch");
        client
            .write_all(b"POST /rpc/x HTTP/1.1\r\n")
            .expect("write");
        assert!(!settles(&peer).await, "bytes taken for a hang-up");
        // The bytes are still there for actix.
        let mut buf = [0u8; 64];
        let n = server.try_read(&mut buf).expect("read");
        assert_eq!(&buf[..n], b"POST /rpc/x HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn close_is_a_hang_up() {
        let (server, client) = pair().await;
        let peer = Peer::watch(&server).expect("watch");
        drop(client);
        assert!(settles(&peer).await, "close not noticed");
    }

    #[tokio::test]
    async fn fin_behind_unread_bytes_waits_until_they_are_read() {
        let (server, mut client) = pair().await;
        let peer = Peer::watch(&server).expect("watch");
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        assert!(
            !settles(&peer).await,
            "a queued request taken for a hang-up"
        );
        let mut buf = [0u8; 64];
        server.readable().await.expect("readable");
        let _ = server.try_read(&mut buf).expect("read");
        assert!(settles(&peer).await, "EOF after the last byte not noticed");
    }
}
