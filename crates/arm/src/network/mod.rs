//! `Microsoft.Network`: network managers, IPAM pools and their static CIDRs, the two halves of a
//! cross-tenant connection, virtual networks and subnets, and the operation-status URLs their
//! long-running operations name.
//!
//! Each resource is a JSON document in the store (`store::resource`); a pool is also a pool of
//! the store's allocator, keyed by its lower-cased id, and a VNet's or static CIDR's space is an
//! allocation owned by its id. Every change to both happens in one transaction.
//!
//! This file only routes (`ROUTES`); what the resources share is in `docs`.

mod connections;
pub(crate) mod docs;
pub(crate) mod linked;
pub(crate) mod managers;
mod pools;
mod static_cidrs;
mod vnets;

use axum::http::Method;
use axum::response::Response;

use self::docs::{API_VERSIONS, action};
use crate::error::{ArmError, ErrorCode};
use crate::operation;
use crate::path::ResourceRef;
use crate::request::Ctx;

/// Where a route's path sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Under `/subscriptions/{s}/resourceGroups/{rg}`.
    Group,
    /// Directly under `/subscriptions/{s}`.
    Subscription,
    /// Either.
    Any,
}

/// What a route needs of the caller before anything is read, so that a caller without rights
/// learns nothing of what exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The method's action on the resource the path names (`action(types, method)`).
    Item,
    /// This action on the resource the path names (a POST action).
    Action(&'static str),
    /// A list: this read action at the path's scope or on something below it; the list then
    /// shows only what the caller may read.
    List(&'static str),
    /// A long-running operation's status: only the principal that started it (the handler
    /// checks, answering 404 to anyone else).
    Starter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    ManagerList,
    Manager,
    PoolList,
    Pool,
    PoolUsage,
    PoolAssociated,
    StaticCidrList,
    StaticCidr,
    ScopeConnectionList,
    ScopeConnection,
    ManagerConnectionList,
    ManagerConnection,
    VnetList,
    Vnet,
    SubnetList,
    Subnet,
    OperationStatus,
    OperationResult,
    IpamOperationResult,
}

/// One `Microsoft.Network` route: its place, the types after the namespace (one more than the
/// names for a collection or an action), the methods it answers and what it needs.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub place: Place,
    pub types: &'static [&'static str],
    pub names: usize,
    pub methods: &'static [Method],
    pub access: Access,
    handler: Handler,
}

const READ: &[Method] = &[Method::GET];
const CRUD: &[Method] = &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE];
const CRD: &[Method] = &[Method::GET, Method::PUT, Method::DELETE];

/// Every `Microsoft.Network` route this server serves. The router is this table: a route that
/// is not here is not served, and the authorization coverage test has a row for each.
pub const ROUTES: &[Route] = &[
    Route {
        place: Place::Any,
        types: &["networkManagers"],
        names: 0,
        methods: READ,
        access: Access::List("Microsoft.Network/networkManagers/read"),
        handler: Handler::ManagerList,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers"],
        names: 1,
        methods: CRUD,
        access: Access::Item,
        handler: Handler::Manager,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers", "ipamPools"],
        names: 1,
        methods: READ,
        access: Access::List("Microsoft.Network/networkManagers/ipamPools/read"),
        handler: Handler::PoolList,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers", "ipamPools"],
        names: 2,
        methods: CRUD,
        access: Access::Item,
        handler: Handler::Pool,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers", "ipamPools", "getPoolUsage"],
        names: 2,
        methods: &[Method::POST],
        access: Access::Action("Microsoft.Network/networkManagers/ipamPools/getPoolUsage/action"),
        handler: Handler::PoolUsage,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers", "ipamPools", "listAssociatedResources"],
        names: 2,
        methods: &[Method::POST, Method::GET],
        access: Access::Action(
            "Microsoft.Network/networkManagers/ipamPools/listAssociatedResources/action",
        ),
        handler: Handler::PoolAssociated,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers", "ipamPools", "staticCidrs"],
        names: 2,
        methods: READ,
        access: Access::List("Microsoft.Network/networkManagers/ipamPools/staticCidrs/read"),
        handler: Handler::StaticCidrList,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers", "ipamPools", "staticCidrs"],
        names: 3,
        methods: CRD,
        access: Access::Item,
        handler: Handler::StaticCidr,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers", "scopeConnections"],
        names: 1,
        methods: READ,
        access: Access::List("Microsoft.Network/networkManagers/scopeConnections/read"),
        handler: Handler::ScopeConnectionList,
    },
    Route {
        place: Place::Group,
        types: &["networkManagers", "scopeConnections"],
        names: 2,
        methods: CRD,
        access: Access::Item,
        handler: Handler::ScopeConnection,
    },
    Route {
        place: Place::Subscription,
        types: &["networkManagerConnections"],
        names: 0,
        methods: READ,
        access: Access::List("Microsoft.Network/networkManagerConnections/read"),
        handler: Handler::ManagerConnectionList,
    },
    Route {
        place: Place::Subscription,
        types: &["networkManagerConnections"],
        names: 1,
        methods: CRD,
        access: Access::Item,
        handler: Handler::ManagerConnection,
    },
    Route {
        place: Place::Any,
        types: &["virtualNetworks"],
        names: 0,
        methods: READ,
        access: Access::List("Microsoft.Network/virtualNetworks/read"),
        handler: Handler::VnetList,
    },
    Route {
        place: Place::Group,
        types: &["virtualNetworks"],
        names: 1,
        methods: CRUD,
        access: Access::Item,
        handler: Handler::Vnet,
    },
    Route {
        place: Place::Group,
        types: &["virtualNetworks", "subnets"],
        names: 1,
        methods: READ,
        access: Access::Action("Microsoft.Network/virtualNetworks/subnets/read"),
        handler: Handler::SubnetList,
    },
    Route {
        place: Place::Group,
        types: &["virtualNetworks", "subnets"],
        names: 2,
        methods: CRD,
        access: Access::Item,
        handler: Handler::Subnet,
    },
    Route {
        place: Place::Any,
        types: &["locations", "operations"],
        names: 2,
        methods: READ,
        access: Access::Starter,
        handler: Handler::OperationStatus,
    },
    Route {
        place: Place::Any,
        types: &["locations", "ipamPoolOperations"],
        names: 2,
        methods: READ,
        access: Access::Starter,
        handler: Handler::OperationStatus,
    },
    Route {
        place: Place::Any,
        types: &["locations", "operationResults"],
        names: 2,
        methods: READ,
        access: Access::Starter,
        handler: Handler::OperationResult,
    },
    // The IPAM provider answers its Location with the status body (CONTRACT 2.3).
    Route {
        place: Place::Any,
        types: &["locations", "ipamPoolOperationResults"],
        names: 2,
        methods: READ,
        access: Access::Starter,
        handler: Handler::IpamOperationResult,
    },
];

