//! The crosspool server: wires the store, the identity service (and later ARM and the portal)
//! into one HTTPS listener. `start` is what the binary and the tests call.

pub mod az_setup;
pub mod backup;
pub mod demo;
pub mod files;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod tls;
pub mod transport;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use identity::{Clock, Identity};
use store::{Store, StoreConfig, Timestamp};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// SQLite data and TLS files live here.
    pub data_dir: PathBuf,
    /// The store; SQLite in `data_dir` when `None`.
    pub database: Option<StoreConfig>,
    /// More addresses serving the same routes and certificate, e.g. `127.0.0.1:443`, which MSAL
    /// calls for the user realm before a password sign-in whatever port the authority has.
    pub also_listen: Vec<SocketAddr>,
    /// Create the demo world and write `demo.json`.
    pub demo: bool,
    pub clock: Arc<dyn Clock>,
    /// Where the key that seals the signing keys in the store comes from; every replica of one
    /// store needs the same.
    pub kek: files::KekSource,
    /// Connection deadlines and cap.
    pub limits: transport::Limits,
    /// Where to serve `/metrics` to anyone, over plain HTTP, besides to loopback clients on the
    /// main port.
    pub metrics_listen: Option<SocketAddr>,
}

impl ServeConfig {
    /// A server on a free loopback port with SQLite and TLS in `data_dir`, no demo world, the
    /// system clock, the key-encryption key in `data_dir` and the default limits.
    pub fn local(data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database: None,
            also_listen: Vec::new(),
            demo: false,
            clock: Arc::new(SystemClock),
            kek: files::KekSource::DataDir,
            limits: transport::Limits::default(),
            metrics_listen: None,
        }
    }
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // Reason: this is the one place that reads the clock.
    fn now(&self) -> Timestamp {
        let elapsed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its public origin, e.g. `https://127.0.0.1:8443`.
    pub origin: String,
    /// The CA certificate clients should trust.
    pub ca_cert: PathBuf,
    /// The contents of `demo.json`, when started with `demo`.
    pub demo: Option<serde_json::Value>,
    /// The store it serves, for administration and tests.
    pub store: Store,
    /// Where `/metrics` is served to anyone (`ServeConfig::metrics_listen`), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    health: health::Health,
    // One per listening address; the first is the primary.
    servers: Vec<(axum_server::Handle<SocketAddr>, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

impl Running {
    /// Stops accepting and waits for the server to end.
    pub async fn shutdown(self) {
        for (handle, _) in &self.servers {
            handle.shutdown();
        }
        for (_, task) in self.servers {
            let _ = task.await;
        }
    }

    /// Waits until the listeners stop: when the process stops, or after `stop_on`'s signal and
    /// grace.
    pub async fn wait(self) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        for (_, task) in self.servers {
            let ended = task
                .await
                .context("the server task failed")
                .and_then(|served| served.context("the server stopped"));
            if outcome.is_ok() {
                outcome = ended;
            }
        }
        outcome
    }

    /// Stops gracefully once `signal` resolves: no new connection is accepted, `/readyz` says
    /// the server is stopping, requests in flight finish for up to `grace`, then the listeners
    /// end (and `wait` returns).
    pub fn stop_on(
        &self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
        grace: std::time::Duration,
    ) {
        let handles: Vec<_> = self.servers.iter().map(|(handle, _)| handle.clone()).collect();
        let health = self.health.clone();
        tokio::spawn(async move {
            signal.await;
            health.stopping();
            tracing::info!(
                grace_seconds = grace.as_secs(),
                "stopping: finishing requests in flight"
            );
            for handle in &handles {
                handle.graceful_shutdown(Some(grace));
            }
        });
    }
}

/// The origin clients use for a listening address: loopback for an unspecified address.
fn origin_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
        ip => ip,
    };
    match ip {
        IpAddr::V4(v4) => format!("https://{v4}:{}", addr.port()),
        IpAddr::V6(v6) => format!("https://[{v6}]:{}", addr.port()),
    }
}

