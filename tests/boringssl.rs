//! The BoringSSL proof: real BoringSSL client/server handshakes in memory, with snicache's host
//! table filled from boring-sys (`boringssl/host.rs`, the twin of `snicache_ssl.h`'s BoringSSL
//! branch) and the cache built, attached and queried through the same C ABI a C host uses.
//!
//! TLS 1.2 with session ids (`SSL_OP_NO_TICKET`): BoringSSL resumes TLS 1.3 only from tickets,
//! which go through the ticket AEAD method and are tested with it. What BoringSSL does on its own
//! is checked on plain contexts next to each snicache scenario, so a change in BoringSSL shows.
//! SNICACHE_TEST_QUICK=1 makes the thread test run fewer rounds.

#[path = "boringssl/harness.rs"]
mod harness;
#[path = "boringssl/host.rs"]
mod host;

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use boring_sys as ffi;
use harness::*;
use snicache::ffi::callbacks::{
    SNICACHE_OUTCOME_FULL, SNICACHE_OUTCOME_REFUSED, SNICACHE_OUTCOME_RESUMED,
};
use snicache::ffi::config::{
    snicache_config_set_max_entries, snicache_config_set_size, snicache_config_set_strict_sni,
    snicache_config_set_timeout, SNICACHE_VHOST_SINGLE_USE,
};
use snicache::ffi::snicache_result;

const X: &str = "ECDHE-ECDSA-AES128-GCM-SHA256";
const Y: &str = "ECDHE-ECDSA-AES256-GCM-SHA384";
const X_ID: u16 = 0xc02b;
const Y_ID: u16 = 0xc02c;

fn tls12<'a>(sni: Option<&'a str>, offer: Option<&'a Session>) -> Opts<'a> {
    Opts::new(TLS1_2, sni, offer)
}

/// A listener with BoringSSL's own internal session cache and no snicache: the control.
fn plain_listener() -> *mut ffi::SSL_CTX {
    let ctx = server_ctx("plain");
    // SAFETY: a live context the caller frees.
    unsafe { ffi::SSL_CTX_set_options(ctx, ffi::SSL_OP_NO_TICKET as u32) };
    ctx
}

fn free_ctx(ctx: *mut ffi::SSL_CTX) {
    // SAFETY: made by server_ctx, freed once.
    unsafe { ffi::SSL_CTX_free(ctx) }
}

#[test]
fn vhost_is_chosen_in_the_select_certificate_callback() {
    let server = Server::new(
        &[vhost("a.test"), vhost("b.test"), vhost("*.example.com")],
        |_| {},
    );
    let client = Client::new();
    for (sni, vhost, cn) in [
        (Some("a.test"), "a.test", "a.test"),
        (Some("B.Test"), "b.test", "b.test"),
        (Some("x.example.com"), "*.example.com", "*.example.com"),
        (Some("deep.x.example.com"), "*.example.com", "*.example.com"),
        (Some("other.test"), "a.test", "a.test"),
        (None, "a.test", "a.test"),
    ] {
        let r = server.connect(&client, &tls12(sni, None));
        assert!(r.ok && !r.resumed, "{sni:?}");
        assert_eq!(r.vhost(), Some(vhost), "{sni:?}");
        assert_eq!(
            r.peer_cn.as_deref(),
            Some(cn),
            "{sni:?}: the vhost's certificate"
        );
        let info = r.info.as_ref().unwrap();
        assert_eq!(info.outcome, SNICACHE_OUTCOME_FULL);
        assert_eq!(info.sni, sni.map(str::to_ascii_lowercase));
    }
    // TLS 1.3 picks the vhost and certificate the same way (no session: nothing is stored).
    let r = server.connect(
        &client,
        &Opts {
            sni: Some("b.test"),
            version: TLS1_3,
            ..Opts::default()
        },
    );
    assert!(r.ok && r.vhost() == Some("b.test") && r.peer_cn.as_deref() == Some("b.test"));
    let st = server.stats(None);
    assert_eq!(
        (st.stores, st.hits),
        (6, 0),
        "one session per TLS 1.2 handshake"
    );
}

