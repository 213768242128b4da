//! Network managers, pools, static CIDRs, connections and VNets over HTTP, on both stores: the
//! seeds' cross-tenant allocation with each of its conditions missing in turn, the allocation
//! rules and errors, and concurrent allocations.

use reqwest::Method;
use serde_json::{Value, json};
use store::Timestamp;

use crate::resources::{Answer, call, token};
use crate::support::{TestServer, both_backends};

const NET: &str = "api-version=2025-07-01";
const SEEDS_VNET: &str = "api-version=2022-07-01";

/// A multi-tenant app of B with service principals in A and B; its tokens for both tenants.
pub struct App {
    pub app_id: String,
    pub sp_a: String,
    pub sp_b: String,
    pub secret: String,
}

pub async fn multi_tenant_app(server: &TestServer) -> App {
    let store = &server.running.store;
    let now = Timestamp(0);
    let server::demo::DemoApp { tenant_a, tenant_b, application, secret } =
        server::demo::multi_tenant_app(store, "ipam-app").await.unwrap();
    let (sp_b, _) =
        identity::directory::create_service_principal(store, &tenant_b, &application.app_id, now)
            .await
            .unwrap();
    let (sp_a, _) =
        identity::directory::create_service_principal(store, &tenant_a, &application.app_id, now)
            .await
            .unwrap();
    App { app_id: application.app_id, sp_a: sp_a.id, sp_b: sp_b.id, secret }
}

