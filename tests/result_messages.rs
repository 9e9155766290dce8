//! Every result code in the committed header has a message of its own: a code added to the
//! enum but not to `snicache_result_message`'s table would read "unknown result code" to C
//! hosts (found by review while writing the ffi_calls fuzz target: STORE_FAILED had none).

use std::os::raw::c_char;

use snicache::ffi::error::snicache_result_message;

#[test]
fn every_header_code_has_a_message() {
    let header = include_str!("../include/snicache.h");
    let mut codes = 0;
    for line in header.lines() {
        let Some(rest) = line.trim().strip_prefix("SNICACHE_RESULT_") else {
            continue;
        };
        let Some((name, value)) = rest.trim_end_matches(',').split_once(" = ") else {
            continue;
        };
        let code: u32 = value.parse().expect("a numeric result code");
        let mut buf = [0 as c_char; 256];
        let n = snicache_result_message(code, buf.as_mut_ptr(), buf.len());
        let text: String = buf[..n].iter().map(|&c| c as u8 as char).collect();
        assert!(
            n > 0 && !text.starts_with("unknown result code"),
            "SNICACHE_RESULT_{name} ({code}) has no message: {text:?}"
        );
        codes += 1;
    }
    assert!(codes >= 18, "found only {codes} result codes in the header");
}
