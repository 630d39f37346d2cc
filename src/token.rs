//! Session tokens and the randomness behind them.
//!
//! A token is a session's public [`SessionId`] followed by a 128-bit secret from the
//! operating system's CSPRNG, written as 32 characters of URL-safe base64. Pools keep
//! only a hash of the secret, so neither memory dumps nor the store hold a usable token.

use std::cell::RefCell;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::ids::{SessionId, TenantId};

/// Length of a token's text form.
pub const TOKEN_LEN: usize = 32;
const SECRET_LEN: usize = 16;

/// Fills `out` from the OS CSPRNG.
///
/// Bytes are drawn from the OS in blocks of 4 KiB per thread, so a login costs no system
/// call; each byte handed out is erased from the block.
pub fn random_bytes(out: &mut [u8]) {
    const BLOCK: usize = 4096;
    thread_local! {
        static POOL: RefCell<(Box<[u8; BLOCK]>, usize)> = RefCell::new((Box::new([0; BLOCK]), BLOCK));
    }
    POOL.with(|pool| {
        let (block, used) = &mut *pool.borrow_mut();
        let mut written = 0;
        while written < out.len() {
            if *used == BLOCK {
                // The OS CSPRNG failing is unrecoverable: no token may be weaker.
                getrandom::fill(&mut block[..]).expect("the OS random number generator failed");
                *used = 0;
            }
            let take = (out.len() - written).min(BLOCK - *used);
            out[written..written + take].copy_from_slice(&block[*used..*used + take]);
            block[*used..*used + take].fill(0);
            *used += take;
            written += take;
        }
    })
}

/// A random `u64` from the OS CSPRNG.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    random_bytes(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// A one-way hash of a token's secret: what pools and stores keep.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SecretHash([u8; 16]);

impl SecretHash {
    /// Hashes a secret (SHA-256, truncated to 128 bits).
    pub fn of(secret: &[u8]) -> Self {
        let digest = Sha256::digest(secret);
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        SecretHash(out)
    }

    /// Compares in constant time, so timing reveals nothing about the stored hash.
    pub fn matches(&self, other: &SecretHash) -> bool {
        // One 128-bit comparison rather than sixteen byte-wise ones: just as constant.
        u128::from_le_bytes(self.0)
            .ct_eq(&u128::from_le_bytes(other.0))
            .into()
    }

    /// The raw bytes, for a store.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// From raw bytes, as a store gives them back.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        SecretHash(bytes)
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A session token: the credential a browser tab holds.
///
/// `Debug` and `Display` show only the public session id; the secret is reached only
/// through [`SessionToken::expose`].
///
/// ```
/// use usher::SessionToken;
///
/// let token = SessionToken::generate();
/// let text = token.expose();
/// assert_eq!(text.len(), 32);
/// assert!(!format!("{token:?} {token}").contains(&text));
/// assert_eq!(SessionToken::parse(&text).unwrap().id(), token.id());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    id: SessionId,
    secret: [u8; SECRET_LEN],
    /// The tenant the token routes to, written before the token as `tenant~`: a node
    /// of a shared backend finds the session's tenant without looking it up.
    route: Option<TenantId>,
}

impl SessionToken {
    /// A fresh token with a random id and secret.
    pub fn generate() -> Self {
        Self::with_id(SessionId::from_u64(random_u64()))
    }

    /// A fresh secret under a chosen id.
    pub fn with_id(id: SessionId) -> Self {
        let mut secret = [0u8; SECRET_LEN];
        random_bytes(&mut secret);
        SessionToken {
            id,
            secret,
            route: None,
        }
    }

    /// The same token, routed to `tenant`: its text starts with `tenant~`.
    pub fn routed(mut self, tenant: &TenantId) -> Self {
        self.route = Some(tenant.clone());
        self
    }

    /// The tenant the token routes to, if it carries one.
    pub fn route(&self) -> Option<&TenantId> {
        self.route.as_ref()
    }

    /// Reads the text form: 32 characters of URL-safe base64, routed tokens preceded by
    /// `tenant~`. Anything else is refused without echoing the input.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let malformed = || Error::SessionNotFound;
        let (route, text) = match text.split_once('~') {
            Some((tenant, rest)) => (
                Some(TenantId::parse(tenant).map_err(|_| malformed())?),
                rest,
            ),
            None => (None, text),
        };
        if text.len() != TOKEN_LEN {
            return Err(malformed());
        }
        let mut raw = [0u8; 24];
        let n = URL_SAFE_NO_PAD
            .decode_slice(text.as_bytes(), &mut raw)
            .map_err(|_| malformed())?;
        if n != raw.len() {
            return Err(malformed());
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&raw[..8]);
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&raw[8..]);
        Ok(SessionToken {
            id: SessionId::from_u64(u64::from_be_bytes(id)),
            secret,
            route,
        })
    }

    /// The public session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The hash a pool compares against.
    pub fn secret_hash(&self) -> SecretHash {
        SecretHash::of(&self.secret)
    }

    /// The token's text, to hand to its holder. Never log it.
    pub fn expose(&self) -> String {
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&self.id.as_u64().to_be_bytes());
        raw[8..].copy_from_slice(&self.secret);
        match &self.route {
            Some(tenant) => format!("{tenant}~{}", URL_SAFE_NO_PAD.encode(raw)),
            None => URL_SAFE_NO_PAD.encode(raw),
        }
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({}, secret: <redacted>)", self.id)
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_round_trip() {
        let token = SessionToken::generate();
        let text = token.expose();
        assert_eq!(text.len(), TOKEN_LEN);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(SessionToken::parse(&text).unwrap(), token);
    }

    #[test]
    fn tokens_never_print_their_secret() {
        let token = SessionToken::generate();
        let text = token.expose();
        let secret_part = &text[11..];
        for shown in [format!("{token:?}"), token.to_string()] {
            assert!(!shown.contains(secret_part), "{shown}");
        }
    }

    #[test]
    fn two_tokens_differ_in_their_secrets() {
        let id = SessionId::from_u64(7);
        let a = SessionToken::with_id(id);
        let b = SessionToken::with_id(id);
        assert_ne!(a.secret_hash(), b.secret_hash());
        assert!(a.secret_hash().matches(&a.secret_hash()));
        assert!(!a.secret_hash().matches(&b.secret_hash()));
    }

    #[test]
    fn malformed_tokens_are_not_found() {
        for bad in [
            "",
            "short",
            &"*".repeat(32),
            &"A".repeat(33),
            &"A".repeat(5000),
        ] {
            assert_eq!(
                SessionToken::parse(bad).unwrap_err().code(),
                "session_not_found"
            );
        }
    }

    #[test]
    fn routed_tokens_carry_their_tenant_and_round_trip() {
        let acme = TenantId::parse("acme.org").unwrap();
        let token = SessionToken::generate().routed(&acme);
        let text = token.expose();
        assert!(text.starts_with("acme.org~"), "{text}");
        let parsed = SessionToken::parse(&text).unwrap();
        assert_eq!(parsed.route(), Some(&acme));
        assert_eq!(parsed, token);
        for bad in [
            "~".to_string(),
            format!("a b~{}", &text[9..]),
            format!("acme~{}", &text[10..]),
        ] {
            assert_eq!(
                SessionToken::parse(&bad).unwrap_err().code(),
                "session_not_found"
            );
        }
    }

    #[test]
    fn random_bytes_span_block_boundaries() {
        let mut big = vec![0u8; 10_000];
        random_bytes(&mut big);
        assert!(big.iter().filter(|&&b| b == 0).count() < 200);
    }
}
