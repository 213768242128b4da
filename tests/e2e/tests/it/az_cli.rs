//! The unmodified az CLI against crosspool: the seeds' identity steps (issue 5) — register the
//! cloud, sign users in to B and A, register a multi-tenant app with a secret, create its service
//! principal in both tenants, sign the app in to both, and get A's token for ARM.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use server::Running;
use store::Timestamp;

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
async fn the_az_cli_does_the_seeds_identity_steps() {
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
        // The set-up a user runs (AZ-CLI.md §1), with the endpoint as the docs write it.
        az.ok(&[
            "cloud",
            "register",
            "-n",
            "crosspool",
            "--endpoint-resource-manager",
            &format!("{}/", running.origin),
        ]);
        az.ok(&["cloud", "set", "-n", "crosspool"]);
        az.ok(&["config", "set", "core.instance_discovery=false"]);

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

    // The roles the seeds give it: IPAM Pool User on a pool in A, Network Contributor in B.
    // (ARM role-assignment commands come with the ARM issue; here the store assigns them.)
    let now = Timestamp(0);
    let pool = format!(
        "/subscriptions/{}/resourceGroups/rg-a/providers/Microsoft.Network/networkManagers/nm/ipamPools/pool",
        demo(&running, "A", "subscription_id")
    );
    arm::rbac::assign(
        &running.store,
        arm::rbac::NewAssignment {
            name: None,
            scope: &pool,
            role: &arm::rbac::IPAM_POOL_USER,
            principal_id: &service_principal_a,
            principal_type: "ServicePrincipal",
            created_by: None,
        },
        now,
    )
    .await
    .unwrap();
    let group =
        format!("/subscriptions/{}/resourceGroups/rg-b", demo(&running, "B", "subscription_id"));
    arm::rbac::assign(
        &running.store,
        arm::rbac::NewAssignment {
            name: None,
            scope: &group,
            role: &arm::rbac::NETWORK_CONTRIBUTOR,
            principal_id: &service_principal_b,
            principal_type: "ServicePrincipal",
            created_by: None,
        },
        now,
    )
    .await
    .unwrap();

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
    running.shutdown().await;
}
