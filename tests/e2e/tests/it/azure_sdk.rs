//! The seeds' flow with the Azure SDK for Python (`azure-mgmt-network` with azure-identity and
//! azure-mgmt-core's auxiliary-token policy): a child pool, a static CIDR, a VNet in B allocated
//! from A's pool across tenants, usage, associations, removal.

use std::process::Command;

use serde_json::{Value, json};
use store::Timestamp;

use crate::support::{demo, multi_tenant_app, start_server};

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_allocates_across_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_server(&dir, Vec::new()).await;
    let store = &running.store;
    let now = Timestamp(0);
    let (tenant_a, tenant_b, application, secret) = multi_tenant_app(&running).await;
    for (tenant, key) in [(&tenant_a, "A"), (&tenant_b, "B")] {
        let (principal, _) =
            identity::directory::create_service_principal(store, tenant, &application.app_id, now)
                .await
                .unwrap();
        let group = format!(
            "/subscriptions/{}/resourceGroups/rg-{}",
            demo(&running, key, "subscription_id"),
            key.to_ascii_lowercase()
        );
        let new = arm::rbac::NewAssignment {
            name: None,
            scope: &group,
            role: &arm::rbac::NETWORK_CONTRIBUTOR,
            principal_id: &principal.id,
            principal_type: "ServicePrincipal",
            created_by: None,
        };
        arm::rbac::assign(store, new, now).await.unwrap();
    }
    let config = json!({
        "endpoint": running.origin,
        "tenant_a": tenant_a.id, "tenant_b": tenant_b.id,
        "subscription_a": demo(&running, "A", "subscription_id"),
        "subscription_b": demo(&running, "B", "subscription_id"),
        "client_id": application.app_id, "client_secret": secret,
        "pool_id": demo(&running, "A", "pool_id"),
    });
    let report = tokio::task::block_in_place(|| {
        let output = Command::new(crosspool_e2e::python().unwrap())
            .arg(crosspool_e2e::e2e_dir().join("python/sdk_flow.py"))
            .arg(config.to_string())
            .env("REQUESTS_CA_BUNDLE", &running.ca_cert)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_str::<Value>(stdout.lines().last().unwrap()).unwrap()
    });
    assert_eq!(report["pool"]["prefixes"], json!(["10.2.0.0/16"]), "{report}");
    assert_eq!(report["pool"]["state"], "Succeeded");
    assert_eq!(report["static_cidr"], json!(["10.2.0.0/24"]));
    let vnet_id = format!(
        "/subscriptions/{}/resourceGroups/rg-b/providers/Microsoft.Network/virtualNetworks/vnet-sdk",
        demo(&running, "B", "subscription_id")
    );
    assert_eq!(report["vnet"]["id"], vnet_id.as_str());
    assert_eq!(report["vnet"]["prefixes"].as_array().unwrap().len(), 3);
    assert_eq!(report["vnet"]["prefixes"], report["vnet"]["allocated"]);
    assert_eq!(report["usage"]["allocated"], "360", "256 static + 104 for the VNet");
    assert_eq!(report["associated"], json!([vnet_id]));
    assert_eq!(report["associated_after_removal"], json!([]));
    assert_eq!(report["pools"], json!(["pool", "sdk-pool"]));
    running.shutdown().await;
}
