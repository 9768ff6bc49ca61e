//! The code's layout, checked from its imports (read as text): in
//! `convrfm-train` every `crate::`/`super::`/`self::` import goes to the
//! same stage or an earlier one of the data path, and in both library
//! crates no files import each other in a circle. The stage order is the
//! one `src/lib.rs` documents.
// Tests and their helpers: a panic is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Stages of `convrfm-train`, earliest first; files at the crate root
/// other than `lib.rs` are stages of their own.
const STAGES: [&[&str]; 7] = [
    &["output", "params", "matrix", "limits"],
    &["data"],
    &["kernel"],
    &["fit"],
    &["export"],
    &["link"],
    &["inspect", "bench"],
];

fn rank(stage: &str) -> usize {
    STAGES
        .iter()
        .position(|s| s.contains(&stage))
        .unwrap_or_else(|| panic!("stage {stage:?} is not in STAGES: add it"))
}

/// Every `.rs` file under `dir`, relative to it, except the binaries.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("bin") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The module folder of a file: `fit/model.rs` and `fit/mod.rs` are both
/// in `fit`; root files in "".
fn folder(file: &Path) -> PathBuf {
    file.parent().unwrap_or(Path::new("")).to_path_buf()
}

/// The file a module path names, if it is one of `files`: `dir/name.rs`,
/// else `dir/name/mod.rs`.
fn module_file(files: &[PathBuf], dir: &Path, name: &str) -> Option<PathBuf> {
    [
        dir.join(format!("{name}.rs")),
        dir.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find(|p| files.contains(p))
}

/// Words following `prefix` (`crate::`, `super::`, `self::`) in `text`,
/// up to two path segments, outside comments.
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let segs: Vec<&str> = rest
                .split("::")
                .take(2)
                .map(|s| {
                    s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")
                })
                .take_while(|s| !s.is_empty())
                .collect();
            out.push(segs);
        }
    }
    out
}

/// File -> files it imports, resolved as far as a module file exists.
fn import_graph(src: &Path) -> BTreeMap<PathBuf, Vec<PathBuf>> {
    let files = sources(src);
    let mut graph = BTreeMap::new();
    for f in &files {
        let text = fs::read_to_string(src.join(f)).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        let here = folder(f);
        let is_mod = f.ends_with("mod.rs") || f == Path::new("lib.rs");
        let mut targets = Vec::new();
        for segs in paths_after(text, "crate::") {
            let Some(first) = segs.first() else { continue };
            let t = segs
                .get(1)
                .and_then(|second| module_file(&files, Path::new(first), second))
                .or_else(|| module_file(&files, Path::new(""), first));
            targets.extend(t);
        }
        let parent = if is_mod { folder(&here) } else { here.clone() };
        for (prefix, dir) in [("super::", parent), ("self::", here.clone())] {
            for segs in paths_after(text, prefix) {
                if let Some(first) = segs.first() {
                    targets.extend(module_file(&files, &dir, first));
                }
            }
        }
        targets.retain(|t| t != f);
        targets.sort();
        targets.dedup();
        graph.insert(f.clone(), targets);
    }
    graph
}

/// A circle of files, if the graph has one.
fn find_cycle(graph: &BTreeMap<PathBuf, Vec<PathBuf>>) -> Option<Vec<PathBuf>> {
    fn visit(
        g: &BTreeMap<PathBuf, Vec<PathBuf>>,
        f: &PathBuf,
        stack: &mut Vec<PathBuf>,
        done: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        if let Some(i) = stack.iter().position(|s| s == f) {
            return Some(stack[i..].to_vec());
        }
        if done.contains(f) {
            return None;
        }
        stack.push(f.clone());
        for t in g.get(f).into_iter().flatten() {
            if let Some(c) = visit(g, t, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.push(f.clone());
        None
    }
    let mut done = Vec::new();
    graph
        .keys()
        .find_map(|f| visit(graph, f, &mut Vec::new(), &mut done))
}

fn crate_src(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn no_file_imports_a_later_stage() {
    let graph = import_graph(&crate_src("src"));
    assert!(graph.len() > 20, "read only {} files", graph.len());
    let stage = |f: &Path| {
        let first = f.components().next().unwrap().as_os_str().to_str().unwrap();
        first.trim_end_matches(".rs").to_string()
    };
    let mut against = Vec::new();
    for (from, targets) in &graph {
        if from == Path::new("lib.rs") {
            continue;
        }
        for to in targets {
            if rank(&stage(to)) > rank(&stage(from)) {
                against.push(format!("{} -> {}", from.display(), to.display()));
            }
        }
    }
    assert!(against.is_empty(), "imports against the flow: {against:#?}");
}

#[test]
fn no_import_circles_in_either_library() {
    for src in ["src", "../core/src"] {
        let graph = import_graph(&crate_src(src));
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{src}: files import each other in a circle: {cycle:?}");
        }
    }
}

#[test]
fn the_checker_sees_a_circle_and_a_backward_import() {
    let g: BTreeMap<PathBuf, Vec<PathBuf>> = [
        ("a.rs", vec!["b.rs"]),
        ("b.rs", vec!["c.rs"]),
        ("c.rs", vec!["a.rs"]),
    ]
    .into_iter()
    .map(|(f, t)| (PathBuf::from(f), t.into_iter().map(PathBuf::from).collect()))
    .collect();
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(3));
    assert!(rank("fit") > rank("data"));
    let text = "use crate::fit::model::Model; // crate::export::x\nlet y = super::readout::f();";
    assert_eq!(paths_after(text, "crate::"), [vec!["fit", "model"]]);
    assert_eq!(paths_after(text, "super::"), [vec!["readout", "f"]]);
}
