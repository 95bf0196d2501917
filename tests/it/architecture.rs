//! The layers of `docs/architecture.md`, kept true. The table there is the one place the
//! layers are written down; this test reads it, reads every `crate::…` and `super::…` path in
//! `src/` (comments and unit tests left out: a test may reach anywhere), and fails on an import
//! that goes down the table (a module using a layer below its own) or closes a circle, between
//! top-level modules or between files. A file using its own folder's `mod.rs` is that module's
//! own business and not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first, as `docs/architecture.md`'s table lists them: each row's name and
/// the modules in its second column.
fn layers(doc: &str) -> Vec<(String, Vec<String>)> {
    let table = doc
        .split("## The modules, in layers")
        .nth(1)
        .expect("docs/architecture.md has its layer table");
    table
        .lines()
        .skip_while(|line| !line.starts_with("| layer"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let modules = cells[2]
                .split(',')
                .map(|m| m.trim().trim_matches('`').trim_end_matches('/').to_string())
                .filter(|m| !m.is_empty())
                .collect();
            (cells[1].to_string(), modules)
        })
        .collect()
}

/// A source file's module path: `order/placer.rs` is `[order, placer]`, `raft/mod.rs` is
/// `[raft]`, `lib.rs` is `[]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}

/// The code of a file that counts: no comments, no unit tests.
fn code_of(text: &str) -> String {
    let before_tests = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    before_tests
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path `code` names from `crate::` or `super::`, as module paths from the crate's root.
fn paths_named(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (keyword, base) in [
        ("crate::", Vec::new()),
        // `super` of `a/b.rs` (module `a::b`) is `a`; of `a/mod.rs` (module `a`), the root.
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        let mut rest = code;
        while let Some(at) = rest.find(keyword) {
            let preceded_by_ident = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + keyword.len()..];
            if preceded_by_ident {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::B, c, d::{e, f}}`: the first name of each item.
                let mut depth = 0;
                let mut item_start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && (c.is_alphanumeric() || c == '_') => {
                            item_start = false;
                            let name = ident(&group[i..]);
                            if name != "self" {
                                found.push([base.clone(), vec![name]].concat());
                            }
                        }
                        _ => {}
                    }
                }
                continue;
            }
            let mut path = base.clone();
            let mut tail = rest;
            loop {
                let name = ident(tail);
                if name.is_empty() {
                    break;
                }
                tail = &tail[name.len()..];
                path.push(name);
                match tail.strip_prefix("::") {
                    Some(next) => tail = next,
                    None => break,
                }
            }
            found.push(path);
        }
    }
    found
}

/// The files of `src/` and the files each one uses.
fn file_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    source_files(src, src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|f| (module_of(f), f.clone())).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        // Test-only modules (`tests.rs`, `*_tests.rs`) may reach anywhere, as unit tests do.
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(src.join(file)).unwrap());
        let module = module_of(file);
        let mut uses = BTreeSet::new();
        for path in paths_named(&code, &module) {
            // The longest prefix of the path that is a file.
            let target = (1..=path.len()).rev().find_map(|n| modules.get(&path[..n]));
            let Some(target) = target else { continue };
            let own_folder_root = target.file_name().is_some_and(|n| n == "mod.rs")
                && file.starts_with(target.parent().unwrap());
            if target != file && !own_folder_root {
                uses.insert(target.clone());
            }
        }
        graph.insert(file.clone(), uses);
    }
    graph
}

/// The groups of nodes that reach each other (Tarjan's strongly connected components), each
/// of more than one node.
fn circles<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    struct Walk<'g, N> {
        graph: &'g BTreeMap<N, BTreeSet<N>>,
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        found: Vec<Vec<N>>,
    }
    impl<N: Ord + Clone> Walk<'_, N> {
        fn visit(&mut self, node: &N) {
            let i = self.index.len();
            self.index.insert(node.clone(), i);
            self.low.insert(node.clone(), i);
            self.stack.push(node.clone());
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node.clone(), low);
                } else if self.stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node.clone(), low);
                }
            }
            if self.low[node] == self.index[node] {
                let at = self.stack.iter().position(|n| n == node).unwrap();
                let group = self.stack.split_off(at);
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.found
}

#[test]
fn imports_go_only_up_the_layers_of_the_architecture_and_close_no_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let layers = layers(&doc);
    assert!(
        layers.len() >= 5,
        "the layer table is not where it was: {layers:?}"
    );
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, (_, modules))| modules.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let files = file_graph(&root.join("src"));
    let top = |file: &Path| module_of(file).first().cloned().unwrap_or_default();

    let mut problems = Vec::new();
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, uses) in &files {
        let from = top(file);
        if from.is_empty() {
            continue; // lib.rs declares every module
        }
        if !rank.contains_key(from.as_str()) {
            problems.push(format!(
                "src/{} belongs to `{from}`, which no layer of docs/architecture.md lists",
                file.display()
            ));
            continue;
        }
        for used in uses {
            let to = top(used);
            if to == from || to.is_empty() {
                continue;
            }
            modules.entry(from.clone()).or_default().insert(to.clone());
            if let Some(&to_rank) = rank.get(to.as_str()) {
                if to_rank > rank[from.as_str()] {
                    problems.push(format!(
                        "src/{} ({}) uses `{to}` ({}), a layer below it",
                        file.display(),
                        layers[rank[from.as_str()]].0,
                        layers[to_rank].0
                    ));
                }
            }
        }
    }
    for circle in circles(&modules) {
        problems.push(format!("the modules {} use each other", circle.join(", ")));
    }
    for circle in circles(&files) {
        let names: Vec<String> = circle
            .iter()
            .map(|f| format!("src/{}", f.display()))
            .collect();
        problems.push(format!("the files {} use each other", names.join(", ")));
    }
    assert!(
        problems.is_empty(),
        "the layers of docs/architecture.md do not hold:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_checker_sees_a_layer_broken_and_a_circle() {
    let doc = "## The modules, in layers\n\n| layer | modules | what |\n|---|---|---|\n\
               | low | `wire`, `config` | values |\n| high | `cluster/` | tools |\n";
    let layers = layers(doc);
    assert_eq!(layers[0].1, ["wire", "config"]);
    assert_eq!(layers[1].1, ["cluster"]);
    let code = code_of(
        "use crate::{cluster::StateDir, wire};\nuse super::peer; // crate::ignored\n\
         fn f() { crate::config::x(); }\n#[cfg(test)]\nmod tests { use crate::bench; }",
    );
    let named = paths_named(&code, &["order".into(), "placer".into()]);
    assert_eq!(
        named,
        [
            vec!["cluster".to_string()],
            vec!["wire".to_string()],
            vec!["config".to_string(), "x".to_string()],
            vec!["order".to_string(), "peer".to_string()],
        ]
    );
    let graph: BTreeMap<&str, BTreeSet<&str>> = [
        ("a", ["b"].into()),
        ("b", ["c"].into()),
        ("c", ["a"].into()),
        ("d", ["a"].into()),
    ]
    .into();
    assert_eq!(circles(&graph), [vec!["a", "b", "c"]]);
}

/// The longest a function of `src/` or `cli/` may be, from its `fn` line to its closing brace.
const LONGEST_FUNCTION: usize = 60;

/// Functions of `text` (unit tests left out) longer than [`LONGEST_FUNCTION`] lines, with the
/// line each starts on. A function ends at the first line after it that closes its indentation.
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let before_tests = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    let lines: Vec<&str> = before_tests.lines().collect();
    let mut long = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        let signature = code
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("const ")
            .trim_start_matches("async ")
            .trim_start_matches("unsafe ");
        let Some(rest) = signature.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.starts_with(indent) && l[indent.len()..].starts_with('}'))
            .map(|offset| start + 1 + offset);
        // A declaration without a body (in a trait) ends on its own line.
        if code.trim_end().ends_with(';') {
            continue;
        }
        if let Some(end) = end {
            let length = end - start + 1;
            if length > LONGEST_FUNCTION {
                long.push((start + 1, name, length));
            }
        }
    }
    long
}

#[test]
fn no_function_outside_tests_is_longer_than_sixty_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    for dir in ["src", "cli"] {
        let mut files = Vec::new();
        source_files(&root.join(dir), root, &mut files);
        for file in files {
            if file.to_string_lossy().ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(root.join(&file)).unwrap();
            for (line, name, length) in long_functions(&text) {
                long.push(format!("{}:{line} {name}: {length} lines", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {LONGEST_FUNCTION} lines; split them into helpers that say what they do:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_sees_a_long_function_and_not_a_short_one() {
    let body = "    let x = 1;\n".repeat(LONGEST_FUNCTION);
    let text = format!("pub fn long() {{\n{body}}}\n\nfn short() {{\n    let y = 2;\n}}\n");
    let found = long_functions(&text);
    assert_eq!(found, vec![(1, "long".to_string(), LONGEST_FUNCTION + 2)]);
    let tests = format!("#[cfg(test)]\nmod tests {{\n{text}}}\n");
    assert!(long_functions(&tests).is_empty());
}