#[test]
fn tls12_session_ids_resume_only_under_their_own_sni_and_vhost() {
    let server = Server::new(
        &[vhost("a.test"), vhost("b.test"), vhost("*.example.com")],
        |_| {},
    );
    let client = Client::new();

    let first = server.connect(&client, &tls12(Some("a.test"), None));
    assert!(first.ok && !first.resumed && first.session.is_some());
    assert_eq!(first.vhost(), Some("a.test"));

    let again = server.connect(&client, &tls12(Some("a.test"), Some(first.session())));
    assert!(again.ok && again.resumed, "same SNI resumes");
    assert_eq!(
        again.info.as_ref().unwrap().outcome,
        SNICACHE_OUTCOME_RESUMED
    );
    assert_eq!(again.peer_cn.as_deref(), Some("a.test"));

    // The BoringSSL client offers the session under any name; the server must decide.
    let other = server.connect(&client, &tls12(Some("b.test"), Some(first.session())));
    assert!(
        other.ok && !other.resumed,
        "another vhost: its own store, a miss"
    );
    assert_eq!(other.vhost(), Some("b.test"));
    assert_eq!(other.peer_cn.as_deref(), Some("b.test"));
    assert_eq!(other.info.as_ref().unwrap().outcome, SNICACHE_OUTCOME_FULL);
    assert_eq!(server.stats(Some("b.test")).misses, 1);

    let wild1 = server.connect(&client, &tls12(Some("x.example.com"), None));
    assert!(wild1.ok && !wild1.resumed);
    server.connect_refused(
        &client,
        &tls12(Some("y.example.com"), Some(wild1.session())),
        "*.example.com",
        "sni",
        1,
        "same wildcard vhost, other SNI",
    );
    server.connect_refused(
        &client,
        &tls12(None, Some(first.session())),
        "a.test",
        "sni",
        1,
        "no SNI",
    );

    let st = server.stats(None);
    assert_eq!(st.hits, 1);
    assert_eq!(st.refusals, 2);
    assert_eq!(server.refusals(None, "sni"), 2);

    // Control: BoringSSL alone resumes the a.test session under b.test and under no SNI.
    let plain = plain_listener();
    let made = connect(plain, &client, &tls12(Some("a.test"), None));
    for sni in [Some("b.test"), None] {
        let r = connect(plain, &client, &tls12(sni, Some(made.session())));
        assert!(r.ok && r.resumed, "BoringSSL alone resumes under {sni:?}");
        assert!(r.info.is_none(), "no snicache state on a plain listener");
    }
    free_ctx(plain);
}

#[test]
fn fatal_alert_invalidates_the_session() {
    let server = Server::new(&[vhost("a.test")], |_| {});
    let client = Client::new();

    let first = server.connect(&client, &tls12(Some("a.test"), None));
    assert!(first.ok && !first.resumed);
    let resumed = server.connect(&client, &tls12(Some("a.test"), Some(first.session())));
    assert!(resumed.ok && resumed.resumed);

    let broken = server.connect(
        &client,
        &Opts {
            corrupt_after: true,
            ..tls12(Some("a.test"), Some(first.session()))
        },
    );
    assert!(broken.ok && broken.resumed);
    assert_eq!(
        broken.alert,
        Some(AD_BAD_RECORD_MAC),
        "the server sent a fatal alert"
    );
    assert!(server.stats(None).invalidations >= 1);

    // An attacker's client offers the session again.
    let copy = first.session().copy();
    let after = server.connect(&client, &tls12(Some("a.test"), Some(&copy)));
    assert!(after.ok && !after.resumed);
    assert_eq!(
        after.info.as_ref().unwrap().outcome,
        SNICACHE_OUTCOME_REFUSED
    );
    assert_eq!(after.reason(), Some("invalidated"));
    assert_eq!(server.refusals(Some("a.test"), "invalidated"), 1);
    assert_eq!(server.refusals(None, "invalidated"), 1);

    // A fatal alert on the connection that made a session: that session is gone.
    let born_bad = server.connect(
        &client,
        &Opts {
            corrupt_after: true,
            ..tls12(Some("a.test"), None)
        },
    );
    assert!(born_bad.ok && !born_bad.resumed);
    assert_eq!(born_bad.alert, Some(AD_BAD_RECORD_MAC));
    let misses = server.stats(Some("a.test")).misses;
    let bad = born_bad.session().copy();
    let offer_bad = server.connect(&client, &tls12(Some("a.test"), Some(&bad)));
    assert!(offer_bad.ok && !offer_bad.resumed);
    assert_ne!(
        offer_bad.info.as_ref().unwrap().outcome,
        SNICACHE_OUTCOME_RESUMED
    );
    assert_eq!(server.stats(Some("a.test")).misses, misses + 1);

    let st = server.stats(None);
    assert_eq!(st.hits, 2);
    assert_eq!(
        st.invalidations, 2,
        "the resumed session and the one issued"
    );

    // Control: BoringSSL's own cache keeps resuming a session whose connection ended with a
    // fatal alert.
    let plain = plain_listener();
    let made = connect(plain, &client, &tls12(Some("a.test"), None));
    let broken = connect(
        plain,
        &client,
        &Opts {
            corrupt_after: true,
            ..tls12(Some("a.test"), Some(made.session()))
        },
    );
    assert!(broken.resumed && broken.alert == Some(AD_BAD_RECORD_MAC));
    let copy = made.session().copy();
    let r = connect(plain, &client, &tls12(Some("a.test"), Some(&copy)));
    assert!(
        r.ok && r.resumed,
        "BoringSSL alone resumes after a fatal alert"
    );
    free_ctx(plain);
}

