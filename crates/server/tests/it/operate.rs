//! Operating the server (issue 21): `/healthz` and `/readyz`, and a graceful stop on SIGTERM in
//! the middle of a burst of cross-tenant VNet PUTs, after which every acknowledged allocation is
//! there.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::TestServer;

#[tokio::test]
async fn health_and_readiness_answer_without_authentication() {
    let server = TestServer::start().await;
    let (status, body) = server.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = server.get_json("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "{body}");
    assert_eq!(body["schemaVersion"].as_i64(), Some(store::Store::schema_version_supported()));
    // A store whose schema is not this build's is not ready.
    let connection = rusqlite::Connection::open(server.data_dir().join("crosspool.db")).unwrap();
    connection.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    connection.execute_batch("INSERT INTO crosspool_schema (version) VALUES (999)").unwrap();
    let response = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert!(body["reason"].as_str().unwrap().contains("999"), "{body}");
}

/// A `crosspool serve --demo` process.
struct Process {
    child: std::process::Child,
    origin: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn crosspool(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_crosspool"));
    command.arg("--data-dir").arg(dir).args(args);
    command
}

fn serve(dir: &Path) -> Process {
    let mut child =
        crosspool(dir, &["serve", "--demo", "--listen", "127.0.0.1:0", "--shutdown-grace", "30"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let origin = loop {
        let line = lines.next().expect("the server printed its endpoint").unwrap();
        if let Some(origin) = line.strip_prefix("crosspool is listening on ") {
            break origin.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Process { child, origin }
}

/// `crosspool admin …` on the data dir; its JSON output.
fn admin(dir: &Path, args: &[&str]) -> Value {
    let output = crosspool(dir, &[&["admin"], args].concat()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// What a client saw of one PUT.
#[derive(Debug)]
enum Outcome {
    /// A complete answer: its status and, for a 201, the VNet's prefixes.
    Answered(u16, Vec<String>),
    /// No answer: the connection was refused or closed before any response.
    Unanswered(String),
}

// Issue 21: on SIGTERM the server stops accepting, finishes what is in flight, and exits 0; no
// acknowledged allocation is lost.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_in_a_burst_of_cross_tenant_puts_loses_no_acknowledged_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json")).unwrap())
            .unwrap();
    let field =
        |tenant: &str, name: &str| demo["tenants"][tenant][name].as_str().unwrap().to_owned();
    // The seeds' multi-tenant app, with its roles, made from the command line.
    let app = admin(
        dir.path(),
        &[
            "app",
            "create",
            "--tenant",
            "contoso-b.example",
            "--display-name",
            "stop-app",
            "--multi-tenant",
        ],
    );
    let (app_id, secret) =
        (app["appId"].as_str().unwrap().to_owned(), app["password"].as_str().unwrap().to_owned());
    for tenant in ["contoso-a.example", "contoso-b.example"] {
        admin(dir.path(), &["sp", "create", "--tenant", tenant, "--app-id", &app_id]);
    }
    let pool = field("A", "pool_id");
    let group_b = format!("/subscriptions/{}/resourceGroups/rg-b", field("B", "subscription_id"));
    admin(
        dir.path(),
        &["role", "assign", "--scope", &pool, "--role", "IPAM Pool User", "--assignee", &app_id],
    );
    admin(
        dir.path(),
        &[
            "role",
            "assign",
            "--scope",
            &group_b,
            "--role",
            "Network Contributor",
            "--assignee",
            &app_id,
        ],
    );
    // One connection per request, so that no request waits on a connection the stop closes.
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("tls/ca.pem")).unwrap())
                .unwrap(),
        )
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let token = |origin: &str, tenant: String| {
        let (client, origin, app_id, secret) =
            (client.clone(), origin.to_owned(), app_id.clone(), secret.clone());
        async move {
            let answer: Value = client
                .post(format!("{origin}/{tenant}/oauth2/v2.0/token"))
                .form(&[
                    ("client_id", app_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("grant_type", "client_credentials"),
                    ("scope", "https://management.azure.com/.default"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["access_token"].as_str().unwrap().to_owned()
        }
    };
    let (token_b, token_a) = (
        token(&server.origin, field("B", "tenant_id")).await,
        token(&server.origin, field("A", "tenant_id")).await,
    );

    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let under_way = Arc::new(tokio::sync::Notify::new());
    let mut clients = tokio::task::JoinSet::new();
    for at in 0..8 {
        let (client, origin, token_a, token_b, pool, group_b, acknowledged, under_way) = (
            client.clone(),
            server.origin.clone(),
            token_a.clone(),
            token_b.clone(),
            pool.clone(),
            group_b.clone(),
            acknowledged.clone(),
            under_way.clone(),
        );
        clients.spawn(async move {
            let mut outcomes = Vec::new();
            for n in 0.. {
                let vnet = format!("{group_b}/providers/Microsoft.Network/virtualNetworks/stop-{at}-{n}");
                let body = json!({"location": "centralus", "properties": {"addressSpace": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "16", "pool": {"id": pool}}]}}});
                let sent = client
                    .put(format!("{origin}{vnet}?api-version=2022-07-01"))
                    .bearer_auth(&token_b)
                    .header("x-ms-authorization-auxiliary", format!("Bearer {token_a}"))
                    .json(&body)
                    .send()
                    .await;
                let outcome = match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.json::<Value>().await {
                            Ok(answer) => {
                                let prefixes = answer["properties"]["addressSpace"]["addressPrefixes"]
                                    .as_array().into_iter().flatten()
                                    .filter_map(|prefix| prefix.as_str().map(str::to_owned))
                                    .collect();
                                if acknowledged.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == 40 {
                                    under_way.notify_one();
                                }
                                Outcome::Answered(status, prefixes)
                            }
                            Err(error) => panic!("{vnet}: an answer was cut off: {error}"),
                        }
                    }
                    Err(error) => Outcome::Unanswered(format!("{error:?}")),
                };
                let stop = matches!(outcome, Outcome::Unanswered(_));
                outcomes.push((vnet, outcome));
                if stop {
                    break;
                }
            }
            outcomes
        });
    }
    // SIGTERM once the burst is well under way.
    under_way.notified().await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let outcomes: Vec<(String, Outcome)> = clients.join_all().await.into_iter().flatten().collect();
    let status = tokio::task::block_in_place(|| server.child.wait()).unwrap();
    assert!(status.success(), "the server exits 0 after a graceful stop: {status}");

    // Every answer was whole (a cut-off answer panics above); the acknowledged PUTs are all 201.
    let answered: Vec<(&String, &Vec<String>)> = outcomes
        .iter()
        .filter_map(|(vnet, outcome)| match outcome {
            Outcome::Answered(status, prefixes) => {
                assert_eq!(*status, 201, "{vnet}");
                Some((vnet, prefixes))
            }
            Outcome::Unanswered(_) => None,
        })
        .collect();
    assert!(answered.len() >= 40);
    // After a restart every acknowledged VNet holds what it was given; an unanswered one was
    // never made (its connection was refused or closed before its request was read).
    let restarted = serve(dir.path());
    // A new port is a new issuer: a new token.
    let token_b = token(&restarted.origin, field("B", "tenant_id")).await;
    let get = |vnet: &str| {
        client
            .get(format!("{}{vnet}?api-version=2022-07-01", restarted.origin))
            .bearer_auth(&token_b)
            .send()
    };
    for (vnet, prefixes) in &answered {
        let response = get(vnet).await.unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, 200, "{vnet}: {}", response.text().await.unwrap());
        let body: Value = get(vnet).await.unwrap().json().await.unwrap();
        assert_eq!(
            &body["properties"]["addressSpace"]["addressPrefixes"],
            &json!(prefixes),
            "{vnet}"
        );
    }
    for (vnet, outcome) in &outcomes {
        if let Outcome::Unanswered(error) = outcome {
            assert_eq!(
                get(vnet).await.unwrap().status().as_u16(),
                404,
                "{vnet} was made but not answered ({error})"
            );
        }
    }
    drop(restarted);
    let check = crosspool(dir.path(), &["admin", "check"]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("overlapping allocation blocks: 0"));
}
