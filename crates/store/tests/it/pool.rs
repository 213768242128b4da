//! Pools, allocations and the ledger through the store, on both backends.

use expect_test::expect;
use ipam::plan::Placement;
use ipam::prefix::Prefix;
use ipam::request::{Request, parse_count};
use ipam::usage::Holder;
use store::error::StoreError;
use store::pool::{LedgerAction, NewPool, Owner, PoolId, PoolRecord};
use store::{Timestamp, WriteTx};

use crate::support::{both_backends, change};

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

fn new_pool(name: &str, parent: Option<PoolId>, prefixes: &[&str]) -> NewPool {
    NewPool {
        resource_key: format!("/nm/ipamPools/{name}"),
        name: name.to_owned(),
        scope_key: "/nm".to_owned(),
        parent,
        prefixes: prefixes.iter().map(|text| prefix(text)).collect(),
        placement: Placement::BestFit,
        max_depth: 7,
    }
}

fn create(
    tx: &mut WriteTx<'_>,
    name: &str,
    parent: Option<PoolId>,
    prefixes: &[&str],
) -> Result<PoolRecord, StoreError> {
    tx.pool_create(&new_pool(name, parent, prefixes), change(1))
}

fn count(text: &str) -> Request {
    Request::Count(parse_count(text).unwrap())
}

const VNET: Owner<'static> = Owner {
    id: "/subscriptions/b/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet",
    tenant: "tenant-b",
};

fn show(blocks: &[Prefix]) -> String {
    blocks.iter().map(|block| block.to_string()).collect::<Vec<_>>().join(" ")
}

