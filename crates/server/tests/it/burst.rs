//! A burst of the seeds' cross-tenant VNet PUTs against a test server, for the operating tests
//! (database outages, failover, backups): a few clients, each putting VNets of 16 addresses from
//! A's pool one after another until told to stop, as the seeds' multi-tenant app with both
//! tenants' tokens. A PUT answered 503 is sent again after a short back-off, as an SDK honouring
//! `Retry-After` would (PUT is idempotent: the second answer is the VNet's state).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::network::{IPAM_POOL_USER, NETWORK_CONTRIBUTOR, assign, multi_tenant_app};
use crate::support::TestServer;

/// How long a client waits before sending a PUT answered 503 again.
const BACK_OFF: Duration = Duration::from_millis(100);
/// A request that takes longer has hung.
const HUNG: Duration = Duration::from_secs(30);

/// One answer (or failure) the burst saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub vnet: String,
    /// The status, or `None` if no answer came.
    pub status: Option<u16>,
    /// For a 2xx: the VNet's address prefixes.
    pub prefixes: Vec<String>,
    /// For a 503: whether it said when to retry.
    pub retry_after: bool,
    pub took: Duration,
    pub at: Instant,
    /// Why no answer came.
    pub error: Option<String>,
}

impl Seen {
    pub fn acknowledged(&self) -> bool {
        matches!(self.status, Some(200 | 201))
    }
}

/// The running burst.
pub struct Burst {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    count: tokio::sync::watch::Receiver<usize>,
    clients: tokio::task::JoinSet<()>,
}

/// The tokens and ids the burst's PUTs need.
pub struct Seeds {
    pub pool: String,
    pub group_b: String,
    pub token_a: String,
    pub token_b: String,
    /// The pool's allocated addresses before the burst.
    pub allocated_before: u64,
}

/// The pool's allocated addresses, as A's administrator reads them.
async fn allocated(server: &TestServer, pool: &str) -> u64 {
    let admin_a = crate::resources::token(server, "A", "admin").await;
    let path = format!("{pool}/getPoolUsage?api-version=2025-07-01");
    let usage = crate::resources::call(server, Method::POST, &path, &admin_a, None, &[]).await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    usage.body["numberOfAllocatedIPAddresses"].as_str().unwrap().parse().unwrap()
}

/// Makes the seeds' multi-tenant app with its roles (IPAM Pool User on A's pool, Network
/// Contributor on B's group) and returns its tokens for both tenants.
pub async fn seeds(server: &TestServer) -> Seeds {
    let pool = server.demo("A", "pool_id");
    let app = multi_tenant_app(server).await;
    let group_b =
        format!("/subscriptions/{}/resourceGroups/rg-b", server.demo("B", "subscription_id"));
    assign(server, "B", &group_b, NETWORK_CONTRIBUTOR, &app.sp_b).await;
    assign(server, "A", &pool, IPAM_POOL_USER, &app.sp_a).await;
    let (token_a, token_b) = (app.token(server, "A").await, app.token(server, "B").await);
    let allocated_before = allocated(server, &pool).await;
    Seeds { pool, group_b, token_a, token_b, allocated_before }
}

