//! The shape of the code, checked: crates depend on each other only downwards
//! (docs/architecture.md), the domain model links no I/O crate, only the plugin host links
//! wasmtime, and no crate has a cycle among its modules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use tocsin_tests::workspace;

/// Each workspace crate and the workspace crates it may depend on (normal dependencies).
/// A new crate, or a new edge, is a decision: make it here and in docs/architecture.md.
const ALLOWED: &[(&str, &[&str])] = &[
    ("tocsin-model", &[]),
    ("tocsin-store", &["tocsin-model"]),
    ("tocsin-notify", &["tocsin-model"]),
    ("tocsin-collect", &["tocsin-model", "tocsin-store"]),
    ("tocsin-ingest", &["tocsin-model", "tocsin-store"]),
    ("tocsin-pipeline", &["tocsin-model", "tocsin-store"]),
    (
        "tocsin-outbox",
        &[
            "tocsin-model",
            "tocsin-store",
            "tocsin-notify",
            "tocsin-collect",
        ],
    ),
    // The one crate allowed `unsafe`: it loads the precompiled plugin code Tocsin stored.
    ("tocsin-precompiled", &[]),
    (
        "tocsin-host",
        &["tocsin-model", "tocsin-store", "tocsin-precompiled"],
    ),
    (
        "tocsin-api",
        &[
            "tocsin-model",
            "tocsin-store",
            "tocsin-ingest",
            "tocsin-notify",
            "tocsin-collect",
        ],
    ),
    // The web UI: a client of the API's router, handed in by the runner.
    ("tocsin-ui", &["tocsin-model"]),
    (
        "tocsin-server",
        &[
            "tocsin-model",
            "tocsin-store",
            "tocsin-ingest",
            "tocsin-pipeline",
            "tocsin-outbox",
            "tocsin-notify",
            "tocsin-collect",
            "tocsin-api",
            "tocsin-ui",
        ],
    ),
    (
        "tocsin-lambda",
        &[
            "tocsin-model",
            "tocsin-store",
            "tocsin-pipeline",
            "tocsin-outbox",
            "tocsin-notify",
            "tocsin-collect",
            "tocsin-api",
        ],
    ),
    // The Lambda functions: thin mains. The three that run plugins take the host; the
    // tick runs none and must not link wasmtime.
    ("tocsin-function-api", &["tocsin-lambda", "tocsin-host"]),
    (
        "tocsin-function-pipeline",
        &["tocsin-lambda", "tocsin-host"],
    ),
    (
        "tocsin-function-notify",
        &[
            "tocsin-lambda",
            "tocsin-host",
            "tocsin-outbox",
            "tocsin-collect",
        ],
    ),
    ("tocsin-function-tick", &["tocsin-lambda"]),
];

/// Crates that do I/O, which the domain model must not link, even indirectly.
const IO_CRATES: &[&str] = &["sqlx", "axum", "tokio", "reqwest", "hyper", "wasmtime"];

/// `cargo metadata` of the workspace, with the resolved dependency graph.
fn metadata() -> serde_json::Value {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace())
        .args(["metadata", "--format-version", "1"])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Package names by id, and each package's normal (not dev, not build) dependencies.
fn graph(meta: &serde_json::Value) -> (HashMap<String, String>, HashMap<String, Vec<String>>) {
    let names = meta["packages"]
        .as_array()
        .expect("cargo metadata's JSON")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("cargo metadata's JSON").to_owned(),
                p["name"]
                    .as_str()
                    .expect("cargo metadata's JSON")
                    .to_owned(),
            )
        })
        .collect();
    let deps = meta["resolve"]["nodes"]
        .as_array()
        .expect("cargo metadata's JSON")
        .iter()
        .map(|node| {
            let normal = node["deps"]
                .as_array()
                .expect("cargo metadata's JSON")
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .expect("cargo metadata's JSON")
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().expect("cargo metadata's JSON").to_owned())
                .collect();
            (
                node["id"]
                    .as_str()
                    .expect("cargo metadata's JSON")
                    .to_owned(),
                normal,
            )
        })
        .collect();
    (names, deps)
}

/// Every package `id` links, by name (itself excluded).
fn closure(
    id: &str,
    names: &HashMap<String, String>,
    deps: &HashMap<String, Vec<String>>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = deps[id].clone();
    while let Some(next) = todo.pop() {
        if seen.insert(next.clone()) {
            todo.extend(deps[&next].iter().cloned());
        }
    }
    seen.iter().map(|id| names[id].clone()).collect()
}

