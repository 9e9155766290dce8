//! The shared library exports only `snicache_*` symbols and links no SSL library: the host's
//! own OpenSSL or BoringSSL is reached through the table in snicache_ssl.h.
use std::path::PathBuf;
use std::process::Command;

fn cdylib() -> PathBuf {
    // Integration tests run from target/<profile>/deps, where `cargo test` builds the cdylib of
    // the same build; `cargo build` copies it up to target/<profile>.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let lib = [
        deps.join("libsnicache.so"),
        deps.parent().unwrap().join("libsnicache.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("libsnicache.so is built next to the tests");
    lib
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn only_prefixed_symbols_are_exported() {
    let lib = cdylib();
    let syms = run("nm", &["-D", "--defined-only", lib.to_str().unwrap()]);
    let names: Vec<&str> = syms
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert!(
        names.contains(&"snicache_config_new"),
        "no exports found:\n{syms}"
    );
    let foreign: Vec<&&str> = names
        .iter()
        .filter(|n| !n.starts_with("snicache_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "symbols without the snicache_ prefix: {foreign:?}"
    );
}

#[test]
fn no_ssl_library_is_linked() {
    let lib = cdylib();
    let dynamic = run("readelf", &["-d", lib.to_str().unwrap()]);
    for needed in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
        assert!(
            !needed.contains("libssl") && !needed.contains("libcrypto"),
            "links an SSL library: {needed}"
        );
    }
}
