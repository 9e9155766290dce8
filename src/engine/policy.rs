//! The resumption policy: an ordered list of named rules. A session is resumed only when every
//! rule allows it; the first rule that refuses names the reason, which is counted in the stats
//! and logged. Built-in rules come first, then the host's own (C callbacks or Rust `Rule`s).
//!
//! | rule          | refuses when                                                   | source            |
//! |---------------|----------------------------------------------------------------|-------------------|
//! | `vhost`       | the session belongs to another virtual host                    | R10 (origin conf.)|
//! | `sni`         | the SNI differs (ASCII case-insensitive; absent ≠ present)     | RFC 6066 §3       |
//! | `invalidated` | a fatal alert ended a connection that used the session         | RFC 5246 §7.2.2   |
//! | `expired`     | older than the vhost's lifetime (never more than 24 h)         | RFC 5246 §F.1.4   |
//! | `version`     | the connection negotiated another protocol version             | RFC 5246 §7.4.1.2 |
//! | `cipher`      | the suite (TLS 1.3: every suite of its hash) is no longer enabled | RFC 5246 §7.4.1.3, RFC 8446 §4.2.11 |
//! | `ems`         | extended master secret use differs, or neither side has it      | RFC 7627 §5.3     |

use std::sync::Arc;

use super::stats::BuiltinRule;
use super::vhosts::VHost;
use crate::record::Meta;

/// Hard ceiling on any session's lifetime (RFC 5246 §F.1.4 suggests 24 h).
pub const MAX_LIFETIME: u32 = 24 * 3600;

pub const TLS1_2: u16 = 0x0303;
pub const TLS1_3: u16 = 0x0304;

/// What the connection tells the rules.
pub struct Facts<'a> {
    pub vhost: &'a VHost,
    /// The SNI of this ClientHello, lower-case; `None` when absent.
    pub sni: Option<&'a str>,
    /// Seconds since the epoch.
    pub now: u64,
    /// The negotiated protocol version.
    pub version: u16,
    /// The ClientHello carried `extended_master_secret`; `None` when unknown.
    pub client_ems: Option<bool>,
    /// Whether a cipher suite (IANA id) is enabled on the vhost's current context.
    pub cipher_enabled: &'a dyn Fn(u16) -> bool,
}

/// One rule of the policy. `name` is the refusal reason in stats and logs.
pub trait Rule: Send + Sync {
    fn name(&self) -> &str;
    /// True to allow resumption of the session described by `session`.
    fn allows(&self, session: &Meta<'_>, facts: &Facts<'_>) -> bool;
}

/// A built-in rule: its declared name (`stats_fields.rs`) and a plain function of the session
/// and the connection.
#[derive(Clone, Copy)]
struct Builtin {
    rule: BuiltinRule,
    allows: fn(&Meta<'_>, &Facts<'_>) -> bool,
}

impl Rule for Builtin {
    fn name(&self) -> &str {
        self.rule.name()
    }
    fn allows(&self, s: &Meta<'_>, f: &Facts<'_>) -> bool {
        (self.allows)(s, f)
    }
}

/// The built-in rules, in the order they are asked (the table at the top of this file).
const BUILTIN: [Builtin; 7] = [
    Builtin {
        rule: BuiltinRule::Vhost,
        allows: same_vhost,
    },
    Builtin {
        rule: BuiltinRule::Sni,
        allows: same_sni,
    },
    Builtin {
        rule: BuiltinRule::Invalidated,
        allows: not_invalidated,
    },
    Builtin {
        rule: BuiltinRule::Expired,
        allows: not_expired,
    },
    Builtin {
        rule: BuiltinRule::Version,
        allows: same_version,
    },
    Builtin {
        rule: BuiltinRule::Cipher,
        allows: cipher_enabled,
    },
    Builtin {
        rule: BuiltinRule::Ems,
        allows: extended_master_secret,
    },
];

fn same_vhost(s: &Meta<'_>, f: &Facts<'_>) -> bool {
    s.vhost.eq_ignore_ascii_case(&f.vhost.name)
}