/// Opens the store, starts the services and listens. Returns once the port is bound.
pub async fn start(config: ServeConfig) -> anyhow::Result<Running> {
    // One crypto provider for rustls in this process; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    files::prepare_data_dir(&config.data_dir)?;
    let kek = files::load_kek(&config.kek, &config.data_dir)?;
    let store_config =
        config.database.clone().unwrap_or_else(|| StoreConfig::sqlite(&config.data_dir));
    let store = tokio::task::spawn_blocking(move || Store::open(&store_config))
        .await
        .context("the store's opening task failed")?
        .context("opening the store")?;
    let tls_dir = config.data_dir.clone();
    let tls = tokio::task::spawn_blocking(move || tls::load_or_create(&tls_dir))
        .await
        .context("TLS set-up failed")??;
    let bind = |addr: SocketAddr| -> anyhow::Result<std::net::TcpListener> {
        let listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
        listener.set_nonblocking(true).context("making the listener non-blocking")?;
        Ok(listener)
    };
    let listener = bind(config.listen)?;
    let extra_listeners =
        config.also_listen.iter().map(|addr| bind(*addr)).collect::<anyhow::Result<Vec<_>>>()?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let origin = origin_for(addr);
    metrics::install();
    let metrics_addr = match config.metrics_listen {
        Some(metrics_addr) => {
            let listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("listening for metrics on {metrics_addr}"))?;
            let bound = listener.local_addr().context("reading the metrics address")?;
            metrics::serve(listener, store.clone());
            Some(bound)
        }
        None => None,
    };

    let identity = Arc::new(
        Identity::start(store.clone(), &origin, config.clock.clone(), kek)
            .await
            .context("starting the identity service")?,
    );
    let arm = Arc::new(arm::state::Arm::new(identity.clone()));
    let demo = match config.demo {
        true => Some(demo::ensure(&identity, &arm, &config.data_dir, &origin, &tls.ca_cert).await?),
        false => None,
    };
    let health = health::Health::new(store.clone());
    let api = Router::new()
        .merge(health::router(health.clone()))
        .merge(metrics::router(store.clone(), metrics::Exposure::Loopback))
        .merge(arm::router(arm))
        .merge(identity::routes::router(identity.clone()))
        .merge(identity::graph::router(identity.clone()))
        .merge(identity::authorize::router(identity.clone()))
        .merge(identity::device::router(identity));
    // The portal calls the API routes in process, with the signed-in person's tokens.
    let routes = api.clone().merge(portal::router(api, &origin, config.clock.clone()));
    // A path with repeated slashes is tried again with them collapsed, then it is a 404.
    let collapsed = routes.clone().fallback(not_found);
    let body_timeout = config.limits.body_timeout;
    let app = routes
        .fallback(move |request: axum::extract::Request| {
            retry_collapsed(request, collapsed.clone())
        })
        .layer(axum::middleware::from_fn(move |request, next| {
            transport::read_body(body_timeout, request, next)
        }))
        .layer(axum::middleware::from_fn(logging::log_request));
    let rustls_config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.chain, &tls.key)
        .await
        .with_context(|| format!("loading {} and {}", tls.chain.display(), tls.key.display()))?;
    // One cap for all listeners: they share the process's sockets.
    let guard = transport::Guard::new(&config.limits);
    let mut servers = Vec::new();
    for listener in std::iter::once(listener).chain(extra_listeners) {
        let handle = axum_server::Handle::new();
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls_config.clone())
            .acceptor(guard.clone());
        let mut server = axum_server::from_tcp(listener)
            .context("serving TLS on the listener")?
            .acceptor(acceptor)
            .handle(handle.clone())
            .first_request_timeout(config.limits.header_timeout);
        server.http_builder().http1().header_read_timeout(config.limits.header_timeout);
        let task = tokio::spawn(
            server.serve(app.clone().into_make_service_with_connect_info::<SocketAddr>()),
        );
        servers.push((handle, task));
    }
    Ok(Running { addr, origin, ca_cert: tls.ca_cert, demo, store, metrics_addr, health, servers })
}

/// Treats repeated slashes in a path as one: the az CLI asks for `//metadata/endpoints` when the
/// endpoint it was given ends in a slash.
async fn retry_collapsed(
    mut request: axum::extract::Request,
    router: Router,
) -> axum::response::Response {
    let path = request.uri().path();
    if !path.contains("//") {
        return not_found().await.into_response();
    }
    let mut collapsed = String::with_capacity(path.len());
    for character in path.chars() {
        if !(character == '/' && collapsed.ends_with('/')) {
            collapsed.push(character);
        }
    }
    if let Some(query) = request.uri().query() {
        collapsed = format!("{collapsed}?{query}");
    }
    match collapsed.parse::<axum::http::Uri>() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            match tower::ServiceExt::oneshot(router, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
        Err(_) => not_found().await.into_response(),
    }
}

async fn not_found() -> impl IntoResponse {
    let body = serde_json::json!({ "error": { "code": "NotFound", "message": "No route matches this path." } });
    (StatusCode::NOT_FOUND, [("content-type", "application/json; charset=utf-8")], body.to_string())
}
