//! The cache of what authorization reads (`store::cache`): a request keeps the view it started
//! with, and the next request sees every change to a cached row, whoever made it. Here the
//! changes are SQL from outside the store, as another replica or an operator's tool would write.

use std::sync::Arc;

use ipam::plan::Placement;
use ipam::prefix::Prefix;
use store::authorization::{RoleAssignmentRecord, SubscriptionRecord};
use store::cache::{CACHED_TYPES, Ticket};
use store::error::StoreError;
use store::identity::{ServicePrincipalRecord, TenantRecord, UserRecord};
use store::pool::NewPool;
use store::resource::{Precondition, ResourceWrite};
use store::{StoreConfig, Timestamp};

use crate::support::{TestStore, both_backends, change, postgres_url};

const VNET_TYPE: &str = "microsoft.network/virtualnetworks";
const POOL_KEY: &str = "/subscriptions/s1/rg/nm/ipampools/p1";

/// An id of a resource of `resource_type` (the `n`th).
fn id_of(resource_type: &str, n: usize) -> String {
    format!("/subscriptions/s1/{resource_type}/r{n}")
}

/// Runs `sql` on the store's database, outside the store.
fn outside(test: &TestStore, sql: &str) {
    match &test.config {
        StoreConfig::Sqlite { data_dir, .. } => {
            let connection = rusqlite::Connection::open(data_dir.join("crosspool.db")).unwrap();
            connection.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            connection.execute_batch(sql).unwrap();
        }
        StoreConfig::Postgres { schema, .. } => {
            let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).unwrap();
            let schema = schema.as_deref().unwrap();
            client.batch_execute(&format!("SET search_path TO {schema}, public; {sql}")).unwrap();
        }
    }
}

/// Everything the cache may answer, read in one request's read transaction, as text.
fn seen(test: &TestStore, ticket: &Arc<Ticket>) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime
        .block_on(test.store.read_cached(ticket, |tx| {
            let mut seen = vec![
                format!("{:?}", tx.subscription_get("s1")?),
                format!("{:?}", tx.role_assignments_for_principal("p1")?),
                format!("{:?}", tx.pool_by_key(POOL_KEY)?),
                format!("{:?}", tx.principal_status("u1")?),
                format!("{:?}", tx.principal_status("sp1")?),
                format!("{:?}", tx.principal_status("sp2")?),
            ];
            for resource_type in CACHED_TYPES.iter().chain([&VNET_TYPE]) {
                seen.push(format!(
                    "{:?}",
                    tx.resource_of_type(resource_type, &id_of(resource_type, 1))?
                ));
                let list = tx.resources_list(resource_type, "/subscriptions/s1/", None, 10)?;
                seen.push(format!("{list:?}"));
            }
            Ok::<_, StoreError>(seen.join("\n"))
        }))
        .unwrap()
}