#[test]
fn sessions_expire_with_their_vhost_lifetime() {
    let server = Server::new(&LIFETIME_VHOSTS, |config| {
        assert_eq!(snicache_config_set_timeout(config, 1), snicache_result::Ok)
    });
    let client = Client::new();
    let made: Vec<_> = ["a.test", "b.test", "c.test"]
        .into_iter()
        .map(|n| server.connect(&client, &tls12(Some(n), None)))
        .collect();
    assert!(made.iter().all(|r| r.ok && !r.resumed));
    std::thread::sleep(Duration::from_millis(2100));
    for (name, r, resumes) in [
        ("a.test", &made[0], false),
        ("b.test", &made[1], false),
        ("c.test", &made[2], true),
    ] {
        let again = server.connect(&client, &tls12(Some(name), Some(r.session())));
        assert!(again.ok, "{name}");
        assert_eq!(again.resumed, resumes, "{name}");
        if !resumes {
            let st = server.stats(Some(name));
            assert!(
                st.expirations == 1 || server.refusals(Some(name), "expired") == 1,
                "{name}: counted as expired"
            );
        }
    }
    // BoringSSL's own session timeout (7200 s) would have resumed all three.
    assert_eq!(server.stats(None).hits, 1);
}

#[test]
fn a_cipher_removed_from_the_vhost_is_not_resumed() {
    let server = Server::new(&[vhost("a.test")], |_| {});
    let client = Client::new();
    let both = format!("{X}:{Y}");
    let made = server.connect(
        &client,
        &Opts {
            cipher_list: Some(X),
            ..tls12(Some("a.test"), None)
        },
    );
    assert!(made.ok && made.cipher == X_ID);
    let again = server.connect(
        &client,
        &Opts {
            cipher_list: Some(&both),
            ..tls12(Some("a.test"), Some(made.session()))
        },
    );
    assert!(again.ok && again.resumed && again.cipher == X_ID);

    let only_y = CString::new(Y).unwrap();
    // SAFETY: the vhost's live context; no handshake runs concurrently.
    assert_eq!(
        unsafe { ffi::SSL_CTX_set_strict_cipher_list(server.vhosts[0], only_y.as_ptr()) },
        1
    );
    let after = server.connect(
        &client,
        &Opts {
            cipher_list: Some(&both),
            ..tls12(Some("a.test"), Some(made.session()))
        },
    );
    assert!(after.ok && !after.resumed);
    assert_eq!(
        after.cipher, Y_ID,
        "full handshake with the remaining suite"
    );
    assert_eq!(after.reason(), Some("cipher"));
    assert_eq!(server.refusals(Some("a.test"), "cipher"), 1);

    // Control: BoringSSL alone also refuses here (it resumes only with the cipher it would
    // negotiate now), silently.
    let plain = plain_listener();
    let made = connect(
        plain,
        &client,
        &Opts {
            cipher_list: Some(X),
            ..tls12(Some("a.test"), None)
        },
    );
    // SAFETY: the control's live context.
    assert_eq!(
        unsafe { ffi::SSL_CTX_set_strict_cipher_list(plain, only_y.as_ptr()) },
        1
    );
    let r = connect(
        plain,
        &client,
        &Opts {
            cipher_list: Some(&both),
            ..tls12(Some("a.test"), Some(made.session()))
        },
    );
    assert!(r.ok && !r.resumed && r.cipher == Y_ID);
    free_ctx(plain);
}

