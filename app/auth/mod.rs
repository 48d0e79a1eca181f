//! Who may call the API: the seed's bootstrap credential (`API_USERNAME`/`API_PASSWORD`,
//! compared in constant time) and the users in SQL (argon2id), with a cache of verified
//! credentials so argon2 does not run on every call. The cache is keyed by a salted digest
//! of the user name and password: it never holds a password.

pub mod lockout;
pub mod sessions;

use password_hash::rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

use crate::users::{verify_password, Db, Role, Scope, StoreError};

/// How long a verified credential is trusted without argon2 (a disabled user or a changed
/// password takes effect within this time).
const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("You are not authorized")]
    Missing,
    #[error("Username and password is not recognized")]
    NotRecognized,
    #[error("user {0:?} has the role viewer; the API needs the role api or admin")]
    Forbidden(String),
    #[error("user {0:?} has the role api, which is for the API only; the dashboard needs the role viewer or admin")]
    ApiOnly(String),
    #[error("the user database is unavailable")]
    Store(#[from] StoreError),
}

impl PartialEq for AuthError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Who is calling, and what they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub role: Role,
    pub scope: Scope,
}

impl Principal {
    /// The API is for billing systems and admins; viewers use the dashboard.
    pub fn check_api(&self) -> Result<(), AuthError> {
        match self.role {
            Role::Viewer => Err(AuthError::Forbidden(self.username.clone())),
            Role::Api | Role::Admin => Ok(()),
        }
    }

    /// The dashboard is for people; machine accounts stay in the API.
    pub fn check_web(&self) -> Result<(), AuthError> {
        match self.role {
            Role::Api => Err(AuthError::ApiOnly(self.username.clone())),
            Role::Viewer | Role::Admin => Ok(()),
        }
    }
}

pub struct Authenticator {
    bootstrap: ApiCredentials,
    db: Option<Db>,
    salt: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
    /// A hash to verify against when the user does not exist, so that unknown and known
    /// users take the same time.
    dummy_hash: tokio::sync::OnceCell<String>,
}

impl Authenticator {
    pub fn new(bootstrap: ApiCredentials, db: Option<Db>) -> Self {
        let mut salt = [0u8; 32];
        OsRng.fill_bytes(&mut salt);
        Authenticator {
            bootstrap,
            db,
            salt,
            cache: Mutex::new(HashMap::new()),
            dummy_hash: tokio::sync::OnceCell::new(),
        }
    }

    fn cache_key(&self, user: &str, pass: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(pass.as_bytes());
        h.finalize().into()
    }

    /// Checks the `X-USERNAME`/`X-PASSWORD` headers of an API call.
    pub async fn api(
        &self,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let (Some(user), Some(pass)) = (username, password) else {
            return Err(AuthError::Missing);
        };
        if user.is_empty() || pass.is_empty() {
            return Err(AuthError::Missing);
        }
        if self.bootstrap.verify(Some(user), Some(pass)).is_ok() {
            return Ok(Principal {
                username: user.to_string(),
                role: Role::Api,
                scope: Scope::All,
            });
        }
        let key = self.cache_key(user, pass);
        if let Some((principal, at)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if at.elapsed() < CACHE_TTL {
                return Ok(principal.clone());
            }
        }
        let principal = self.verify_user(user, pass).await?;
        principal.check_api()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        cache.insert(key, (principal.clone(), Instant::now()));
        Ok(principal)
    }

    /// Checks a user's password against SQL (the dashboard's sign-in; never cached, and the
    /// bootstrap API credential is not a dashboard account).
    pub async fn password(&self, user: &str, pass: &str) -> Result<Principal, AuthError> {
        let principal = self.verify_user(user, pass).await?;
        principal.check_web()?;
        Ok(principal)
    }

    async fn verify_user(&self, user: &str, pass: &str) -> Result<Principal, AuthError> {
        let Some(db) = &self.db else {
            return Err(AuthError::NotRecognized);
        };
        let password = SecretString::from(pass.to_string());
        match db.find_user(user).await? {
            Some((u, hash)) => {
                if verify_password(password, hash).await && !u.disabled {
                    Ok(Principal {
                        username: u.username,
                        role: u.role,
                        scope: u.scope,
                    })
                } else {
                    Err(AuthError::NotRecognized)
                }
            }
            None => {
                let dummy = self
                    .dummy_hash
                    .get_or_try_init(|| {
                        crate::users::hash_password(SecretString::from("no such user"))
                    })
                    .await?;
                verify_password(password, dummy.clone()).await;
                Err(AuthError::NotRecognized)
            }
        }
    }
}

/// The bootstrap API credential. Only digests are kept, so the comparison takes the same time
/// whatever the lengths, and the password itself is not held in memory longer than needed.
#[derive(Clone)]
pub struct ApiCredentials {
    expected: Option<([u8; 32], [u8; 32])>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl ApiCredentials {
    pub fn new(credential: Option<(String, SecretString)>) -> Self {
        ApiCredentials {
            expected: credential.map(|(u, p)| (digest(&u), digest(p.expose_secret()))),
        }
    }

    /// Checks the `X-USERNAME`/`X-PASSWORD` headers.
    pub fn verify(&self, username: Option<&str>, password: Option<&str>) -> Result<(), AuthError> {
        let (Some(user), Some(pass)) = (username, password) else {
            return Err(AuthError::Missing);
        };
        if user.is_empty() || pass.is_empty() {
            return Err(AuthError::Missing);
        }
        let Some((want_user, want_pass)) = &self.expected else {
            return Err(AuthError::NotRecognized);
        };
        // `&` (not `&&`) so both comparisons always run.
        let ok = digest(user).ct_eq(want_user) & digest(pass).ct_eq(want_pass);
        if bool::from(ok) {
            Ok(())
        } else {
            Err(AuthError::NotRecognized)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> ApiCredentials {
        ApiCredentials::new(Some(("billing".into(), SecretString::from("s3cret"))))
    }

    #[test]
    fn the_configured_credential_is_accepted() {
        assert_eq!(creds().verify(Some("billing"), Some("s3cret")), Ok(()));
    }

    #[test]
    fn a_wrong_user_or_password_is_not_recognized() {
        assert_eq!(
            creds().verify(Some("billing"), Some("s3cre")),
            Err(AuthError::NotRecognized)
        );
        assert_eq!(
            creds().verify(Some("bill"), Some("s3cret")),
            Err(AuthError::NotRecognized)
        );
    }

    #[test]
    fn missing_or_empty_headers_are_not_authorized() {
        assert_eq!(
            creds().verify(None, Some("s3cret")),
            Err(AuthError::Missing)
        );
        assert_eq!(creds().verify(Some(""), Some("")), Err(AuthError::Missing));
    }

    #[test]
    fn without_a_configured_credential_nobody_gets_in() {
        let none = ApiCredentials::new(None);
        assert_eq!(
            none.verify(Some("a"), Some("b")),
            Err(AuthError::NotRecognized)
        );
    }
}
