//! Regression tests for issue 19's host-side items: the data directory's permissions (5), the
//! signing keys sealed with the key-encryption key and their rotation (6), connection deadlines
//! and the connection cap under a slowloris (11), and memory under a sign-in flood (4).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use server::ServeConfig;
use server::transport::Limits;
use store::identity::PrivateKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestServer;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// Issue 19 (5): the store with the signing keys, the TLS key and demo.json (passwords) were
// created 0644 in a 0755 directory.
#[tokio::test]
async fn issue_19_the_data_dir_is_private_and_one_others_can_write_is_refused() {
    let server = TestServer::start().await;
    let dir = server.data_dir();
    assert_eq!(mode(dir), 0o700);
    assert_eq!(mode(&dir.join("tls")), 0o700);
    for secret in ["kek", "demo.json", "tls/server-key.pem", "crosspool.db", "crosspool.db-wal"] {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }

    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = server::start(ServeConfig::local(shared.path().to_owned())).await.unwrap_err();
    assert!(format!("{error:#}").contains("can be written by other users"), "{error:#}");
    assert_eq!(mode(shared.path()), 0o777, "left as it was");
    assert!(!shared.path().join("crosspool.db").exists(), "nothing was written there");

    // A data dir an older version made readable by others is made private.
    let old = tempfile::tempdir().unwrap();
    std::fs::set_permissions(old.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(old.path().join("demo.json"), "{}").unwrap();
    std::fs::set_permissions(old.path().join("demo.json"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let running = server::start(ServeConfig::local(old.path().to_owned())).await.unwrap();
    assert_eq!((mode(old.path()), mode(&old.path().join("demo.json"))), (0o700, 0o600));
    running.shutdown().await;
}

// Issue 19 (6): the signing keys sat in the store as clear PKCS#8, so a database dump alone
// minted tokens.
#[tokio::test]
async fn issue_19_signing_keys_are_sealed_and_a_store_alone_opens_none() {
    let dir = tempfile::tempdir().unwrap();
    // A key as versions before schema 9 stored it, in clear.
    let kek = identity::kek::Kek::parse(&identity::kek::Kek::generate_text()).unwrap();
    let record = identity::jwt::generate_key(&mut rand::rngs::OsRng, store::Timestamp(0), &kek);
    let PrivateKey::Sealed(sealed) = &record.private_key else {
        panic!("generated keys are sealed")
    };
    let clear = store::identity::SigningKeyRecord {
        private_key: PrivateKey::Plain(kek.open(sealed, &record.kid).unwrap()),
        ..record.clone()
    };
    let config = store::StoreConfig::sqlite(dir.path());
    let plain_store = store::Store::open(&config).unwrap();
    plain_store.write_blocking(move |tx| tx.signing_key_insert(&clear)).unwrap();
    drop(plain_store);

    let running = server::start(ServeConfig::local(dir.path().to_owned())).await.unwrap();
    let keys = running.store.read(|tx| tx.signing_keys()).await.unwrap();
    assert!(
        keys.iter().all(|key| matches!(key.private_key, PrivateKey::Sealed(_))),
        "sealed at start"
    );
    // The clear key may linger in free pages: it retires, and a key sealed from birth signs.
    assert_eq!(keys.len(), 2);
    let old = keys.iter().find(|key| key.kid == record.kid).unwrap();
    assert!(old.retire_at.is_some(), "the key once stored in clear retires");
    let new = keys.iter().find(|key| key.retire_at.is_none()).unwrap();
    let PrivateKey::Sealed(new_sealed) = &new.private_key else { unreachable!() };
    let new_der = kek_of(dir.path()).open(new_sealed, &new.kid).unwrap();
    let database = std::fs::read(dir.path().join("crosspool.db")).unwrap();
    let wal = std::fs::read(dir.path().join("crosspool.db-wal")).unwrap_or_default();
    for (file, bytes) in [("database", &database), ("WAL", &wal)] {
        assert!(
            !bytes.windows(64).any(|window| window == &new_der[..64]),
            "clear key material in the {file}"
        );
    }
    running.shutdown().await;

    // Another key-encryption key opens nothing: the server refuses to start, naming the cause.
    let other = ServeConfig {
        kek: server::files::KekSource::Text(identity::kek::Kek::generate_text()),
        ..ServeConfig::local(dir.path().to_owned())
    };
    let error = server::start(other).await.unwrap_err();
    assert!(format!("{error:#}").contains("another key-encryption key"), "{error:#}");
}

// Issue 19 (6): `crosspool admin keys rotate` adds a key that signs from then on; the old one
// keeps verifying until its tokens expire.
#[tokio::test]
async fn issue_19_admin_keys_rotate_adds_a_key_and_old_tokens_still_verify() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("A", "admin");
    let form = [
        ("client_id", identity::AZURE_CLI_CLIENT_ID),
        ("grant_type", "password"),
        ("username", username.as_str()),
        ("password", password.as_str()),
        ("scope", "https://management.azure.com//.default"),
    ];
    let (_, body) = server.token("contoso-a.example", &form).await;
    let before = body["access_token"].as_str().unwrap().to_owned();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crosspool"))
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(["admin", "keys", "rotate"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rotated: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let kid = rotated["kid"].as_str().unwrap();
    let keys = server.running.store.read(|tx| tx.signing_keys()).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].kid.as_str(), keys[0].retire_at), (kid, None), "the new key signs");
    assert!(keys[1].retire_at.is_some(), "the old key retires");
    let (_, jwks) = server.get_json("/contoso-a.example/discovery/v2.0/keys").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "both keys are published");
    let response = server
        .client
        .get(server.url("/tenants?api-version=2022-12-01"))
        .bearer_auth(&before)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "a token of the old key still verifies");
}