impl Burst {
    /// Starts `n_clients` clients putting VNets named `{prefix}-{client}-{n}`.
    pub fn start(server: &TestServer, seeds: &Seeds, prefix: &str, n_clients: usize) -> Burst {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tell, count) = tokio::sync::watch::channel(0);
        let tell = Arc::new(tell);
        let mut clients = tokio::task::JoinSet::new();
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&server.running.ca_cert).unwrap())
                    .unwrap(),
            )
            .timeout(HUNG)
            .build()
            .unwrap();
        for at in 0..n_clients {
            let (client, stop, seen, tell) =
                (client.clone(), stop.clone(), seen.clone(), tell.clone());
            let origin = server.running.origin.clone();
            let (pool, group_b) = (seeds.pool.clone(), seeds.group_b.clone());
            let aux = format!("Bearer {}", seeds.token_a);
            let token_b = seeds.token_b.clone();
            let prefix = prefix.to_owned();
            clients.spawn(async move {
                let body = json!({"location": "centralus", "properties": {"addressSpace": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "16", "pool": {"id": pool}}]}}});
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let vnet = format!("{group_b}/providers/Microsoft.Network/virtualNetworks/{prefix}-{at}-{n}");
                    let started = Instant::now();
                    let sent = client
                        .request(Method::PUT, format!("{origin}{vnet}?api-version=2022-07-01"))
                        .bearer_auth(&token_b)
                        .header("x-ms-authorization-auxiliary", &aux)
                        .json(&body)
                        .send()
                        .await;
                    let mut one = Seen { vnet: vnet.clone(), status: None, prefixes: Vec::new(), retry_after: false, took: Duration::ZERO, at: started, error: None };
                    match sent {
                        Ok(response) => {
                            one.status = Some(response.status().as_u16());
                            one.retry_after = response.headers().contains_key("retry-after");
                            match response.json::<Value>().await {
                                Ok(answer) => {
                                    one.prefixes = answer["properties"]["addressSpace"]["addressPrefixes"]
                                        .as_array().into_iter().flatten()
                                        .filter_map(|prefix| prefix.as_str().map(str::to_owned))
                                        .collect();
                                }
                                Err(error) => one.error = Some(format!("the answer was cut off: {error}")),
                            }
                        }
                        Err(error) => one.error = Some(format!("{error:?}")),
                    }
                    one.took = started.elapsed();
                    let again = one.status == Some(503);
                    if !again {
                        n += 1;
                    }
                    let total = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(one);
                        seen.len()
                    };
                    tell.send_replace(total);
                    if again {
                        tokio::time::sleep(BACK_OFF).await;
                    }
                }
            });
        }
        Burst { stop, seen, count, clients }
    }

    /// What the burst has seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (up to a minute) until `wanted` holds of what the burst has seen.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&[Seen]) -> bool) {
        let seen = self.seen.clone();
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            self.count.wait_for(|_| wanted(&seen.lock().unwrap())),
        )
        .await;
        assert!(waited.is_ok(), "the burst did not get to: {what}");
    }

    /// Stops the clients once their requests in flight are answered; everything they saw.
    pub async fn stop(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(ended) = self.clients.join_next().await {
            ended.unwrap();
        }
        self.seen()
    }
}

/// Checks, after a burst, that every acknowledged VNet holds what its acknowledgement said, that
/// no two VNets hold the same addresses, and that the pool counts exactly what the VNets hold.
pub async fn check_allocations(server: &TestServer, seeds: &Seeds, seen: &[Seen]) {
    let client = &server.client;
    let get = |path: String, token: String| {
        let request = client.get(server.url(&path)).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    // The last acknowledgement of each VNet is its state.
    let mut acknowledged = std::collections::BTreeMap::new();
    for one in seen.iter().filter(|one| one.acknowledged()) {
        acknowledged.insert(one.vnet.clone(), one.prefixes.clone());
    }
    for (vnet, prefixes) in &acknowledged {
        let body = get(format!("{vnet}?api-version=2022-07-01"), seeds.token_b.clone()).await;
        assert_eq!(
            &body["properties"]["addressSpace"]["addressPrefixes"],
            &json!(prefixes),
            "{vnet}"
        );
    }
    // Every VNet there is (acknowledged or not) holds its own addresses.
    let mut vnets = Vec::new();
    let mut next = Some(format!(
        "{}/providers/Microsoft.Network/virtualNetworks?api-version=2022-07-01",
        seeds.group_b
    ));
    while let Some(page) = next.take() {
        let body = get(page, seeds.token_b.clone()).await;
        vnets.extend(body["value"].as_array().unwrap().iter().cloned());
        next = body["nextLink"]
            .as_str()
            .map(|link| link.trim_start_matches(&server.running.origin).to_owned());
    }
    let mut held: Vec<ipam::prefix::Prefix> = vnets
        .iter()
        .flat_map(|vnet| {
            vnet["properties"]["addressSpace"]["addressPrefixes"].as_array().unwrap().clone()
        })
        .map(|prefix| ipam::prefix::Prefix::parse(prefix.as_str().unwrap()).unwrap())
        .filter(|prefix| prefix.len() == 28)
        .collect();
    held.sort();
    for pair in held.windows(2) {
        assert!(!pair[0].overlaps(&pair[1]), "{} and {} overlap", pair[0], pair[1]);
    }
    assert!(acknowledged.len() <= held.len());
    let audit = server.running.store.read(|tx| tx.audit_overlapping_blocks()).await.unwrap();
    assert_eq!(audit, 0, "overlapping allocation blocks");
    // The pool counts what the VNets hold, no more: no allocation outlived its VNet's write.
    let grew = allocated(server, &seeds.pool).await - seeds.allocated_before;
    assert_eq!(grew, 16 * held.len() as u64);
}
