//! Record decoding (`record::decode`, `record::split_appdata`) on arbitrary bytes: never a
//! panic, and what decodes re-encodes to the same bytes (the format has one encoding per
//! record, apart from flag bits this version does not know).
#![no_main]

use libfuzzer_sys::fuzz_target;
use snicache::record::{decode, encode, encode_ticket, split_appdata, MAX_APPDATA};

fuzz_target!(|data: &[u8]| {
    let prefix = split_appdata(data);
    match decode(data) {
        Ok(rec) => {
            assert_eq!(prefix, Some(data.len()), "a whole record is its own prefix");
            assert!(rec.meta.vhost.is_ascii() && rec.meta.sni.is_none_or(|s| !s.is_empty()));
            let again = match &rec.ticket_id {
                Some(id) => encode_ticket(&rec.meta, id, rec.session),
                None => encode(&rec.meta, rec.session),
            }
            .expect("decoded fields are short");
            // Byte 5 holds the flags; unknown bits are dropped on re-encoding.
            if data[5] & !3 == 0 {
                assert_eq!(again, data, "re-encoding gives the same bytes");
            } else {
                assert_eq!(decode(&again), Ok(rec));
            }
        }
        Err(_) => {
            if let Some(n) = prefix {
                assert!(n < data.len(), "a record prefix shorter than the input");
            }
        }
    }
    if let Some(n) = prefix {
        let rec = decode(&data[..n]).expect("the prefix split_appdata found decodes alone");
        assert!(n - rec.session.len() <= MAX_APPDATA);
    }
});
