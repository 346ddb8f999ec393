//! The layers of libcore and the files inside them, checked from the
//! source text (no compiler help: a plain reading of `use` lines and of
//! `crate::`, `super::` and `self::` paths in code).
//!
//! * Each folder of `libcore/src` is a layer, and a layer's non-test code
//!   names only layers below it: storage <- wal <- btree <- recovery <-
//!   engine <- ops; `bdbtext` (the Berkeley DB text formats) may use
//!   storage, wal and btree and is used by ops only. `error.rs`,
//!   `types.rs` and `progress.rs` (what a long operation reports) are
//!   below everything; `lib.rs` and `testing.rs` (the public
//!   API and what the tests reach) may name anything.
//! * No two files import each other, directly or around a longer circle:
//!   the graph of file -> files it names (a path through a `mod.rs` that
//!   re-exports an item leads to the file that defines it) has no cycle.
//! * The tools (`tools/`) use libcore's public API only: no
//!   `libcore::<private module>` path.
//!
//! Test code is left out: files named `tests.rs`, modules declared under
//! `#[cfg(test)]`, and any item under a `cfg` that names `test` or the
//! `testing` feature (test machinery compiled only for tests).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside the crate (`["engine", "env"]`), `[]` for lib.rs.
type ModPath = Vec<String>;

/// The layer of a top-level module, and what it may name.
fn allowed(from: &str, to: &str) -> bool {
    const ORDER: [&str; 6] = ["storage", "wal", "btree", "recovery", "engine", "ops"];
    let rank = |m: &str| ORDER.iter().position(|x| *x == m);
    match (from, to) {
        (_, "error" | "types" | "progress") => true,
        ("lib" | "testing" | "test_support", _) => true,
        ("error" | "types" | "progress", _) => false,
        ("bdbtext", t) => matches!(t, "bdbtext" | "storage" | "wal" | "btree"),
        ("ops", "bdbtext") => true,
        (_, "bdbtext") => false,
        (f, t) => match (rank(f), rank(t)) {
            (Some(a), Some(b)) => b <= a,
            _ => false,
        },
    }
}

/// One source file, its test code blanked out.
struct Source {
    /// Relative to `libcore/src` (or the workspace, for tools).
    rel: PathBuf,
    module: ModPath,
    /// Comments, strings and test code replaced by spaces (lines kept).
    code: String,
}

/// A path named in a file, resolved to a module path plus items.
struct Named {
    line: usize,
    path: Vec<String>,
    /// A `pub use`: a re-export, which the path resolution follows.
    reexport: Option<String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn module_of(rel: &Path) -> ModPath {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        f => parts.push(f.trim_end_matches(".rs").to_string()),
    }
    parts
}

/// `text` with comments, string and char literals replaced by spaces
/// (newlines kept, so offsets and lines stay).
fn blank_comments_and_strings(text: &str) -> String {
    blank(text, false)
}