/// The key-encryption key in a data directory.
fn kek_of(dir: &std::path::Path) -> identity::kek::Kek {
    server::files::load_kek(&server::files::KekSource::DataDir, dir).unwrap()
}

/// A TLS connection to the server, as a raw stream.
async fn tls_connect(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Whether the server closes the connection (EOF or reset) within `within`.
async fn closed_within(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    within: Duration,
) -> bool {
    let mut buffer = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read).await.unwrap_or(false)
}

// Issue 19 (11): connections with unfinished headers or bodies, or idle after a response,
// stayed open indefinitely (250 slow-header connections all held after 20 s).
#[tokio::test(flavor = "multi_thread")]
async fn issue_19_a_slowloris_is_cut_off_and_real_clients_are_served_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_connections: 300,
    };
    let running =
        server::start(ServeConfig { limits, ..ServeConfig::local(dir.path().to_owned()) })
            .await
            .unwrap();
    let (addr, ca) = (running.addr, running.ca_cert.clone());
    // 250 connections that never finish their headers.
    let mut slow = Vec::new();
    for _ in 0..250 {
        let mut stream = tls_connect(addr, &ca).await;
        stream.write_all(b"GET /tenants HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1").await.unwrap();
        stream.flush().await.unwrap();
        slow.push(stream);
    }
    // A real client is served meanwhile.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let discovery =
        format!("{}/organizations/v2.0/.well-known/openid-configuration", running.origin);
    assert_eq!(client.get(&discovery).send().await.unwrap().status().as_u16(), 200);
    // Every slow connection is closed by the server; none is left holding a socket.
    for stream in &mut slow {
        assert!(closed_within(stream, Duration::from_secs(30)).await, "a slow connection was held");
    }
    // A body that never arrives whole is answered 408, then closed.
    let mut stream = tls_connect(addr, &ca).await;
    stream
        .write_all(b"POST /organizations/oauth2/v2.0/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\ngrant_type=")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // An idle keep-alive connection is closed too.
    let mut stream = tls_connect(addr, &ca).await;
    stream
        .write_all(b"GET /organizations/discovery/v2.0/keys HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut stream, Duration::from_secs(30)).await,
        "the idle connection was held"
    );
    running.shutdown().await;
}

// Issue 19 (11): beyond the connection cap, new connections are closed at once.
#[tokio::test(flavor = "multi_thread")]
async fn issue_19_connections_beyond_the_cap_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_connections: 3, ..Limits::default() };
    let running =
        server::start(ServeConfig { limits, ..ServeConfig::local(dir.path().to_owned()) })
            .await
            .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tls_connect(running.addr, &running.ca_cert).await);
    }
    let mut extra = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let mut buffer = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(30), extra.read(&mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the fourth connection was closed: {read:?}");
    drop(held);
    running.shutdown().await;
}

/// A line of `/proc/{pid}/status` in KiB, e.g. `VmHWM`.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

// Issue 19 (4): each password check held Argon2's 19 MiB and nothing bounded how many ran:
// 120 parallel bad sign-ins took the server from 36 MiB to 1.9 GiB.
#[tokio::test(flavor = "multi_thread")]
async fn issue_19_a_sign_in_flood_keeps_memory_flat() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_crosspool"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
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
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("tls/ca.pem")).unwrap())
                .unwrap(),
        )
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let discovery = format!("{origin}/organizations/v2.0/.well-known/openid-configuration");
    assert_eq!(client.get(&discovery).send().await.unwrap().status().as_u16(), 200);
    let before = status_kib(child.id(), "VmRSS");
    let mut flood = tokio::task::JoinSet::new();
    for attempt in 0..500 {
        let (client, url) = (client.clone(), format!("{origin}/organizations/oauth2/v2.0/token"));
        flood.spawn(async move {
            let form = [
                ("client_id", identity::AZURE_CLI_CLIENT_ID.to_owned()),
                ("grant_type", "password".to_owned()),
                ("username", format!("nobody-{attempt}@flood.example")),
                ("password", "wrong-password".to_owned()),
                ("scope", "https://management.azure.com//.default".to_owned()),
            ];
            client.post(url).form(&form).send().await.map(|response| response.status().as_u16())
        });
    }
    let statuses: Vec<u16> = flood.join_all().await.into_iter().map(Result::unwrap).collect();
    let peak = status_kib(child.id(), "VmHWM");
    // The flood is refused (400 bad credentials or lockout, 429 throttled), never a 5xx, and the
    // server still answers.
    assert!(statuses.iter().all(|status| [400, 429].contains(status)), "{statuses:?}");
    assert!(statuses.contains(&429) || statuses.iter().filter(|s| **s == 400).count() == 500);
    assert_eq!(client.get(&discovery).send().await.unwrap().status().as_u16(), 200);
    let _ = child.kill();
    let _ = child.wait();
    // At most one Argon2 check (19 MiB) per core runs at once, and the rest of a request is
    // small; without the gate this flood held ~100 checks at once (~1.9 GiB).
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u64;
    let allowed = (cores + 2) * 20 * 1024 + 96 * 1024;
    assert!(
        peak.saturating_sub(before) < allowed,
        "peak {peak} KiB after {before} KiB before the flood; allowed growth {allowed} KiB"
    );
}