/// A subscription, an assignment, a pool and one resource of each cached type and a VNet.
fn populate(test: &TestStore) {
    test.store
        .write_blocking(|tx| {
            let tenant = TenantRecord {
                id: "t1".to_owned(),
                domain: "t1.example".to_owned(),
                display_name: "t1".to_owned(),
            };
            tx.tenant_create(&tenant, Timestamp(0))?;
            let subscription = SubscriptionRecord {
                id: "s1".to_owned(),
                tenant_id: "t1".to_owned(),
                display_name: "one".to_owned(),
                state: "Enabled".to_owned(),
            };
            tx.subscription_create(&subscription, Timestamp(0))?;
            tx.user_create(
                &UserRecord {
                    id: "u1".to_owned(),
                    tenant_id: "t1".to_owned(),
                    upn: "u1@t1.example".to_owned(),
                    display_name: "u1".to_owned(),
                    password_hash: "x".to_owned(),
                    is_admin: false,
                    account_enabled: true,
                    tokens_valid_after: 0,
                },
                Timestamp(0),
            )?;
            tx.service_principal_create(
                &ServicePrincipalRecord {
                    id: "sp1".to_owned(),
                    tenant_id: "t1".to_owned(),
                    app_id: "app1".to_owned(),
                    display_name: "sp1".to_owned(),
                },
                Timestamp(0),
            )?;
            tx.role_assignment_create(&RoleAssignmentRecord {
                name: "a1".to_owned(),
                scope: "/subscriptions/s1".to_owned(),
                role_definition_id: "role".to_owned(),
                principal_id: "p1".to_owned(),
                principal_type: "ServicePrincipal".to_owned(),
                tenant_id: "t1".to_owned(),
                created_at: Timestamp(0),
                created_by: None,
            })?;
            let pool = NewPool {
                resource_key: POOL_KEY.to_owned(),
                name: "p1".to_owned(),
                scope_key: "/subscriptions/s1/rg/nm".to_owned(),
                parent: None,
                prefixes: vec![Prefix::parse("10.0.0.0/16").unwrap()],
                placement: Placement::BestFit,
                max_depth: 7,
            };
            tx.pool_create(&pool, change(0))?;
            for resource_type in CACHED_TYPES.iter().chain([&VNET_TYPE]) {
                let id = id_of(resource_type, 1);
                let write = ResourceWrite { id: &id, resource_type, tenant_id: "t1", body: "{}" };
                tx.resource_put(write, &Precondition::None, Timestamp(0))?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

both_backends! {
    fn a_request_keeps_its_view_and_the_next_one_sees_every_change(test: &TestStore) {
        populate(test);
        let mut changes = vec![
            "UPDATE subscriptions SET display_name = 'changed'".to_owned(),
            "INSERT INTO role_assignments (name, scope_key, scope, subscription_id, role_definition_id, principal_id, principal_type, tenant_id, created_at, created_by) \
             SELECT 'a2', scope_key, scope, subscription_id, role_definition_id, principal_id, principal_type, tenant_id, created_at, created_by FROM role_assignments"
                .to_owned(),
            "UPDATE role_assignments SET role_definition_id = 'changed'".to_owned(),
            "DELETE FROM role_assignments".to_owned(),
            "UPDATE pools SET name = 'changed'".to_owned(),
            "UPDATE pool_prefixes SET len = 17".to_owned(),
            "DELETE FROM pool_prefixes".to_owned(),
            "INSERT INTO pool_prefixes (pool_id, addr, len) SELECT pool_id, addr, len FROM root_prefixes"
                .to_owned(),
            // ARM's check that a token's principal may still use it (issue 19, item 12).
            "UPDATE users SET account_enabled = 0".to_owned(),
            "UPDATE users SET tokens_valid_after = 5".to_owned(),
            "DELETE FROM users".to_owned(),
            "INSERT INTO service_principals (id, tenant_id, app_id, display_name, created_at) VALUES ('sp2', 't1', 'app2', 'sp2', 0)".to_owned(),
            "DELETE FROM service_principals WHERE id = 'sp1'".to_owned(),
        ];
        for resource_type in CACHED_TYPES {
            let (first, second) = (id_of(resource_type, 1), id_of(resource_type, 2));
            changes.push(format!("UPDATE resources SET body = '{{\"changed\":1}}' WHERE id_key = '{first}'"));
            changes.push(format!(
                "INSERT INTO resources (id_key, id, resource_type, tenant_id, body, etag, created_at, updated_at) \
                 VALUES ('{second}', '{second}', '{resource_type}', 't1', '{{}}', 'e', 0, 0)"
            ));
            changes.push(format!("DELETE FROM resources WHERE id_key = '{first}'"));
        }
        for sql in &changes {
            let ticket = Arc::new(Ticket::default());
            let before = seen(test, &ticket);
            outside(test, sql);
            assert_eq!(seen(test, &ticket), before, "a request keeps its view across `{sql}`");
            let after = seen(test, &Arc::new(Ticket::default()));
            assert_ne!(after, before, "the next request sees `{sql}`");
        }
        // Virtual networks change on every VNet write and are never cached.
        let ticket = Arc::new(Ticket::default());
        let before = seen(test, &ticket);
        outside(test, &format!("UPDATE resources SET body = '{{\"changed\":1}}' WHERE id_key = '{}'", id_of(VNET_TYPE, 1)));
        assert_ne!(seen(test, &ticket), before);
    }

    fn a_request_reads_its_own_writes(test: &TestStore) {
        populate(test);
        let ticket = Arc::new(Ticket::default());
        let before = seen(test, &ticket);
        assert!(before.contains("a1"));
        test.store.write_blocking(|tx| tx.role_assignment_delete("a1")).unwrap();
        assert!(!seen(test, &ticket).contains("\"a1\""), "the deleted assignment is gone");
    }
}