impl App {
    pub async fn token(&self, server: &TestServer, tenant: &str) -> String {
        let form = [
            ("client_id", self.app_id.as_str()),
            ("client_secret", self.secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", "https://management.azure.com/.default"),
        ];
        let (status, body) = server.token(&server.demo(tenant, "tenant_id"), &form).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

/// Assigns a role by its GUID through the API, as the tenant's admin.
pub async fn assign(
    server: &TestServer,
    tenant: &str,
    scope: &str,
    role: &str,
    principal: &str,
) -> String {
    let admin = token(server, tenant, "admin").await;
    let name = uuid::Uuid::new_v4().to_string();
    let path = format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"
    );
    let body = json!({"properties": {"roleDefinitionId": role, "principalId": principal, "principalType": "ServicePrincipal"}});
    let answer = call(server, Method::PUT, &path, &admin, Some(&body), &[]).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    path
}

pub const IPAM_POOL_USER: &str = "7b3e853f-ad5d-4fb5-a7b8-56a3581c7037";
pub const NETWORK_CONTRIBUTOR: &str = "4d97b98b-1d4f-4787-a291-c67834d212e7";

fn vnet_in_b(server: &TestServer, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/rg-b/providers/Microsoft.Network/virtualNetworks/{name}",
        server.demo("B", "subscription_id")
    )
}

fn pool_body(pool: &str, count: &str) -> Value {
    json!({"location": "centralus", "properties": {"addressSpace": {"ipamPoolPrefixAllocations": [
        {"numberOfIpAddresses": count, "pool": {"id": pool}}
    ]}}})
}

fn aux(token: &str) -> String {
    format!("Bearer {token}")
}

async fn usage(server: &TestServer, admin_a: &str, pool: &str) -> Value {
    let answer =
        call(server, Method::POST, &format!("{pool}/getPoolUsage?{NET}"), admin_a, None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

async fn associated(server: &TestServer, admin_a: &str, pool: &str) -> Vec<Value> {
    let answer = call(
        server,
        Method::POST,
        &format!("{pool}/listAssociatedResources?{NET}"),
        admin_a,
        None,
        &[],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["value"].as_array().unwrap().clone()
}

fn prefixes(answer: &Answer) -> Vec<String> {
    answer.body["properties"]["addressSpace"]["addressPrefixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn the_seeds_cross_tenant_allocation_needs_all_four_conditions(server: &TestServer) {
        let pool = server.demo("A", "pool_id");
        let admin_a = token(server, "A", "admin").await;
        let app = multi_tenant_app(server).await;
        let vnet = vnet_in_b(server, "vnet-seeds");
        let put = format!("{vnet}?{SEEDS_VNET}");
        let body = pool_body(&pool, "100");

        // 1. The primary token must allow the VNet write in B.
        let (token_b, token_a) = (app.token(server, "B").await, app.token(server, "A").await);
        let denied = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux(&token_a))]).await;
        assert_eq!((denied.status, denied.code()), (403, "AuthorizationFailed"), "{}", denied.body);
        let group_b = format!("/subscriptions/{}/resourceGroups/rg-b", server.demo("B", "subscription_id"));
        assign(server, "B", &group_b, NETWORK_CONTRIBUTOR, &app.sp_b).await;

        // 2. No auxiliary token, or an invalid one.
        let missing = call(server, Method::PUT, &put, &token_b, Some(&body), &[]).await;
        assert_eq!((missing.status, missing.code()), (403, "LinkedAuthorizationFailed"), "{}", missing.body);
        let message = missing.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("associateResourcesToPool/action") && message.contains(&pool), "{message}");
        let invalid = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", "Bearer not-a-token")]).await;
        assert_eq!(invalid.status, 401, "{}", invalid.body);
        assert!(invalid.headers.contains_key("www-authenticate"));
        let four = format!("{0}, {0}, {0}, {0}", aux(&token_a));
        let too_many = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &four)]).await;
        assert_eq!(too_many.status, 400);

        // An auxiliary token of the wrong tenant is refused.
        let wrong_tenant = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux(&token_b))]).await;
        assert_eq!((wrong_tenant.status, wrong_tenant.code()), (401, "InvalidAuthenticationTokenTenant"), "{}", wrong_tenant.body);

        // 3. The auxiliary identity needs IPAM Pool User (or more) on the pool.
        let unprivileged = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux(&token_a))]).await;
        assert_eq!((unprivileged.status, unprivileged.code()), (403, "LinkedAuthorizationFailed"));
        assign(server, "A", &pool, IPAM_POOL_USER, &app.sp_a).await;
        // Another identity's token for A does not lend its rights to the app.
        let someone_else = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux(&admin_a))]).await;
        assert_eq!((someone_else.status, someone_else.code()), (403, "LinkedAuthorizationFailed"));

        // 4. B's subscription must be in the manager's scope through the Connected pair.
        let connection = format!("{}?{NET}", server.demo("B", "network_manager_connection_id"));
        let admin_b = token(server, "B", "admin").await;
        let saved = call(server, Method::GET, &connection, &admin_b, None, &[]).await;
        assert_eq!(saved.body["properties"]["connectionState"], "Connected", "{}", saved.body);
        assert_eq!(call(server, Method::DELETE, &connection, &admin_b, None, &[]).await.status, 200);
        let scope_connection = format!("{}?{NET}", server.demo("A", "scope_connection_id"));
        let revoked = call(server, Method::GET, &scope_connection, &admin_a, None, &[]).await;
        assert_eq!(revoked.body["properties"]["connectionState"], "Revoked", "{}", revoked.body);
        let out_of_scope = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux(&token_a))]).await;
        assert_eq!((out_of_scope.status, out_of_scope.code()), (403, "SubscriptionNotInNetworkManagerScope"), "{}", out_of_scope.body);
        let restore = json!({"properties": {"networkManagerId": server.demo("A", "network_manager_id")}});
        assert_eq!(call(server, Method::PUT, &connection, &admin_b, Some(&restore), &[]).await.status, 201);
        let manager = call(server, Method::GET, &format!("{}?{NET}", server.demo("A", "network_manager_id")), &admin_a, None, &[]).await;
        let cross = &manager.body["properties"]["networkManagerScopes"]["crossTenantScopes"];
        assert_eq!(cross[0]["tenantId"], server.demo("B", "tenant_id"), "{}", manager.body);

        // All four: allocated from the pool, 100 → 104 addresses as /26 + /27 + /29.
        let before = usage(server, &admin_a, &pool).await;
        let created = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux(&token_a))]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert!(created.headers.contains_key("azure-asyncoperation"));
        let allocated = prefixes(&created);
        assert_eq!(allocated.len(), 3, "{allocated:?}");
        assert!(allocated.iter().all(|prefix| prefix.starts_with("10.")), "{allocated:?}");
        let allocation = &created.body["properties"]["addressSpace"]["ipamPoolPrefixAllocations"][0];
        assert_eq!(allocation["numberOfIpAddresses"], "100");
        assert_eq!(allocation["allocatedAddressPrefixes"].as_array().unwrap().len(), 3);
        let status = call(server, Method::GET, created.headers["azure-asyncoperation"].to_str().unwrap(), &token_b, None, &[]).await;
        assert_eq!(status.body["status"], "Succeeded");

        let listed = associated(server, &admin_a, &pool).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["resourceId"], vnet);
        assert_eq!(listed[0]["totalNumberOfIPAddresses"], "104");
        let after = usage(server, &admin_a, &pool).await;
        let count = |usage: &Value, field: &str| usage[field].as_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(count(&after, "numberOfAllocatedIPAddresses") - count(&before, "numberOfAllocatedIPAddresses"), 104);
        assert_eq!(count(&before, "numberOfAvailableIPAddresses") - count(&after, "numberOfAvailableIPAddresses"), 104);

        // The same PUT again changes nothing; growing takes more; shrinking is refused.
        let again = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux(&token_a))]).await;
        assert_eq!((again.status, prefixes(&again)), (200, allocated.clone()));
        let grown = call(server, Method::PUT, &put, &token_b, Some(&pool_body(&pool, "200")), &[("x-ms-authorization-auxiliary", &aux(&token_a))]).await;
        assert_eq!(grown.status, 200, "{}", grown.body);
        assert_eq!(associated(server, &admin_a, &pool).await[0]["totalNumberOfIPAddresses"], "200");
        let shrunk = call(server, Method::PUT, &put, &token_b, Some(&body), &[("x-ms-authorization-auxiliary", &aux(&token_a))]).await;
        assert_eq!((shrunk.status, shrunk.code()), (400, "IpamAllocationCannotBeDecreased"));

        // The seeds' removal: static prefixes, with a token of A's administrator as auxiliary.
        let removal = json!({"location": "centralus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}});
        let no_aux = call(server, Method::PUT, &put, &token_b, Some(&removal), &[]).await;
        assert_eq!((no_aux.status, no_aux.code()), (403, "LinkedAuthorizationFailed"));
        let removed = call(server, Method::PUT, &put, &token_b, Some(&removal), &[("x-ms-authorization-auxiliary", &aux(&admin_a))]).await;
        assert_eq!((removed.status, prefixes(&removed)), (200, vec!["10.0.0.0/16".to_owned()]), "{}", removed.body);
        assert!(associated(server, &admin_a, &pool).await.is_empty());
        assert_eq!(usage(server, &admin_a, &pool).await["numberOfAllocatedIPAddresses"], before["numberOfAllocatedIPAddresses"]);
    }

    async fn vnet_rules_and_release_on_delete(server: &TestServer) {
        let pool = server.demo("A", "pool_id");
        let admin_a = token(server, "A", "admin").await;
        let admin_b = token(server, "B", "admin").await;
        let vnet = vnet_in_b(server, "vnet-rules");
        let put = format!("{vnet}?{NET}");
        let with_aux: [(&str, &str); 1] = [("x-ms-authorization-auxiliary", &aux(&admin_a))];
        // The admin of B is not the admin of A: taking space needs the same identity, so B's
        // admin takes space from a pool of its own manager instead; here only the rules.
        let mixed = json!({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"], "ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "16", "pool": {"id": pool}}]}}});
        let answer = call(server, Method::PUT, &put, &admin_b, Some(&mixed), &with_aux).await;
        assert_eq!((answer.status, answer.code()), (400, "CannotMixAddressPrefixAndPoolInPayload"));
        let twice = json!({"location": "westus", "properties": {"addressSpace": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "16", "pool": {"id": pool}}, {"numberOfIpAddresses": "8", "pool": {"id": pool.to_uppercase()}}]}}});
        let answer = call(server, Method::PUT, &put, &admin_b, Some(&twice), &with_aux).await;
        assert_eq!((answer.status, answer.code()), (400, "CannotHaveDuplicatePoolIds"));
        let number = json!({"location": "westus", "properties": {"addressSpace": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": 16, "pool": {"id": pool}}]}}});
        let answer = call(server, Method::PUT, &put, &admin_b, Some(&number), &with_aux).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.body["error"]["target"], "properties.addressSpace.ipamPoolPrefixAllocations[0].numberOfIpAddresses");
        let garbage = json!({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.1/16"]}}});
        let answer = call(server, Method::PUT, &put, &admin_b, Some(&garbage), &[]).await;
        assert_eq!(answer.status, 400);
        assert!(answer.body["error"]["message"].as_str().unwrap().contains("10.0.0.1/16"));

        // Same tenant: A's admin gives a VNet in A space from A's pool, with subnets carved from it.
        let vnet_a = format!("/subscriptions/{}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/vnet-a?{NET}", server.demo("A", "subscription_id"));
        let body = json!({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": [], "ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "256", "pool": {"id": pool}}]},
            "subnets": [{"name": "s1", "properties": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "64", "pool": {"id": pool}}]}}]}});
        let created = call(server, Method::PUT, &vnet_a, &admin_a, Some(&body), &[]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let space = prefixes(&created);
        assert_eq!(space.len(), 1);
        let subnet = &created.body["properties"]["subnets"][0];
        let carved = subnet["properties"]["addressPrefix"].as_str().unwrap();
        assert!(carved.ends_with("/26"), "{subnet}");
        let outside = json!({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": [], "ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "256", "pool": {"id": pool}}]},
            "subnets": [{"name": "s2", "properties": {"addressPrefix": "172.16.0.0/24"}}]}});
        let answer = call(server, Method::PUT, &vnet_a, &admin_a, Some(&outside), &[]).await;
        assert_eq!((answer.status, answer.code()), (400, "NetcfgSubnetRangeOutsideVnet"));
        // Subnet as a child resource: PUT, GET, and its pool must be the VNet's.
        let subnet_path = |name: &str| vnet_a.replace(&format!("?{NET}"), &format!("/subnets/{name}?{NET}"));
        let child = json!({"properties": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "32", "pool": {"id": pool}}]}});
        let answer = call(server, Method::PUT, &subnet_path("s3"), &admin_a, Some(&child), &[]).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert!(answer.body["properties"]["addressPrefix"].as_str().unwrap().ends_with("/27"));
        assert_eq!(call(server, Method::GET, &subnet_path("s3"), &admin_a, None, &[]).await.status, 200);
        let other_pool = pool.replace("ipamPools/pool", "ipamPools/other");
        let alien = json!({"properties": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "8", "pool": {"id": other_pool}}]}});
        let answer = call(server, Method::PUT, &subnet_path("s4"), &admin_a, Some(&alien), &[]).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(call(server, Method::DELETE, &subnet_path("s3"), &admin_a, None, &[]).await.status, 200);

        // Deleting the VNet gives the space back: 202, then the operation is done.
        assert_eq!(associated(server, &admin_a, &pool).await.len(), 1);
        let deleted = call(server, Method::DELETE, &vnet_a, &admin_a, None, &[]).await;
        assert_eq!(deleted.status, 202);
        let location = deleted.headers["location"].to_str().unwrap().to_owned();
        assert_eq!(call(server, Method::GET, &location, &admin_a, None, &[]).await.status, 204);
        assert!(associated(server, &admin_a, &pool).await.is_empty());
        let gone = call(server, Method::GET, &vnet_a, &admin_a, None, &[]).await;
        assert_eq!(gone.status, 404);
    }

    async fn pools_and_static_cidrs(server: &TestServer) {
        let admin_a = token(server, "A", "admin").await;
        let manager = server.demo("A", "network_manager_id");
        let root = server.demo("A", "pool_id");
        let pool_url = |name: &str| format!("{manager}/ipamPools/{name}?{NET}");
        let child = json!({"location": "westus", "properties": {"addressPrefixes": ["10.1.0.0/16"], "parentPoolName": "pool", "displayName": "Child"}});
        let created = call(server, Method::PUT, &pool_url("child"), &admin_a, Some(&child), &[]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["properties"]["ipAddressType"], json!(["IPv4"]));
        let operation = created.headers["azure-asyncoperation"].to_str().unwrap().to_owned();
        assert!(operation.contains("/ipamPoolOperationResults/"), "{operation}");
        assert_eq!(call(server, Method::GET, &operation, &admin_a, None, &[]).await.body["status"], "Succeeded");
        assert_eq!(call(server, Method::PUT, &pool_url("child"), &admin_a, Some(&child), &[]).await.status, 200);

        let outside = json!({"location": "westus", "properties": {"addressPrefixes": ["172.16.0.0/16"], "parentPoolName": "pool"}});
        let answer = call(server, Method::PUT, &pool_url("stray"), &admin_a, Some(&outside), &[]).await;
        assert_eq!((answer.status, answer.code()), (400, "AddressPrefixNotInPool"), "{}", answer.body);
        let bad = json!({"location": "westus", "properties": {"addressPrefixes": ["10.1.0.0/33"]}});
        let answer = call(server, Method::PUT, &pool_url("bad"), &admin_a, Some(&bad), &[]).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.body["error"]["target"], "properties.addressPrefixes[0]");
        let answer = call(server, Method::PUT, &pool_url("-bad-name"), &admin_a, Some(&child), &[]).await;
        assert_eq!(answer.status, 400);

        let usage_root = usage(server, &admin_a, &root).await;
        assert_eq!(usage_root["childPools"][0]["resourceId"], format!("{manager}/ipamPools/child"));
        assert_eq!(usage_root["totalNumberOfIPAddresses"], "16777216");
        assert_eq!(usage_root["numberOfAllocatedIPAddresses"], "65536");

        let list = call(server, Method::GET, &format!("{manager}/ipamPools?{NET}&top=1"), &admin_a, None, &[]).await;
        assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
        let next = call(server, Method::GET, list.body["nextLink"].as_str().unwrap(), &admin_a, None, &[]).await;
        assert_eq!(next.body["value"][0]["name"], "pool", "{}", next.body);
        let skipped = call(server, Method::GET, &format!("{manager}/ipamPools?{NET}&skip=1&top=50"), &admin_a, None, &[]).await;
        assert_eq!(skipped.body["value"].as_array().unwrap().len(), 1);
        assert_eq!(skipped.body["value"][0]["name"], "pool");
        let bad_skip = call(server, Method::GET, &format!("{manager}/ipamPools?{NET}&skip=-1"), &admin_a, None, &[]).await;
        assert_eq!(bad_skip.status, 400);

        // Static CIDRs: by count (the lowest free aligned block), by prefix, never both.
        let cidr_url = |name: &str| format!("{manager}/ipamPools/child/staticCidrs/{name}?{NET}");
        let by_count = call(server, Method::PUT, &cidr_url("onprem"), &admin_a, Some(&json!({"properties": {"numberOfIPAddressesToAllocate": "256"}})), &[]).await;
        assert_eq!(by_count.status, 200, "{}", by_count.body);
        assert_eq!(by_count.body["properties"]["addressPrefixes"], json!(["10.1.0.0/24"]));
        assert_eq!(by_count.body["properties"]["totalNumberOfIPAddresses"], "256");
        let by_prefix = call(server, Method::PUT, &cidr_url("hub"), &admin_a, Some(&json!({"properties": {"addressPrefixes": ["10.1.8.0/22"]}})), &[]).await;
        assert_eq!(by_prefix.status, 200, "{}", by_prefix.body);
        let taken = call(server, Method::PUT, &cidr_url("clash"), &admin_a, Some(&json!({"properties": {"addressPrefixes": ["10.1.8.0/24"]}})), &[]).await;
        assert_eq!((taken.status, taken.code()), (409, "AddressPrefixNotAvailable"));
        let both = call(server, Method::PUT, &cidr_url("both"), &admin_a, Some(&json!({"properties": {"addressPrefixes": ["10.1.9.0/24"], "numberOfIPAddressesToAllocate": "8"}})), &[]).await;
        assert_eq!(both.status, 400);
        let exhausted = call(server, Method::PUT, &cidr_url("huge"), &admin_a, Some(&json!({"properties": {"numberOfIPAddressesToAllocate": "65536"}})), &[]).await;
        assert_eq!((exhausted.status, exhausted.code()), (409, "IpamPoolExhausted"));
        assert!(exhausted.body["error"]["message"].as_str().unwrap().contains("largest free block"), "{}", exhausted.body);

        // Deleting is refused while something is held, child first, then CIDRs.
        let answer = call(server, Method::DELETE, &pool_url("pool"), &admin_a, None, &[]).await;
        assert_eq!((answer.status, answer.code()), (400, "IpamPoolHasChildPools"));
        let answer = call(server, Method::DELETE, &pool_url("child"), &admin_a, None, &[]).await;
        assert_eq!((answer.status, answer.code()), (400, "IpamPoolHasStaticCidrs"));
        for name in ["onprem", "hub"] {
            assert_eq!(call(server, Method::DELETE, &cidr_url(name), &admin_a, None, &[]).await.status, 204);
        }
        let deleted = call(server, Method::DELETE, &pool_url("child"), &admin_a, None, &[]).await;
        assert_eq!(deleted.status, 202);
        let location = deleted.headers["location"].to_str().unwrap().to_owned();
        assert_eq!(call(server, Method::GET, &location, &admin_a, None, &[]).await.body["status"], "Succeeded");
        assert_eq!(call(server, Method::GET, &pool_url("child"), &admin_a, None, &[]).await.status, 404);

        let manager_delete = call(server, Method::DELETE, &format!("{manager}?{NET}"), &admin_a, None, &[]).await;
        assert_eq!((manager_delete.status, manager_delete.code()), (409, "CannotDeleteResource"));

        // PATCH changes descriptions; the network contributor of A may read pools, not write them
        // outside its resource group... it is on rg-a, where the manager is, so it may.
        let patched = call(server, Method::PATCH, &pool_url("pool"), &admin_a, Some(&json!({"properties": {"description": "changed"}})), &[]).await;
        assert_eq!((patched.status, &patched.body["properties"]["description"]), (200, &json!("changed")));
        let stranger = token(server, "B", "admin").await;
        let foreign = call(server, Method::GET, &pool_url("pool"), &stranger, None, &[]).await;
        assert_eq!((foreign.status, foreign.code()), (401, "InvalidAuthenticationTokenTenant"));
    }

    async fn a_vnet_patch_changes_its_tags_and_keeps_its_allocation(server: &TestServer) {
        let pool = server.demo("A", "pool_id");
        let admin_a = token(server, "A", "admin").await;
        let subscription = server.demo("A", "subscription_id");
        let url = format!("/subscriptions/{subscription}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/tagged?{NET}");
        let created = call(server, Method::PUT, &url, &admin_a, Some(&pool_body(&pool, "100")), &[]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let patched = call(server, Method::PATCH, &url, &admin_a, Some(&json!({"tags": {"env": "test"}})), &[]).await;
        assert_eq!(patched.status, 200, "{}", patched.body);
        assert_eq!(patched.body["tags"], json!({"env": "test"}));
        assert_eq!(prefixes(&patched), prefixes(&created));
        let missing = call(server, Method::PATCH, &url.replace("/tagged?", "/missing?"), &admin_a, Some(&json!({"tags": {}})), &[]).await;
        assert_eq!((missing.status, missing.code()), (404, "ResourceNotFound"));
    }

    async fn concurrent_allocations_never_overlap(server: &TestServer) {
        let pool = server.demo("A", "pool_id");
        let admin_a = token(server, "A", "admin").await;
        let subscription = server.demo("A", "subscription_id");
        let puts = (0..50).map(|at| {
            let url = format!("/subscriptions/{subscription}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/v{at}?{NET}");
            let body = pool_body(&pool, if at % 2 == 0 { "100" } else { "256" });
            let admin_a = admin_a.clone();
            async move { call(server, Method::PUT, &url, &admin_a, Some(&body), &[]).await }
        });
        let answers = join_all(puts).await;
        let mut blocks = Vec::new();
        for answer in &answers {
            assert_eq!(answer.status, 201, "{}", answer.body);
            for prefix in prefixes(answer) {
                blocks.push(ipam::prefix::Prefix::parse(&prefix).unwrap());
            }
        }
        for (at, block) in blocks.iter().enumerate() {
            assert!(!blocks[..at].iter().any(|other| other.overlaps(block)), "{block} overlaps");
        }
        assert_eq!(associated(server, &admin_a, &pool).await.len(), 50);
        // Two PUTs of one VNet at once: one allocation, both see it.
        let url = format!("/subscriptions/{subscription}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/twice?{NET}");
        let body = pool_body(&pool, "64");
        let (first, second) = tokio::join!(
            call(server, Method::PUT, &url, &admin_a, Some(&body), &[]),
            call(server, Method::PUT, &url, &admin_a, Some(&body), &[])
        );
        for answer in [&first, &second] {
            assert!(matches!(answer.status, 200 | 201 | 409), "{}", answer.body);
        }
        let twice = associated(server, &admin_a, &pool).await.into_iter().filter(|a| a["resourceId"].as_str().unwrap().ends_with("/twice")).count();
        assert_eq!(twice, 1);
        assert_eq!(associated(server, &admin_a, &pool).await.iter().find(|a| a["resourceId"].as_str().unwrap().ends_with("/twice")).unwrap()["totalNumberOfIPAddresses"], "64");
    }
}

