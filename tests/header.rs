//! The committed C header must be what cbindgen generates now, and its version macros must
//! match Cargo.toml.
use std::ffi::CStr;

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/snicache.h"));
const COMMITTED: &str = include_str!("../include/snicache.h");

#[test]
fn committed_header_is_fresh() {
    assert!(
        GENERATED == COMMITTED,
        "include/snicache.h is stale: regenerate it with `SNICACHE_BLESS_HEADER=1 cargo build` and commit it"
    );
}

#[test]
fn version_macros_match_the_crate() {
    let expect = [
        format!("#define SNICACHE_VERSION \"{}\"", env!("CARGO_PKG_VERSION")),
        format!(
            "#define SNICACHE_VERSION_MAJOR {}",
            env!("CARGO_PKG_VERSION_MAJOR")
        ),
        format!(
            "#define SNICACHE_VERSION_MINOR {}",
            env!("CARGO_PKG_VERSION_MINOR")
        ),
        format!(
            "#define SNICACHE_VERSION_PATCH {}",
            env!("CARGO_PKG_VERSION_PATCH")
        ),
    ];
    for line in expect {
        assert!(
            COMMITTED.lines().any(|l| l == line),
            "missing `{line}` in include/snicache.h"
        );
    }
    // SAFETY: snicache_version returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(snicache::ffi::snicache_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn every_declared_function_is_prefixed() {
    let declarations = COMMITTED
        .lines()
        .filter(|l| l.ends_with(");") && l.contains('(') && !l.starts_with(' '));
    for line in declarations.filter(|l| !l.starts_with("typedef")) {
        let name = line
            .split('(')
            .next()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .trim_start_matches('*');
        assert!(
            name.starts_with("snicache_"),
            "unprefixed declaration: {line}"
        );
    }
    let names = |l: &&str| {
        (l.starts_with("typedef") && l.ends_with(';'))
            || (l.starts_with("} ") && l.ends_with(";"))
            || l.starts_with("#define ")
    };
    for line in COMMITTED.lines().filter(names) {
        assert!(
            line.contains("snicache_") || line.contains("SNICACHE_"),
            "unprefixed name: {line}"
        );
    }
}
