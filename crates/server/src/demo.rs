//! `serve --demo`: the seeds' world for people and tests. Tenants A and B, each with an
//! administrator (Owner of the tenant's subscription) and a network contributor (Network
//! Contributor on its resource group); in A a network manager with a root pool `10.0.0.0/8`, in
//! B a virtual network with static space, and the Connected connection pair between them. All
//! of it is written to `<data-dir>/demo.json` (with the passwords). A later start keeps the
//! world, adds what newer versions create, and rewrites the endpoint.
//!
//! The network resources are made through the ARM API itself, as each tenant's administrator,
//! so they pass the same checks as a client's requests.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arm::auth::Caller;
use arm::state::Arm;
use identity::Identity;
use identity::secret::password_hash;
use serde_json::{Value, json};
use store::authorization::SubscriptionRecord;
use store::error::StoreError;
use store::identity::{TenantRecord, UserRecord};
use store::resource::{Precondition, ResourceWrite};

/// One demo tenant.
struct DemoTenant {
    key: &'static str,
    domain: &'static str,
    display_name: &'static str,
}

const TENANTS: [DemoTenant; 2] = [
    DemoTenant { key: "A", domain: "contoso-a.example", display_name: "Contoso A (management)" },
    DemoTenant { key: "B", domain: "contoso-b.example", display_name: "Contoso B (managed)" },
];

/// Creates the demo world if it is not there and writes `demo.json`; returns its contents.
pub async fn ensure(
    identity: &Identity,
    arm: &Arc<Arm>,
    data_dir: &Path,
    origin: &str,
    ca_cert: &Path,
) -> anyhow::Result<Value> {
    let path = data_dir.join("demo.json");
    let mut demo: Value = match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?
        }
        Err(_) => json!({ "tenants": {} }),
    };
    for tenant in &TENANTS {
        if !demo["tenants"][tenant.key].is_object() {
            demo["tenants"][tenant.key] = create_tenant(identity, tenant).await?;
        }
        if !demo["tenants"][tenant.key]["subscription_id"].is_string() {
            let added = create_subscription(identity, tenant, &demo["tenants"][tenant.key]).await?;
            for (field, value) in added {
                demo["tenants"][tenant.key][field] = value;
            }
        }
    }
    if !demo["tenants"]["A"]["pool_id"].is_string() {
        let added = create_network(identity, arm, &demo).await?;
        for (tenant, field, value) in added {
            demo["tenants"][tenant][field] = value;
        }
    }
    demo["endpoint"] = json!(origin);
    demo["ca_cert"] = json!(ca_cert.display().to_string());
    // It holds the demo users' passwords.
    crate::files::write_secret(&path, serde_json::to_string_pretty(&demo)?.as_bytes())?;
    Ok(demo)
}

