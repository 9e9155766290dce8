//! The versioned record every store holds: the facts the policy needs (vhost, SNI, times,
//! version, cipher, EMS, ALPN) in front of the host's serialized session. Decoding trusts
//! nothing: every length is checked, and any flaw is a `RecordError`, which callers treat as
//! a miss.

const MAGIC: &[u8; 4] = b"SNCR";
/// The format written by this version for stored sessions.
pub const FORMAT_VERSION: u8 = 1;
/// The format of a ticket's record: version 1 plus the ticket's identity after the fixed part.
pub const TICKET_FORMAT_VERSION: u8 = 2;
/// Bytes of a ticket's identity: random, drawn when the ticket is issued, sealed inside it.
pub const TICKET_ID_LEN: usize = 16;
const FLAG_EMS: u8 = 1;
const FLAG_INVALIDATED: u8 = 2;
const FIXED_LEN: usize = 4 + 1 + 1 + 2 + 2 + 8 + 4;

/// Session facts stored beside the serialized session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta<'a> {
    pub vhost: &'a str,
    /// The SNI the session was made under; `None` when the client sent none.
    pub sni: Option<&'a str>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// Lifetime in seconds.
    pub timeout: u32,
    /// TLS protocol version (0x0303 for TLS 1.2, 0x0304 for TLS 1.3).
    pub version: u16,
    /// IANA cipher suite id.
    pub cipher: u16,
    /// The session used the extended master secret (RFC 7627).
    pub ems: bool,
    /// Set on a tombstone left by a fatal alert (RFC 5246 §7.2.2).
    pub invalidated: bool,
    pub alpn: &'a [u8],
}

impl Meta<'_> {
    /// When the session stops being resumable.
    pub fn expires_at(&self) -> u64 {
        self.created.saturating_add(u64::from(self.timeout))
    }
}

/// A decoded record borrowing from the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub meta: Meta<'a>,
    /// The host library's serialized session (`i2d_SSL_SESSION`); empty in a tombstone.
    pub session: &'a [u8],
    /// A ticket's identity (format 2), which its revocation entry is derived from.
    pub ticket_id: Option<[u8; TICKET_ID_LEN]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    Truncated,
    BadMagic,
    UnknownVersion(u8),
    BadText,
    TrailingBytes,
    FieldTooLong,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Truncated => f.write_str("record is truncated"),
            RecordError::BadMagic => f.write_str("record has no snicache magic"),
            RecordError::UnknownVersion(v) => write!(f, "record format version {v} is unknown"),
            RecordError::BadText => f.write_str("record vhost or SNI is not ASCII"),
            RecordError::TrailingBytes => f.write_str("record has trailing bytes"),
            RecordError::FieldTooLong => f.write_str("record field over 255 bytes"),
        }
    }
}

/// Encodes a record. Fails only when a name or ALPN exceeds 255 bytes.
pub fn encode(meta: &Meta<'_>, session: &[u8]) -> Result<Vec<u8>, RecordError> {
    encode_with(meta, None, session)
}

/// Encodes a ticket's record (format 2): as `encode`, carrying the ticket's identity.
pub fn encode_ticket(
    meta: &Meta<'_>,
    ticket_id: &[u8; TICKET_ID_LEN],
    session: &[u8],
) -> Result<Vec<u8>, RecordError> {
    encode_with(meta, Some(ticket_id), session)
}

fn encode_with(
    meta: &Meta<'_>,
    ticket_id: Option<&[u8; TICKET_ID_LEN]>,
    session: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let short = |b: &[u8]| u8::try_from(b.len()).map_err(|_| RecordError::FieldTooLong);
    let vhost_len = short(meta.vhost.as_bytes())?;
    let sni = meta.sni.unwrap_or("").as_bytes();
    let sni_len = short(sni)?;
    let alpn_len = short(meta.alpn)?;
    let session_len = u32::try_from(session.len()).map_err(|_| RecordError::FieldTooLong)?;
    let mut out = Vec::with_capacity(
        FIXED_LEN + 3 + 4 + sni.len() + meta.vhost.len() + meta.alpn.len() + session.len(),
    );
    out.extend_from_slice(MAGIC);
    out.push(if ticket_id.is_some() {
        TICKET_FORMAT_VERSION
    } else {
        FORMAT_VERSION
    });
    let mut flags = 0;
    if meta.ems {
        flags |= FLAG_EMS;
    }
    if meta.invalidated {
        flags |= FLAG_INVALIDATED;
    }
    out.push(flags);
    out.extend_from_slice(&meta.version.to_be_bytes());
    out.extend_from_slice(&meta.cipher.to_be_bytes());
    out.extend_from_slice(&meta.created.to_be_bytes());
    out.extend_from_slice(&meta.timeout.to_be_bytes());
    if let Some(id) = ticket_id {
        out.extend_from_slice(id);
    }
    out.push(vhost_len);
    out.extend_from_slice(meta.vhost.as_bytes());
    out.push(sni_len);
    out.extend_from_slice(sni);
    out.push(alpn_len);
    out.extend_from_slice(meta.alpn);
    out.extend_from_slice(&session_len.to_be_bytes());
    out.extend_from_slice(session);
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn short_field(&mut self) -> Result<&'a [u8], RecordError> {
        let n = self.take(1)?[0] as usize;
        self.take(n)
    }
    fn text(&mut self) -> Result<&'a str, RecordError> {
        let b = self.short_field()?;
        if !b.is_ascii() {
            return Err(RecordError::BadText);
        }
        std::str::from_utf8(b).map_err(|_| RecordError::BadText)
    }
}