both_backends! {
    fn usage_matches_the_contracts_get_pool_usage_example(test: &TestStore) {
        let summary = test.store.write_blocking(|tx| {
            let pool = create(tx, "TestPool", None, &["10.0.0.0/8", "192.0.0.0/8"])?;
            create(tx, "TestPool1", Some(pool.id()), &["10.0.2.0/26"])?;
            create(tx, "TestPool2", Some(pool.id()), &["10.0.3.0/26"])?;
            tx.pool_allocate(pool.id(), &Request::Prefix(prefix("10.0.0.0/24")), Holder::Reservation, VNET, change(2))?;
            let usage = tx.pool_usage(pool.id())?;
            Ok::<_, StoreError>(format!(
                "total {} allocated {} reserved {} available {}\nallocated: {}\nreserved: {}\navailable: {}\nchildren: {:?}",
                usage.total_number_of_ip_addresses(),
                usage.number_of_allocated_ip_addresses(),
                usage.number_of_reserved_ip_addresses(),
                usage.number_of_available_ip_addresses(),
                show(usage.allocated_address_prefixes()),
                show(usage.reserved_address_prefixes()),
                show(usage.available_address_prefixes()),
                usage.child_pools().iter().map(|child| child.child.clone()).collect::<Vec<_>>(),
            ))
        }).unwrap();
        expect![[r#"
            total 33554432 allocated 128 reserved 256 available 33554048
            allocated: 10.0.2.0/26 10.0.3.0/26
            reserved: 10.0.0.0/24
            available: 10.0.1.0/24 10.0.2.64/26 10.0.2.128/25 10.0.3.64/26 10.0.3.128/25 10.0.4.0/22 10.0.8.0/21 10.0.16.0/20 10.0.32.0/19 10.0.64.0/18 10.0.128.0/17 10.1.0.0/16 10.2.0.0/15 10.4.0.0/14 10.8.0.0/13 10.16.0.0/12 10.32.0.0/11 10.64.0.0/10 10.128.0.0/9 192.0.0.0/8
            children: ["/nm/ipampools/testpool1", "/nm/ipampools/testpool2"]"#]].assert_eq(&summary);
    }

    fn every_pools_space_agrees_with_its_usage(test: &TestStore) {
        let (root, child, v6) = test.store.write_blocking(|tx| {
            let root = create(tx, "Root", None, &["10.0.0.0/8", "192.0.0.0/8"])?;
            let child = create(tx, "Child", Some(root.id()), &["10.0.2.0/26"])?;
            let v6 = create(tx, "Six", None, &["fd00::/8"])?;
            tx.pool_allocate(root.id(), &Request::Prefix(prefix("10.0.0.0/24")), Holder::Reservation, VNET, change(2))?;
            tx.pool_allocate(root.id(), &count("100"), Holder::Resource, VNET, change(2))?;
            tx.pool_allocate(child.id(), &count("16"), Holder::StaticCidr, VNET, change(2))?;
            tx.pool_allocate(v6.id(), &count("18446744073709551616"), Holder::Resource, VNET, change(2))?;
            Ok::<_, StoreError>((root.id(), child.id(), v6.id()))
        }).unwrap();
        let spaces = test.store.read_blocking(|tx| tx.pools_space()).unwrap();
        assert_eq!(spaces.len(), 3);
        for (id, space) in [root, child, v6].into_iter().zip(&spaces) {
            let (usage, record) = test.store.read_blocking(|tx| Ok::<_, StoreError>((tx.pool_usage(id)?, tx.pool_get(id)?))).unwrap();
            assert_eq!(space.resource_key, record.resource_key());
            assert_eq!(space.size, usage.total_number_of_ip_addresses());
            assert_eq!(space.allocated, usage.number_of_allocated_ip_addresses());
            assert_eq!(space.reserved, usage.number_of_reserved_ip_addresses());
            assert_eq!(space.available, usage.number_of_available_ip_addresses());
            let largest = usage.available_address_prefixes().iter().map(Prefix::size).max().unwrap_or_default();
            assert_eq!(space.largest_free, largest, "{}", space.resource_key);
        }
        assert_eq!(spaces[0].reserved.to_string(), "256");
        assert_eq!(spaces[0].largest_free.to_string(), "16777216");
        assert_eq!(spaces[2].allocated.to_string(), "18446744073709551616");
    }

    fn the_audit_finds_orphans_and_pools_that_do_not_add_up(test: &TestStore) {
        let root = test.store.write_blocking(|tx| {
            let root = create(tx, "Root", None, &["10.0.0.0/16"])?;
            create(tx, "Child", Some(root.id()), &["10.0.64.0/18"])?;
            Ok::<_, StoreError>(root)
        }).unwrap();
        let audit = test.store.read_blocking(|tx| tx.audit()).unwrap();
        assert!(audit.is_clean(), "{audit:?}");
        // An allocation whose VNet document is not there (VNET has none in this store).
        test.store.write_blocking(|tx| tx.pool_allocate(root.id(), &count("16"), Holder::Resource, VNET, change(2))).unwrap();
        let audit = test.store.read_blocking(|tx| tx.audit()).unwrap();
        assert_eq!(audit.orphaned_allocations, vec![VNET.id.to_owned()]);
        assert!(audit.unbalanced_pools.is_empty() && audit.overlapping_blocks == 0, "{audit:?}");
        // Free space lost behind the store's back.
        test.tamper("DELETE FROM free_blocks WHERE len = 17");
        let audit = test.store.read_blocking(|tx| tx.audit()).unwrap();
        assert_eq!(audit.unbalanced_pools, vec!["/nm/ipampools/root".to_owned()]);
        assert!(!audit.is_clean());
    }

    fn a_count_of_100_is_three_blocks_and_release_merges_them_back(test: &TestStore) {
        let pool = test.store.write_blocking(|tx| create(tx, "p", None, &["10.0.0.0/16"])).unwrap();
        let allocation = test.store.write_blocking(|tx| tx.pool_allocate(pool.id(), &count("100"), Holder::Resource, VNET, change(2))).unwrap();
        assert_eq!(show(allocation.blocks()), "10.0.0.0/26 10.0.0.64/27 10.0.0.96/29");
        assert_eq!(allocation.owner_tenant(), "tenant-b");
        let listed = test.store.read_blocking(|tx| tx.allocations_of_owner(&VNET.id.to_uppercase())).unwrap();
        assert_eq!(listed, vec![allocation.clone()]);
        test.store.write_blocking(|tx| tx.allocation_release(allocation.id(), change(3))).unwrap();
        let usage = test.store.read_blocking(|tx| tx.pool_usage(pool.id())).unwrap();
        assert_eq!(show(usage.available_address_prefixes()), "10.0.0.0/16");
        assert!(test.store.read_blocking(|tx| tx.allocations_of_pool(pool.id())).unwrap().is_empty());
    }

    fn a_pool_locked_by_its_key_is_allocated_in_as_by_its_id(test: &TestStore) {
        let pool = test.store.write_blocking(|tx| create(tx, "p", None, &["10.0.0.0/16"])).unwrap();
        let (locked, unknown, allocation) = test.store.write_blocking(|tx| {
            let locked = tx.pool_lock_by_key("/NM/ipamPools/P")?.expect("the pool, by its key in any case");
            let unknown = tx.pool_lock_by_key("/nm/ipamPools/nope")?;
            let allocation = tx.pool_allocate_locked(&locked, &count("100"), Holder::Resource, VNET, change(2))?;
            Ok::<_, StoreError>((locked.record().clone(), unknown.is_none(), allocation))
        }).unwrap();
        assert_eq!(locked, pool);
        assert!(unknown);
        assert_eq!(show(allocation.blocks()), "10.0.0.0/26 10.0.0.64/27 10.0.0.96/29");
        let listed = test.store.read_blocking(|tx| tx.allocations_of_pool(pool.id())).unwrap();
        assert_eq!(listed, vec![allocation]);
    }

    fn blocks_allocated_to_go_with_the_next_write_are_written_whatever_comes_next(test: &TestStore) {
        use store::resource::{Precondition, ResourceWrite};
        let pool = test.store.write_blocking(|tx| create(tx, "p", None, &["10.0.0.0/24"])).unwrap();
        let doc = ResourceWrite { id: VNET.id, resource_type: "vnet", tenant_id: VNET.tenant, body: "{}" };
        let record = ResourceWrite { id: "/op/1", resource_type: "operation", tenant_id: "t", body: "{}" };
        let blocks = test.store.write_blocking(|tx| {
            let locked = tx.pool_lock_by_key("/nm/ipamPools/p")?.expect("the pool");
            // With the resource that holds them and its operation record (one statement on
            // PostgreSQL); then before a read, and before the commit.
            let first = tx.pool_allocate_blocks(&locked, &count("16"), Holder::Resource, VNET, change(2))?;
            tx.resource_put_over_creating(doc, None, &Precondition::None, Timestamp(2), Some(record))?;
            let second = tx.pool_allocate_blocks(&locked, &count("32"), Holder::Resource, VNET, change(2))?;
            let held = tx.allocations_of_owner(VNET.id)?;
            assert_eq!(held.len(), 2, "the read sees both allocations");
            let third = tx.pool_allocate_blocks(&locked, &count("64"), Holder::Resource, VNET, change(2))?;
            Ok::<_, StoreError>([first, second, third].concat())
        }).unwrap();
        assert_eq!(show(&blocks), "10.0.0.0/28 10.0.0.32/27 10.0.0.64/26");
        let held: Vec<Prefix> = test.store.read_blocking(|tx| tx.allocations_of_pool(pool.id())).unwrap().iter().flat_map(|a| a.blocks().to_vec()).collect();
        assert_eq!(show(&held), "10.0.0.0/28 10.0.0.32/27 10.0.0.64/26");
        assert!(test.store.read_blocking(|tx| tx.resource_get("/op/1")).unwrap().is_some());
        // A transaction that fails after holding an allocation back writes none of it.
        let failed = test.store.write_blocking(|tx| {
            let locked = tx.pool_lock_by_key("/nm/ipamPools/p")?.expect("the pool");
            tx.pool_allocate_blocks(&locked, &count("16"), Holder::Resource, VNET, change(3))?;
            Err::<(), _>(StoreError::NotFound { what: "test", id: String::new() })
        });
        assert!(failed.is_err());
        assert_eq!(test.store.read_blocking(|tx| tx.allocations_of_pool(pool.id())).unwrap().len(), 3);
        assert_eq!(test.store.read_blocking(|tx| tx.audit_overlapping_blocks()).unwrap(), 0);
    }

    fn a_pool_changed_or_deleted_in_a_transaction_is_seen_so_by_its_later_locks(test: &TestStore) {
        let root = test.store.write_blocking(|tx| create(tx, "root", None, &["10.0.0.0/24"])).unwrap();
        let (grown, allocation, gone) = test.store.write_blocking(|tx| {
            // Locked (and kept by the transaction), then grown: the next lock reads it again.
            tx.pool_lock_by_key("/nm/ipamPools/root")?.expect("the pool");
            tx.pool_set_prefixes(root.id(), vec![prefix("10.0.0.0/24"), prefix("10.0.1.0/24")], change(2))?;
            let grown = tx.pool_lock_by_key("/nm/ipamPools/root")?.expect("the pool");
            let allocation = tx.pool_allocate_locked(&grown, &count("512"), Holder::Resource, VNET, change(2))?;
            tx.allocation_release(allocation.id(), change(3))?;
            tx.pool_delete(root.id(), change(4))?;
            let gone = tx.pool_lock_by_key("/nm/ipamPools/root")?.is_none();
            Ok::<_, StoreError>((grown.record().clone(), allocation, gone))
        }).unwrap();
        assert_eq!(show(grown.prefixes()), "10.0.0.0/24 10.0.1.0/24");
        assert_eq!(show(allocation.blocks()), "10.0.0.0/23");
        assert!(gone, "a deleted pool is not found by a later lock of the transaction");
    }

    fn an_explicit_prefix_must_be_inside_and_free(test: &TestStore) {
        let pool = test.store.write_blocking(|tx| create(tx, "p", None, &["10.0.0.0/24"])).unwrap();
        let allocate = |text: &str| test.store.write_blocking(|tx| tx.pool_allocate(pool.id(), &Request::Prefix(prefix(text)), Holder::StaticCidr, VNET, change(2)));
        allocate("10.0.0.0/26").unwrap();
        expect![[r#"10.0.0.32/27 in pool "p" is not free: it overlaps space that is allocated, reserved or given to a child pool"#]]
            .assert_eq(&allocate("10.0.0.32/27").unwrap_err().to_string());
        expect![[r#"10.0.1.0/27 is not inside the address space of pool "p""#]].assert_eq(&allocate("10.0.1.0/27").unwrap_err().to_string());
        expect![[r#"fd00::/64 is not inside the address space of pool "p""#]].assert_eq(&allocate("fd00::/64").unwrap_err().to_string());
    }

    fn an_exhausted_pool_names_the_request_and_its_largest_free_block_and_keeps_everything(test: &TestStore) {
        let pool = test.store.write_blocking(|tx| create(tx, "small", None, &["10.0.0.0/24"])).unwrap();
        test.store.write_blocking(|tx| tx.pool_allocate(pool.id(), &count("128"), Holder::Resource, VNET, change(2))).unwrap();
        let error = test.store.write_blocking(|tx| tx.pool_allocate(pool.id(), &count("144"), Holder::Resource, VNET, change(3))).unwrap_err();
        expect![[r#"pool "small" cannot provide 144 IPv4 addresses: the largest free block is 10.0.0.128/25 (128 addresses)"#]].assert_eq(&error.to_string());
        let usage = test.store.read_blocking(|tx| tx.pool_usage(pool.id())).unwrap();
        assert_eq!(show(usage.available_address_prefixes()), "10.0.0.128/25");
        assert_eq!(test.store.read_blocking(|tx| tx.ledger_of_tree(pool.tree_id())).unwrap().len(), 1);
    }

    fn child_pools_are_carved_from_the_parent_and_never_overlap(test: &TestStore) {
        let root = test.store.write_blocking(|tx| create(tx, "root", None, &["10.0.0.0/16"])).unwrap();
        let child = test.store.write_blocking(|tx| create(tx, "a", Some(root.id()), &["10.0.0.0/24"])).unwrap();
        assert_eq!((child.depth(), child.tree_id()), (2, root.tree_id()));
        let error = test.store.write_blocking(|tx| create(tx, "b", Some(root.id()), &["10.0.1.0/24", "10.0.0.128/25"])).unwrap_err();
        expect![[r#"10.0.0.128/25 in pool "root" is not free: it overlaps space that is allocated, reserved or given to a child pool"#]].assert_eq(&error.to_string());
        // The refused pool took nothing.
        test.store.write_blocking(|tx| create(tx, "c", Some(root.id()), &["10.0.1.0/24"])).unwrap();
        let error = test.store.write_blocking(|tx| create(tx, "a", Some(root.id()), &["10.0.9.0/24"])).unwrap_err();
        expect!["pool /nm/ipamPools/a already exists"].assert_eq(&error.to_string());
        // An allocation in the child comes from the child's space.
        let allocation = test.store.write_blocking(|tx| tx.pool_allocate(child.id(), &count("8"), Holder::Resource, VNET, change(2))).unwrap();
        assert_eq!(show(allocation.blocks()), "10.0.0.0/29");
        let usage = test.store.read_blocking(|tx| tx.pool_usage(root.id())).unwrap();
        assert_eq!(show(usage.allocated_address_prefixes()), "10.0.0.0/24 10.0.1.0/24");
    }

    fn pools_nest_at_most_max_depth_levels(test: &TestStore) {
        let error = test.store.write_blocking(|tx| {
            let mut parent = create(tx, "level1", None, &["10.0.0.0/8"])?;
            for level in 2..=7u8 {
                let child_prefix = format!("10.0.0.0/{}", 8 + level);
                parent = create(tx, &format!("level{level}"), Some(parent.id()), &[&child_prefix])?;
            }
            create(tx, "level8", Some(parent.id()), &["10.0.0.0/24"])
        }).unwrap_err();
        expect![[r#"a pool may be at most 7 levels deep; pool "level7" is already at level 7"#]].assert_eq(&error.to_string());
    }

    fn root_pools_of_one_scope_never_overlap(test: &TestStore) {
        test.store.write_blocking(|tx| create(tx, "a", None, &["10.0.0.0/16"])).unwrap();
        let error = test.store.write_blocking(|tx| create(tx, "b", None, &["10.0.3.0/24"])).unwrap_err();
        expect!["the prefixes 10.0.0.0/16 and 10.0.3.0/24 overlap"].assert_eq(&error.to_string());
        let error = test.store.write_blocking(|tx| create(tx, "b", None, &["10.0.0.0/8"])).unwrap_err();
        expect!["the prefixes 10.0.0.0/16 and 10.0.0.0/8 overlap"].assert_eq(&error.to_string());
        // Another network manager may use the same space.
        let other_scope = NewPool { scope_key: "/other-nm".to_owned(), ..new_pool("b", None, &["10.0.0.0/16"]) };
        test.store.write_blocking(|tx| tx.pool_create(&other_scope, change(1))).unwrap();
    }

    fn a_pool_keeps_prefixes_in_use_and_can_grow(test: &TestStore) {
        let root = test.store.write_blocking(|tx| create(tx, "root", None, &["10.0.0.0/16", "10.1.0.0/16"])).unwrap();
        test.store.write_blocking(|tx| tx.pool_allocate(root.id(), &Request::Prefix(prefix("10.1.5.0/24")), Holder::Resource, VNET, change(2))).unwrap();
        let error = test.store.write_blocking(|tx| tx.pool_set_prefixes(root.id(), vec![prefix("10.0.0.0/16")], change(3))).unwrap_err();
        expect![[r#"pool "root" cannot drop 10.1.0.0/16: part of it is allocated, reserved or given to a child pool"#]].assert_eq(&error.to_string());
        let grown = test.store.write_blocking(|tx| tx.pool_set_prefixes(root.id(), vec![prefix("10.1.0.0/16"), prefix("10.2.0.0/16")], change(3))).unwrap();
        assert_eq!(show(grown.prefixes()), "10.1.0.0/16 10.2.0.0/16");
        let usage = test.store.read_blocking(|tx| tx.pool_usage(root.id())).unwrap();
        assert_eq!(usage.total_number_of_ip_addresses().to_string(), "131072");
        // The dropped /16 is free for another root of the scope now.
        test.store.write_blocking(|tx| create(tx, "other", None, &["10.0.0.0/16"])).unwrap();
    }

    fn a_child_can_replace_its_prefix_with_the_one_around_it(test: &TestStore) {
        let root = test.store.write_blocking(|tx| create(tx, "root", None, &["10.0.0.0/16"])).unwrap();
        let child = test.store.write_blocking(|tx| create(tx, "child", Some(root.id()), &["10.0.0.0/24"])).unwrap();
        test.store.write_blocking(|tx| tx.pool_set_prefixes(child.id(), vec![prefix("10.0.0.0/23")], change(2))).unwrap();
        let usage = test.store.read_blocking(|tx| tx.pool_usage(root.id())).unwrap();
        assert_eq!(show(usage.allocated_address_prefixes()), "10.0.0.0/23");
    }

    fn deleting_a_pool_needs_it_empty_and_returns_its_space(test: &TestStore) {
        let root = test.store.write_blocking(|tx| create(tx, "root", None, &["10.0.0.0/16"])).unwrap();
        let child = test.store.write_blocking(|tx| create(tx, "child", Some(root.id()), &["10.0.0.0/24"])).unwrap();
        let error = test.store.write_blocking(|tx| tx.pool_delete(root.id(), change(2))).unwrap_err();
        expect![[r#"pool "root" still has child pools"#]].assert_eq(&error.to_string());
        let allocation = test.store.write_blocking(|tx| tx.pool_allocate(child.id(), &count("8"), Holder::Resource, VNET, change(2))).unwrap();
        let error = test.store.write_blocking(|tx| tx.pool_delete(child.id(), change(2))).unwrap_err();
        expect![[r#"pool "child" still has allocations or static CIDRs"#]].assert_eq(&error.to_string());
        test.store.write_blocking(|tx| tx.allocation_release(allocation.id(), change(3))).unwrap();
        test.store.write_blocking(|tx| tx.pool_delete(child.id(), change(4))).unwrap();
        let usage = test.store.read_blocking(|tx| tx.pool_usage(root.id())).unwrap();
        assert_eq!(show(usage.available_address_prefixes()), "10.0.0.0/16");
        test.store.write_blocking(|tx| tx.pool_delete(root.id(), change(5))).unwrap();
        assert!(matches!(test.store.read_blocking(|tx| tx.pool_get(root.id())), Err(StoreError::NotFound { .. })));
        test.store.write_blocking(|tx| create(tx, "again", None, &["10.0.0.0/8"])).unwrap();
    }

    fn releasing_twice_is_not_found(test: &TestStore) {
        let pool = test.store.write_blocking(|tx| create(tx, "p", None, &["10.0.0.0/24"])).unwrap();
        let allocation = test.store.write_blocking(|tx| tx.pool_allocate(pool.id(), &count("8"), Holder::Resource, VNET, change(2))).unwrap();
        test.store.write_blocking(|tx| tx.allocation_release(allocation.id(), change(3))).unwrap();
        let error = test.store.write_blocking(|tx| tx.allocation_release(allocation.id(), change(4))).unwrap_err();
        assert!(matches!(error, StoreError::NotFound { what: "allocation", .. }), "{error}");
    }

    fn the_ledger_says_who_held_a_prefix_at_a_time(test: &TestStore) {
        let pool = test.store.write_blocking(|tx| create(tx, "p", None, &["10.0.0.0/24"])).unwrap();
        let first = test.store.write_blocking(|tx| tx.pool_allocate(pool.id(), &count("64"), Holder::Resource, VNET, change(100))).unwrap();
        test.store.write_blocking(|tx| tx.allocation_release(first.id(), change(200))).unwrap();
        let other = Owner { id: "/subscriptions/c/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/other", tenant: "tenant-c" };
        test.store.write_blocking(|tx| tx.pool_allocate(pool.id(), &count("32"), Holder::Resource, other, change(300))).unwrap();
        let holders_at = |at: i64| {
            test.store
                .read_blocking(|tx| tx.ledger_holders_at(pool.tree_id(), prefix("10.0.0.0/27"), Timestamp(at)))
                .unwrap()
                .into_iter()
                .map(|entry| format!("{} {} {}", entry.prefix, entry.owner_tenant, entry.at.0))
                .collect::<Vec<_>>()
        };
        assert_eq!(holders_at(50), Vec::<String>::new());
        assert_eq!(holders_at(150), vec!["10.0.0.0/26 tenant-b 100"]);
        assert_eq!(holders_at(250), Vec::<String>::new());
        assert_eq!(holders_at(350), vec!["10.0.0.0/27 tenant-c 300"]);
        let ledger = test.store.read_blocking(|tx| tx.ledger_of_tree(pool.tree_id())).unwrap();
        let actions: Vec<LedgerAction> = ledger.iter().map(|entry| entry.action).collect();
        assert_eq!(actions, vec![LedgerAction::Allocate, LedgerAction::Release, LedgerAction::Allocate]);
        assert!(ledger.iter().all(|entry| entry.request_id == "test-request"));
    }
}