async fn create_tenant(identity: &Identity, tenant: &DemoTenant) -> anyhow::Result<Value> {
    let tenant_id = uuid::Uuid::new_v4().to_string();
    let admin = (format!("admin@{}", tenant.domain), random_password());
    let contributor = (format!("netcontrib@{}", tenant.domain), random_password());
    let users: Vec<UserRecord> =
        [(&admin, "Administrator", true), (&contributor, "Network Contributor", false)]
            .into_iter()
            .map(|((upn, password), name, is_admin)| UserRecord {
                id: uuid::Uuid::new_v4().to_string(),
                tenant_id: tenant_id.clone(),
                upn: upn.clone(),
                display_name: format!("{name} ({})", tenant.key),
                password_hash: password_hash(password),
                is_admin,
                account_enabled: true,
                tokens_valid_after: 0,
            })
            .collect();
    let record = TenantRecord {
        id: tenant_id.clone(),
        domain: tenant.domain.to_owned(),
        display_name: tenant.display_name.to_owned(),
    };
    let now = identity.now();
    identity
        .store()
        .write(move |tx| {
            tx.tenant_create(&record, now)?;
            for user in &users {
                tx.user_create(user, now)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .with_context(|| format!("creating demo tenant {}", tenant.domain))?;
    Ok(json!({
        "tenant_id": tenant_id,
        "domain": tenant.domain,
        "admin": { "username": admin.0, "password": admin.1 },
        "network_contributor": { "username": contributor.0, "password": contributor.1 },
    }))
}

/// The tenant's subscription and resource group, and the two users' roles on them.
async fn create_subscription(
    identity: &Identity,
    tenant: &DemoTenant,
    entry: &Value,
) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let store = identity.store();
    let now = identity.now();
    let tenant_id = entry["tenant_id"].as_str().context("demo.json lacks a tenant_id")?.to_owned();
    let subscription = SubscriptionRecord {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant_id.clone(),
        display_name: format!("Subscription {}", tenant.key),
        state: "Enabled".to_owned(),
    };
    let resource_group = format!("rg-{}", tenant.key.to_ascii_lowercase());
    let group_id = format!("/subscriptions/{}/resourceGroups/{resource_group}", subscription.id);
    // Stored as the resource-group document the ARM resource-group API reads.
    let body = json!({
        "id": group_id,
        "name": resource_group,
        "type": "Microsoft.Resources/resourceGroups",
        "location": "westus",
        "properties": { "provisioningState": "Succeeded" },
    })
    .to_string();
    let (stored, write_id, write_tenant) =
        (subscription.clone(), group_id.clone(), tenant_id.clone());
    store
        .write(move |tx| {
            tx.subscription_create(&stored, now)?;
            let write = ResourceWrite {
                id: &write_id,
                resource_type: "Microsoft.Resources/resourceGroups",
                tenant_id: &write_tenant,
                body: &body,
            };
            tx.resource_put(write, &Precondition::Absent, now).map(|_| ())
        })
        .await
        .with_context(|| format!("creating the demo subscription of {}", tenant.domain))?;
    let username = |role: &str| -> anyhow::Result<String> {
        Ok(entry[role]["username"].as_str().context("demo.json lacks a user")?.to_owned())
    };
    for (role_holder, role, scope) in [
        (username("admin")?, &arm::rbac::OWNER, format!("/subscriptions/{}", subscription.id)),
        (username("network_contributor")?, &arm::rbac::NETWORK_CONTRIBUTOR, group_id.clone()),
    ] {
        let lookup = role_holder.clone();
        let user = store
            .read(move |tx| tx.user_by_upn(&lookup))
            .await?
            .with_context(|| format!("demo user {role_holder} is missing"))?;
        arm::rbac::assign(
            store,
            arm::rbac::NewAssignment {
                name: None,
                scope: &scope,
                role,
                principal_id: &user.id,
                principal_type: "User",
                created_by: None,
            },
            now,
        )
        .await
        .with_context(|| format!("assigning {} to {role_holder}", role.role_name))?;
    }
    Ok(vec![("subscription_id", json!(subscription.id)), ("resource_group", json!(resource_group))])
}

/// A random password that meets common complexity rules.
fn random_password() -> String {
    let secret = identity::secret::new_client_secret().replace(['~', '-', '_'], "x");
    format!("Cp1-{}", &secret[..16])
}

/// A's network manager (scope: A's subscription) with the root pool `10.0.0.0/8` and a scope
/// connection to B's subscription; B's connection to that manager and B's VNet with static space.
async fn create_network(
    identity: &Identity,
    arm: &Arc<Arm>,
    demo: &Value,
) -> anyhow::Result<Vec<(&'static str, &'static str, Value)>> {
    let field = |tenant: &str, name: &str| -> anyhow::Result<String> {
        Ok(demo["tenants"][tenant][name]
            .as_str()
            .with_context(|| format!("demo.json lacks {tenant}.{name}"))?
            .to_owned())
    };
    let (tenant_a, tenant_b) = (field("A", "tenant_id")?, field("B", "tenant_id")?);
    let (subscription_a, subscription_b) =
        (field("A", "subscription_id")?, field("B", "subscription_id")?);
    let admin = |tenant: &'static str| -> anyhow::Result<String> {
        Ok(demo["tenants"][tenant]["admin"]["username"]
            .as_str()
            .context("demo.json lacks an admin")?
            .to_owned())
    };
    let caller = |tenant_id: String, upn: String| async move {
        let lookup = upn.clone();
        let user = identity
            .store()
            .read(move |tx| tx.user_by_upn(&lookup))
            .await?
            .with_context(|| format!("demo user {upn} is missing"))?;
        anyhow::Ok(Caller::user(&tenant_id, &user.id, &upn))
    };
    let as_a = caller(tenant_a.clone(), admin("A")?).await?;
    let as_b = caller(tenant_b.clone(), admin("B")?).await?;
    let manager = format!(
        "/subscriptions/{subscription_a}/resourceGroups/rg-a/providers/Microsoft.Network/networkManagers/nm"
    );
    let pool = format!("{manager}/ipamPools/pool");
    let scope_connection = format!("{manager}/scopeConnections/to-b");
    let connection = format!(
        "/subscriptions/{subscription_b}/providers/Microsoft.Network/networkManagerConnections/from-a"
    );
    let vnet = format!(
        "/subscriptions/{subscription_b}/resourceGroups/rg-b/providers/Microsoft.Network/virtualNetworks/vnet-b"
    );
    let steps = [
        (
            &as_a,
            &manager,
            json!({"location": "westus", "properties": {"description": "The demo network manager", "networkManagerScopes": {"subscriptions": [format!("/subscriptions/{subscription_a}")], "managementGroups": []}, "networkManagerScopeAccesses": []}}),
        ),
        (
            &as_a,
            &pool,
            json!({"location": "westus", "properties": {"addressPrefixes": ["10.0.0.0/8"], "displayName": "Root pool", "description": "The demo root pool"}}),
        ),
        (
            &as_a,
            &scope_connection,
            json!({"properties": {"tenantId": tenant_b, "resourceId": format!("/subscriptions/{subscription_b}"), "description": "Tenant B's subscription"}}),
        ),
        (
            &as_b,
            &connection,
            json!({"properties": {"networkManagerId": manager, "description": "Tenant A's network manager"}}),
        ),
        (
            &as_b,
            &vnet,
            json!({"location": "centralus", "properties": {"addressSpace": {"addressPrefixes": ["192.168.0.0/24"]}}}),
        ),
    ];
    for (caller, id, body) in steps {
        let request = axum::http::Request::builder()
            .method("PUT")
            .uri(format!("{id}?api-version=2025-07-01"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .context("building a demo request")?;
        let response = arm::dispatch::call(arm.clone(), caller.clone(), request).await;
        let status = response.status();
        if !status.is_success() {
            let body =
                axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
            anyhow::bail!(
                "creating demo resource {id}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    Ok(vec![
        ("A", "network_manager_id", json!(manager)),
        ("A", "pool_id", json!(pool)),
        ("A", "scope_connection_id", json!(scope_connection)),
        ("B", "network_manager_connection_id", json!(connection)),
        ("B", "vnet_id", json!(vnet)),
    ])
}

/// A multi-tenant app registered in demo tenant B, with a client secret: the app of the seeds,
/// before its service principals and roles.
#[derive(Debug, Clone)]
pub struct DemoApp {
    pub tenant_a: TenantRecord,
    pub tenant_b: TenantRecord,
    pub application: store::identity::ApplicationRecord,
    pub secret: String,
}

/// Registers a `DemoApp` called `display_name` in the demo world of `store`.
pub async fn multi_tenant_app(store: &store::Store, display_name: &str) -> anyhow::Result<DemoApp> {
    let now = store::Timestamp(0);
    let tenant = |key: usize| identity::directory::tenant(store, TENANTS[key].domain);
    let (tenant_a, tenant_b) = (tenant(0).await?, tenant(1).await?);
    let application = identity::directory::register_application(
        store,
        &tenant_b,
        display_name,
        "AzureADMultipleOrgs",
        None,
        Vec::new(),
        now,
    )
    .await?;
    let (_, secret) = identity::directory::add_password(
        store,
        &application,
        None,
        now,
        store::Timestamp(i64::MAX),
    )
    .await?;
    Ok(DemoApp { tenant_a, tenant_b, application, secret })
}
