//! Builds the repository's `detectors/*.sql` and `queries/*.sql` into the binary, so
//! `loggvakt detect` works from anywhere; adding a file there needs no Rust change (and
//! `--detectors DIR` loads a directory at run time instead).

// A build script talks to cargo on stdout.
#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::path::Path;

fn embed(out: &mut String, constant: &str, dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    // A missing or empty directory would build a binary that detects nothing and says
    // nothing about it: fail the build instead, naming the directory.
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e} (the built-in detectors and queries are read from it)", dir.display()));
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().and_then(|e| e.to_str()) == Some("sql")).collect();
    assert!(!files.is_empty(), "{} holds no .sql file: the built-in detectors and queries are read from it", dir.display());
    files.sort();
    let _ = writeln!(out, "pub const {constant}: &[(&str, &str)] = &[");
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let _ = writeln!(out, "    ({name:?}, include_str!({:?})),", f.display().to_string());
    }
    let _ = writeln!(out, "];");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let mut out = String::new();
    embed(&mut out, "DETECTORS", &root.join("detectors"));
    embed(&mut out, "QUERIES", &root.join("queries"));
    let path = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("builtin_sql.rs");
    if let Err(e) = std::fs::write(&path, out) {
        panic!("writing {}: {e}", path.display());
    }
}
