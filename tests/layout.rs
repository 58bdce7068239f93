//! The shape of the source tree, checked so that it stays the way the README's "Layout" says:
//! no file-level import cycle in either crate, no source file over 900 lines, at most six
//! files at the root of `src/`, and no production code that imports the test fixtures.
//! Files are parsed with syn; every `use`, path and macro token stream that names a module of
//! the same crate is an edge from the file that names it to the file that defines it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The most lines a source file may have.
const MAX_LINES: usize = 900;
/// The files allowed at the root of `src/`: the entry points and what every module shares.
const ROOT_FILES: [&str; 5] = ["main.rs", "lib.rs", "cli.rs", "error.rs", "logging.rs"];
/// The module of god-core that holds the test fixtures.
const FIXTURES: &str = "testing";

/// A module path: `["inputs", "registry"]` for `crate::model::registry`.
type ModulePath = Vec<String>;

/// One crate's source tree: where each module is defined.
struct CrateTree {
    /// The file each module (file or inline) is written in.
    modules: BTreeMap<ModulePath, PathBuf>,
    /// The parsed files, with the module path each one defines.
    files: Vec<(PathBuf, ModulePath, syn::File)>,
    /// The modules declared `#[cfg(test)]`: everything in them is test code.
    test_modules: BTreeSet<ModulePath>,
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
}

/// The module a file defines: `src/inputs/mod.rs` and `src/inputs.rs` are `inputs`.
fn module_of(src: &Path, file: &Path) -> ModulePath {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: ModulePath = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        path.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        path.pop();
    }
    path
}

impl CrateTree {
    fn read(src: &Path) -> Self {
        let mut modules = BTreeMap::new();
        let mut files = Vec::new();
        let mut test_modules = BTreeSet::new();
        for file in rust_files(src) {
            let text = std::fs::read_to_string(&file).unwrap();
            let parsed = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{}: does not parse: {e}", file.display()));
            let module = module_of(src, &file);
            modules.insert(module.clone(), file.clone());
            inline_modules(&parsed.items, &module, &file, &mut modules);
            test_modules.extend(declared_for_tests(&parsed.items, &module));
            files.push((file, module, parsed));
        }
        Self {
            modules,
            files,
            test_modules,
        }
    }

    /// Whether a module is test code: it, or a module it is in, is declared `#[cfg(test)]`.
    fn is_test_module(&self, module: &[String]) -> bool {
        (1..=module.len()).any(|n| self.test_modules.contains(&module[..n]))
    }

    /// The file of the longest known module that `absolute` starts with.
    fn file_of(&self, absolute: &[String]) -> Option<&PathBuf> {
        (0..=absolute.len())
            .rev()
            .find_map(|n| self.modules.get(&absolute[..n]))
    }

    /// Every file-to-file edge of the crate.
    fn edges(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
        for (file, module, parsed) in &self.files {
            let references = References::of(self, module, parsed);
            let targets = edges.entry(file.clone()).or_default();
            for target in references.found {
                if &target != file {
                    targets.insert(target);
                }
            }
        }
        edges
    }
}

/// The child modules of `scope` declared `#[cfg(test)]` (`#[cfg(test)] mod tests;`).
fn declared_for_tests(items: &[syn::Item], scope: &ModulePath) -> Vec<ModulePath> {
    items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if is_cfg_test(&m.attrs) => {
                let mut path = scope.clone();
                path.push(m.ident.to_string());
                Some(path)
            }
            _ => None,
        })
        .collect()
}

fn inline_modules(
    items: &[syn::Item],
    scope: &ModulePath,
    file: &Path,
    modules: &mut BTreeMap<ModulePath, PathBuf>,
) {
    for item in items {
        if let syn::Item::Mod(m) = item
            && let Some((_, content)) = &m.content
        {
            let mut inner = scope.clone();
            inner.push(m.ident.to_string());
            modules.insert(inner.clone(), file.to_path_buf());
            inline_modules(content, &inner, file, modules);
        }
    }
}

/// Collects the files a file's paths lead to.
struct References<'a> {
    tree: &'a CrateTree,
    scope: ModulePath,
    found: BTreeSet<PathBuf>,
    in_test: bool,
    fixture_uses: Vec<String>,
}

impl<'a> References<'a> {
    /// The references of one parsed file, which defines `module`.
    fn of(tree: &'a CrateTree, module: &ModulePath, parsed: &syn::File) -> Self {
        let mut references = References {
            tree,
            scope: module.clone(),
            found: BTreeSet::new(),
            in_test: tree.is_test_module(module),
            fixture_uses: Vec::new(),
        };
        references.visit_file(parsed);
        references
    }

