//! Size strings (`size::parse`) and store specifications (`StoreSpec::parse`): never a panic,
//! and what parses is consistent (a size is positive and its digits round-trip; a memory or
//! shm size is what `size::parse` says).
#![no_main]

use libfuzzer_sys::fuzz_target;
use snicache::size;
use snicache::store::spec::StoreSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(n) = size::parse(text) {
        assert!(n > 0);
        assert_eq!(
            size::parse(&n.to_string()),
            Some(n),
            "plain bytes round-trip"
        );
    }
    match StoreSpec::parse(text) {
        Ok(StoreSpec::Memory(Some(n))) => {
            assert_eq!(size::parse(&text["memory:".len()..]), Some(n));
        }
        Ok(StoreSpec::Memory(None)) => assert_eq!(text, "memory"),
        Ok(StoreSpec::Shm(n)) => assert_eq!(size::parse(&text["shm:".len()..]), Some(n)),
        Ok(StoreSpec::Redis(url)) => {
            let scheme = ["redis://", "rediss://", "redis+sentinel://"]
                .into_iter()
                .find(|s| url.starts_with(s));
            assert!(
                scheme.is_some_and(|s| url.len() > s.len()),
                "a Redis URL: {url:?}"
            );
        }
        Err(e) => assert!(!e.0.is_empty(), "a refusal says why"),
    }
});
