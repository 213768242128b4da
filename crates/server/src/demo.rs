//! `serve --demo`: the seeds' world for people and tests. Tenants A and B, each with an
//! administrator (Owner of the tenant's subscription) and a network contributor (Network
//! Contributor on its resource group), written to `<data-dir>/demo.json` with their passwords.
//! A later start keeps the world, adds what newer versions create, and rewrites the endpoint.

use std::path::Path;

use anyhow::Context;
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
    demo["endpoint"] = json!(origin);
    demo["ca_cert"] = json!(ca_cert.display().to_string());
    std::fs::write(&path, serde_json::to_string_pretty(&demo)?)
        .with_context(|| format!("writing {}", path.display()))?;
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