    /// Resolves a path written in the current scope and records the file it leads to.
    fn record(&mut self, segments: &[String]) {
        if segments.iter().any(|s| s == FIXTURES) && !self.in_test {
            self.fixture_uses.push(segments.join("::"));
        }
        let Some(first) = segments.first() else {
            return;
        };
        let mut absolute: ModulePath = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.scope.clone(),
            "super" => self.scope.clone(),
            _ => {
                let mut local = self.scope.clone();
                local.push(first.clone());
                if !self.tree.modules.contains_key(&local) {
                    return;
                }
                self.scope.clone()
            }
        };
        let mut rest = segments;
        while let Some(head) = rest.first() {
            match head.as_str() {
                "crate" | "self" => {}
                "super" => {
                    absolute.pop();
                }
                _ => break,
            }
            rest = &rest[1..];
        }
        absolute.extend(rest.iter().cloned());
        if let Some(file) = self.tree.file_of(&absolute) {
            self.found.insert(file.clone());
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.record(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.record(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.record(&prefix.clone()),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    /// Paths inside macro invocations (`assert_eq!(crate::a::b(), …)`): runs of `ident ::`.
    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let mut run: Vec<String> = Vec::new();
        let mut after_colons = false;
        let mut colons = 0;
        for token in tokens {
            match token {
                proc_macro2::TokenTree::Ident(ident) => {
                    if !after_colons && !run.is_empty() {
                        self.flush(&mut run);
                    }
                    run.push(ident.to_string());
                    after_colons = false;
                }
                proc_macro2::TokenTree::Punct(p) if p.as_char() == ':' => {
                    colons += 1;
                    if colons == 2 {
                        after_colons = true;
                        colons = 0;
                    }
                }
                proc_macro2::TokenTree::Group(g) => {
                    self.flush(&mut run);
                    self.tokens(g.stream());
                }
                _ => {
                    self.flush(&mut run);
                    after_colons = false;
                    colons = 0;
                }
            }
        }
        self.flush(&mut run);
    }

    fn flush(&mut self, run: &mut Vec<String>) {
        if run.len() > 1 {
            self.record(&run.clone());
        }
        run.clear();
    }
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().contains("test"))
    })
}

impl<'ast> Visit<'ast> for References<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.record(&segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let was_test = self.in_test;
        self.in_test |= is_cfg_test(&item.attrs);
        if item.content.is_some() {
            self.scope.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.scope.pop();
        }
        self.in_test = was_test;
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        let was_test = self.in_test;
        self.in_test |=
            is_cfg_test(&item.attrs) || item.attrs.iter().any(|a| a.path().is_ident("test"));
        syn::visit::visit_item_fn(self, item);
        self.in_test = was_test;
    }
}

/// The strongly connected components of more than one file (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, node: &'a PathBuf) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.edges.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                loop {
                    let top = self.stack.pop().unwrap();
                    self.on_stack.remove(top);
                    component.push(top.clone());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    tarjan.found
}

fn crate_sources() -> [PathBuf; 2] {
    let root = repository();
    [root.join("src"), root.join("crates/god-core/src")]
}

#[test]
fn no_file_level_import_cycle_in_either_crate() {
    let mut report = Vec::new();
    for src in crate_sources() {
        let tree = CrateTree::read(&src);
        let edges = tree.edges();
        assert!(
            edges.values().map(BTreeSet::len).sum::<usize>() > 5,
            "{}: the imports were read",
            src.display()
        );
        for cycle in cycles(&edges) {
            let names: Vec<String> = cycle
                .iter()
                .map(|p| p.strip_prefix(repository()).unwrap().display().to_string())
                .collect();
            report.push(names.join(" <-> "));
        }
    }
    assert!(report.is_empty(), "import cycles:\n{}", report.join("\n"));
}

#[test]
fn a_cycle_of_two_files_is_found() {
    let a = PathBuf::from("a.rs");
    let b = PathBuf::from("b.rs");
    let c = PathBuf::from("c.rs");
    let edges = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone(), c.clone()])),
        (c.clone(), BTreeSet::new()),
    ]);
    assert_eq!(cycles(&edges), vec![vec![a, b]]);
}

#[test]
fn no_source_file_is_over_900_lines() {
    let root = repository();
    let long: Vec<String> = ["src", "crates", "tests", "benches"]
        .iter()
        .flat_map(|dir| rust_files(&root.join(dir)))
        .filter_map(|file| {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_root_of_src_holds_only_the_entry_points() {
    let loose: Vec<String> = std::fs::read_dir(repository().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| !ROOT_FILES.contains(&name.as_str()))
        .collect();
    assert!(loose.is_empty(), "loose files at src/: {loose:?}");
}

#[test]
fn production_code_never_imports_the_test_fixtures() {
    let mut uses = Vec::new();
    for src in crate_sources() {
        let tree = CrateTree::read(&src);
        for (file, module, parsed) in &tree.files {
            if module.first().is_some_and(|m| m == FIXTURES) {
                continue;
            }
            let references = References::of(&tree, module, parsed);
            uses.extend(
                references
                    .fixture_uses
                    .into_iter()
                    .map(|u| format!("{}: {u}", file.display())),
            );
        }
    }
    assert!(
        uses.is_empty(),
        "fixtures used outside tests:\n{}",
        uses.join("\n")
    );
}
