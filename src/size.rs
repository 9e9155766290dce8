//! nginx-style sizes: "10m", "512k", "1g", or plain bytes.

/// Parses a size; `None` for anything else, zero, or an overflow.
pub fn parse(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.as_bytes().last()? {
        b'k' | b'K' => (&t[..t.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&t[..t.len() - 1], 1 << 20),
        b'g' | b'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(unit)
        .filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes() {
        assert_eq!(parse("10m"), Some(10 << 20));
        assert_eq!(parse("512K"), Some(512 << 10));
        assert_eq!(parse("1g"), Some(1 << 30));
        assert_eq!(parse("4096"), Some(4096));
        for bad in [
            "",
            "m",
            "0",
            "-1m",
            "1.5m",
            "10mb",
            "99999999999999999999",
            "18446744073709551615k",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
