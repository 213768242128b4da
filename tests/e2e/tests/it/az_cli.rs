//! The unmodified az CLI against crosspool, the seeds' CLI flow end to end: register the cloud,
//! sign users in to B and A, register a multi-tenant app with a secret, create its service
//! principal in both tenants, give it IPAM Pool User on A's pool and Network Contributor in B,
//! sign it in to both, take A's token as auxiliary, allocate B's VNet from A's pool with
//! `az rest`, see it from A, remove it; and the refusals on the way.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use server::Running;

use crate::support::{
    PORT_443, REALM_PORT, can_serve_port_443, claims, demo, demo_user, start_server,
};

/// The az CLI with its own configuration directory, trusting the server's CA.
struct Az {
    python: PathBuf,
    config_dir: tempfile::TempDir,
    ca_cert: PathBuf,
}

impl Az {
    /// How `crosspool az-setup --apply` should run this az CLI.
    fn program(&self) -> server::az_setup::AzProgram {
        server::az_setup::AzProgram {
            program: vec![
                self.python.display().to_string(),
                "-m".to_owned(),
                "azure.cli".to_owned(),
            ],
            env: vec![(
                "AZURE_CONFIG_DIR".to_owned(),
                self.config_dir.path().display().to_string(),
            )],
        }
    }

    fn new(running: &Running) -> Az {
        Az {
            python: crosspool_e2e::python().unwrap(),
            config_dir: tempfile::tempdir().unwrap(),
            ca_cert: running.ca_cert.clone(),
        }
    }