/// BoringSSL negotiates extended master secret on every TLS 1.2 connection (its client always
/// offers it, its server always accepts it), so every session has EMS. The one case a BoringSSL
/// client can be made to show is a ClientHello stripped of EMS offering an EMS session (the
/// rewritten ClientHello breaks the transcript, so only the server's decision is checked).
#[test]
fn ems_session_offered_without_ems() {
    let server = Server::new(&[vhost("a.test")], |_| {});
    let client = Client::new();
    let made = server.connect(&client, &tls12(Some("a.test"), None));
    assert!(made.ok);
    let strip = |rec: &[u8]| rewrite_extension(rec, EXT_EMS, None);
    let r = server.connect(
        &client,
        &Opts {
            rewrite_hello: Some(&strip),
            ..tls12(Some("a.test"), Some(made.session()))
        },
    );
    assert!(!r.ok && !r.resumed);
    assert_eq!(r.info.as_ref().unwrap().outcome, SNICACHE_OUTCOME_REFUSED);
    assert_eq!(r.reason(), Some("ems"));
    assert_eq!(server.refusals(Some("a.test"), "ems"), 1);
    // Both have EMS: resumes.
    let both = server.connect(&client, &tls12(Some("a.test"), Some(made.session())));
    assert!(both.ok && both.resumed);

    // Control: BoringSSL alone aborts that connection with handshake_failure (RFC 7627 §5.3).
    let plain = plain_listener();
    let made = connect(plain, &client, &tls12(Some("a.test"), None));
    let r = connect(
        plain,
        &client,
        &Opts {
            rewrite_hello: Some(&strip),
            ..tls12(Some("a.test"), Some(made.session()))
        },
    );
    assert!(!r.ok && !r.resumed && r.alert == Some(AD_HANDSHAKE_FAILURE));
    free_ctx(plain);
}

#[test]
fn single_use_vhost_resumes_a_session_once() {
    let server = Server::new(
        &[
            VHost {
                flags: SNICACHE_VHOST_SINGLE_USE,
                ..vhost("once.test")
            },
            vhost("many.test"),
        ],
        |_| {},
    );
    let client = Client::new();
    let once = server.connect(&client, &tls12(Some("once.test"), None));
    let first = server.connect(&client, &tls12(Some("once.test"), Some(once.session())));
    assert!(first.ok && first.resumed);
    let second = server.connect(&client, &tls12(Some("once.test"), Some(once.session())));
    assert!(second.ok && !second.resumed, "single use");
    assert_eq!(second.info.as_ref().unwrap().outcome, SNICACHE_OUTCOME_FULL);

    let many = server.connect(&client, &tls12(Some("many.test"), None));
    for _ in 0..3 {
        let r = server.connect(&client, &tls12(Some("many.test"), Some(many.session())));
        assert!(r.ok && r.resumed);
    }
    assert_eq!(server.stats(Some("once.test")).hits, 1);
    assert_eq!(server.stats(Some("many.test")).hits, 3);
}

fn fill(size: &str, max_bytes: u64, max_entries: u64, n: u64) {
    let server = Server::new(&[vhost("a.test")], |config| {
        let size = CString::new(size).unwrap();
        assert_eq!(
            snicache_config_set_size(config, size.as_ptr()),
            snicache_result::Ok
        );
        if max_entries != u64::MAX {
            assert_eq!(
                snicache_config_set_max_entries(config, max_entries),
                snicache_result::Ok
            );
        }
    });
    let client = Client::new();
    let mut first = None;
    let mut last = None;
    for _ in 0..n {
        let r = server.connect(&client, &tls12(Some("a.test"), None));
        assert!(r.ok && !r.resumed);
        if first.is_none() {
            first = r.session;
        } else {
            last = r.session;
        }
        let st = server.stats(None);
        assert!(st.bytes <= max_bytes && st.entries <= max_entries, "{st:?}");
    }
    let st = server.stats(None);
    assert_eq!((st.stores, st.store_errors), (n, 0));
    assert!(st.evictions > 0 && st.entries + st.evictions == n, "{st:?}");

    let newest = server.connect(&client, &tls12(Some("a.test"), last.as_ref()));
    assert!(newest.ok && newest.resumed);
    let oldest = server.connect(&client, &tls12(Some("a.test"), first.as_ref()));
    assert!(oldest.ok && !oldest.resumed);
    assert_eq!(oldest.info.as_ref().unwrap().outcome, SNICACHE_OUTCOME_FULL);
    let after = server.stats(None);
    assert_eq!((after.hits, after.misses), (st.hits + 1, 1));
    assert!(after.bytes <= max_bytes && after.entries <= max_entries);
}

