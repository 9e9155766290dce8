//! Virtual hosts and routing: which vhost a ClientHello's SNI selects (exact name, then the
//! longest wildcard, then the default), and the SNI checks that come first (RFC 6066 §3).

use std::collections::HashMap;

/// Longest host name RFC 6066 allows in `server_name`.
pub const MAX_NAME: usize = 255;

/// Per-vhost options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VHostOptions {
    /// Session lifetime in seconds (capped at `policy::MAX_LIFETIME`).
    pub timeout: u32,
    /// Answer absent or unknown SNI with this vhost.
    pub is_default: bool,
    /// Remove a session when it is resumed (RFC 8446 §8.1 anti-replay for stateful sessions).
    pub single_use: bool,
    /// Resume sessions made without extended master secret when the client offers none either
    /// (RFC 7627 §5.3 says SHOULD abort; off by default).
    pub allow_no_ems: bool,
    /// Store and look up no session (nginx's `ssl_session_cache off`): only stateless tickets
    /// resume.
    pub no_store: bool,
}

#[derive(Debug, Clone)]
pub struct VHost {
    /// Lower-case name as configured (`*.example.com` for a wildcard).
    pub name: String,
    pub index: u32,
    /// The host's `SSL_CTX*` for this vhost, kept as an address; only the C surface uses it.
    pub ctx: usize,
    pub options: VHostOptions,
}

/// Why a ClientHello's SNI could not be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// The `server_name` extension is malformed or names no valid DNS host (alert 47).
    Malformed,
    /// No vhost has this name and strict SNI is on, or there is no default (alert 112).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Invalid,
    Duplicate,
    SecondDefault,
}

#[derive(Default, Debug, Clone)]
pub struct VHosts {
    list: Vec<VHost>,
    exact: HashMap<String, u32>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, u32>,
    default: Option<u32>,
}

impl VHosts {
    pub fn add(&mut self, name: &str, ctx: usize, options: VHostOptions) -> Result<u32, NameError> {
        let name = name.to_ascii_lowercase();
        let (table, key) = match name.strip_prefix("*.") {
            Some(suffix) if valid_host(suffix.as_bytes()) => {
                (&mut self.wildcard, suffix.to_owned())
            }
            Some(_) => return Err(NameError::Invalid),
            None if valid_host(name.as_bytes()) => (&mut self.exact, name.clone()),
            None => return Err(NameError::Invalid),
        };
        if table.contains_key(&key) {
            return Err(NameError::Duplicate);
        }
        if options.is_default && self.default.is_some() {
            return Err(NameError::SecondDefault);
        }
        let index = self.list.len() as u32;
        table.insert(key, index);
        if options.is_default {
            self.default = Some(index);
        }
        self.list.push(VHost {
            name,
            index,
            ctx,
            options,
        });
        Ok(index)
    }

    /// Gives vhosts added with timeout 0 the config's default.
    pub fn fill_timeouts(&mut self, default: u32) {
        for v in self.list.iter_mut().filter(|v| v.options.timeout == 0) {
            v.options.timeout = default;
        }
    }

