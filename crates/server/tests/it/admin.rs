//! `crosspool admin check`: it opens (and migrates) the store, and every failure to do so exits
//! non-zero with a message that says what and where, never a panic.

use std::process::{Command, Output};

fn crosspool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crosspool"))
        .args(args)
        .env_remove("CROSSPOOL_DATABASE_URL")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_creates_and_audits_a_fresh_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let output = crosspool(&["admin", "check", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("crosspool.db (Sqlite)"), "{stdout}");
    assert!(stdout.contains("overlapping allocation blocks: 0"), "{stdout}");
    assert!(data_dir.join("crosspool.db").exists());
    // A second start is a no-op.
    assert!(
        crosspool(&["admin", "check", "--data-dir", data_dir.to_str().unwrap()]).status.success()
    );
}

#[test]
fn a_bad_database_url_exits_with_the_reason_and_no_password() {
    let output =
        crosspool(&["admin", "check", "--database", "postgres://alice:s3cret@127.0.0.1:nope/db"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("invalid database setting \"postgres://alice:***@127.0.0.1:nope/db\""),
        "{message}"
    );
    assert!(!message.contains("s3cret") && !message.contains("panicked"), "{message}");
}

#[test]
fn an_unreachable_database_exits_naming_it() {
    let output =
        crosspool(&["admin", "check", "--database", "postgres://postgres@127.0.0.1:1/test"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("cannot open the database at postgres://127.0.0.1:1/test"),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
}

#[test]
fn a_data_dir_that_is_a_file_exits_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let output = crosspool(&["admin", "check", "--data-dir", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("cannot open the database at {}", file.display())),
        "{message}"
    );
}

#[test]
fn a_locked_database_exits_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        crosspool(&["admin", "check", "--data-dir", dir.path().to_str().unwrap()]).status.success()
    );
    let holder = rusqlite::Connection::open(dir.path().join("crosspool.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let output = crosspool(&["admin", "check", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("the database is locked by another process"),
        "{}",
        stderr(&output)
    );
}

fn json_output(args: &[&str]) -> serde_json::Value {
    let output = crosspool(args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The directory commands set up a world that the server then signs in with.
#[tokio::test]
async fn directory_commands_create_what_the_server_signs_in_with() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let with_dir = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        all.extend(["--data-dir".to_owned(), data_dir.to_owned()]);
        all
    };
    let run = |args: &[&str]| {
        let args = with_dir(args);
        json_output(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let tenant = run(&[
        "admin",
        "tenant",
        "create",
        "--domain",
        "fabrikam.example",
        "--display-name",
        "Fabrikam",
    ]);
    let other = run(&["admin", "tenant", "create", "--domain", "tailspin.example"]);
    assert_eq!(run(&["admin", "tenant", "list"]).as_array().unwrap().len(), 2);
    let user = run(&[
        "admin",
        "user",
        "create",
        "--tenant",
        "fabrikam.example",
        "--upn",
        "ops@fabrikam.example",
        "--admin",
    ]);
    let password = user["password"].as_str().unwrap().to_owned();
    assert_eq!(
        run(&["admin", "user", "list", "--tenant", tenant["tenantId"].as_str().unwrap()])[0]["isAdmin"],
        true
    );
    let app = run(&[
        "admin",
        "app",
        "create",
        "--tenant",
        "fabrikam.example",
        "--display-name",
        "automation",
        "--multi-tenant",
    ]);
    let (app_id, secret) =
        (app["appId"].as_str().unwrap().to_owned(), app["password"].as_str().unwrap().to_owned());
    run(&["admin", "sp", "create", "--tenant", "fabrikam.example", "--app-id", &app_id]);
    run(&["admin", "sp", "create", "--tenant", "tailspin.example", "--app-id", &app_id]);
    assert_eq!(
        run(&["admin", "sp", "list", "--tenant", "tailspin.example"])[0]["appId"],
        app_id.as_str()
    );
    // Refusals exit 1 with the reason.
    for (args, reason) in [
        (
            vec![
                "admin",
                "user",
                "create",
                "--tenant",
                "fabrikam.example",
                "--upn",
                "x@elsewhere.example",
            ],
            "must be in the tenant's domain",
        ),
        (vec!["admin", "tenant", "create", "--domain", "fabrikam.example"], "already exists"),
        (
            vec!["admin", "sp", "create", "--tenant", "tailspin.example", "--app-id", &app_id],
            "already exists",
        ),
        (vec!["admin", "user", "list", "--tenant", "nope.example"], "does not exist"),
    ] {
        let output = crosspool(&with_dir(&args).iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(stderr(&output).contains(reason), "{args:?}: {}", stderr(&output));
    }
    let single = run(&[
        "admin",
        "app",
        "create",
        "--tenant",
        "fabrikam.example",
        "--display-name",
        "single",
    ]);
    let output = crosspool(
        &with_dir(&[
            "admin",
            "sp",
            "create",
            "--tenant",
            "tailspin.example",
            "--app-id",
            single["appId"].as_str().unwrap(),
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(stderr(&output).contains("only a multi-tenant application"), "{}", stderr(&output));

    // The server on the same data dir signs both in.
    let config = server::ServeConfig::local(dir.path().to_owned());
    let running = server::start(config).await.unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&running.ca_cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let token = |tenant: &str, form: Vec<(&'static str, String)>| {
        let request =
            client.post(format!("{}/{tenant}/oauth2/v2.0/token", running.origin)).form(&form);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let scope = "https://management.azure.com//.default".to_owned();
    let user_form = vec![
        ("client_id", "04b07795-8ddb-461a-bbee-02f9e1bf7b46".to_owned()),
        ("grant_type", "password".to_owned()),
        ("username", "ops@fabrikam.example".to_owned()),
        ("password", password),
        ("scope", scope.clone()),
    ];
    assert_eq!(token("fabrikam.example", user_form).await, 200);
    let app_form = vec![
        ("client_id", app_id.clone()),
        ("client_secret", secret.clone()),
        ("grant_type", "client_credentials".to_owned()),
        ("scope", scope),
    ];
    assert_eq!(token("tailspin.example", app_form.clone()).await, 200);
    assert_eq!(token(other["tenantId"].as_str().unwrap(), app_form).await, 200);
    // A subscription and a role assignment made here make the subscription visible to the app.
    let subscription = run(&[
        "admin",
        "subscription",
        "create",
        "--tenant",
        "tailspin.example",
        "--display-name",
        "Tailspin prod",
    ]);
    let subscription_id = subscription["subscriptionId"].as_str().unwrap().to_owned();
    let scope = format!("/subscriptions/{subscription_id}/resourceGroups/network");
    let assignment = run(&[
        "admin",
        "role",
        "assign",
        "--scope",
        &scope,
        "--role",
        "Network Contributor",
        "--assignee",
        &app_id,
    ]);
    assert_eq!(
        (assignment["principalType"].as_str(), assignment["roleName"].as_str()),
        (Some("ServicePrincipal"), Some("Network Contributor"))
    );
    let output = crosspool(
        &with_dir(&[
            "admin",
            "role",
            "assign",
            "--scope",
            &scope,
            "--role",
            "Network Contributor",
            "--assignee",
            &app_id,
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(stderr(&output).contains("already exists"), "{}", stderr(&output));
    let form = vec![
        ("client_id", app_id.clone()),
        ("client_secret", secret.clone()),
        ("grant_type", "client_credentials".to_owned()),
        ("scope", "https://management.azure.com//.default".to_owned()),
    ];
    let response = client
        .post(format!("{}/tailspin.example/oauth2/v2.0/token", running.origin))
        .form(&form)
        .send()
        .await
        .unwrap();
    let token: serde_json::Value = response.json().await.unwrap();
    let listed: serde_json::Value = client
        .get(format!("{}/subscriptions?api-version=2022-12-01", running.origin))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["value"][0]["subscriptionId"], subscription_id.as_str());
    running.shutdown().await;
}
