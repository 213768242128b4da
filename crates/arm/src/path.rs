//! Resource ids: what an ARM path addresses. Keywords (`subscriptions`, `resourceGroups`,
//! `providers`, namespaces and types) are compared case-insensitively, as ARM does; names keep
//! the casing the client sent, so a resource is returned as it was created.

/// What a path under `/subscriptions/…` or `…/providers/Microsoft.Authorization/…` addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/subscriptions/{s}/resourcegroups`
    ResourceGroups { subscription: String },
    /// `/subscriptions/{s}/resourcegroups/{rg}`
    ResourceGroup { subscription: String, name: String },
    /// `/subscriptions/{s}/operationresults/{id}`: a resource group deletion's status.
    OperationResult { subscription: String, id: String },
    /// `{scope}/providers/Microsoft.Authorization/{kind}[/{name}]`
    Authorization { scope: String, kind: String, name: Option<String> },
    /// `/subscriptions/{s}[/resourceGroups/{rg}]/providers/{namespace}/{type}/{name}/…`
    Provider(ResourceRef),
}

/// A path into a resource provider: the types and names after `providers/{namespace}`, in
/// alternation. One more type than names addresses a collection (or, on POST, an action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub subscription: String,
    pub resource_group: Option<String>,
    pub namespace: String,
    /// `[type, name, type, name, …]` as sent.
    pub rest: Vec<String>,
}

impl ResourceRef {
    /// The types along the path, e.g. `["networkManagers", "ipamPools"]`.
    pub fn types(&self) -> Vec<&str> {
        self.rest.iter().step_by(2).map(String::as_str).collect()
    }

    /// The names along the path.
    pub fn names(&self) -> Vec<&str> {
        self.rest.iter().skip(1).step_by(2).map(String::as_str).collect()
    }

    /// Whether the types are exactly these (case-insensitive).
    pub fn is(&self, types: &[&str]) -> bool {
        let own = self.types();
        own.len() == types.len() && own.iter().zip(types).all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// The scope everything sits in: `/subscriptions/{s}[/resourceGroups/{rg}]`.
    pub fn parent_scope(&self) -> String {
        match &self.resource_group {
            Some(group) => format!("/subscriptions/{}/resourceGroups/{group}", self.subscription),
            None => format!("/subscriptions/{}", self.subscription),
        }
    }

    /// The id of the first `depth` type/name pairs (a resource's id when `depth` covers it).
    pub fn id_at(&self, depth: usize) -> String {
        let mut id = format!("{}/providers/{}", self.parent_scope(), self.namespace);
        for segment in self.rest.iter().take(depth * 2) {
            id.push('/');
            id.push_str(segment);
        }
        id
    }
}

/// Parses an ARM path. `None` when it addresses nothing ARM serves.
pub fn parse(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let is = |at: usize, word: &str| segments.get(at).is_some_and(|s| s.eq_ignore_ascii_case(word));
    if let Some(at) = (0..segments.len())
        .rev()
        .find(|&at| is(at, "providers") && is(at + 1, "Microsoft.Authorization"))
    {
        let scope = format!("/{}", segments[..at].join("/"));
        return match &segments[at + 2..] {
            [kind] => Some(Target::Authorization { scope, kind: (*kind).to_owned(), name: None }),
            [kind, name] => Some(Target::Authorization {
                scope,
                kind: (*kind).to_owned(),
                name: Some((*name).to_owned()),
            }),
            _ => None,
        };
    }
    if !is(0, "subscriptions") || segments.len() < 3 {
        return None;
    }
    let subscription = segments[1].to_owned();
    let provider = |resource_group: Option<String>, from: usize| {
        let namespace = segments.get(from)?;
        let rest: Vec<String> = segments[from + 1..].iter().map(|s| (*s).to_owned()).collect();
        (!rest.is_empty()).then(|| {
            Target::Provider(ResourceRef {
                subscription: subscription.clone(),
                resource_group,
                namespace: (*namespace).to_owned(),
                rest,
            })
        })
    };
    if is(2, "resourcegroups") {
        return match segments.len() {
            3 => Some(Target::ResourceGroups { subscription }),
            4 => Some(Target::ResourceGroup { subscription, name: segments[3].to_owned() }),
            _ if is(4, "providers") => provider(Some(segments[3].to_owned()), 5),
            _ => None,
        };
    }
    if is(2, "operationresults") && segments.len() == 4 {
        return Some(Target::OperationResult { subscription, id: segments[3].to_owned() });
    }
    if is(2, "providers") {
        return provider(None, 3);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_groups_in_any_casing() {
        assert_eq!(
            parse("/subscriptions/S/resourcegroups/RG"),
            Some(Target::ResourceGroup { subscription: "S".into(), name: "RG".into() })
        );
        assert_eq!(
            parse("/subscriptions/S/ResourceGroups"),
            Some(Target::ResourceGroups { subscription: "S".into() })
        );
    }

    #[test]
    fn authorization_paths_take_the_last_provider_as_their_scope() {
        let pool = "/subscriptions/S/resourceGroups/rg/providers/Microsoft.Network/networkManagers/nm/ipamPools/p";
        assert_eq!(
            parse(&format!("{pool}/providers/microsoft.authorization/roleAssignments/x")),
            Some(Target::Authorization {
                scope: pool.into(),
                kind: "roleAssignments".into(),
                name: Some("x".into())
            })
        );
        assert_eq!(
            parse("/providers/Microsoft.Authorization/roleDefinitions"),
            Some(Target::Authorization {
                scope: "/".into(),
                kind: "roleDefinitions".into(),
                name: None
            })
        );
    }

    #[test]
    fn provider_paths_split_into_types_and_names() {
        let Some(Target::Provider(reference)) = parse(
            "/subscriptions/S/resourceGroups/rg/providers/Microsoft.Network/networkManagers/nm/ipamPools",
        ) else {
            panic!("not a provider path")
        };
        assert_eq!(reference.types(), ["networkManagers", "ipamPools"]);
        assert_eq!(reference.names(), ["nm"]);
        assert!(reference.is(&["NETWORKMANAGERS", "ipampools"]));
        assert_eq!(
            reference.id_at(1),
            "/subscriptions/S/resourceGroups/rg/providers/Microsoft.Network/networkManagers/nm"
        );
        assert_eq!(parse("/subscriptions/S/resourceGroups/rg/providers/Microsoft.Network"), None);
        assert_eq!(parse("/subscriptions/S/whatever"), None);
    }
}