    /// Runs `az ARGS -o json`; returns the parsed output, or the error text.
    fn run(&self, args: &[&str]) -> Result<Value, String> {
        let output = Command::new(&self.python)
            .args(["-m", "azure.cli"])
            .args(args)
            .args(["--output", "json"])
            .env("AZURE_CONFIG_DIR", self.config_dir.path())
            .env("REQUESTS_CA_BUNDLE", &self.ca_cert)
            .env("AZURE_CORE_COLLECT_TELEMETRY", "0")
            .env("AZURE_CORE_NO_COLOR", "1")
            .env("AZURE_CORE_ONLY_SHOW_ERRORS", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "az {args:?} failed: {}{stdout}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap_or(Value::String(stdout.into_owned()))
        })
    }

    fn ok(&self, args: &[&str]) -> Value {
        self.run(args).unwrap_or_else(|error| panic!("{error}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_az_cli_runs_the_seeds_cli_flow() {
    // `az login -u -p` needs the user realm on port 443 (see `support`).
    let _port_443 = PORT_443.lock().await;
    if !can_serve_port_443() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let running = start_server(&dir, vec![REALM_PORT.parse().unwrap()]).await;
    let (tenant_a, tenant_b) = (demo(&running, "A", "tenant_id"), demo(&running, "B", "tenant_id"));
    let az = Az::new(&running);
    let steps = tokio::task::block_in_place(|| {
        // The set-up a user runs (AZ-CLI.md §1), as `crosspool az-setup --apply` runs it.
        let (commands, export) = server::az_setup::plan(dir.path(), None).unwrap();
        assert_eq!(commands[0].last().unwrap(), &format!("{}/", running.origin));
        assert!(export.ends_with("ca.pem"), "{export}");
        server::az_setup::apply(&commands, &export, &az.program()).unwrap();
        assert_eq!(
            az.ok(&["cloud", "show", "-n", "crosspool"])["endpoints"]["resourceManager"],
            format!("{}/", running.origin)
        );

        // B's administrator signs in and registers the app.
        let (admin_b, password_b) = demo_user(&running, "B", "admin");
        let accounts =
            az.ok(&["login", "-u", &admin_b, "-p", &password_b, "--tenant", "contoso-b.example"]);
        assert_eq!(accounts[0]["name"], "Subscription B", "{accounts}");
        assert_eq!(
            (accounts[0]["tenantId"].as_str(), accounts[0]["user"]["type"].as_str()),
            (Some(tenant_b.as_str()), Some("user"))
        );
        let application = az.ok(&["ad", "app", "create", "--display-name", "ipam-app"]);
        let app_id = application["appId"].as_str().unwrap().to_owned();
        let credential = az.ok(&["ad", "app", "credential", "reset", "--id", &app_id]);
        let secret = credential["password"].as_str().unwrap().to_owned();
        assert_eq!(credential["tenant"], tenant_b.as_str());
        az.ok(&[
            "ad",
            "app",
            "update",
            "--id",
            &app_id,
            "--set",
            "signInAudience=AzureADMultipleOrgs",
        ]);
        assert_eq!(
            az.ok(&["ad", "app", "show", "--id", &app_id])["signInAudience"],
            "AzureADMultipleOrgs"
        );
        let service_principal_b = az.ok(&["ad", "sp", "create", "--id", &app_id]);

        // A's administrator creates the app's service principal in A.
        let (admin_a, password_a) = demo_user(&running, "A", "admin");
        let accounts = az.ok(&["login", "-u", &admin_a, "-p", &password_a, "--tenant", &tenant_a]);
        assert_eq!(accounts[0]["name"], "Subscription A", "{accounts}");
        let service_principal_a = az.ok(&["ad", "sp", "create", "--id", &app_id]);
        assert_eq!(service_principal_a["appOwnerOrganizationId"], tenant_b.as_str());
        (
            app_id,
            secret,
            service_principal_a["id"].as_str().unwrap().to_owned(),
            service_principal_b["id"].as_str().unwrap().to_owned(),
        )
    });
    let (app_id, secret, service_principal_a, service_principal_b) = steps;

    // The roles the seeds give it: IPAM Pool User on the pool in A (as A's administrator, the
    // default account now), Network Contributor on B's resource group (as B's administrator:
    // the assignee is looked up in the default account's directory, AZ-CLI.md §5).
    let (subscription_a, subscription_b) =
        (demo(&running, "A", "subscription_id"), demo(&running, "B", "subscription_id"));
    let pool = demo(&running, "A", "pool_id");
    let group_b = format!("/subscriptions/{subscription_b}/resourceGroups/rg-b");
    let pool_user = tokio::task::block_in_place(|| {
        let assigned = az.ok(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &app_id,
            "--role",
            "IPAM Pool User",
            "--scope",
            &pool,
        ]);
        assert_eq!(
            (
                assigned["principalId"].as_str(),
                assigned["scope"].as_str(),
                assigned["principalType"].as_str()
            ),
            (Some(service_principal_a.as_str()), Some(pool.as_str()), Some("ServicePrincipal")),
            "{assigned}"
        );
        assert!(
            assigned["roleDefinitionId"]
                .as_str()
                .unwrap()
                .ends_with("7b3e853f-ad5d-4fb5-a7b8-56a3581c7037")
        );
        // Again: the CLI meets RoleAssignmentExists and prints the existing assignment.
        let again = az.ok(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &app_id,
            "--role",
            "IPAM Pool User",
            "--scope",
            &pool,
        ]);
        assert_eq!(again["id"], assigned["id"]);
        let listed =
            az.ok(&["role", "assignment", "list", "--assignee", &app_id, "--scope", &pool]);
        assert_eq!(listed[0]["roleDefinitionName"], "IPAM Pool User", "{listed}");
        az.ok(&["account", "set", "-s", &subscription_b]);
        let contributor = az.ok(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &app_id,
            "--role",
            "Network Contributor",
            "--scope",
            &group_b,
        ]);
        assert_eq!(contributor["principalId"], service_principal_b.as_str(), "{contributor}");
        assigned["id"].as_str().unwrap().to_owned()
    });

    tokio::task::block_in_place(|| {
        // The app signs in to both tenants and sees one subscription in each.
        let accounts = az.ok(&[
            "login",
            "--service-principal",
            "-u",
            &app_id,
            "-p",
            &secret,
            "--tenant",
            &tenant_b,
        ]);
        assert_eq!(
            (accounts[0]["name"].as_str(), accounts[0]["user"]["type"].as_str()),
            (Some("Subscription B"), Some("servicePrincipal"))
        );
        let accounts = az.ok(&[
            "login",
            "--service-principal",
            "-u",
            &app_id,
            "-p",
            &secret,
            "--tenant",
            &tenant_a,
        ]);
        assert_eq!(
            accounts[0]["name"], "Subscription A",
            "a role on one pool makes A's subscription visible"
        );
        let listed = az.ok(&["account", "list"]);
        assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

        // The auxiliary token of the seeds' step 2.
        let token = az.ok(&[
            "account",
            "get-access-token",
            "--resource=https://management.azure.com/",
            "--tenant",
            &tenant_a,
        ]);
        let access = claims(token["accessToken"].as_str().unwrap());
        assert_eq!(
            (access["tid"].as_str(), access["appid"].as_str(), access["oid"].as_str()),
            (Some(tenant_a.as_str()), Some(app_id.as_str()), Some(service_principal_a.as_str()))
        );
        assert_eq!(
            (access["aud"].as_str(), access["idtyp"].as_str()),
            (Some("https://management.azure.com/"), Some("app"))
        );

        // A wrong secret is refused with the platform's error. MSAL answers a client-credentials
        // request from its token cache when it can, whatever the secret, so the cache goes first.
        az.ok(&["account", "clear"]);
        let error = az
            .run(&[
                "login",
                "--service-principal",
                "-u",
                &app_id,
                "-p",
                "wrong-secret",
                "--tenant",
                &tenant_a,
            ])
            .unwrap_err();
        assert!(error.contains("AADSTS7000215"), "{error}");
    });

    // The seeds' allocation steps and the removal, and the negatives, with the real CLI.
    tokio::task::block_in_place(|| {
        network_steps(
            &az,
            &running,
            &Seeds { app_id: &app_id, secret: &secret, pool: &pool, pool_user: &pool_user },
        );
    });
    let _ = subscription_a;
    running.shutdown().await;
}