/// The longest record without session bytes (what a ticket carries in front of its session).
pub const MAX_APPDATA: usize = FIXED_LEN + TICKET_ID_LEN + 3 * 256 + 4;

/// Decodes a record without copying.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, RecordError> {
    let (rec, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(RecordError::TrailingBytes);
    }
    Ok(rec)
}

/// The length of the record at the start of `bytes`, when one decodes there.
pub fn split_appdata(bytes: &[u8]) -> Option<usize> {
    decode_prefix(bytes).ok().map(|(_, used)| used)
}

fn decode_prefix(bytes: &[u8]) -> Result<(Record<'_>, usize), RecordError> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return Err(RecordError::BadMagic);
    }
    let version = r.take(1)?[0];
    if version != FORMAT_VERSION && version != TICKET_FORMAT_VERSION {
        return Err(RecordError::UnknownVersion(version));
    }
    let flags = r.take(1)?[0];
    let tls_version = u16::from_be_bytes(r.array()?);
    let cipher = u16::from_be_bytes(r.array()?);
    let created = u64::from_be_bytes(r.array()?);
    let timeout = u32::from_be_bytes(r.array()?);
    let ticket_id = if version == TICKET_FORMAT_VERSION {
        Some(r.array()?)
    } else {
        None
    };
    let vhost = r.text()?;
    let sni = r.text()?;
    let alpn = r.short_field()?;
    let session_len = u32::from_be_bytes(r.array()?) as usize;
    let session = r.take(session_len)?;
    let used = bytes.len() - r.0.len();
    let rec = Record {
        meta: Meta {
            vhost,
            sni: (!sni.is_empty()).then_some(sni),
            created,
            timeout,
            version: tls_version,
            cipher,
            ems: flags & FLAG_EMS != 0,
            invalidated: flags & FLAG_INVALIDATED != 0,
            alpn,
        },
        session,
        ticket_id,
    };
    Ok((rec, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta<'static> {
        Meta {
            vhost: "a.test",
            sni: Some("a.test"),
            created: 1_700_000_000,
            timeout: 300,
            version: 0x0303,
            cipher: 0xc02f,
            ems: true,
            invalidated: false,
            alpn: b"h2",
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let bytes = encode(&meta(), b"DER").unwrap();
        let rec = decode(&bytes).unwrap();
        assert_eq!(rec.meta, meta());
        assert_eq!(rec.session, b"DER");
    }

    #[test]
    fn absent_sni_stays_absent() {
        let m = Meta {
            sni: None,
            ..meta()
        };
        assert_eq!(decode(&encode(&m, b"").unwrap()).unwrap().meta.sni, None);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&meta(), b"some session bytes").unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }

    #[test]
    fn corruption_is_detected_or_harmless() {
        let bytes = encode(&meta(), b"xyz").unwrap();
        let mut bad = bytes.clone();
        bad[0] ^= 0xff;
        assert_eq!(decode(&bad), Err(RecordError::BadMagic));
        let mut bad = bytes.clone();
        bad[4] = 9;
        assert_eq!(decode(&bad), Err(RecordError::UnknownVersion(9)));
        let mut bad = bytes.clone();
        bad.push(0);
        assert_eq!(decode(&bad), Err(RecordError::TrailingBytes));
        let mut bad = bytes;
        bad[FIXED_LEN + 1] = 0xC3;
        assert_eq!(decode(&bad), Err(RecordError::BadText));
    }

    #[test]
    fn appdata_prefix_splits_from_what_follows() {
        let mut bytes = encode(&meta(), b"").unwrap();
        let n = bytes.len();
        assert!(n <= MAX_APPDATA);
        bytes.extend_from_slice(b"session bytes");
        assert_eq!(split_appdata(&bytes), Some(n));
        assert_eq!(split_appdata(&bytes[..n - 1]), None);
    }

    #[test]
    fn a_ticket_record_carries_its_identity() {
        let id = [7u8; TICKET_ID_LEN];
        let bytes = encode_ticket(&meta(), &id, b"").unwrap();
        assert_eq!(bytes[4], TICKET_FORMAT_VERSION);
        let rec = decode(&bytes).unwrap();
        assert_eq!(rec.meta, meta());
        assert_eq!(rec.ticket_id, Some(id));
        assert!(bytes.len() <= MAX_APPDATA);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        assert_eq!(
            decode(&encode(&meta(), b"").unwrap()).unwrap().ticket_id,
            None
        );
    }

    #[test]
    fn oversized_fields_are_refused() {
        let long = "x".repeat(256);
        let m = Meta {
            vhost: &long,
            ..meta()
        };
        assert_eq!(encode(&m, b""), Err(RecordError::FieldTooLong));
    }
}
