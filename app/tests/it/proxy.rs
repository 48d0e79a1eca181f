//! A TCP proxy in front of the test influxd that counts the queries passing through it and
//! can hold each one back (an InfluxDB that answers slowly). It forwards bytes unchanged: the
//! server behind it is the real influxd.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct InfluxProxy {
    pub url: reqwest::Url,
    queries: Arc<AtomicUsize>,
}

impl InfluxProxy {
    /// A proxy to `upstream` (host:port) that holds each `/query` request back for `delay`.
    pub async fn start(upstream: String, delay: Duration) -> InfluxProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let counter = queries.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counter) = (upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, counter, delay).await;
                    }
                });
            }
        });
        InfluxProxy { url, queries }
    }

    /// Queries that have reached the proxy so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, counter: Arc<AtomicUsize>, delay: Duration) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let upward = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let queries = count(chunk, b"/query");
            if queries > 0 {
                counter.fetch_add(queries, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
            }
            if server_tx.write_all(chunk).await.is_err() {
                break;
            }
        }
        // The client hung up: hang up on the server too, as a real client's close would.
        let _ = server_tx.shutdown().await;
    };
    let downward = async move {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
    };
    tokio::select! {
        () = upward => {}
        () = downward => {}
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}
