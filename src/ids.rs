//! Identifiers validated once, at the edge: tenants, users and session handles.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use arcstr::ArcStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// The longest id SPEC §4 allows.
pub const MAX_ID_LEN: usize = 128;

fn validate(kind: &str, text: &str) -> Result<(), Error> {
    if text.is_empty() || text.len() > MAX_ID_LEN {
        return Err(Error::InvalidRequest(format!(
            "{kind} must be 1 to {MAX_ID_LEN} characters long, got {}",
            text.len()
        )));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')))
    {
        return Err(Error::InvalidRequest(format!(
            "{kind} may only contain letters, digits and . _ @ -; found {bad:?}"
        )));
    }
    // Browsers and proxies resolve `.` and `..` path segments away, so such an id
    // could never be addressed in a URL.
    if text.bytes().all(|b| b == b'.') {
        return Err(Error::InvalidRequest(format!(
            "{kind} must contain a letter, digit, _, @ or -; one of dots only is not allowed"
        )));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// 1–128 characters of `[A-Za-z0-9._@-]`; cheap to clone, and one pointer
        /// wide (the text and its count share one allocation).
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(ArcStr);

        impl $name {
            /// Validates `text` as an id.
            pub fn parse(text: &str) -> Result<Self, Error> {
                validate($kind, text)?;
                Ok($name(ArcStr::from(text)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(text: &str) -> Result<Self, Error> {
                Self::parse(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A customer organisation: one licence, one pool.
    TenantId,
    "tenant id"
);
id_type!(
    /// A user account within a tenant.
    UserId,
    "user id"
);
id_type!(
    /// A group of users within a tenant (a department, a team), which a concurrent
    /// licence may reserve seats for or cap.
    GroupId,
    "group id"
);

id_type!(
    /// A tenant's webhook, by the name it was registered under.
    WebhookName,
    "webhook name"
);

// Every pool keeps a user's id several times over (its account, the paging order, each
// session): one pointer each.
const _: () = assert!(std::mem::size_of::<UserId>() == std::mem::size_of::<usize>());

/// The public handle of a session: listed to administrators and used for forced
/// release. It is part of the session token but proves nothing on its own.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(u64);

impl SessionId {
    /// The handle with this raw value.
    pub const fn from_u64(raw: u64) -> Self {
        SessionId(raw)
    }

    /// The raw value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Parses the 16-hex-digit form shown by [`Display`](fmt::Display).
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(raw) = u64::from_str_radix(text, 16) {
                return Ok(SessionId(raw));
            }
        }
        Err(Error::InvalidRequest(
            "session id must be 16 hexadecimal digits".into(),
        ))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// Hashes [`SessionId`]s for the maps keyed by them.
///
/// Session ids are drawn from the OS CSPRNG by the engine, never chosen by a client, so
/// a keyed hash such as SipHash buys no protection here; one multiply spreads the bits,
/// and folding the high half down keeps structured ids (tests, restores) apart too.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SessionIdHasher(u64);

impl Hasher for SessionIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let mixed = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = mixed ^ (mixed >> 32);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The [`std::hash::BuildHasher`] of maps keyed by [`SessionId`].
pub(crate) type SessionIdHash = BuildHasherDefault<SessionIdHasher>;

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        SessionId::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_spec_alphabet() {
        for good in [
            "a",
            "acme-charity",
            "jo.smith@example.org",
            "A_9",
            &"x".repeat(128),
        ] {
            assert_eq!(UserId::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn ids_reject_empty_long_and_foreign_characters() {
        for bad in ["", "a b", "a/b", "é", "tab\t", &"x".repeat(129)] {
            let err = TenantId::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{bad:?}");
        }
    }

    #[test]
    fn ids_of_dots_only_are_refused() {
        for bad in [".", "..", "...", &".".repeat(128)] {
            let err = UserId::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{bad:?}");
            assert!(err.to_string().contains("dots"), "{err}");
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["a.", ".a", "a..b", "-.", "._"] {
            assert!(UserId::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn sequential_session_ids_hash_apart() {
        use std::collections::HashSet;
        use std::hash::BuildHasher;
        let hashes: HashSet<u64> = (0..10_000u64)
            .flat_map(|n| [n, n << 32])
            .map(|n| SessionIdHash::default().hash_one(SessionId::from_u64(n)) & 0xffff)
            .collect();
        assert!(hashes.len() > 9_000, "{} distinct low bits", hashes.len());
    }

    #[test]
    fn session_ids_round_trip_through_hex() {
        let id = SessionId::from_u64(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!(SessionId::parse("00abcdef01234567").unwrap(), id);
        assert!(SessionId::parse("xyz").is_err());
        assert!(SessionId::parse("+0abcdef01234567").is_err());
    }
}
