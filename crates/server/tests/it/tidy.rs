//! Tidy: rules about the sources themselves, checked by reading them (rust-analyzer's tidy-test
//! habit). Modules of `arm` and `identity` import one way only (no module imports one that
//! imports it back, directly or through others); `arm`'s modules import neither `dispatch` nor
//! items of `lib.rs`, siblings in `network` share through their own module rather than
//! `network/mod.rs`, and store and IPAM errors are matched only in `arm/src/error.rs`; library
//! code prints nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module a file holds, e.g. `network::vnets`; the crate root is `crate`. `None` for test
/// modules kept in files of their own (`…/tests.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> =
        relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|last| last == "tests") {
        return None;
    }
    if parts.last().is_some_and(|last| last == "mod" || last == "lib") {
        parts.pop();
    }
    Some(if parts.is_empty() { "crate".to_owned() } else { parts.join("::") })
}

/// A file's code without its `#[cfg(test)]` module, comments and string literals.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut code = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(character) = chars.next() {
        if in_string {
            match character {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => {
                in_string = true;
                code.push_str("\"\"");
            }
            '/' if chars.peek() == Some(&'/') => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        code.push('\n');
                        break;
                    }
                }
            }
            other => code.push(other),
        }
    }
    code
}

/// Expands a `use` tree such as `crate::{a, b::{c, d}}` into its paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else { return vec![tree.to_owned()] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, character) in inner.char_indices() {
        match character {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .flat_map(|part| expand_use(&format!("{prefix}{}", part.trim())))
        .collect()
}

/// The paths a file's code names: every `use` path, and every `crate::…`, `super::…` and
/// `child::…` path in the code.
fn paths_in(code: &str, children: &BTreeSet<String>) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let boundary = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let end = rest[at..].find(';').map_or(rest.len(), |end| at + end);
        if boundary {
            paths.extend(expand_use(&rest[at + 4..end]));
        }
        rest = &rest[(at + 4).min(rest.len())..];
    }
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.contains("::") && !word.ends_with("::"))
        .collect();
    for word in words {
        let first = word.split("::").next().unwrap_or_default();
        if first == "crate" || first == "super" || children.contains(first) {
            paths.push(word.to_owned());
        }
    }
    paths
}

/// The module graph of a crate: for each module, the modules its code names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<(String, String)> = rust_files(src)
        .into_iter()
        .filter_map(|file| {
            let module = module_of(src, &file)?;
            Some((module, code_of(&std::fs::read_to_string(&file).unwrap())))
        })
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(module, _)| module.clone()).collect();
    let mut graph = BTreeMap::new();
    for (module, code) in &files {
        let own = |name: &str| {
            if module == "crate" { name.to_owned() } else { format!("{module}::{name}") }
        };
        let children: BTreeSet<String> = modules
            .iter()
            .filter_map(|other| {
                let rest = if module == "crate" {
                    other.as_str()
                } else {
                    other.strip_prefix(&format!("{module}::"))?
                };
                (!rest.contains("::") && other != "crate").then(|| rest.to_owned())
            })
            .collect();
        let parent = module.rsplit_once("::").map_or("crate", |(parent, _)| parent).to_owned();
        let mut targets = BTreeSet::new();
        for path in paths_in(code, &children) {
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let (mut base, rest): (String, &[&str]) = match segments.first() {
                Some(&"crate") => ("crate".to_owned(), &segments[1..]),
                Some(&"super") => (parent.clone(), &segments[1..]),
                Some(first) if children.contains(*first) => (own(first), &segments[1..]),
                _ => continue,
            };
            // The deepest module the path names; items of a module count as that module.
            for segment in rest {
                let deeper = if base == "crate" {
                    (*segment).to_owned()
                } else {
                    format!("{base}::{segment}")
                };
                if modules.contains(&deeper) {
                    base = deeper;
                } else {
                    break;
                }
            }
            if base != *module {
                targets.insert(base);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The groups of modules that import each other, directly or through others.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(module) = stack.pop() {
            for next in graph.get(&module).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|module| (module, reaches(module))).collect();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for module in graph.keys() {
        if !reach[module].contains(module) || groups.iter().any(|group| group.contains(module)) {
            continue;
        }
        let group: Vec<String> = graph
            .keys()
            .filter(|other| reach[module].contains(*other) && reach[*other].contains(module))
            .cloned()
            .collect();
        groups.push(group);
    }
    groups
}

#[test]
fn the_modules_of_arm_and_identity_import_one_way() {
    let mut problems = Vec::new();
    for krate in ["arm", "identity"] {
        let graph = module_graph(&workspace().join(format!("crates/{krate}/src")));
        for group in cycles(&graph) {
            let edges: Vec<String> = group
                .iter()
                .flat_map(|module| {
                    graph[module]
                        .iter()
                        .filter(|target| group.contains(target))
                        .map(move |target| format!("{module} → {target}"))
                })
                .collect();
            problems.push(format!("{krate}: {}", edges.join(", ")));
        }
    }
    assert!(problems.is_empty(), "modules that import each other:\n{}", problems.join("\n"));
}

/// The modules at the bottom of `arm` and what each may import of `arm`.
const ARM_FOUNDATION: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("response", &[]),
    ("state", &[]),
    ("path", &["error"]),
    ("rbac", &["error"]),
    ("api_version", &["error"]),
    ("location", &["error"]),
    ("telemetry", &["error"]),
];

#[test]
fn arm_imports_downward_only() {
    let src = workspace().join("crates/arm/src");
    let graph = module_graph(&src);
    let mut problems = Vec::new();
    for (module, targets) in &graph {
        for target in targets {
            if module != "crate" && target == "dispatch" {
                problems.push(format!("{module} imports dispatch (nothing but lib.rs may)"));
            }
            if module != "crate" && target == "crate" {
                problems.push(format!("{module} imports an item of lib.rs (it only routes)"));
            }
            if module.starts_with("network::") && target == "network" {
                problems.push(format!(
                    "{module} imports an item of network/mod.rs (siblings share through docs.rs)"
                ));
            }
        }
    }
    for (module, allowed) in ARM_FOUNDATION {
        for target in &graph[*module] {
            if !allowed.contains(&target.as_str()) {
                problems
                    .push(format!("{module} imports {target} (it may import only {allowed:?})"));
            }
        }
    }
    // Other crates' errors become ARM errors in one place, so each gets one answer.
    for file in rust_files(&src) {
        if file.ends_with("error.rs") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        for pattern in ["StoreError::", "ipam::error::", "IpamError::"] {
            if code.contains(pattern) {
                problems.push(format!(
                    "{} matches {pattern} (only arm/src/error.rs converts other crates' errors)",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn library_code_prints_nothing() {
    let mut problems = Vec::new();
    for krate in ["arm", "identity", "ipam", "portal", "server", "store"] {
        for file in rust_files(&workspace().join(format!("crates/{krate}/src"))) {
            // The binary's command line prints its output.
            if file.ends_with("server/src/main.rs") || file.ends_with("server/src/az_setup.rs") {
                continue;
            }
            let code = code_of(&std::fs::read_to_string(&file).unwrap());
            for pattern in ["dbg!(", "println!(", "eprintln!(", "print!(", "eprint!("] {
                if code.contains(pattern) {
                    problems.push(format!("{}: {pattern}", file.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "library code that prints:\n{}", problems.join("\n"));
}