    pub fn get(&self, index: u32) -> &VHost {
        &self.list[index as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = &VHost> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn by_name(&self, name: &str) -> Option<&VHost> {
        self.list.iter().find(|v| v.name.eq_ignore_ascii_case(name))
    }

    /// Routes a validated, lower-case SNI (or its absence).
    pub fn route(&self, sni: Option<&str>, strict: bool) -> Result<u32, RouteError> {
        self.route_named(sni, strict).map(|(i, _)| i)
    }

    /// As `route`, and whether the name itself selected the vhost (an exact or wildcard match),
    /// rather than the default vhost taking a connection without SNI or with an unknown name.
    pub fn route_named(&self, sni: Option<&str>, strict: bool) -> Result<(u32, bool), RouteError> {
        let Some(name) = sni else {
            return self.default.map(|i| (i, false)).ok_or(RouteError::Unknown);
        };
        if let Some(&i) = self.exact.get(name) {
            return Ok((i, true));
        }
        let mut rest = name;
        while let Some((_, suffix)) = rest.split_once('.') {
            if let Some(&i) = self.wildcard.get(suffix) {
                return Ok((i, true));
            }
            rest = suffix;
        }
        match self.default {
            Some(i) if !strict => Ok((i, false)),
            _ => Err(RouteError::Unknown),
        }
    }
}

/// A DNS host name: 1..=255 bytes, dot-separated labels of 1..=63 letters, digits, hyphens or
/// underscores, no hyphen at either end of a label, no trailing dot (RFC 6066 §3, RFC 1123 §2.1).
pub fn valid_host(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label[0] != b'-'
                && label[label.len() - 1] != b'-'
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A ClientHello's server name, as the host library shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerName<'a> {
    /// No server_name extension.
    Absent,
    /// The raw extension body (the ClientHello callback reads it so).
    Extension(&'a [u8]),
    /// The host name the library already took out of the extension (`SSL_get_servername`).
    HostName(&'a [u8]),
}

impl ServerName<'_> {
    /// The validated, lower-cased host name into `out`; its length (0 when absent).
    pub fn parse(self, out: &mut [u8; MAX_NAME]) -> Result<usize, RouteError> {
        match self {
            ServerName::Absent => Ok(0),
            ServerName::Extension(ext) => parse_server_name(ext, out),
            ServerName::HostName(name) => host_name(name, out),
        }
    }
}

/// Extracts the host name from the raw `server_name` extension body (RFC 6066 §3) into `out`,
/// lower-cased; returns its length. Anything malformed is an error.
pub fn parse_server_name(ext: &[u8], out: &mut [u8; MAX_NAME]) -> Result<usize, RouteError> {
    let bad = Err(RouteError::Malformed);
    if ext.len() < 2 {
        return bad;
    }
    let list_len = u16::from_be_bytes([ext[0], ext[1]]) as usize;
    let list = &ext[2..];
    if list_len != list.len() || list.len() < 3 || list[0] != 0 {
        return bad;
    }
    let name_len = u16::from_be_bytes([list[1], list[2]]) as usize;
    let name = &list[3..];
    // One host_name entry; RFC 6066 forbids a second entry of the same type.
    if name.len() != name_len {
        return bad;
    }
    host_name(name, out)
}

/// A host name checked (`valid_host`) and copied lower-cased into `out`; its length.
fn host_name(name: &[u8], out: &mut [u8; MAX_NAME]) -> Result<usize, RouteError> {
    if !valid_host(name) {
        return Err(RouteError::Malformed);
    }
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    Ok(name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(is_default: bool) -> VHostOptions {
        VHostOptions {
            timeout: 300,
            is_default,
            single_use: false,
            allow_no_ems: false,
            no_store: false,
        }
    }

    fn hosts() -> VHosts {
        let mut v = VHosts::default();
        v.add("a.test", 1, opts(true)).unwrap();
        v.add("*.example.com", 2, opts(false)).unwrap();
        v.add("*.deep.example.com", 3, opts(false)).unwrap();
        v.add("exact.example.com", 4, opts(false)).unwrap();
        v
    }

    #[test]
    fn exact_beats_wildcard_beats_default() {
        let v = hosts();
        assert_eq!(v.route(Some("exact.example.com"), false), Ok(3));
        assert_eq!(v.route(Some("www.example.com"), false), Ok(1));
        assert_eq!(
            v.route(Some("x.deep.example.com"), false),
            Ok(2),
            "longest wildcard"
        );
        assert_eq!(
            v.route(Some("example.com"), false),
            Ok(0),
            "wildcard needs a label"
        );
        assert_eq!(v.route(Some("other.test"), false), Ok(0));
        assert_eq!(v.route_named(Some("a.test"), false), Ok((0, true)));
        assert_eq!(v.route_named(Some("www.example.com"), false), Ok((1, true)));
        assert_eq!(v.route_named(Some("other.test"), false), Ok((0, false)));
        assert_eq!(v.route_named(None, false), Ok((0, false)));
        assert_eq!(v.route(None, false), Ok(0));
    }

    #[test]
    fn strict_refuses_unknown_but_serves_absent_sni() {
        let v = hosts();
        assert_eq!(v.route(Some("other.test"), true), Err(RouteError::Unknown));
        assert_eq!(v.route(None, true), Ok(0));
        let mut no_default = VHosts::default();
        no_default.add("b.test", 0, opts(false)).unwrap();
        assert_eq!(no_default.route(None, false), Err(RouteError::Unknown));
    }

    #[test]
    fn names_are_validated_and_unique() {
        let mut v = hosts();
        assert_eq!(v.add("A.TEST", 0, opts(false)), Err(NameError::Duplicate));
        assert_eq!(
            v.add("b.test", 0, opts(true)),
            Err(NameError::SecondDefault)
        );
        for bad in [
            "", "a..b", "-a.test", "a-.test", "a b", "*.", "a.*.test", "a.test.",
        ] {
            assert_eq!(
                v.add(bad, 0, opts(false)),
                Err(NameError::Invalid),
                "{bad:?}"
            );
        }
    }

    fn ext(name: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        e.push(0);
        e.extend_from_slice(&(name.len() as u16).to_be_bytes());
        e.extend_from_slice(name);
        e
    }

    #[test]
    fn server_name_parsing() {
        let mut out = [0u8; MAX_NAME];
        let n = parse_server_name(&ext(b"WWW.Example.COM"), &mut out).unwrap();
        assert_eq!(&out[..n], b"www.example.com");
        let long = vec![b'a'; 256];
        let labels = [&b"a."[..], &[b'a'; 63][..]].concat();
        for bad in [&b""[..], b"a\0b", b"a..b", &long, b"bad name", b"a.test."] {
            assert_eq!(
                parse_server_name(&ext(bad), &mut out),
                Err(RouteError::Malformed)
            );
        }
        assert!(parse_server_name(&ext(&labels), &mut out).is_ok());
        let mut truncated = ext(b"a.test");
        truncated.pop();
        assert_eq!(
            parse_server_name(&truncated, &mut out),
            Err(RouteError::Malformed)
        );
        let mut wrong_type = ext(b"a.test");
        wrong_type[2] = 1;
        assert_eq!(
            parse_server_name(&wrong_type, &mut out),
            Err(RouteError::Malformed)
        );
        assert_eq!(
            parse_server_name(&[0], &mut out),
            Err(RouteError::Malformed)
        );
    }

    #[test]
    fn a_host_name_taken_out_by_the_library_is_checked_as_the_extension_is() {
        let mut out = [0u8; MAX_NAME];
        let name = ServerName::HostName(b"WWW.Example.COM");
        assert_eq!(name.parse(&mut out), Ok(15));
        assert_eq!(&out[..15], b"www.example.com");
        assert_eq!(ServerName::Absent.parse(&mut out), Ok(0));
        for bad in [&b""[..], b"a\0b", &[b'a'; 256], b"a.test."] {
            assert_eq!(
                ServerName::HostName(bad).parse(&mut out),
                Err(RouteError::Malformed),
                "{bad:?}"
            );
        }
    }
}