#[test]
fn capacity_bound_holds() {
    // About 1 KiB per session (record, decoded session, overhead): some 60 fit in 64k.
    fill("64k", 64 * 1024, u64::MAX, 150);
    // 1m makes 16 shards: the cap of 10 entries must still hold in total.
    fill("1m", 1 << 20, 10, 40);
}

#[test]
fn four_threads_stats_add_up() {
    let per_thread: u64 = if std::env::var_os("SNICACHE_TEST_QUICK").is_some() {
        200
    } else {
        2000
    };
    let names = ["a.test", "b.test", "x.example.com"];
    let vhosts = ["a.test", "b.test", "*.example.com"];
    let server = Server::new(
        &[vhost(vhosts[0]), vhost(vhosts[1]), vhost(vhosts[2])],
        |config| {
            let size = CString::new("64m").unwrap();
            assert_eq!(
                snicache_config_set_size(config, size.as_ptr()),
                snicache_result::Ok
            );
        },
    );
    let hits: [AtomicU64; 3] = Default::default();
    let stores: [AtomicU64; 3] = Default::default();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (server, hits, stores) = (&server, &hits, &stores);
            s.spawn(move || {
                let client = Client::new();
                let mut kept: [Option<Session>; 3] = Default::default();
                for i in 0..per_thread {
                    let v = ((i + t) % 3) as usize;
                    // Every fourth round per vhost starts a new session; the others resume.
                    let fresh = (i / 3) % 4 == 0;
                    let offer = if fresh { None } else { kept[v].as_ref() };
                    let r = server.connect(&client, &tls12(Some(names[v]), offer));
                    assert!(r.ok, "thread {t} round {i}");
                    assert_eq!(r.vhost(), Some(vhosts[v]));
                    assert_eq!(r.resumed, offer.is_some(), "thread {t} round {i}");
                    if r.resumed {
                        hits[v].fetch_add(1, Ordering::Relaxed);
                    } else {
                        stores[v].fetch_add(1, Ordering::Relaxed);
                        kept[v] = r.session;
                    }
                }
            });
        }
    });
    let total = server.stats(None);
    let (mut sum_hits, mut sum_stores, mut sum_entries, mut sum_bytes) = (0, 0, 0, 0);
    for (v, name) in vhosts.iter().enumerate() {
        let st = server.stats(Some(name));
        assert_eq!(st.hits, hits[v].load(Ordering::Relaxed), "{name}");
        assert_eq!(st.stores, stores[v].load(Ordering::Relaxed), "{name}");
        sum_hits += st.hits;
        sum_stores += st.stores;
        sum_entries += st.entries;
        sum_bytes += st.bytes;
    }
    assert_eq!(total.hits + total.stores, 4 * per_thread);
    assert!(total.hits > 4 * per_thread / 2);
    assert_eq!((total.hits, total.stores), (sum_hits, sum_stores));
    assert_eq!((total.entries, total.bytes), (sum_entries, sum_bytes));
    assert_eq!(
        (
            total.misses,
            total.refusals,
            total.store_errors,
            total.corrupt
        ),
        (0, 0, 0, 0)
    );
    assert_eq!((total.evictions, total.invalidations), (0, 0));
    assert_eq!(total.entries, total.stores);
}

#[test]
fn malformed_sni_gets_illegal_parameter() {
    let server = Server::new(&[vhost("a.test")], |_| {});
    let client = Client::new();
    // Names BoringSSL's client sends as they are, which are no DNS host names.
    for name in [
        "has space.test",
        "a..b.test",
        "-lead.test",
        "tail-.test",
        "bad!.test",
    ] {
        let r = server.connect(&client, &tls12(Some(name), None));
        assert!(!r.ok, "{name}");
        assert_eq!(r.alert, Some(AD_ILLEGAL_PARAMETER), "{name}");
        assert!(r.info.is_none(), "{name}: no connection state");
    }
    // Rewritten on the wire: a bad name reaches snicache; a NUL, an empty or an over-long
    // name is refused by BoringSSL itself (unrecognized_name) before any callback.
    for (name, alert) in [
        (&b"bad name.test"[..], AD_ILLEGAL_PARAMETER),
        (&b"a.b\xff.test"[..], AD_ILLEGAL_PARAMETER),
        (&b"a\0b.test"[..], AD_UNRECOGNIZED_NAME),
        (&b""[..], AD_UNRECOGNIZED_NAME),
        (&[b'a'; 256][..], AD_UNRECOGNIZED_NAME),
    ] {
        let body = server_name_ext(name);
        let rewrite = |rec: &[u8]| rewrite_extension(rec, EXT_SERVER_NAME, Some(&body));
        for version in [TLS1_2, TLS1_3] {
            let r = server.connect(
                &client,
                &Opts {
                    sni: Some("placeholder.test"),
                    version,
                    rewrite_hello: Some(&rewrite),
                    ..Opts::default()
                },
            );
            assert!(
                !r.ok && r.alert == Some(alert),
                "{name:?} {version:x}: {:?}",
                r.alert
            );
        }
    }
    assert_eq!(server.stats(None).stores, 0);
    // The listener still serves well-formed names.
    assert!(server.connect(&client, &tls12(Some("a.test"), None)).ok);
}