fn same_sni(s: &Meta<'_>, f: &Facts<'_>) -> bool {
    match (s.sni, f.sni) {
        (None, None) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

fn not_invalidated(s: &Meta<'_>, _: &Facts<'_>) -> bool {
    !s.invalidated
}

fn not_expired(s: &Meta<'_>, f: &Facts<'_>) -> bool {
    let lifetime = s.timeout.min(f.vhost.options.timeout).min(MAX_LIFETIME);
    s.created <= f.now.saturating_add(60) && f.now < s.created.saturating_add(u64::from(lifetime))
}

fn same_version(s: &Meta<'_>, f: &Facts<'_>) -> bool {
    s.version == f.version
}

/// TLS 1.3 suites by KDF hash: 0 for SHA-256, 1 for SHA-384 (RFC 8446 §B.4).
fn tls13_hash(suite: u16) -> Option<u8> {
    match suite {
        0x1301 | 0x1303 | 0x1304 | 0x1305 => Some(0),
        0x1302 => Some(1),
        _ => None,
    }
}

fn cipher_enabled(s: &Meta<'_>, f: &Facts<'_>) -> bool {
    if s.version >= TLS1_3 {
        let Some(hash) = tls13_hash(s.cipher) else {
            return false;
        };
        (0x1301..=0x1305).any(|c| tls13_hash(c) == Some(hash) && (f.cipher_enabled)(c))
    } else {
        (f.cipher_enabled)(s.cipher)
    }
}

fn extended_master_secret(s: &Meta<'_>, f: &Facts<'_>) -> bool {
    if s.version >= TLS1_3 {
        return true;
    }
    match f.client_ems {
        None => true,
        Some(client) if client != s.ems => false,
        Some(true) => true,
        Some(false) => f.vhost.options.allow_no_ems,
    }
}

/// The ordered rule list.
pub struct Policy {
    rules: Vec<Arc<dyn Rule>>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rules: BUILTIN
                .iter()
                .map(|&b| Arc::new(b) as Arc<dyn Rule>)
                .collect(),
        }
    }
}

impl Policy {
    /// Appends a rule after the built-in ones and any added before it.
    pub fn push(&mut self, rule: Arc<dyn Rule>) {
        self.rules.push(rule);
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn name(&self, index: usize) -> &str {
        self.rules[index].name()
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.name() == name)
    }

