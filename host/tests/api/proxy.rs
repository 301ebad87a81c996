//! A TCP proxy a test can cut and restore, standing between the host and a real backend, so
//! backend outages are real connection failures rather than mocks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// Forwards connections to `upstream` while up; when cut, drops every open connection and
/// closes new ones at once.
pub struct FaultProxy {
    pub address: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the connection closes at once
                    }
                    connections.lock().await.spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            }
        });
        Self { address, up, connections, accept }
    }

    /// A proxy in front of the Redis at `url` (`redis://host:port`), and the `redis://` URL that
    /// reaches Redis through it.
    pub async fn for_redis(url: &str) -> (Self, String) {
        let upstream = url.trim_start_matches("redis://").trim_end_matches('/');
        let upstream = tokio::net::lookup_host(upstream).await.unwrap().next().unwrap();
        let proxy = Self::start(upstream).await;
        let through = format!("redis://{}", proxy.address);
        (proxy, through)
    }

    /// A proxy in front of the PostgreSQL at `url` (`postgres://user@host:port/…`), and the URL
    /// that reaches the same database through it.
    pub async fn for_postgres(url: &str) -> (Self, String) {
        let upstream = url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
        let proxy = Self::start(tokio::net::lookup_host(&upstream).await.unwrap().next().unwrap()).await;
        let through = url.replacen(&upstream, &proxy.address.to_string(), 1);
        (proxy, through)
    }

    /// The backend becomes unreachable: open connections are cut, new ones refused.
    pub async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    /// The backend is reachable again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A host serving `plugins` whose PostgreSQL connections run through a proxy the test can cut,
/// with the proxy and the database they reach; `None` without PostgreSQL (the test says it skipped).
pub async fn spawn_behind_database_proxy(
    plugins: &[&str],
) -> Option<(crate::helpers::TestApp, FaultProxy, crate::helpers::TestDatabase)> {
    use secrecy::ExposeSecret;

    let database = crate::helpers::TestDatabase::create().await;
    crate::helpers::needs_postgres()?;
    let url = database.url.as_ref().map(|u| u.expose_secret().to_owned()).expect("a PostgreSQL test database");
    let (proxy, proxied) = FaultProxy::for_postgres(&url).await;
    let plugins = crate::helpers::PluginsDir::with(plugins);
    let app = crate::helpers::try_spawn(plugins, |config| config.database_url = Some(proxied.into()))
        .await
        .unwrap_or_else(|(e, _)| panic!("{e}"));
    Some((app, proxy, database))
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