/// Comments (and, unless `keep_strings`, string and char literals)
/// replaced by spaces.
fn blank(text: &str, keep_strings: bool) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = b.clone();
    let mut i = 0;
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in out.iter_mut().take(to).skip(from) {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    while i < b.len() {
        if b[i] == '/' && b.get(i + 1) == Some(&'/') {
            let end = (i..b.len()).find(|&j| b[j] == '\n').unwrap_or(b.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == '/' && b.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            let mut j = i;
            while j < b.len() {
                if b[j] == '/' && b.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == '*' && b.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if b[i] == 'r'
            && matches!(b.get(i + 1), Some('"') | Some('#'))
            && !ident_char(b.get(i.wrapping_sub(1)).copied())
        {
            // Raw string r"..." or r#"..."#.
            let hashes = (i + 1..b.len()).take_while(|&j| b[j] == '#').count();
            let open = i + 1 + hashes;
            if b.get(open) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let rest: String = b[open + 1..].iter().collect();
            let end = rest
                .find(&close)
                .map(|k| open + 1 + rest[..k].chars().count() + close.len())
                .unwrap_or(b.len());
            if !keep_strings {
                blank(&mut out, i, end);
            }
            i = end;
        } else if b[i] == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            if !keep_strings {
                blank(&mut out, i, (j + 1).min(b.len()));
            }
            i = j + 1;
        } else if b[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime.
            let end = if b.get(i + 1) == Some(&'\\') {
                (i + 3..b.len()).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    if !keep_strings {
                        blank(&mut out, i, e + 1);
                    }
                    i = e + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The end (exclusive) of the item starting at `from`: its first `;` at
/// depth 0, or the `}` closing its first `{`.
fn item_end(b: &[char], from: usize) -> usize {
    let mut depth = 0usize;
    let mut j = from;
    while j < b.len() {
        match b[j] {
            ';' if depth == 0 => return j + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    b.len()
}

/// Blanks every item under a `#[cfg(..)]` that names `test`; returns the
/// names of the modules declared that way (`mod tests;`).
fn blank_test_items(code: &str) -> (String, Vec<String>) {
    let b: Vec<char> = code.chars().collect();
    let mut out = b.clone();
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '#' && b.get(i + 1) == Some(&'[') {
            let close = (i..b.len()).find(|&j| b[j] == ']').unwrap_or(b.len());
            let attr: String = b[i..close].iter().collect();
            let test_cfg = has_word(&attr, "test") || attr.contains("\"testing\"");
            if attr.contains("cfg(") && test_cfg && !attr.contains("not(") {
                // Past any further attributes, to the item.
                let mut j = close + 1;
                loop {
                    while j < b.len() && b[j].is_whitespace() {
                        j += 1;
                    }
                    if b.get(j) == Some(&'#') {
                        j = (j..b.len()).find(|&k| b[k] == ']').unwrap_or(b.len()) + 1;
                    } else {
                        break;
                    }
                }
                let end = item_end(&b, j);
                let item: String = b[j..end].iter().collect();
                if let Some(name) = declared_mod(&item) {
                    test_mods.push(name);
                }
                for c in out.iter_mut().take(end).skip(i) {
                    if *c != '\n' {
                        *c = ' ';
                    }
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    (out.into_iter().collect(), test_mods)
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(k, _)| {
        let before = text[..k].chars().next_back();
        let after = text[k + word.len()..].chars().next();
        !ident_char(before) && !ident_char(after)
    })
}

/// `mod name;` or `mod name {`: the name.
fn declared_mod(item: &str) -> Option<String> {
    let words: Vec<&str> = item
        .split(|c: char| c.is_whitespace() || c == ';' || c == '{')
        .filter(|w| !w.is_empty())
        .collect();
    let at = words.iter().position(|w| *w == "mod")?;
    words.get(at + 1).map(|s| s.to_string())
}

fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].matches('\n').count() + 1
}

/// Expands a use tree (`a::{b, c::{d as e, self}}`) into full paths, each
/// with the name it binds.
fn expand_use(tree: &str) -> Vec<(Vec<String>, String)> {
    let t: String = tree
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" as ", "@")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut out = Vec::new();
    expand_into(&[], &t, &mut out);
    out
}

fn expand_into(prefix: &[String], t: &str, out: &mut Vec<(Vec<String>, String)>) {
    if let Some(open) = t.find('{') {
        let head: Vec<String> = t[..open]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let inner = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
        let mut p = prefix.to_vec();
        p.extend(head);
        for part in split_top(inner) {
            expand_into(&p, part, out);
        }
        return;
    }
    let (path, alias) = match t.split_once('@') {
        Some((p, a)) => (p, Some(a.to_string())),
        None => (t, None),
    };
    let mut p = prefix.to_vec();
    for s in path.split("::").filter(|s| !s.is_empty()) {
        if s == "self" && !p.is_empty() {
            continue;
        }
        p.push(s.to_string());
    }
    let name = alias.unwrap_or_else(|| p.last().cloned().unwrap_or_default());
    out.push((p, name));
}

/// Splits on the commas not inside braces.
fn split_top(t: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in t.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&t[start..]);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// The `use` items of `code`: (offset, tree, is it `pub`).
fn use_items(code: &str) -> Vec<(usize, String, bool)> {
    let mut out = Vec::new();
    for (k, _) in code.match_indices("use") {
        let before = code[..k].chars().next_back();
        let after = code[k + 3..].chars().next();
        if ident_char(before) || !after.is_some_and(char::is_whitespace) {
            continue;
        }
        let last = code[..k].split_whitespace().next_back().unwrap_or("");
        let is_pub = last == "pub" || last.starts_with("pub(");
        let end = code[k..].find(';').map(|e| k + e).unwrap_or(code.len());
        out.push((k, code[k + 3..end].to_string(), is_pub));
    }
    out
}

/// Paths written inline: `crate::a::b`, `super::x`, `self::y`.
fn inline_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let uses: Vec<(usize, usize)> = use_items(code)
        .iter()
        .map(|(k, t, _)| (*k, k + 3 + t.len()))
        .collect();
    for root in ["crate::", "super::", "self::"] {
        for (k, _) in code.match_indices(root) {
            let before = code[..k].chars().next_back();
            if ident_char(before) || before == Some('$') || code[..k].ends_with("::") {
                continue;
            }
            if uses.iter().any(|(a, b)| k >= *a && k < *b) {
                continue;
            }
            let rest = &code[k..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let segs: Vec<String> = rest[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            out.push((k, segs));
        }
    }
    out
}

struct Crate {
    sources: Vec<Source>,
    /// Module path -> index in `sources`.
    files: BTreeMap<ModPath, usize>,
    /// Per module: name -> the path it re-exports.
    reexports: BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
    named: Vec<Vec<Named>>,
}

impl Crate {
    fn read(root: &Path) -> Crate {
        let mut paths = Vec::new();
        rust_files(root, &mut paths);
        let mut raw = Vec::new();
        let mut test_modules: BTreeSet<ModPath> = BTreeSet::new();
        for p in paths {
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let module = module_of(&rel);
            let text = std::fs::read_to_string(&p).unwrap();
            let (code, tests) = blank_test_items(&blank(&text, true));
            let code = blank_comments_and_strings(&code);
            for t in tests {
                let mut m = module.clone();
                m.push(t);
                test_modules.insert(m);
            }
            raw.push(Source { rel, module, code });
        }
        let sources: Vec<Source> = raw
            .into_iter()
            .filter(|s| s.rel.file_name().is_some_and(|n| n != "tests.rs"))
            .filter(|s| !test_modules.iter().any(|t| s.module.starts_with(t)))
            .collect();
        let files = sources
            .iter()
            .enumerate()
            .map(|(i, s)| (s.module.clone(), i))
            .collect();
        let mut c = Crate {
            sources,
            files,
            reexports: BTreeMap::new(),
            named: Vec::new(),
        };
        for i in 0..c.sources.len() {
            let n = c.names_in(i);
            for x in &n {
                if let Some(alias) = &x.reexport {
                    let m = c.sources[i].module.clone();
                    c.reexports
                        .entry(m)
                        .or_default()
                        .insert(alias.clone(), x.path.clone());
                }
            }
            c.named.push(n);
        }
        c
    }

    /// Every crate path file `i` names, made absolute.
    fn names_in(&self, i: usize) -> Vec<Named> {
        let s = &self.sources[i];
        let mut out = Vec::new();
        for (k, tree, is_pub) in use_items(&s.code) {
            for (path, alias) in expand_use(&tree) {
                if let Some(abs) = self.absolute(&s.module, &path) {
                    out.push(Named {
                        line: line_of(&s.code, k),
                        path: abs,
                        reexport: is_pub.then_some(alias),
                    });
                }
            }
        }
        for (k, path) in inline_paths(&s.code) {
            if let Some(abs) = self.absolute(&s.module, &path) {
                out.push(Named {
                    line: line_of(&s.code, k),
                    path: abs,
                    reexport: None,
                });
            }
        }
        out
    }

    /// `path` as seen from `module`, made absolute; `None` for another
    /// crate's path.
    fn absolute(&self, module: &ModPath, path: &[String]) -> Option<Vec<String>> {
        let mut base: Vec<String> = match path.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") | Some("self") => module.clone(),
            Some(first) => {
                // A child module of this one (`use writer::Log` in mod.rs).
                let mut m = module.clone();
                m.push(first.to_string());
                if !self.files.contains_key(&m) {
                    return None;
                }
                module.clone()
            }
            None => return None,
        };
        let mut rest = path;
        if rest[0] == "crate" || rest[0] == "self" {
            rest = &rest[1..];
        }
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what `path` names (following re-exports).
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        let mut cur: ModPath = Vec::new();
        for (k, seg) in path.iter().enumerate() {
            if seg == "*" {
                break;
            }
            let mut next = cur.clone();
            next.push(seg.clone());
            if self.files.contains_key(&next) {
                cur = next;
                continue;
            }
            if depth < 8 {
                if let Some(target) = self.reexports.get(&cur).and_then(|r| r.get(seg)) {
                    let mut t = target.clone();
                    t.extend(path[k + 1..].iter().cloned());
                    if t != path {
                        return self.resolve(&t, depth + 1);
                    }
                }
            }
            break;
        }
        self.files.get(&cur).copied()
    }

    /// Edges file -> file, each with the line that makes it. A mod.rs or
    /// lib.rs re-export is not an edge of its own (the path resolution
    /// goes through it to the file that defines the item).
    fn edges(&self) -> BTreeMap<usize, BTreeMap<usize, usize>> {
        let mut g: BTreeMap<usize, BTreeMap<usize, usize>> = BTreeMap::new();
        for (i, names) in self.named.iter().enumerate() {
            let facade = matches!(
                self.sources[i].rel.file_name().and_then(|n| n.to_str()),
                Some("mod.rs" | "lib.rs")
            );
            for n in names {
                if facade && n.reexport.is_some() {
                    continue;
                }
                if let Some(j) = self.resolve(&n.path, 0) {
                    if j != i {
                        g.entry(i).or_default().entry(j).or_insert(n.line);
                    }
                }
            }
        }
        g
    }
}

fn top(module: &ModPath) -> &str {
    module.first().map(String::as_str).unwrap_or("lib")
}

/// Every reference from a layer to one it may not name, as file:line.
fn layer_violations(c: &Crate) -> Vec<String> {
    let mut out = Vec::new();
    for (i, names) in c.named.iter().enumerate() {
        let from = top(&c.sources[i].module);
        for n in names {
            // Where the item lives (a lib.rs re-export leads to its layer).
            let to = match c.resolve(&n.path, 0) {
                Some(j) if !c.sources[j].module.is_empty() => top(&c.sources[j].module),
                _ => n.path.first().map(String::as_str).unwrap_or("lib"),
            };
            if !allowed(from, to) {
                out.push(format!(
                    "libcore/src/{}:{}: {} names {} (crate::{})",
                    c.sources[i].rel.display(),
                    n.line,
                    from,
                    to,
                    n.path.join("::")
                ));
            }
        }
    }
    out
}

/// The cycles of the file graph, one per strongly connected component of
/// more than one file, each as "a -> b -> ... -> a" with the lines.
fn cycles(c: &Crate) -> Vec<String> {
    let g = c.edges();
    let n = c.sources.len();
    // Tarjan's algorithm, iterative enough for a few hundred files.
    struct T<'a> {
        g: &'a BTreeMap<usize, BTreeMap<usize, usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        comps: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        let succ: Vec<usize> =
            t.g.get(&v)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default();
        for w in succ {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            t.comps.push(comp);
        }
    }
    let mut t = T {
        g: &g,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        comps: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    let name = |i: usize| format!("libcore/src/{}", c.sources[i].rel.display());
    let mut out = Vec::new();
    for comp in t.comps.into_iter().filter(|c| c.len() > 1) {
        let set: BTreeSet<usize> = comp.iter().copied().collect();
        let start = *set.iter().next().unwrap_or(&0);
        // A shortest way back to `start` inside the component.
        let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut back = None;
        while let Some(v) = queue.pop_front() {
            for &w in g
                .get(&v)
                .map(|m| m.keys().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if !set.contains(&w) {
                    continue;
                }
                if w == start {
                    back = Some(v);
                    break;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(w) {
                    e.insert(v);
                    queue.push_back(w);
                }
            }
            if back.is_some() {
                break;
            }
        }
        let mut path = vec![start];
        let mut v = back.unwrap_or(start);
        let mut tail = Vec::new();
        while v != start {
            tail.push(v);
            v = prev[&v];
        }
        tail.reverse();
        path.extend(tail);
        path.push(start);
        let steps: Vec<String> = path
            .windows(2)
            .map(|w| format!("{}:{}", name(w[0]), g[&w[0]][&w[1]]))
            .collect();
        out.push(format!(
            "{} -> {} (files in the circle: {})",
            steps.join(" -> "),
            name(start),
            set.len()
        ));
    }
    out
}

#[test]
fn no_layer_names_a_layer_above_it() {
    let c = Crate::read(&src_dir());
    assert!(c.sources.len() > 50, "found {} files", c.sources.len());
    let bad = layer_violations(&c);
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn no_two_files_import_each_other() {
    let c = Crate::read(&src_dir());
    // The graph is not empty: a reading that found no edge would pass.
    let edges: usize = c.edges().values().map(|m| m.len()).sum();
    assert!(edges > 100, "only {edges} edges between files");
    let found = cycles(&c);
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

/// The modules lib.rs keeps private (`mod x;`, not `pub mod`), and the
/// test-only `testing`.
fn private_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let code = blank_comments_and_strings(&lib);
    let mut out: BTreeSet<String> = code
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("mod ") && l.ends_with(';'))
        .map(|l| l["mod ".len()..l.len() - 1].trim().to_string())
        .collect();
    out.insert("testing".to_string());
    out
}

#[test]
fn the_tools_use_only_the_public_api() {
    let private = private_modules();
    assert!(
        private.contains("engine") && private.contains("storage"),
        "{private:?}"
    );
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools");
    let mut paths = Vec::new();
    rust_files(&tools, &mut paths);
    assert!(paths.len() > 10, "found {} tool files", paths.len());
    let mut bad = Vec::new();
    let mut public = 0;
    for p in &paths {
        let code = blank_comments_and_strings(&std::fs::read_to_string(p).unwrap());
        let mut named: Vec<(usize, Vec<String>)> = Vec::new();
        for (k, tree, _) in use_items(&code) {
            for (path, _) in expand_use(&tree) {
                named.push((k, path));
            }
        }
        for (k, _) in code.match_indices("libcore::") {
            if !ident_char(code[..k].chars().next_back()) {
                let rest = &code[k + "libcore::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                named.push((k, vec!["libcore".into(), rest[..end].to_string()]));
            }
        }
        for (k, path) in named {
            if path.first().is_some_and(|s| s == "libcore") {
                public += 1;
                if let Some(m) = path.get(1).filter(|m| private.contains(*m)) {
                    bad.push(format!(
                        "{}:{}: libcore::{m}",
                        p.display(),
                        line_of(&code, k)
                    ));
                }
            }
        }
    }
    assert!(public > 20, "only {public} libcore paths in tools/");
    assert!(
        bad.is_empty(),
        "tools name private modules:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_reading_finds_what_it_checks_for() {
    // The checks above pass on silence: make sure the reader sees a
    // violation, a cycle and a re-export when they are there.
    let d = tempfile::tempdir().unwrap();
    let w = |p: &str, t: &str| {
        let f = d.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, t).unwrap();
    };
    w("lib.rs", "mod storage;\nmod engine;\n");
    w(
        "storage/mod.rs",
        "pub mod a;\npub mod b;\npub use a::Thing;\n",
    );
    w(
        "storage/a.rs",
        "// use crate::engine::x;\nuse super::b::B;\npub struct Thing;\n#[cfg(test)]\nmod tests { use crate::engine::E; }\n",
    );
    w(
        "storage/b.rs",
        "pub struct B;\nfn f() { let _ = \"crate::engine\"; crate::storage::Thing; }\n",
    );
    w(
        "engine/mod.rs",
        "pub struct E;\nuse crate::storage::{self, b::B};\n",
    );
    let c = Crate::read(d.path());
    let v = layer_violations(&c);
    assert!(v.is_empty(), "{v:?}");
    let cyc = cycles(&c);
    assert_eq!(cyc.len(), 1, "{cyc:?}");
    assert!(
        cyc[0].contains("storage/a.rs:2") && cyc[0].contains("storage/b.rs:2"),
        "{cyc:?}"
    );
    w(
        "storage/b.rs",
        "pub struct B;\nfn f() { crate::engine::E; }\n",
    );
    let c = Crate::read(d.path());
    let v = layer_violations(&c);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].starts_with("libcore/src/storage/b.rs:2: storage names engine"),
        "{v:?}"
    );
}