impl Route {
    /// The route's path, with `{name}` placeholders: `{subscriptionId}`, `{resourceGroupName}`
    /// where it sits in a group, then one `{…Name}` per name.
    pub fn template(&self, in_group: bool) -> String {
        let mut path = "/subscriptions/{subscriptionId}".to_owned();
        if in_group {
            path.push_str("/resourceGroups/{resourceGroupName}");
        }
        path.push_str("/providers/Microsoft.Network");
        for (at, kind) in self.types.iter().enumerate() {
            path.push('/');
            path.push_str(kind);
            if at < self.names {
                // `networkManagers` → `{networkManagerName}`.
                path.push_str(&format!("/{{{}Name}}", kind.strip_suffix('s').unwrap_or(kind)));
            }
        }
        path
    }

    /// The templates of this route: one per place it may sit.
    pub fn templates(&self) -> Vec<String> {
        match self.place {
            Place::Group => vec![self.template(true)],
            Place::Subscription => vec![self.template(false)],
            Place::Any => vec![self.template(false), self.template(true)],
        }
    }

    fn matches(&self, reference: &ResourceRef) -> bool {
        let in_group = reference.resource_group.is_some();
        let place_ok = match self.place {
            Place::Group => in_group,
            Place::Subscription => !in_group,
            Place::Any => true,
        };
        place_ok && reference.names().len() == self.names && reference.is(self.types)
    }
}

/// The route a path takes, if any.
pub fn route_of(reference: &ResourceRef) -> Option<&'static Route> {
    if !reference.namespace.eq_ignore_ascii_case("Microsoft.Network") {
        return None;
    }
    ROUTES.iter().find(|route| route.matches(reference))
}

pub async fn handle(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    if !reference.namespace.eq_ignore_ascii_case("Microsoft.Network") {
        return Err(ArmError::new(
            ErrorCode::NoRegisteredProviderFound,
            format!(
                "No registered resource provider found for namespace '{}'. This server serves Microsoft.Network, Microsoft.Resources and Microsoft.Authorization.",
                reference.namespace
            ),
        ));
    }
    let subscription = ctx.subscription(&reference.subscription).await?.id;
    let Some(route) = route_of(reference) else {
        return Err(ArmError::new(
            ErrorCode::InvalidResourceType,
            format!(
                "The resource type '{}' could not be found in the namespace 'Microsoft.Network'.",
                reference.types().join("/")
            ),
        ));
    };
    if !route.methods.contains(&ctx.method) {
        return Err(ctx.method_not_allowed());
    }
    // Authorized on the path before any read: a caller without rights gets 403 whether or not
    // the resource (or its group) exists.
    // The resource the path names; for a top-level collection, the group or subscription.
    let scope = match route.names {
        0 => reference.parent_scope(),
        names => reference.id_at(names),
    };
    match route.access {
        Access::Item => ctx.authorize(&action(&reference.types(), &ctx.method), &scope).await?,
        Access::Action(action) => ctx.authorize(action, &scope).await?,
        Access::List(action) => ctx.authorize_list(action, &scope).await?,
        Access::Starter => {}
    }
    let names = reference.names();
    match route.handler {
        Handler::ManagerList => managers::list(ctx, reference).await,
        Handler::Manager => managers::one(ctx, reference).await,
        Handler::PoolList => pools::list(ctx, reference).await,
        Handler::Pool => pools::one(ctx, reference).await,
        Handler::PoolUsage => pools::usage(ctx, reference).await,
        Handler::PoolAssociated => pools::associated(ctx, reference).await,
        Handler::StaticCidrList => static_cidrs::list(ctx, reference).await,
        Handler::StaticCidr => static_cidrs::one(ctx, reference).await,
        Handler::ScopeConnectionList => connections::scope_list(ctx, reference).await,
        Handler::ScopeConnection => connections::scope_one(ctx, reference).await,
        Handler::ManagerConnectionList => connections::manager_list(ctx, reference).await,
        Handler::ManagerConnection => connections::manager_one(ctx, reference).await,
        Handler::VnetList => vnets::list(ctx, reference).await,
        Handler::Vnet => vnets::one(ctx, reference).await,
        Handler::SubnetList => vnets::subnet_list(ctx, reference).await,
        Handler::Subnet => vnets::subnet_one(ctx, reference).await,
        Handler::OperationStatus | Handler::IpamOperationResult => {
            ctx.api_version(&API_VERSIONS)?;
            operation::status(ctx, &subscription, names[1]).await
        }
        Handler::OperationResult => {
            ctx.api_version(&API_VERSIONS)?;
            operation::result(ctx, &subscription, names[1]).await
        }
    }
}