#[test]
fn strict_sni_refuses_unknown_names() {
    let strict = Server::new(&[vhost("a.test"), vhost("*.example.com")], |config| {
        assert_eq!(
            snicache_config_set_strict_sni(config, true),
            snicache_result::Ok
        )
    });
    let client = Client::new();
    for version in [TLS1_2, TLS1_3] {
        let opts = |sni| Opts {
            sni,
            version,
            ..Opts::default()
        };
        let r = strict.connect(&client, &opts(Some("unknown.test")));
        assert!(
            !r.ok && r.alert == Some(AD_UNRECOGNIZED_NAME),
            "{:?}",
            r.alert
        );
        let r = strict.connect(&client, &opts(Some("www.example.com")));
        assert!(r.ok && r.vhost() == Some("*.example.com"));
        let r = strict.connect(&client, &opts(None));
        assert!(
            r.ok && r.vhost() == Some("a.test"),
            "no SNI: the default vhost"
        );
    }
    let lenient = Server::new(&[vhost("a.test")], |_| {});
    let r = lenient.connect(&client, &tls12(Some("unknown.test"), None));
    assert!(r.ok && r.vhost() == Some("a.test") && r.peer_cn.as_deref() == Some("a.test"));
}

/// The directory of boring-sys's build output (headers and static libraries) next to this test.
fn boringssl_build() -> (std::path::PathBuf, std::path::PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let build = exe.parent().unwrap().parent().unwrap().join("build");
    std::fs::read_dir(&build)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path().join("out")))
        .filter(|out| {
            out.join("boringssl/include/openssl/ssl.h").exists()
                && out.join("build/libssl.a").exists()
        })
        .max_by_key(|out| {
            out.join("build/libssl.a")
                .metadata()
                .and_then(|m| m.modified())
                .ok()
        })
        .map(|out| (out.join("boringssl/include"), out.join("build")))
        .expect("boring-sys build output with headers and libssl.a")
}

/// `snicache_ssl.h` on BoringSSL, from C: `tests/boringssl/header_check.c` is compiled with
/// `c-tests/harness.c` and the project's C warning flags against boring-sys's headers, linked
/// with its static libraries and libsnicache.so, and run.
#[test]
fn a_c_host_on_boringssl_builds_and_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // `cargo test` builds the cdylib next to this test (target/<profile>/deps) but only
    // `cargo build` copies it up a level, so link the one built with this test.
    let exe = std::env::current_exe().unwrap();
    let lib_dir = exe.parent().unwrap();
    assert!(
        lib_dir.join("libsnicache.so").exists(),
        "libsnicache.so not built"
    );
    let (include, libs) = boringssl_build();
    let bin = std::env::temp_dir().join(format!("snicache-bssl-host-{}", std::process::id()));
    let status = std::process::Command::new("cc")
        .args([
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
        ])
        .args(["-Werror", "-g", "-o"])
        .arg(&bin)
        .arg(root.join("tests/boringssl/header_check.c"))
        .arg(root.join("c-tests/harness.c"))
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-I{}", root.join("c-tests").display()))
        .arg(format!("-I{}", include.display()))
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lsnicache")
        .arg(libs.join("libssl.a"))
        .arg(libs.join("libcrypto.a"))
        .args(["-lstdc++", "-lpthread"])
        .status()
        .expect("cc");
    assert!(status.success(), "header_check.c does not build");
    // cargo's LD_LIBRARY_PATH also lists target/<profile>, where an older copy may sit.
    let out = std::process::Command::new(&bin)
        .env("LD_LIBRARY_PATH", lib_dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&bin);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