/// Runs futures concurrently on this task and collects their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|output| output.expect("every future finished")).collect()
}

both_backends! {
    async fn responses_match_the_openapi_definitions(server: &TestServer) {
        use crate::openapi::assert_valid;
        const IPAM: &str = "ipAddressManager.json";
        let admin_a = token(server, "A", "admin").await;
        let admin_b = token(server, "B", "admin").await;
        let manager = server.demo("A", "network_manager_id");
        let pool = server.demo("A", "pool_id");
        for version in ["2025-07-01", "2026-01-01"] {
            let get = |path: String| {
                let token = admin_a.clone();
                async move { call(server, Method::GET, &path, &token, None, &[]).await }
            };
            let v = format!("api-version={version}");
            assert_valid("networkManager.json", "NetworkManager", &get(format!("{manager}?{v}")).await.body);
            assert_valid("networkManager.json", "NetworkManagerListResult", &get(format!("{}/providers/Microsoft.Network/networkManagers?{v}", manager.split("/providers/").next().unwrap())).await.body);
            assert_valid(IPAM, "IpamPool", &get(format!("{pool}?{v}")).await.body);
            assert_valid(IPAM, "IpamPoolList", &get(format!("{manager}/ipamPools?{v}")).await.body);
            assert_valid("networkManagerScopeConnection.json", "ScopeConnection", &get(format!("{}?{v}", server.demo("A", "scope_connection_id"))).await.body);
            assert_valid("networkManagerScopeConnection.json", "ScopeConnectionListResult", &get(format!("{manager}/scopeConnections?{v}")).await.body);
        }
        let child = json!({"location": "westus", "properties": {"addressPrefixes": ["10.3.0.0/16"], "parentPoolName": "pool", "minAllocationSize": "8", "maxAllocationSize": "1024"}});
        let created = call(server, Method::PUT, &format!("{manager}/ipamPools/c?api-version=2026-01-01"), &admin_a, Some(&child), &[]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_valid(IPAM, "IpamPool", &created.body);
        assert_eq!(created.body["properties"]["maxAllocationSize"], "1024");
        let cidr = call(server, Method::PUT, &format!("{manager}/ipamPools/c/staticCidrs/s?{NET}"), &admin_a, Some(&json!({"properties": {"numberOfIPAddressesToAllocate": "16"}})), &[]).await;
        assert_valid(IPAM, "StaticCidr", &cidr.body);
        assert_valid(IPAM, "StaticCidrList", &call(server, Method::GET, &format!("{manager}/ipamPools/c/staticCidrs?{NET}"), &admin_a, None, &[]).await.body);
        assert_valid(IPAM, "PoolUsage", &usage(server, &admin_a, &pool).await);
        let vnet_a = format!("/subscriptions/{}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/openapi?{NET}", server.demo("A", "subscription_id"));
        let body = json!({"location": "westus", "properties": {"addressSpace": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "64", "pool": {"id": pool}}]},
            "subnets": [{"name": "s", "properties": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "16", "pool": {"id": pool}}]}}]}});
        let vnet = call(server, Method::PUT, &vnet_a, &admin_a, Some(&body), &[]).await;
        assert_valid("virtualNetwork.json", "VirtualNetwork", &vnet.body);
        let associations = call(server, Method::POST, &format!("{pool}/listAssociatedResources?{NET}"), &admin_a, None, &[]).await;
        assert_valid(IPAM, "PoolAssociationList", &associations.body);
        assert_valid("virtualNetwork.json", "Subnet", &call(server, Method::GET, &vnet_a.replace('?', "/subnets/s?"), &admin_a, None, &[]).await.body);
        assert_valid("virtualNetwork.json", "SubnetListResult", &call(server, Method::GET, &vnet_a.replace('?', "/subnets?"), &admin_a, None, &[]).await.body);
        let list = vnet_a.replace("/openapi?", "?");
        assert_valid("virtualNetwork.json", "VirtualNetworkListResult", &call(server, Method::GET, &list, &admin_a, None, &[]).await.body);
        let connection = call(server, Method::GET, &format!("{}?{NET}", server.demo("B", "network_manager_connection_id")), &admin_b, None, &[]).await;
        assert_valid("networkManagerConnection.json", "NetworkManagerConnection", &connection.body);
        let connections = call(server, Method::GET, &format!("/subscriptions/{}/providers/Microsoft.Network/networkManagerConnections?{NET}", server.demo("B", "subscription_id")), &admin_b, None, &[]).await;
        assert_valid("networkManagerConnection.json", "NetworkManagerConnectionListResult", &connections.body);
        // Errors: pools answer CommonErrorResponse, VNets CloudError.
        let refused = call(server, Method::DELETE, &format!("{pool}?{NET}"), &admin_a, None, &[]).await;
        assert_eq!(refused.status, 400);
        assert_valid("network.json", "CommonErrorResponse", &refused.body);
        let bad = call(server, Method::PUT, &vnet_a, &admin_a, Some(&json!({"location": "westus"})), &[]).await;
        assert_eq!(bad.status, 400);
        assert_valid("network.json", "CloudError", &bad.body);
    }
}

