//! Generates the C header from the exported functions with cbindgen.
//!
//! The header is written to `$OUT_DIR/snicache.h` on every build; the committed copy in
//! `include/snicache.h` is refreshed only when `SNICACHE_BLESS_HEADER=1` is set, so that a test
//! (`tests/header.rs`) can fail when the committed header is stale.
use std::{env, fs, path::PathBuf};

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
    let macros = format!(
        "\n#define SNICACHE_VERSION \"{version}\"\n#define SNICACHE_VERSION_MAJOR {}\n#define SNICACHE_VERSION_MINOR {}\n#define SNICACHE_VERSION_PATCH {}\n",
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    );
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .with_after_include(macros)
        .generate()
        .expect("cbindgen generates the header");
    bindings.write_to_file(&out);
    if env::var_os("SNICACHE_BLESS_HEADER").is_some() {
        fs::copy(&out, crate_dir.join("include/snicache.h"))
            .expect("include/snicache.h is writable");
    }
}
