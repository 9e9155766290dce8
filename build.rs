//! Generates the C header from the exported functions with cbindgen.
//!
//! The header is written to `$OUT_DIR/snicache.h` on every build; the committed copy in
//! `include/snicache.h` is refreshed only when `SNICACHE_BLESS_HEADER=1` is set, so that a test
//! (`tests/header.rs`) can fail when the committed header is stale.
//!
//! The stats structs are not cbindgen's: they are made, as in Rust, from the one declaration of
//! the stats fields (`src/engine/stats_fields.rs`), with the X-macros of their fields and of
//! the rule names.
use std::{env, fmt::Write as _, fs, path::PathBuf};

const STATS_FIELDS: &str = "src/engine/stats_fields.rs";

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("snicache.h");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=SNICACHE_BLESS_HEADER");

    let version = env::var("CARGO_PKG_VERSION").unwrap();
    let part = |name: &str| env::var(name).unwrap();
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let mut after_includes = format!(
        "\n#define SNICACHE_VERSION \"{version}\"\n#define SNICACHE_VERSION_MAJOR {}\n#define SNICACHE_VERSION_MINOR {}\n#define SNICACHE_VERSION_PATCH {}\n",
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    );
    let fields = fs::read_to_string(crate_dir.join(STATS_FIELDS)).expect("stats fields readable");
    after_includes.push_str(&stats_header(&fields));
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .with_after_include(after_includes)
        .generate()
        .expect("cbindgen generates the header");
    bindings.write_to_file(&out);
    if env::var_os("SNICACHE_BLESS_HEADER").is_some() {
        fs::copy(&out, crate_dir.join("include/snicache.h"))
            .expect("include/snicache.h is writable");
    }
}

/// The X-macros and structs of the stats declaration, as C.
fn stats_header(src: &str) -> String {
    let stats = entries(src, "stats_fields").into_iter().map(|e| {
        let (group, rest) = field(&e);
        format!("X({group}, {rest})")
    });
    let shm = entries(src, "shm_health_fields")
        .into_iter()
        .map(|e| match field(&e) {
            ("shm", rest) => format!("X({rest})"),
            _ => panic!("{STATS_FIELDS}: {}: not a shm health field", e.name),
        });
    let rules = entries(src, "rules")
        .into_iter()
        .map(|e| format!("X({}, {})", e.name, e.help));
    let lists = [
        (
            "SNICACHE_STATS_FIELDS",
            "The fields of snicache_stats, in order, as X(group, name, type, help). group: vhost (per\n vhost and in total), refusals (per vhost: the sum over the rules, which\n snicache_cache_refusals reads one by one), listener or remote (in the totals only, 0 for one\n vhost; remote: a redis:// store's). type: the Prometheus type, counter or gauge.",
            stats.collect::<Vec<_>>(),
        ),
        (
            "SNICACHE_SHM_HEALTH_FIELDS",
            "The fields of snicache_shm_health, in order, as X(name, type, help).",
            shm.collect(),
        ),
        (
            "SNICACHE_RULES",
            "The built-in policy rules, in policy order, as X(name, help): name is the refusal reason in\n the stats (snicache_cache_refusals) and logs, help says when the rule refuses.",
            rules.collect(),
        ),
    ];
    let mut h = String::new();
    for (name, doc, items) in lists {
        let _ = write!(h, "\n/*\n {doc}\n */\n#define {name}(X)");
        for item in items {
            let _ = write!(h, " \\\n  {item}");
        }
        h.push('\n');
    }
    h.push_str(concat!(
        "\n/*\n Counters, for one vhost or in total: the fields of SNICACHE_STATS_FIELDS.\n */\n",
        "typedef struct {\n",
        "#define SNICACHE_FIELD_(group, name, type, help) uint64_t name;\n",
        "  SNICACHE_STATS_FIELDS(SNICACHE_FIELD_)\n",
        "#undef SNICACHE_FIELD_\n",
        "} snicache_stats;\n",
        "\n/*\n Health of a cache's shared-memory store, summed over every process using the mapping:\n",
        " the fields of SNICACHE_SHM_HEALTH_FIELDS.\n */\n",
        "typedef struct {\n",
        "#define SNICACHE_FIELD_(name, type, help) uint64_t name;\n",
        "  SNICACHE_SHM_HEALTH_FIELDS(SNICACHE_FIELD_)\n",
        "#undef SNICACHE_FIELD_\n",
        "} snicache_shm_health;\n",
    ));
    h
}

/// One entry of the declaration: `name: rest, "help";`.
struct Entry {
    name: String,
    /// What follows the colon: the kind and source of a field, the variant of a rule.
    rest: Vec<String>,
    /// The help text as a string literal, quotes included.
    help: String,
}

/// The entries of the `macro! { ... }` invocation in the declaration.
fn entries(src: &str, name: &str) -> Vec<Entry> {
    let code: String = src
        .lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let start = code
        .find(&format!("{name}! {{"))
        .unwrap_or_else(|| panic!("{STATS_FIELDS}: no {name}!"))
        + name.len()
        + 3;
    let body = &code[start..start + code[start..].find('}').expect("closing brace")];
    let mut entries = Vec::new();
    let mut rest = body;
    while let Some(q) = rest.find('"') {
        let end = q + 1 + rest[q + 1..].find('"').expect("closed string");
        let help = &rest[q..=end];
        assert!(
            !help.contains('\\') && !help.contains("*/"),
            "{STATS_FIELDS}: help texts are plain: {help}"
        );
        let (name, head) = rest[..q].trim().split_once(':').expect("name: ...");
        entries.push(Entry {
            name: name.trim().to_owned(),
            rest: head
                .trim()
                .trim_end_matches(',')
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            help: help.to_owned(),
        });
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(';').expect("entries end with ;");
    }
    entries
}

/// The group of a field entry (`kind source`) and `name, type, help` for its X-macro.
fn field(e: &Entry) -> (&'static str, String) {
    let [kind, source] = &e.rest[..] else {
        panic!("{STATS_FIELDS}: {}: want `kind source`", e.name);
    };
    let group = match source.split('(').next().unwrap() {
        "event" | "usage" => "vhost",
        "refusals" => "refusals",
        "listener" => "listener",
        "remote" => "remote",
        "health" => "shm",
        other => panic!("{STATS_FIELDS}: {}: unknown source {other}", e.name),
    };
    (group, format!("{}, {kind}, {}", e.name, e.help))
}
