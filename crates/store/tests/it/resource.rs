//! Resource documents and their etags, on both backends.

use store::Timestamp;
use store::error::StoreError;
use store::resource::{Precondition, ResourceWrite};

use crate::support::both_backends;

fn vnet(id: &str, body: &str) -> ResourceWrite<'static> {
    let id: &'static str = Box::leak(id.to_owned().into_boxed_str());
    let body: &'static str = Box::leak(body.to_owned().into_boxed_str());
    ResourceWrite {
        id,
        resource_type: "Microsoft.Network/virtualNetworks",
        tenant_id: "tenant-b",
        body,
    }
}

const ID: &str =
    "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/VNet1";

both_backends! {
    fn every_write_changes_the_etag_and_ids_keep_their_casing(test: &TestStore) {
        let (created, was_created) = test.store.write_blocking(|tx| tx.resource_put(vnet(ID, "{}"), &Precondition::None, Timestamp(1))).unwrap();
        assert!(was_created);
        let (updated, was_created) = test.store.write_blocking(|tx| tx.resource_put(vnet(ID, "{}"), &Precondition::None, Timestamp(1))).unwrap();
        assert!(!was_created);
        assert_ne!(created.etag, updated.etag);
        let fetched = test.store.read_blocking(|tx| tx.resource_get(&ID.to_lowercase())).unwrap().unwrap();
        assert_eq!((fetched.id.as_str(), fetched.etag.as_str(), fetched.created_at), (ID, updated.etag.as_str(), Timestamp(1)));
    }

    fn a_refused_create_only_write_leaves_its_transaction_usable(test: &TestStore) {
        test.store.write_blocking(|tx| tx.resource_put(vnet(ID, "{\"v\":1}"), &Precondition::None, Timestamp(1))).unwrap();
        // The same id in other letter case is the same resource. On PostgreSQL a failed
        // statement would abort the transaction; the refusal must not.
        let other_case = ID.to_uppercase();
        let (refused, written) = test.store.write_blocking(|tx| {
            let refused = tx.resource_put(vnet(&other_case, "{\"v\":2}"), &Precondition::Absent, Timestamp(2));
            let written = tx.resource_put(vnet(&format!("{ID}b"), "{}"), &Precondition::None, Timestamp(2))?;
            Ok::<_, StoreError>((refused, written))
        }).unwrap();
        assert!(matches!(refused, Err(StoreError::AlreadyExists { .. })), "{refused:?}");
        assert!(written.1);
        let stored = test.store.read_blocking(|tx| tx.resource_get(ID)).unwrap().unwrap();
        assert_eq!(stored.body, "{\"v\":1}");
    }

    fn a_write_creates_its_operation_record_with_it_or_fails_whole(test: &TestStore) {
        let record = |id: &'static str| ResourceWrite { id, resource_type: "operation", tenant_id: "tenant-b", body: "{\"status\":\"Succeeded\"}" };
        let put = |body: &str, operation: &'static str| {
            let body = body.to_owned();
            test.store.write_blocking(move |tx| {
                let existing = tx.resource_get_locked(ID)?;
                tx.resource_put_over_creating(vnet(ID, &body), existing, &Precondition::None, Timestamp(1), Some(record(operation)))
            })
        };
        assert!(put("{\"v\":1}", "/op/1").unwrap().1, "created");
        assert!(!put("{\"v\":2}", "/op/2").unwrap().1, "written over");
        let refused = put("{\"v\":3}", "/op/2").unwrap_err();
        assert!(matches!(refused, StoreError::AlreadyExists { .. }), "{refused:?}");
        let stored = |id: &str| test.store.read_blocking(|tx| tx.resource_get(id)).unwrap();
        assert_eq!(stored(ID).unwrap().body, "{\"v\":2}", "a refused record fails the write");
        assert_eq!(stored("/op/1").unwrap().body, "{\"status\":\"Succeeded\"}");
        assert!(stored("/op/2").is_some());
    }

    fn if_match_and_if_none_match_are_enforced(test: &TestStore) {
        let (created, _) = test.store.write_blocking(|tx| tx.resource_put(vnet(ID, "{\"v\":1}"), &Precondition::Absent, Timestamp(1))).unwrap();
        let again = test.store.write_blocking(|tx| tx.resource_put(vnet(ID, "{}"), &Precondition::Absent, Timestamp(2)));
        assert!(matches!(again, Err(StoreError::AlreadyExists { .. })));
        let stale = Precondition::IfMatch("\"stale\"".to_owned());
        let refused = test.store.write_blocking(|tx| tx.resource_put(vnet(ID, "{\"v\":2}"), &stale, Timestamp(2)));
        assert!(matches!(refused, Err(StoreError::EtagMismatch { .. })));
        let current = Precondition::IfMatch(created.etag.clone());
        test.store.write_blocking(|tx| tx.resource_put(vnet(ID, "{\"v\":2}"), &current, Timestamp(2))).unwrap();
        // The refused write changed nothing; the accepted one did.
        let stored = test.store.read_blocking(|tx| tx.resource_get(ID)).unwrap().unwrap();
        assert_eq!(stored.body, "{\"v\":2}");
        let refused = test.store.write_blocking(|tx| tx.resource_delete(ID, &current));
        assert!(matches!(refused, Err(StoreError::EtagMismatch { .. })));
        let deleted = test.store.write_blocking(|tx| tx.resource_delete(ID, &Precondition::Exists)).unwrap();
        assert!(deleted.is_some());
        let missing = test.store.write_blocking(|tx| tx.resource_delete(ID, &Precondition::Exists));
        assert!(matches!(missing, Err(StoreError::NotFound { .. })));
    }

    fn lists_page_by_id_and_stay_inside_the_prefix(test: &TestStore) {
        let prefix = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/";
        test.store.write_blocking(|tx| {
            for idx in 0..5 {
                tx.resource_put(vnet(&format!("{prefix}vnet{idx}"), "{}"), &Precondition::None, Timestamp(1))?;
            }
            tx.resource_put(vnet("/subscriptions/S/resourceGroups/RG2/providers/Microsoft.Network/virtualNetworks/x", "{}"), &Precondition::None, Timestamp(1))
        }).unwrap();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let after_now = after.clone();
            let page = test.store.read_blocking(move |tx| tx.resources_list("microsoft.network/virtualnetworks", &prefix.to_uppercase(), after_now.as_deref(), 2)).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|resource| resource.id.clone());
            seen.extend(page.into_iter().map(|resource| resource.id.rsplit('/').next().unwrap().to_owned()));
        }
        assert_eq!(seen, vec!["vnet0", "vnet1", "vnet2", "vnet3", "vnet4"]);
    }
}
