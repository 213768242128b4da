//! `/metrics` (issue 21), scraped with a Prometheus text parser: the counters move with the seeds'
//! cross-tenant VNet PUT and its release, the pool's gauges follow, and refusals, tokens and
//! failed sign-ins are counted. Tests in this binary share one process and so one recorder:
//! series of the test's own pool must move exactly; shared series (routes, grants) by at least
//! what the test did.

use openmetrics_parser::{PrometheusType, PrometheusValue};
use reqwest::Method;
use serde_json::json;

use crate::network::{IPAM_POOL_USER, NETWORK_CONTRIBUTOR, assign, multi_tenant_app};
use crate::resources::{call, token};
use crate::support::{TestServer, both_backends};

const SEEDS_VNET: &str = "api-version=2022-07-01";
const VNET_ROUTE: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks/{virtualNetworkName}";

/// One scrape, parsed by a Prometheus text-format parser.
struct Scraped(openmetrics_parser::MetricsExposition<PrometheusType, PrometheusValue>);

impl Scraped {
    /// The sum of the series of `family` whose labels include `labels`: a counter's or a
    /// gauge's value, a histogram's count; 0 when there is none.
    fn value(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        let Some(family) = self.0.families.get(family) else { return 0.0 };
        family
            .iter_samples()
            .filter(|sample| {
                let set = sample.get_labelset().unwrap();
                labels.iter().all(|(name, value)| set.get_label_value(name) == Some(value))
            })
            .map(|sample| match &sample.value {
                PrometheusValue::Counter(counter) => counter.value.as_f64(),
                PrometheusValue::Gauge(value) | PrometheusValue::Unknown(value) => value.as_f64(),
                PrometheusValue::Histogram(histogram) => histogram.count.unwrap() as f64,
                PrometheusValue::Summary(_) => panic!("{} is a summary", family.family_name),
            })
            .sum()
    }

    /// Every label value of every series.
    fn label_values(&self) -> Vec<String> {
        let families = self.0.families.values();
        let sets = families.flat_map(|family| {
            family
                .iter_samples()
                .map(|sample| {
                    sample.get_labelset().unwrap().iter_values().cloned().collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        });
        sets.flatten().collect()
    }
}

async fn scrape_url(client: &reqwest::Client, url: &str) -> Scraped {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    Scraped(openmetrics_parser::prometheus::parse_prometheus(&text).unwrap())
}

async fn scrape(server: &TestServer) -> Scraped {
    scrape_url(&server.client, &server.url("/metrics")).await
}

both_backends! {
    async fn counters_and_gauges_move_with_a_cross_tenant_vnet_put(server: &TestServer) {
        let pool = server.demo("A", "pool_id");
        let pool_label = pool.to_ascii_lowercase();
        let by_pool = [("pool", pool_label.as_str())];
        let app = multi_tenant_app(server).await;
        let group_b = format!("/subscriptions/{}/resourceGroups/rg-b", server.demo("B", "subscription_id"));
        assign(server, "B", &group_b, NETWORK_CONTRIBUTOR, &app.sp_b).await;
        let vnet = format!("{group_b}/providers/Microsoft.Network/virtualNetworks/vnet-metrics?{SEEDS_VNET}");
        let body = json!({"location": "centralus", "properties": {"addressSpace": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "16", "pool": {"id": pool}}]}}});

