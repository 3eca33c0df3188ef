//! Embeds the files of `sql/` in the order `sql/load_order.txt` gives, and
//! fails the build when a `.sql` file is not listed (a forgotten file would
//! otherwise silently never load) or a listed one is missing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn sql_files(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sql_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "sql") {
            if let Ok(rel) = path.strip_prefix(root) {
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
}

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let sql_dir = manifest.join("sql");
    println!("cargo:rerun-if-changed=sql");
    println!("cargo:rerun-if-changed=migrations");
    let order =
        fs::read_to_string(sql_dir.join("load_order.txt")).expect("sql/load_order.txt exists");
    let listed: Vec<&str> = order
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut present = BTreeSet::new();
    sql_files(&sql_dir, &sql_dir, &mut present);
    for file in &listed {
        assert!(
            present.contains(*file),
            "sql/load_order.txt lists {file}, which does not exist"
        );
    }
    for file in &present {
        assert!(
            listed.contains(&file.as_str()),
            "sql/{file} is not listed in sql/load_order.txt"
        );
    }
    let mut code = String::from("/// `sql/` files in load order: (path under sql/, contents).\npub const SQL_FILES: &[(&str, &str)] = &[\n");
    for file in listed {
        let full = sql_dir.join(file);
        writeln!(
            code,
            "    ({file:?}, include_str!({:?})),",
            full.to_string_lossy()
        )
        .expect("write to String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("sql_files.rs");
    fs::write(out, code).expect("write sql_files.rs");
}
