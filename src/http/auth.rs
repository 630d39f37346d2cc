//! Credentials: the admin token and the tenant API keys.
//!
//! Only SHA-256 hashes of keys are kept. A presented key is hashed and looked up by its
//! hash; the admin token is compared in constant time.

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::engine::Engine;
use crate::error::Error;
use crate::ids::TenantId;
use crate::token::random_bytes;

/// The hash of a key, as stored.
pub type KeyHash = [u8; 32];

/// Hashes a presented credential.
pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// A fresh secret of 192 bits from the OS CSPRNG, with a prefix naming what it is.
pub fn generate_key(prefix: &str) -> String {
    let mut raw = [0u8; 24];
    random_bytes(&mut raw);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The administrator: everything.
    Admin,
    /// A tenant's API key: that tenant's routes only.
    Tenant(TenantId),
}

impl Caller {
    /// Allows the administrator or this tenant's own key.
    pub fn may_use(&self, tenant: &TenantId) -> Result<(), Error> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(own) if own == tenant => Ok(()),
            Caller::Tenant(_) => Err(Error::Forbidden(
                "this API key belongs to another tenant".into(),
            )),
        }
    }

    /// Allows the administrator only.
    pub fn must_be_admin(&self) -> Result<(), Error> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(Error::Forbidden(
                "a tenant API key cannot create, change, delete or list tenants; use the admin token".into(),
            )),
        }
    }
}

/// The credentials the server accepts: the admin token here, tenant API keys in the
/// engine (each belongs to one incarnation of its tenant, and rotates through its pool).
pub struct Credentials {
    admin: KeyHash,
}

impl Credentials {
    /// Credentials with this admin token.
    pub fn new(admin_token: &str) -> Self {
        Credentials {
            admin: hash_key(admin_token),
        }
    }

    /// Identifies the caller from `Authorization: Bearer <token>`.
    pub async fn identify(&self, req: &HttpRequest, engine: &Engine) -> Result<Caller, Error> {
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or(Error::Unauthorized)?;
        let hash = hash_key(presented);
        if bool::from(hash.ct_eq(&self.admin)) {
            return Ok(Caller::Admin);
        }
        engine
            .tenant_of_key(&hash)
            .await?
            .map(Caller::Tenant)
            .ok_or(Error::Unauthorized)
    }

    /// A new tenant key and its hash. The key is shown once and never stored; the hash
    /// takes effect with [`Engine::set_api_key`].
    pub fn new_tenant_key() -> (String, KeyHash) {
        let key = generate_key("usk_");
        let hash = hash_key(&key);
        (key, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(auth: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default();
        if let Some(auth) = auth {
            req = req.insert_header((AUTHORIZATION, auth));
        }
        req.to_http_request()
    }

    #[actix_web::test]
    async fn missing_or_wrong_credentials_are_unauthorized() {
        let creds = Credentials::new("admin-secret");
        let engine = Engine::start(Default::default());
        for auth in [
            None,
            Some("admin-secret"),
            Some("Bearer nope"),
            Some("Bearer "),
        ] {
            assert_eq!(
                creds.identify(&request(auth), &engine).await,
                Err(Error::Unauthorized),
                "{auth:?}"
            );
        }
        for auth in [
            "Bearer admin-secret",
            "bearer admin-secret",
            "BEARER  admin-secret",
        ] {
            assert_eq!(
                creds.identify(&request(Some(auth)), &engine).await,
                Ok(Caller::Admin),
                "{auth}"
            );
        }
    }

    #[test]
    fn a_tenant_key_is_forbidden_elsewhere_and_from_admin_routes() {
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        let caller = Caller::Tenant(acme.clone());
        assert!(caller.may_use(&acme).is_ok());
        assert_eq!(caller.may_use(&other).unwrap_err().code(), "forbidden");
        assert_eq!(caller.must_be_admin().unwrap_err().code(), "forbidden");
    }
}
