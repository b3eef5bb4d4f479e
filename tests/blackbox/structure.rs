//! The layering of docs/architecture.md, held by the code's own imports: within each crate, the
//! top-level modules import only modules of their own layer or below (the layers as the document
//! lists them), without a loop, and the rule engine (`app::policy`) imports nothing else of its
//! crate. An import going up, a module the document does not place, or a loop fails here, naming
//! the modules and the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// For each top-level module of the crate whose sources are under `root`: the other top-level
/// modules it names (`crate::<module>`, also inside `use crate::{a, b::c}`), with a file doing so.
fn imports(root: &Path) -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    fn files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }
    let mut sources = Vec::new();
    files(root, &mut sources);
    let module_of = |path: &Path| {
        let first = path.strip_prefix(root).unwrap().components().next().unwrap();
        first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> =
        sources.iter().map(|path| module_of(path)).filter(|m| m != "lib" && m != "main").collect();
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for path in &sources {
        let module = module_of(path);
        if !modules.contains(&module) {
            continue;
        }
        let text: String = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let named: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::{c, d}, e}`: the first segment of each item at the group's level.
                let (mut depth, mut items, mut start) = (0, Vec::new(), 0);
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            items.push(&group[start..i]);
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            items.push(&group[start..i]);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                items.into_iter().filter_map(|item| item.trim().split("::").next()).collect()
            } else {
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).take(1).collect()
            };
            for name in named {
                if name != module && modules.contains(name) {
                    graph.entry(module.clone()).or_default().entry(name.to_owned()).or_insert_with(|| path.clone());
                }
            }
        }
        graph.entry(module).or_default();
    }
    graph
}

/// A loop in `graph`, as the modules along it, if there is one.
fn a_loop(graph: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|on| on == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The layers docs/architecture.md lists for `krate` ("In `app`, from the bottom:", then one
/// numbered line per layer naming its modules in backticks before the dash): each module's layer,
/// counted from 1 at the bottom.
fn documented_layers(document: &str, krate: &str) -> BTreeMap<String, usize> {
    let heading = format!("In `{krate}`, from the bottom:");
    let after = document.split_once(&heading).unwrap_or_else(|| panic!("docs/architecture.md lacks `{heading}`")).1;
    let mut layers = BTreeMap::new();
    let mut started = false;
    for line in after.lines() {
        let Some((number, rest)) = line.split_once(". ") else {
            if started && !line.starts_with(' ') {
                break;
            }
            continue;
        };
        let Ok(layer) = number.trim().parse::<usize>() else {
            if started {
                break;
            }
            continue;
        };
        started = true;
        let named = rest.split(" — ").next().unwrap_or_default();
        for module in named.split('`').skip(1).step_by(2) {
            layers.insert(module.to_owned(), layer);
        }
    }
    layers
}

/// Every import that goes up the layers, and every module without a layer, as sentences.
fn against_layers(
    graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
    layers: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (module, imports) in graph {
        let Some(own) = layers.get(module) else {
            wrong.push(format!("`{module}` is in no layer of docs/architecture.md"));
            continue;
        };
        for (imported, file) in imports {
            match layers.get(imported) {
                Some(layer) if layer > own => wrong.push(format!(
                    "`{module}` (layer {own}) imports `{imported}` (layer {layer}) in {}",
                    file.display()
                )),
                _ => {}
            }
        }
    }
    wrong
}

fn crate_sources(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name).join("src")
}

#[test]
fn modules_import_one_another_without_loops() {
    for name in ["app", "server"] {
        let graph = imports(&crate_sources(name));
        assert!(graph.len() > 5, "{name}: the modules were not found ({graph:?})");
        if let Some(cycle) = a_loop(&graph) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|step| format!("{} -> {} ({})", step[0], step[1], graph[&step[0]][&step[1]].display()))
                .collect();
            panic!("{name} has an import loop:\n  {}", steps.join("\n  "));
        }
    }
}

#[test]
fn modules_import_only_their_own_layer_or_below_as_docs_architecture_lists_them() {
    let document =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md")).unwrap();
    for name in ["app", "server"] {
        let layers = documented_layers(&document, name);
        assert!(layers.len() > 5, "{name}: no layers read from docs/architecture.md ({layers:?})");
        let wrong = against_layers(&imports(&crate_sources(name)), &layers);
        assert!(wrong.is_empty(), "{name} breaks its layering:\n  {}", wrong.join("\n  "));
    }
}

#[test]
fn the_rule_engine_imports_nothing_else_of_its_crate() {
    let graph = imports(&crate_sources("app"));
    assert_eq!(graph.get("policy").map(|edges| edges.keys().collect::<Vec<_>>()), Some(Vec::new()));
}

/// The check itself finds a loop when there is one (so a passing run means something).
#[test]
fn the_loop_check_finds_a_loop() {
    let dir = std::env::temp_dir().join(format!("tagward-structure-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod store; pub mod pages; pub mod policy;").unwrap();
    std::fs::write(dir.join("store/mod.rs"), "use crate::{policy::{Tag, Digest}, pages::Kind};").unwrap();
    std::fs::write(dir.join("pages.rs"), "// crate::nothing here\nfn f() { crate::store::query(); }").unwrap();
    std::fs::write(dir.join("policy.rs"), "").unwrap();
    let graph = imports(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(a_loop(&graph), Some(vec!["pages".into(), "store".into(), "pages".into()]));
    assert!(graph["policy"].is_empty());
}

/// The direction check finds an import going up, and a module the document does not place.
#[test]
fn the_layer_check_finds_an_import_going_up() {
    let document = "In `demo`, from the bottom:\n\n1. `policy` — the engine.\n2. `store`, `format` — SQL;\n   more.\n3. `pages` — views.\n\nAfter.";
    let layers = documented_layers(document, "demo");
    assert_eq!(layers.get("format"), Some(&2));
    assert_eq!(layers.len(), 4);
    let edge = |to: &str| BTreeMap::from([(to.to_owned(), PathBuf::from("x.rs"))]);
    let graph = BTreeMap::from([
        ("policy".to_owned(), edge("store")),
        ("pages".to_owned(), edge("store")),
        ("stray".to_owned(), BTreeMap::new()),
    ]);
    let wrong = against_layers(&graph, &layers);
    assert_eq!(
        wrong,
        ["`policy` (layer 1) imports `store` (layer 2) in x.rs", "`stray` is in no layer of docs/architecture.md"]
    );
}