        let before = scrape(server).await;
        let (token_b, token_a) = (app.token(server, "B").await, app.token(server, "A").await);
        let aux = format!("Bearer {token_a}");
        // Without IPAM Pool User on the pool: a linked refusal.
        let refused = call(server, Method::PUT, &vnet, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux)]).await;
        assert_eq!((refused.status, refused.code()), (403, "LinkedAuthorizationFailed"));
        // An auxiliary token that is not one: an auxiliary refusal.
        let invalid = call(server, Method::PUT, &vnet, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", "Bearer nonsense")]).await;
        assert_eq!(invalid.status, 401);
        assign(server, "A", &pool, IPAM_POOL_USER, &app.sp_a).await;
        let created = call(server, Method::PUT, &vnet, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux)]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        // A wrong password.
        let (username, _) = server.demo_user("A", "admin");
        let form = [("client_id", "04b07795-8ddb-461a-bbee-02f9e1bf7b46"), ("grant_type", "password"), ("username", username.as_str()), ("password", "wrong"), ("scope", "https://management.azure.com//.default")];
        assert_eq!(server.token(&server.demo("A", "domain"), &form).await.0, 400);

        let after = scrape(server).await;
        let moved = |metric: &str, labels: &[(&str, &str)]| after.value(metric, labels) - before.value(metric, labels);
        let allocation = [("pool", pool_label.as_str()), ("holder", "resource")];
        assert_eq!(moved("crosspool_ipam_allocations_total", &allocation), 1.0);
        assert_eq!(moved("crosspool_ipam_releases_total", &allocation), 0.0);
        assert_eq!(moved("crosspool_pool_allocated_addresses", &by_pool), 16.0);
        assert_eq!(moved("crosspool_pool_available_addresses", &by_pool), -16.0);
        assert_eq!(after.value("crosspool_pool_size_addresses", &by_pool), 16_777_216.0, "10.0.0.0/8");
        let largest = after.value("crosspool_pool_largest_free_block_addresses", &by_pool);
        assert!((1.0..=8_388_608.0).contains(&largest), "{largest}");
        let put_created = [("route", VNET_ROUTE), ("method", "PUT"), ("status", "201")];
        assert!(moved("crosspool_http_requests_total", &put_created) >= 1.0);
        assert!(moved("crosspool_http_request_duration_seconds", &put_created) >= 1.0);
        assert!(moved("crosspool_store_commit_seconds", &[]) >= 1.0);
        assert!(moved("crosspool_store_batch_writes", &[]) >= 1.0);
        assert!(moved("crosspool_tokens_issued_total", &[("grant", "client_credentials")]) >= 2.0);
        assert!(moved("crosspool_linked_refusals_total", &[("check", "linked"), ("code", "LinkedAuthorizationFailed")]) >= 1.0);
        assert!(moved("crosspool_linked_refusals_total", &[("check", "auxiliary"), ("code", "InvalidAuthenticationToken")]) >= 1.0);
        assert!(moved("crosspool_sign_in_failures_total", &[("reason", "bad_credentials")]) >= 1.0);
        // VNets are never a label: only routes, pools, codes and reasons are.
        let vnet_id = vnet.split('?').next().unwrap().to_ascii_lowercase();
        assert!(after.label_values().iter().all(|value| !value.to_ascii_lowercase().contains(&vnet_id)));

        // The seeds' release: static prefixes, with A's administrator's token as auxiliary.
        let admin_a = token(server, "A", "admin").await;
        let removal = json!({"location": "centralus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}});
        let released = call(server, Method::PUT, &vnet, &token_b, Some(&removal), &[("x-ms-authorization-auxiliary", &format!("Bearer {admin_a}"))]).await;
        assert_eq!(released.status, 200, "{}", released.body);
        let last = scrape(server).await;
        assert_eq!(last.value("crosspool_ipam_releases_total", &allocation) - before.value("crosspool_ipam_releases_total", &allocation), 1.0);
        assert_eq!(last.value("crosspool_pool_allocated_addresses", &by_pool), before.value("crosspool_pool_allocated_addresses", &by_pool));
    }
}

// `--metrics-listen` serves the same metrics over plain HTTP on an address of its own.
#[tokio::test]
async fn metrics_listen_serves_prometheus_text_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let config = server::ServeConfig {
        metrics_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        ..server::ServeConfig::local(dir.path().to_owned())
    };
    let running = server::start(config).await.unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&running.ca_cert).unwrap()).unwrap();
    let https = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let health = https.get(format!("{}/healthz", running.origin)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let addr = running.metrics_addr.unwrap();
    let scraped = scrape_url(&reqwest::Client::new(), &format!("http://{addr}/metrics")).await;
    let healthz = [("route", "/healthz"), ("method", "GET"), ("status", "200")];
    assert!(scraped.value("crosspool_http_requests_total", &healthz) >= 1.0);
    let help = &scraped.0.families["crosspool_http_requests_total"].help;
    assert!(help.starts_with("Requests answered"), "{help}");
    // The ARM API is not served there.
    let other = reqwest::get(format!("http://{addr}/subscriptions")).await.unwrap();
    assert_eq!(other.status().as_u16(), 404);
    running.shutdown().await;
}