/// A `crosspool serve` child process; killed on drop.
struct Replica {
    child: std::process::Child,
    origin: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `crosspool serve` on a free port with its own data dir and the shared database.
fn replica(data_dir: &std::path::Path, database: &str, kek: &str, demo: bool) -> Replica {
    use std::io::BufRead;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_crosspool"));
    // Every replica of one store seals and opens the signing keys with the same key.
    command
        .env("CROSSPOOL_KEK", kek)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--database", database, "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped());
    if demo {
        command.arg("--demo");
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let origin = loop {
        let line = lines.next().expect("the replica printed its endpoint").unwrap();
        if let Some(origin) = line.strip_prefix("crosspool is listening on ") {
            break origin.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Replica { child, origin }
}

/// The JSON body of the answer to `request`.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Two `crosspool serve` processes on one PostgreSQL database take space from one pool at
/// once, each for its own clients: no two allocations overlap and none is lost.
#[tokio::test(flavor = "multi_thread")]
async fn two_server_processes_share_postgres_without_overlaps() {
    if !std::thread::spawn(crate::support::postgres_available).join().unwrap() {
        return;
    }
    let schema = format!("crosspool_replicas_{}", std::process::id());
    let url = crate::support::postgres_url();
    let setup = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
    let admin_url = url.clone();
    std::thread::spawn(move || {
        postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap()
            .batch_execute(&setup)
            .unwrap()
    })
    .join()
    .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let database = format!("{url}{separator}options=-c%20search_path%3D{schema}%2Cpublic");
    let (dir_1, dir_2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let kek = identity::kek::Kek::generate_text();
    let first = tokio::task::spawn_blocking({
        let (path, database, kek) = (dir_1.path().to_owned(), database.clone(), kek.clone());
        move || replica(&path, &database, &kek, true)
    })
    .await
    .unwrap();
    let second = tokio::task::spawn_blocking({
        let (path, database, kek) = (dir_2.path().to_owned(), database.clone(), kek.clone());
        move || replica(&path, &database, &kek, false)
    })
    .await
    .unwrap();
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir_1.path().join("demo.json")).unwrap())
            .unwrap();
    let mut builder = reqwest::Client::builder();
    for dir in [&dir_1, &dir_2] {
        let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    }
    let client = builder.build().unwrap();
    let admin = &demo["tenants"]["A"]["admin"];
    let mut tokens = Vec::new();
    for replica in [&first, &second] {
        let form = [
            ("client_id", "04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
            ("grant_type", "password"),
            ("username", admin["username"].as_str().unwrap()),
            ("password", admin["password"].as_str().unwrap()),
            ("scope", "https://management.azure.com//.default"),
        ];
        let url = format!("{}/contoso-a.example/oauth2/v2.0/token", replica.origin);
        let body = json_of(client.post(url).form(&form)).await;
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    let subscription = demo["tenants"]["A"]["subscription_id"].as_str().unwrap();
    let pool = demo["tenants"]["A"]["pool_id"].as_str().unwrap();
    let puts = (0..40).map(|at| {
        let (replica, token) = if at % 2 == 0 { (&first, &tokens[0]) } else { (&second, &tokens[1]) };
        let url = format!("{}/subscriptions/{subscription}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/r{at}?{NET}", replica.origin);
        let request = client.put(url).bearer_auth(token).json(&pool_body(pool, "100"));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    });
    let mut blocks = Vec::new();
    for (status, body) in join_all(puts).await {
        assert_eq!(status, 201, "{body}");
        for prefix in body["properties"]["addressSpace"]["addressPrefixes"].as_array().unwrap() {
            blocks.push(ipam::prefix::Prefix::parse(prefix.as_str().unwrap()).unwrap());
        }
    }
    assert_eq!(blocks.len(), 120, "40 VNets of /26 + /27 + /29");
    for (at, block) in blocks.iter().enumerate() {
        assert!(!blocks[..at].iter().any(|other| other.overlaps(block)), "{block} overlaps");
    }
    let list_url = format!("{}{pool}/listAssociatedResources?{NET}", second.origin);
    let listed = json_of(client.post(list_url).bearer_auth(&tokens[1])).await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 40);
    // Both servers create and then grow the same VNets at once: each VNet ends with one
    // allocation, of the last size asked.
    for count in ["64", "200"] {
        let puts = (0..20).map(|at| {
            let (replica, token) = if at % 2 == 0 { (&first, &tokens[0]) } else { (&second, &tokens[1]) };
            let url = format!("{}/subscriptions/{subscription}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/both{}?{NET}", replica.origin, at / 2);
            let request = client.put(url).bearer_auth(token).json(&pool_body(pool, count));
            async move { request.send().await.unwrap().status().as_u16() }
        });
        for status in join_all(puts).await {
            assert!(matches!(status, 200 | 201), "{status}");
        }
    }
    let list_url = format!("{}{pool}/listAssociatedResources?{NET}", first.origin);
    let listed = json_of(client.post(list_url).bearer_auth(&tokens[0])).await;
    let both: Vec<&Value> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|associated| associated["resourceId"].as_str().unwrap().contains("/both"))
        .collect();
    assert_eq!(both.len(), 10);
    assert!(
        both.iter().all(|associated| associated["totalNumberOfIPAddresses"] == "200"),
        "{both:?}"
    );
    // The administrator's Owner assignment removed through one replica no longer counts at the
    // other, whose cache of authorization reads (store::cache) has just served the same
    // principal's assignments.
    let assignments_url = format!(
        "{}/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01",
        second.origin
    );
    let assignments = json_of(client.get(assignments_url).bearer_auth(&tokens[1])).await;
    let subscription_scope = format!("/subscriptions/{subscription}");
    let owners = assignments["value"].as_array().unwrap().iter().filter(|assignment| {
        assignment["properties"]["scope"].as_str() == Some(subscription_scope.as_str())
    });
    for assignment in owners {
        let url = format!(
            "{}{}?api-version=2022-04-01",
            second.origin,
            assignment["id"].as_str().unwrap()
        );
        let deleted = client.delete(url).bearer_auth(&tokens[1]).send().await.unwrap();
        assert_eq!(deleted.status().as_u16(), 200);
    }
    let late = format!(
        "{}/subscriptions/{subscription}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/late?{NET}",
        first.origin
    );
    let refused = client
        .put(late)
        .bearer_auth(&tokens[0])
        .json(&pool_body(pool, "100"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    drop((first, second));
    let cleanup = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    std::thread::spawn(move || {
        postgres::Client::connect(&url, postgres::NoTls).unwrap().batch_execute(&cleanup).unwrap()
    })
    .join()
    .unwrap();
}

both_backends! {
    async fn client_input_never_causes_a_server_error(server: &TestServer) {
        let admin = token(server, "A", "admin").await;
        let manager = server.demo("A", "network_manager_id");
        let pool = server.demo("A", "pool_id");
        let vnet = server.demo("B", "vnet_id").replace(&server.demo("B", "subscription_id"), &server.demo("A", "subscription_id")).replace("rg-b", "rg-a");
        let subscription = server.demo("A", "subscription_id");
        let paths = [
            format!("{pool}/staticCidrs/x"),
            format!("{vnet}/subnets/s"),
            vnet.clone(),
            format!("{manager}/scopeConnections/c"),
            format!("/subscriptions/{subscription}/providers/Microsoft.Network/networkManagerConnections/c"),
            format!("/subscriptions/{subscription}/resourceGroups/rg-x"),
            format!("{pool}/providers/Microsoft.Authorization/roleAssignments/{}", uuid::Uuid::new_v4()),
            format!("{pool}/getPoolUsage"),
            format!("{manager}/ipamPools/p2"),
            format!("/subscriptions/{subscription}/resourceGroups/rg-a/providers/Microsoft.Network/%zz/%00"),
            format!("/subscriptions/{subscription}/resourceGroups/rg-a/providers/Microsoft.Network/virtualNetworks/{}", "v".repeat(300)),
            pool.clone(),
            manager.clone(),
        ];
        let bodies = [
            "", "null", "[]", "{", "\"x\"", "{\"properties\": 5}", "{\"location\": [], \"tags\": 3}",
            "{\"location\": \"x\", \"properties\": {\"addressSpace\": {\"ipamPoolPrefixAllocations\": [{}, null, 5]}, \"subnets\": [7, {\"name\": 1}]}}",
            "{\"location\": \"x\", \"properties\": {\"addressPrefixes\": [\"::/0\", \"0.0.0.0/0\", \"10.0.0.0/99\", 7], \"parentPoolName\": \"nope\"}}",
            "{\"location\": \"x\", \"properties\": {\"addressSpace\": {\"ipamPoolPrefixAllocations\": [{\"numberOfIpAddresses\": \"340282366920938463463374607431768211456\", \"pool\": {\"id\": \"/subscriptions/x\"}}]}}}",
            "{\"properties\": {\"numberOfIPAddressesToAllocate\": \"-1\", \"tenantId\": \"not-a-guid\", \"resourceId\": [], \"networkManagerId\": \"/x\", \"roleDefinitionId\": 5, \"principalId\": null}}",
        ];
        for path in &paths {
            for method in [Method::PUT, Method::PATCH, Method::POST, Method::GET, Method::DELETE] {
                for body in bodies {
                    let url = server.url(&format!("{path}?{NET}"));
                    let response = server.client.request(method.clone(), url).bearer_auth(&admin).header("content-type", "application/json").body(body).send().await.unwrap();
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap();
                    assert!(status < 500, "{method} {path} with {body}: {status} {text}");
                    if status >= 400 {
                        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
                        assert!(error["error"]["code"].is_string() && error["error"]["message"].is_string(), "{text}");
                    }
                }
            }
        }
    }
}

both_backends! {
    async fn deleting_a_resource_group_releases_what_its_vnets_hold(server: &TestServer) {
        let admin_a = token(server, "A", "admin").await;
        let pool = server.demo("A", "pool_id");
        let subscription = server.demo("A", "subscription_id");
        let group = format!("/subscriptions/{subscription}/resourceGroups/rg-temp");
        let created = call(server, Method::PUT, &format!("{group}?api-version=2024-11-01"), &admin_a, Some(&json!({"location": "westus"})), &[]).await;
        assert_eq!(created.status, 201);
        let vnet = format!("{group}/providers/Microsoft.Network/virtualNetworks/v?{NET}");
        assert_eq!(call(server, Method::PUT, &vnet, &admin_a, Some(&pool_body(&pool, "64")), &[]).await.status, 201);
        assert_eq!(associated(server, &admin_a, &pool).await.len(), 1);

        // rg-a holds the pool, which a VNet of rg-temp uses: deleting rg-a fails and keeps all.
        let refused = call(server, Method::DELETE, &format!("/subscriptions/{subscription}/resourceGroups/rg-a?api-version=2024-11-01"), &admin_a, None, &[]).await;
        assert_eq!(refused.status, 202);
        let location = refused.headers["location"].to_str().unwrap().to_owned();
        let outcome = call(server, Method::GET, &location, &admin_a, None, &[]).await;
        assert_eq!(outcome.status, 400, "{}", outcome.body);
        assert_eq!(outcome.code(), "BadRequest", "{}", outcome.body);
        assert_eq!(call(server, Method::GET, &format!("{pool}?{NET}"), &admin_a, None, &[]).await.status, 200, "nothing was deleted");

        // Deleting rg-temp deletes the VNet and gives its space back.
        let deleted = call(server, Method::DELETE, &format!("{group}?api-version=2024-11-01"), &admin_a, None, &[]).await;
        let location = deleted.headers["location"].to_str().unwrap().to_owned();
        assert_eq!(call(server, Method::GET, &location, &admin_a, None, &[]).await.status, 200);
        assert!(associated(server, &admin_a, &pool).await.is_empty());
        assert_eq!(call(server, Method::GET, &vnet, &admin_a, None, &[]).await.status, 404);
    }
}