    /// `Err(index)` of the first rule that refuses.
    pub fn evaluate(&self, session: &Meta<'_>, facts: &Facts<'_>) -> Result<(), usize> {
        match self.rules.iter().position(|r| !r.allows(session, facts)) {
            Some(i) => Err(i),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::vhosts::VHostOptions;

    fn vhost(allow_no_ems: bool) -> VHost {
        VHost {
            name: "*.example.com".into(),
            index: 0,
            ctx: 0,
            options: VHostOptions {
                timeout: 300,
                is_default: false,
                single_use: false,
                allow_no_ems,
                no_store: false,
            },
        }
    }

    fn session() -> Meta<'static> {
        Meta {
            vhost: "*.example.com",
            sni: Some("a.example.com"),
            created: 1000,
            timeout: 300,
            version: TLS1_2,
            cipher: 0xc02f,
            ems: true,
            invalidated: false,
            alpn: b"",
        }
    }

    /// A TLS 1.2 connection to `a.example.com` at time 1100 that sent extended master secret.
    fn facts<'a>(v: &'a VHost, enabled: &'a dyn Fn(u16) -> bool) -> Facts<'a> {
        Facts {
            vhost: v,
            sni: Some("a.example.com"),
            now: 1100,
            version: TLS1_2,
            client_ems: Some(true),
            cipher_enabled: enabled,
        }
    }

    fn refusal(
        s: &Meta<'_>,
        tweak: impl FnOnce(&mut Facts<'_>),
        allow_no_ems: bool,
    ) -> Option<String> {
        let v = vhost(allow_no_ems);
        let enabled = |c: u16| c == 0xc02f || c == 0x1301;
        let mut f = facts(&v, &enabled);
        tweak(&mut f);
        let p = Policy::default();
        p.evaluate(s, &f).err().map(|i| p.name(i).to_owned())
    }

    #[test]
    fn matching_session_is_allowed() {
        assert_eq!(refusal(&session(), |_| {}, false), None);
        assert_eq!(
            refusal(&session(), |f| f.sni = Some("A.EXAMPLE.com"), false),
            None
        );
    }

    #[test]
    fn each_rule_names_its_refusal() {
        let r = |s: Meta<'static>, t: fn(&mut Facts<'_>)| refusal(&s, t, false);
        let base = session;
        assert_eq!(
            r(
                Meta {
                    vhost: "b.test",
                    ..base()
                },
                |_| {}
            )
            .as_deref(),
            Some("vhost")
        );
        assert_eq!(
            r(base(), |f| f.sni = Some("b.example.com")).as_deref(),
            Some("sni")
        );
        assert_eq!(r(base(), |f| f.sni = None).as_deref(), Some("sni"));
        assert_eq!(
            r(
                Meta {
                    sni: None,
                    ..base()
                },
                |_| {}
            )
            .as_deref(),
            Some("sni")
        );
        assert_eq!(
            r(
                Meta {
                    invalidated: true,
                    ..base()
                },
                |_| {}
            )
            .as_deref(),
            Some("invalidated")
        );
        assert_eq!(r(base(), |f| f.now = 1300).as_deref(), Some("expired"));
        assert_eq!(
            r(base(), |f| f.now = 10).as_deref(),
            Some("expired"),
            "created in the future"
        );
        assert_eq!(
            r(base(), |f| f.version = TLS1_3).as_deref(),
            Some("version")
        );
        assert_eq!(
            r(
                Meta {
                    cipher: 0x009c,
                    ..base()
                },
                |_| {}
            )
            .as_deref(),
            Some("cipher")
        );
        assert_eq!(
            r(base(), |f| f.client_ems = Some(false)).as_deref(),
            Some("ems")
        );
        assert_eq!(
            r(
                Meta {
                    ems: false,
                    ..base()
                },
                |_| {}
            )
            .as_deref(),
            Some("ems")
        );
    }

    #[test]
    fn lifetime_is_capped_at_24_hours() {
        let long = Meta {
            timeout: u32::MAX,
            ..session()
        };
        let mut v = vhost(false);
        v.options.timeout = u32::MAX;
        let enabled = |_: u16| true;
        let f = Facts {
            vhost: &v,
            sni: Some("a.example.com"),
            now: 1000 + u64::from(MAX_LIFETIME),
            version: TLS1_2,
            client_ems: Some(true),
            cipher_enabled: &enabled,
        };
        assert_eq!(Policy::default().evaluate(&long, &f), Err(3));
    }

    #[test]
    fn no_ems_on_either_side_needs_the_vhost_option() {
        let s = Meta {
            ems: false,
            ..session()
        };
        assert_eq!(
            refusal(&s, |f| f.client_ems = Some(false), false).as_deref(),
            Some("ems")
        );
        assert_eq!(refusal(&s, |f| f.client_ems = Some(false), true), None);
    }

    #[test]
    fn tls13_resumes_under_any_enabled_suite_of_the_same_hash() {
        let s = Meta {
            version: TLS1_3,
            cipher: 0x1303,
            ems: false,
            ..session()
        };
        assert_eq!(
            refusal(&s, |f| f.version = TLS1_3, false),
            None,
            "0x1301 shares SHA-256"
        );
        let s384 = Meta {
            cipher: 0x1302,
            ..s
        };
        assert_eq!(
            refusal(&s384, |f| f.version = TLS1_3, false).as_deref(),
            Some("cipher")
        );
    }

    struct NoH2;
    impl Rule for NoH2 {
        fn name(&self) -> &str {
            "no-h2"
        }
        fn allows(&self, s: &Meta<'_>, _: &Facts<'_>) -> bool {
            s.alpn != b"h2"
        }
    }

    #[test]
    fn added_rules_run_after_the_built_in_ones() {
        let mut p = Policy::default();
        p.push(Arc::new(NoH2));
        assert_eq!(p.position("no-h2"), Some(7));
        let v = vhost(false);
        let enabled = |_: u16| true;
        let f = facts(&v, &enabled);
        assert_eq!(
            p.evaluate(
                &Meta {
                    alpn: b"h2",
                    ..session()
                },
                &f
            ),
            Err(7)
        );
        assert_eq!(
            p.evaluate(
                &Meta {
                    alpn: b"h2",
                    sni: None,
                    ..session()
                },
                &f
            ),
            Err(1)
        );
    }
}
