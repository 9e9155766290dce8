//! SNI extraction and routing: `parse_server_name` on a raw `server_name` extension body,
//! `valid_host` on every piece, and `VHosts::route` over vhosts named by the fuzzer, checked
//! against a plain model (exact name, else the longest wildcard, else the default unless
//! strict).
//!
//! Input: byte 0 picks strict SNI and which added vhost is the default; the rest is split on
//! b'\n': every piece but the last is a vhost name to add, the last is the extension body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snicache::engine::vhosts::{
    parse_server_name, valid_host, RouteError, VHostOptions, VHosts, MAX_NAME,
};

fn model(names: &[String], default: Option<u32>, sni: Option<&str>, strict: bool) -> Option<u32> {
    let Some(sni) = sni else {
        return default;
    };
    if let Some(i) = names.iter().position(|n| n == sni) {
        return Some(i as u32);
    }
    let mut best: Option<(usize, u32)> = None;
    for (i, n) in names.iter().enumerate() {
        if let Some(suffix) = n.strip_prefix("*.") {
            let below = sni.len() > suffix.len() + 1
                && sni.ends_with(suffix)
                && sni.as_bytes()[sni.len() - suffix.len() - 1] == b'.';
            if below && best.is_none_or(|(len, _)| suffix.len() > len) {
                best = Some((suffix.len(), i as u32));
            }
        }
    }
    match best {
        Some((_, i)) => Some(i),
        None if !strict => default,
        None => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let strict = control & 1 != 0;
    let default_pick = (control >> 1) & 7;
    let pieces: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let (ext, names) = pieces
        .split_last()
        .expect("split yields one piece at least");

    let mut vhosts = VHosts::default();
    let mut added = Vec::new();
    let mut default = None;
    for (k, name) in names.iter().take(8).enumerate() {
        let _ = valid_host(name);
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let options = VHostOptions {
            timeout: 300,
            is_default: k as u8 == default_pick,
            single_use: false,
            allow_no_ems: false,
            no_store: false,
        };
        if let Ok(i) = vhosts.add(name, k, options) {
            assert_eq!(i as usize, added.len());
            let lower = name.to_ascii_lowercase();
            let host = lower.strip_prefix("*.").unwrap_or(&lower);
            assert!(valid_host(host.as_bytes()), "{name:?} was added");
            added.push(lower);
            if options.is_default {
                default = Some(i);
            }
        }
    }

    let _ = valid_host(ext);
    let mut out = [0u8; MAX_NAME];
    let sni = match parse_server_name(ext, &mut out) {
        Ok(n) => {
            let name = &out[..n];
            assert!(valid_host(name));
            assert_eq!(name, ext[5..].to_ascii_lowercase().as_slice());
            Some(
                std::str::from_utf8(name)
                    .expect("a valid host is ASCII")
                    .to_owned(),
            )
        }
        Err(e) => {
            assert_eq!(e, RouteError::Malformed);
            None
        }
    };

    for s in [sni.as_deref(), None] {
        let got = vhosts.route(s, strict);
        let want = model(&added, default, s, strict);
        assert_eq!(
            got.ok(),
            want,
            "route({s:?}, strict={strict}) over {added:?}"
        );
        if let Ok(i) = got {
            assert_eq!(vhosts.get(i).name, added[i as usize]);
        }
    }
});