struct Seeds<'a> {
    app_id: &'a str,
    secret: &'a str,
    pool: &'a str,
    pool_user: &'a str,
}

/// Seeds steps 1–3 of "Deploy a virtual network" and the removal, then the negatives.
fn network_steps(az: &Az, running: &Running, seeds: &Seeds<'_>) {
    let (tenant_a, tenant_b) = (demo(running, "A", "tenant_id"), demo(running, "B", "tenant_id"));
    let origin = &running.origin;
    let (app_id, secret, pool) = (seeds.app_id, seeds.secret, seeds.pool);
    for tenant in [&tenant_b, &tenant_a] {
        az.ok(&[
            "login",
            "--service-principal",
            "--username",
            app_id,
            "--password",
            secret,
            "--tenant",
            tenant,
        ]);
    }
    let aux_token = |tenant: &str| -> String {
        az.ok(&[
            "account",
            "get-access-token",
            "--resource=https://management.azure.com/",
            "--tenant",
            tenant,
            "--query",
            "accessToken",
        ])
        .as_str()
        .unwrap()
        .to_owned()
    };
    let token_a = aux_token(&tenant_a);
    let vnet = demo(running, "B", "vnet_id");
    let uri = format!("{origin}{vnet}?api-version=2022-07-01");
    let allocate = format!(
        r#"{{"location": "centralus", "properties": {{"addressSpace": {{"ipamPoolPrefixAllocations": [{{"numberOfIpAddresses": "100", "pool": {{"id": "{pool}"}}}}]}}}}}}"#
    );
    let usage = |az: &Az| -> Value {
        az.ok(&[
            "rest",
            "--method",
            "post",
            "--uri",
            &format!("{origin}{pool}/getPoolUsage?api-version=2025-07-01"),
        ])
    };
    let associated = |az: &Az| -> Value {
        az.ok(&[
            "rest",
            "--method",
            "post",
            "--uri",
            &format!("{origin}{pool}/listAssociatedResources?api-version=2025-07-01"),
        ])
    };
    let allocated = |usage: &Value| {
        usage["numberOfAllocatedIPAddresses"].as_str().unwrap().parse::<u64>().unwrap()
    };
    let before = usage(az);

    // Negatives first: no auxiliary header; an auxiliary token of the wrong tenant.
    let error =
        az.run(&["rest", "--method", "put", "--uri", &uri, "--body", &allocate]).unwrap_err();
    assert!(error.contains("LinkedAuthorizationFailed"), "{error}");
    let token_b = aux_token(&tenant_b);
    let wrong = format!("x-ms-authorization-auxiliary=Bearer {token_b}");
    let error = az
        .run(&["rest", "--method", "put", "--uri", &uri, "--headers", &wrong, "--body", &allocate])
        .unwrap_err();
    assert!(
        error.contains("Unauthorized") || error.contains("InvalidAuthenticationTokenTenant"),
        "{error}"
    );

    // Step 3: the VNet PUT with A's token as auxiliary.
    let header = format!("x-ms-authorization-auxiliary=Bearer {token_a}");
    let created = az.ok(&[
        "rest",
        "--method",
        "put",
        "--uri",
        &uri,
        "--headers",
        &header,
        "--body",
        &allocate,
    ]);
    let space = &created["properties"]["addressSpace"];
    assert_eq!(space["addressPrefixes"].as_array().unwrap().len(), 3, "{created}");
    assert!(
        space["addressPrefixes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.as_str().unwrap().starts_with("10."))
    );
    assert_eq!(space["ipamPoolPrefixAllocations"][0]["numberOfIpAddresses"], "100");

    // Step 7: A sees B's VNet on its pool, and the usage moved by exactly what was allocated.
    let listed = associated(az);
    assert_eq!(listed["value"][0]["resourceId"], vnet.as_str(), "{listed}");
    assert_eq!(listed["value"][0]["addressPrefixes"], space["addressPrefixes"]);
    assert_eq!(allocated(&usage(az)) - allocated(&before), 104);

    // The removal, as the seeds write it: A's administrator signs in, its token goes along.
    let (admin_a, password_a) = demo_user(running, "A", "admin");
    az.ok(&["login", "-u", &admin_a, "-p", &password_a, "--tenant", &tenant_a]);
    let header = format!("x-ms-authorization-auxiliary=Bearer {}", aux_token(&tenant_a));
    let removal = r#"{"location": "centralus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}"#;
    let removed =
        az.ok(&["rest", "--method", "put", "--uri", &uri, "--headers", &header, "--body", removal]);
    assert_eq!(
        removed["properties"]["addressSpace"]["addressPrefixes"][0], "10.0.0.0/16",
        "{removed}"
    );
    assert!(associated(az)["value"].as_array().unwrap().is_empty());
    assert_eq!(allocated(&usage(az)), allocated(&before));

    // Without the role on the pool the app's allocation is refused (403).
    az.ok(&["role", "assignment", "delete", "--ids", seeds.pool_user]);
    let header = format!("x-ms-authorization-auxiliary=Bearer {token_a}");
    let error = az
        .run(&["rest", "--method", "put", "--uri", &uri, "--headers", &header, "--body", &allocate])
        .unwrap_err();
    assert!(error.contains("LinkedAuthorizationFailed"), "{error}");

    cli_commands(az, running, seeds);
}

/// Step 10: the az CLI's own commands that touch IPAM, as the app (signed in to both tenants, so
/// the CLI finds the auxiliary token for the pool's subscription itself).
fn cli_commands(az: &Az, running: &Running, seeds: &Seeds<'_>) {
    let (tenant_a, subscription_b) =
        (demo(running, "A", "tenant_id"), demo(running, "B", "subscription_id"));
    let (app_id, pool) = (seeds.app_id, seeds.pool);
    // A's administrator (the default account) gives the role back; the app signs in to A again.
    az.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        app_id,
        "--role",
        "IPAM Pool User",
        "--scope",
        pool,
    ]);
    az.ok(&[
        "login",
        "--service-principal",
        "--username",
        app_id,
        "--password",
        seeds.secret,
        "--tenant",
        &tenant_a,
    ]);

    let b = ["--subscription", subscription_b.as_str(), "-g", "rg-b"];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(b.iter()).map(|a| (*a).to_owned()).collect()
    };
    let run = |args: Vec<String>| az.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let pool_arg = format!("[0].id={pool}");
    let mut create =
        with(&["network", "vnet", "create", "-n", "vnet-cli", "--location", "centralus"]);
    create.extend([
        "--ipam-allocations".to_owned(),
        "[0].number-of-ip-addresses=100".to_owned(),
        pool_arg.clone(),
    ]);
    let created = run(create);
    let space = &created["newVNet"]["addressSpace"];
    assert_eq!(space["addressPrefixes"].as_array().unwrap().len(), 3, "{created}");
    assert_eq!(space["ipamPoolPrefixAllocations"][0]["numberOfIpAddresses"], "100");

    let mut subnet =
        with(&["network", "vnet", "subnet", "create", "--vnet-name", "vnet-cli", "-n", "s1"]);
    subnet.extend([
        "--ipam-allocations".to_owned(),
        "[0].number-of-ip-addresses=32".to_owned(),
        pool_arg,
    ]);
    let subnet = run(subnet);
    let carved = subnet["addressPrefix"].as_str().unwrap_or_default();
    assert!(carved.ends_with("/27"), "{subnet}");

    let shown = run(with(&["network", "vnet", "show", "-n", "vnet-cli"]));
    assert_eq!(shown["subnets"][0]["name"], "s1", "{shown}");
    let listed = run(with(&["network", "vnet", "list"]));
    let names: Vec<&str> =
        listed.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"vnet-cli") && names.contains(&"vnet-b"), "{names:?}");
    run(with(&["network", "vnet", "delete", "-n", "vnet-cli"]));
    let after = az.ok(&[
        "rest",
        "--method",
        "post",
        "--uri",
        &format!("{}{pool}/listAssociatedResources?api-version=2025-07-01", running.origin),
    ]);
    assert!(
        after["value"].as_array().unwrap().is_empty(),
        "deleting the VNet released its space: {after}"
    );

    // Resource groups, as B's administrator.
    let (admin_b, password_b) = demo_user(running, "B", "admin");
    az.ok(&["login", "-u", &admin_b, "-p", &password_b, "--tenant", "contoso-b.example"]);
    let group = az.ok(&[
        "group",
        "create",
        "-n",
        "rg-cli",
        "-l",
        "centralus",
        "--subscription",
        &subscription_b,
    ]);
    assert_eq!(group["id"], format!("/subscriptions/{subscription_b}/resourceGroups/rg-cli"));
    assert_eq!(
        az.ok(&["group", "exists", "-n", "rg-cli", "--subscription", &subscription_b]),
        Value::Bool(true)
    );
    az.ok(&["group", "delete", "-n", "rg-cli", "--yes", "--subscription", &subscription_b]);
    assert_eq!(
        az.ok(&["group", "exists", "-n", "rg-cli", "--subscription", &subscription_b]),
        Value::Bool(false)
    );
}
