//! The request log (issue 20): one JSON line per request with its request id, route, status and
//! caller; an internal error's cause under the response's request id; no token or password.

use std::io::BufRead;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A `crosspool serve --demo --log-format json` process and the lines it has written to stderr.
struct Logged {
    child: std::process::Child,
    origin: String,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Logged {
    /// The first line that parses as JSON and passes `wanted`, waiting up to 30 s for it.
    fn wait_for(&self, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let (lines, arrived) = &*self.lines;
        let find = |lines: &Vec<String>| {
            lines.iter().filter_map(|line| serde_json::from_str::<Value>(line).ok()).find(&wanted)
        };
        let guard = lines.lock().unwrap();
        let (guard, _) = arrived
            .wait_timeout_while(guard, Duration::from_secs(30), |lines| find(lines).is_none())
            .unwrap();
        find(&guard)
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path) -> Logged {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_crosspool"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let collected = lines.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            collected.0.lock().unwrap().push(line);
            collected.1.notify_all();
        }
    });
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let origin = loop {
        let line = stdout.next().expect("the server printed its endpoint").unwrap();
        if let Some(origin) = line.strip_prefix("crosspool is listening on ") {
            break origin.to_owned();
        }
    };
    std::thread::spawn(move || stdout.for_each(drop));
    Logged { child, origin, lines }
}

// Issue 20: `tracing` was a dependency but nothing was logged, so a 500's request id led
// nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn an_internal_errors_cause_is_logged_under_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("tls/ca.pem")).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json")).unwrap())
            .unwrap();
    let admin = &demo["tenants"]["A"]["admin"];
    let (username, password) =
        (admin["username"].as_str().unwrap(), admin["password"].as_str().unwrap());
    let answer: Value = client
        .post(format!("{}/contoso-a.example/oauth2/v2.0/token", server.origin))
        .form(&[
            ("client_id", identity::AZURE_CLI_CLIENT_ID),
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("scope", "https://management.azure.com//.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    // The store loses a table under the running server.
    let connection = rusqlite::Connection::open(dir.path().join("crosspool.db")).unwrap();
    connection.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    connection.execute_batch("DROP TABLE role_assignments").unwrap();
    let response = client
        .get(format!("{}/subscriptions?api-version=2022-12-01", server.origin))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let request_id = response.headers()["x-ms-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert!(!body.to_string().contains("role_assignments"), "the client is not told the cause");

    // The log has the request and the error's cause under that id (the lines come through a
    // pipe, a little after the answer).
    let find = |message: &str| {
        tokio::task::block_in_place(|| {
            server.wait_for(|entry| {
                entry["request_id"] == request_id.as_str() && entry["message"] == message
            })
        })
    };
    let error = find("internal error").expect("the internal error is logged");
    assert!(error["cause"].as_str().unwrap().contains("role_assignments"), "{error}");
    assert_eq!(error["level"], "ERROR");
    let request = find("request").expect("the request is logged");
    assert_eq!((request["method"].as_str(), request["status"].as_u64()), (Some("GET"), Some(500)));
    assert_eq!(request["route"], "/subscriptions");
    assert!(request["latency_ms"].is_number());
    // No token or password anywhere in the log.
    let lines = server.lines.0.lock().unwrap();
    assert!(lines.iter().all(|line| !line.contains(&token[..40]) && !line.contains(password)));
    // ARM requests name their caller.
    assert!(lines.iter().any(|line| {
        serde_json::from_str::<Value>(line).is_ok_and(|entry| {
            entry["message"] == "request" && entry["tenant_id"] == demo["tenants"]["A"]["tenant_id"]
        })
    }));
}