#[test]
fn crates_depend_only_downwards_and_the_model_does_no_io() {
    let meta = metadata();
    let (names, deps) = graph(&meta);
    let members: Vec<String> = meta["workspace_members"]
        .as_array()
        .expect("workspace members")
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect();
    let allowed: HashMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for id in &members {
        let name = names[id].as_str();
        let direct: BTreeSet<&str> = deps[id]
            .iter()
            .map(|d| names[d].as_str())
            .filter(|d| d.starts_with("tocsin"))
            .collect();
        match allowed.get(name) {
            Some(ok) => {
                for dep in &direct {
                    if !ok.contains(dep) {
                        wrong.push(format!("{name} depends on {dep}"));
                    }
                }
            }
            // The binary and the tests compose everything; nothing may depend on them.
            None if name == "tocsin" || name == "tocsin-tests" => {}
            None => wrong.push(format!("{name} is not in the layering table")),
        }
        let linked = closure(id, &names, &deps);
        if name == "tocsin-model" {
            for io in IO_CRATES {
                if linked.contains(*io) {
                    wrong.push(format!("tocsin-model links {io}"));
                }
            }
        }
        let runs_plugins = [
            "tocsin-host",
            "tocsin-precompiled",
            "tocsin",
            "tocsin-tests",
            "tocsin-function-api",
            "tocsin-function-pipeline",
            "tocsin-function-notify",
        ]
        .contains(&name);
        if linked.contains("wasmtime") && !runs_plugins {
            wrong.push(format!("{name} links wasmtime"));
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

/// `unsafe` is forbidden by the workspace's lints; the one crate that needs it (loading
/// precompiled plugin code) has lints of its own, and no other crate may opt out.
#[test]
fn only_the_precompiled_loader_opts_out_of_the_workspace_lints() {
    let mut own = Vec::new();
    for root in crate_roots() {
        let dir = root
            .parent()
            .and_then(Path::parent)
            .expect("a crate root is in src/");
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("reads Cargo.toml");
        let inherits = manifest
            .split("\n[")
            .any(|table| table.starts_with("lints]") && table.contains("workspace = true"));
        if !inherits {
            own.push(
                dir.file_name()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    own.sort();
    own.dedup();
    assert_eq!(own, ["precompiled"], "crates with lints of their own");
    let unsafe_lines: Vec<String> = crate_roots()
        .into_iter()
        .filter(|root| !root.starts_with(workspace().join("host/precompiled")))
        .flat_map(|root| rust_files(root.parent().expect("src")))
        .flat_map(|file| {
            let text = std::fs::read_to_string(&file).expect("reads");
            text.lines()
                .filter(|line| line.contains("allow(unsafe_code)"))
                .map(|line| format!("{}: {line}", file.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        unsafe_lines.is_empty(),
        "unsafe allowed outside the loader: {unsafe_lines:?}"
    );
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("lists") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut cycles = Vec::new();
    for root in crate_roots() {
        let crate_ = Crate::load(&root);
        if let Some(cycle) = crate_.cycle() {
            cycles.push(format!("{}: {}", root.display(), cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    // Guard against a checker that finds nothing: a root that re-exports from a child
    // which reaches back into the root is a cycle; the same child reaching a sibling is not.
    let mut crate_ = Crate::default();
    crate_.add(vec![], "mod a;\nmod b;\npub use a::A;\n");
    crate_.add(vec!["a".into()], "use crate::Thing; pub struct A;");
    crate_.add(vec!["b".into()], "");
    assert_eq!(crate_.cycle().map(|c| c.len()), Some(3));
    let mut crate_ = Crate::default();
    crate_.add(vec![], "mod a;\nmod b;\npub use a::A;\n");
    crate_.add(
        vec!["a".into()],
        "use crate::b::{B, self as bee}; use super::b::C;",
    );
    crate_.add(
        vec!["b".into()],
        "macro_rules! m { () => { use super::*; } }",
    );
    assert_eq!(crate_.cycle(), None);
    crate_.add(vec!["b".into()], "fn f() { let _ = crate::a::A; }");
    crate_.add(vec!["a".into()], "use crate::b::B;");
    assert!(crate_.cycle().is_some());
}

/// The root file (`lib.rs` or `main.rs`) of every workspace crate.
fn crate_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let mut dirs = vec![
        workspace().join("host"),
        workspace().join("host/precompiled"),
        workspace().join("cli"),
        workspace().join("tests"),
    ];
    for parent in ["core", "functions"] {
        for entry in std::fs::read_dir(workspace().join(parent)).expect("a directory of crates") {
            dirs.push(entry.expect("lists").path());
        }
    }
    for dir in dirs {
        for file in ["src/lib.rs", "src/main.rs"] {
            if dir.join(file).exists() {
                roots.push(dir.join(file));
            }
        }
    }
    assert!(roots.len() >= 12, "crates not found: {roots:?}");
    roots
}

/// One crate's modules (by path from the root) and the paths their code names.
#[derive(Default)]
struct Crate {
    /// Code of each module, comments and strings removed, child modules cut out.
    code: BTreeMap<Vec<String>, String>,
}

impl Crate {
    fn load(root: &Path) -> Self {
        let mut crate_ = Self::default();
        crate_.load_file(vec![], root, true);
        crate_
    }

    /// Reads module `path` from `file`, and the modules it declares.
    fn load_file(&mut self, path: Vec<String>, file: &Path, owns_dir: bool) {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let dir = if owns_dir {
            file.parent().expect("a file has a directory").to_path_buf()
        } else {
            file.with_extension("")
        };
        for child in self.add(path.clone(), &text) {
            let mut child_path = path.clone();
            child_path.push(child.clone());
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(&child).join("mod.rs");
            if flat.exists() {
                self.load_file(child_path, &flat, false);
            } else if nested.exists() {
                self.load_file(child_path, &nested, true);
            }
        }
    }

    /// Adds module `path` with source `text` (and its inline child modules); returns the
    /// names of the child modules declared as files (`mod x;`). Test modules are skipped.
    fn add(&mut self, path: Vec<String>, text: &str) -> Vec<String> {
        let tokens = tokenize(&strip(text));
        let mut own = Vec::new();
        let mut files = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            if tokens[i] == "mod" && i + 2 < tokens.len() && is_ident(&tokens[i + 1]) {
                let name = tokens[i + 1].clone();
                if tokens[i + 2] == ";" {
                    if name != "tests" {
                        files.push(name);
                    }
                    i += 3;
                    continue;
                }
                if tokens[i + 2] == "{" {
                    let end = matching(&tokens, i + 2);
                    if name != "tests" {
                        let mut child = path.clone();
                        child.push(name);
                        let inner = tokens[i + 3..end].join(" ");
                        self.add(child, &inner);
                    }
                    i = end + 1;
                    continue;
                }
            }
            own.push(tokens[i].clone());
            i += 1;
        }
        self.code.insert(path, own.join(" "));
        files
    }

    /// Modules each module names.
    fn edges(&self) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
        let mut edges = BTreeMap::new();
        for (module, code) in &self.code {
            let mut targets = BTreeSet::new();
            for path in paths(&tokenize(code)) {
                if let Some(target) = self.resolve(module, &path)
                    && &target != module
                {
                    targets.insert(target);
                }
            }
            edges.insert(module.clone(), targets);
        }
        edges
    }

    /// The module a path names from `module`, if it names one of this crate's.
    fn resolve(&self, module: &[String], path: &Path_) -> Option<Vec<String>> {
        let segments = &path.segments;
        let (mut base, rest): (Vec<String>, &[String]) = match segments[0].as_str() {
            "crate" | "$crate" => (vec![], &segments[1..]),
            "super" | "self" if path.in_macro => return None,
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                let keep = module.len().checked_sub(ups)?;
                (module[..keep].to_vec(), &segments[ups..])
            }
            "self" => (module.to_vec(), &segments[1..]),
            first => {
                let mut child = module.to_vec();
                child.push(first.to_owned());
                if !self.code.contains_key(&child) {
                    return None;
                }
                (module.to_vec(), segments)
            }
        };
        for segment in rest {
            let mut next = base.clone();
            next.push(segment.clone());
            if !self.code.contains_key(&next) {
                break;
            }
            base = next;
        }
        Some(base)
    }

    /// One cycle among the modules, if there is one.
    fn cycle(&self) -> Option<Vec<String>> {
        let edges = self.edges();
        let name = |m: &Vec<String>| {
            if m.is_empty() {
                "crate".to_owned()
            } else {
                m.join("::")
            }
        };
        // Depth-first search with colours: 1 on the stack, 2 done.
        let mut colour: HashMap<&Vec<String>, u8> = HashMap::new();
        for start in edges.keys() {
            let mut stack: Vec<(&Vec<String>, Vec<&Vec<String>>)> = Vec::new();
            if colour.contains_key(start) {
                continue;
            }
            colour.insert(start, 1);
            stack.push((start, edges[start].iter().collect()));
            while let Some((node, pending)) = stack.last_mut() {
                let node = *node;
                match pending.pop() {
                    Some(next) => match colour.get(next) {
                        Some(1) => {
                            let from = stack
                                .iter()
                                .position(|(n, _)| *n == next)
                                .expect("on the stack");
                            let mut cycle: Vec<String> =
                                stack[from..].iter().map(|(n, _)| name(n)).collect();
                            cycle.push(name(next));
                            return Some(cycle);
                        }
                        Some(_) => {}
                        None => {
                            colour.insert(next, 1);
                            stack.push((
                                next,
                                edges
                                    .get(next)
                                    .map(|e| e.iter().collect())
                                    .unwrap_or_default(),
                            ));
                        }
                    },
                    None => {
                        colour.insert(node, 2);
                        stack.pop();
                    }
                }
            }
        }
        None
    }
}

/// A path in code, and whether it is inside a `macro_rules!` body (where `super` and
/// `self` are relative to wherever the macro expands, so they are not followed).
struct Path_ {
    segments: Vec<String>,
    in_macro: bool,
}

/// The source without comments, string literals and attributes' contents that are not
/// code (doc text), so that only code is left to scan.
fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(raw) = rest.strip_prefix("r#\"") {
            i += raw.find("\"#").map_or(rest.len(), |e| e + 5);
            out.push_str("\"\"");
        } else if let Some(raw) = rest.strip_prefix("r\"")
            && !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            i += raw.find('"').map_or(rest.len(), |e| e + 3);
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\'' {
            // A char literal ('x', '\n', '{') is dropped; a lifetime ('a) is kept.
            let mut chars = rest[1..].char_indices();
            match (chars.next(), chars.next()) {
                (Some((_, '\\')), _) => {
                    i += rest
                        .get(3..)
                        .and_then(|r| r.find('\''))
                        .map_or(rest.len(), |e| e + 4);
                }
                (Some(_), Some((at, '\''))) => i += at + 2,
                _ => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Identifiers (with `$`), `::`, and single punctuation characters.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || (i == start && chars[i] == '$'))
            {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".to_owned());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            tokens.push(c.to_string());
            i += 1;
        }
    }
    tokens
}

fn is_ident(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
}

/// The index of the `}` that closes the `{` at `open`.
fn matching(tokens: &[String], open: usize) -> usize {
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// Every path the tokens name: `a::b::c` in code, and each leaf of a `use` tree
/// (`use a::{b, c::d}` names `a::b` and `a::c::d`).
fn paths(tokens: &[String]) -> Vec<Path_> {
    let mut found = Vec::new();
    let mut macro_end = 0;
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == "macro_rules" && i + 3 < tokens.len() && tokens[i + 1] == "!" {
            let open = (i..tokens.len())
                .find(|&k| tokens[k] == "{")
                .unwrap_or(tokens.len());
            macro_end = matching(tokens, open);
        }
        let in_macro = i < macro_end;
        if tokens[i] == "use" {
            let end = (i..tokens.len())
                .find(|&k| tokens[k] == ";")
                .unwrap_or(tokens.len());
            use_tree(&tokens[i + 1..end], &mut Vec::new(), &mut |segments| {
                found.push(Path_ { segments, in_macro });
            });
            i = end + 1;
            continue;
        }
        let starts = is_ident(&tokens[i]) && (i == 0 || tokens[i - 1] != "::");
        if starts && tokens.get(i + 1).is_some_and(|t| t == "::") {
            let mut segments = vec![tokens[i].clone()];
            let mut j = i + 1;
            while j + 1 < tokens.len() && tokens[j] == "::" && is_ident(&tokens[j + 1]) {
                segments.push(tokens[j + 1].clone());
                j += 2;
            }
            found.push(Path_ { segments, in_macro });
            i = j;
            continue;
        }
        i += 1;
    }
    found
}

/// Calls `leaf` with the full path of each leaf of a `use` tree.
fn use_tree(tokens: &[String], prefix: &mut Vec<String>, leaf: &mut dyn FnMut(Vec<String>)) {
    let depth = prefix.len();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "::" => i += 1,
            "{" => {
                let end = matching(tokens, i);
                for part in split_top(&tokens[i + 1..end]) {
                    use_tree(part, prefix, leaf);
                }
                i = end + 1;
            }
            "as" => i += 2,
            "*" => {
                leaf(prefix.clone());
                i += 1;
            }
            token if is_ident(token) => {
                prefix.push(token.to_owned());
                i += 1;
                if tokens.get(i).is_none_or(|t| t != "::") {
                    leaf(prefix.clone());
                }
            }
            _ => i += 1,
        }
    }
    prefix.truncate(depth);
}

/// The comma-separated parts of a brace group, at its top level.
fn split_top(tokens: &[String]) -> Vec<&[String]> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, token) in tokens.iter().enumerate() {
        match token.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "," if depth == 0 => {
                parts.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts
}
