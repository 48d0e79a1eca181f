//! Who may call the API: the seed's bootstrap credential (`API_USERNAME`/`API_PASSWORD`,
//! compared in constant time) and the users in SQL (argon2id), with a cache of verified
//! credentials so argon2 does not run on every call. The cache is keyed by a salted digest
//! of the user name and password: it never holds a password.

pub mod checker;
pub mod lockout;
pub mod sessions;
pub mod throttle;

use password_hash::rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

use self::checker::{CheckError, PasswordChecker};
use self::lockout::Verdict;
use self::throttle::AddressThrottle;
use crate::users::{Db, Role, Scope, StoreError};

/// How long a verified credential is trusted without argon2 (a disabled user or a changed
/// password takes effect within this time).
const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;
/// How long a verified credential may still be checked from an address that is refused.
const RIGHT_TTL: Duration = Duration::from_secs(24 * 3600);

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
    /// Every password verifier is busy (a flood, or a burst of new sign-ins).
    #[error("{0}")]
    Busy(#[from] CheckError),
    /// This client address failed too often; refused before any password is checked.
    #[error("too many failed attempts from this address; try again in {} s", .0.as_secs())]
    Throttled(Duration),
}

impl AuthError {
    /// Seconds a caller should wait before trying again, for refusals that have one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AuthError::Busy(_) => Some(checker::RETRY_AFTER_SECS),
            AuthError::Throttled(wait) => Some(wait.as_secs().max(1)),
            _ => None,
        }
    }
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
    /// Bounds how many argon2 verifications run at once.
    checker: PasswordChecker,
    /// Client addresses that keep failing, slowed and refused before any verification.
    throttle: AddressThrottle,
    /// Salted digests of credentials verified recently (never a password).
    right: Mutex<HashMap<[u8; 32], Instant>>,
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
            checker: PasswordChecker::sized_to_cores(),
            throttle: AddressThrottle::default(),
            right: Mutex::new(HashMap::new()),
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

    /// Checks the `X-USERNAME`/`X-PASSWORD` headers of an API call from `client`.
    ///
    /// In order of cost: the bootstrap credential (two digests), the cache of verified
    /// credentials, then — only for a client address that has not failed too often — one
    /// argon2 verification on a bounded set of threads. A valid cached credential is answered
    /// whatever else is going on.
    pub async fn api(
        &self,
        client: Option<IpAddr>,
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
        if let Some(principal) = self.cached(&key) {
            // Right password, wrong role is answered from the cache too: a viewer's password
            // must not make argon2 run on every call.
            principal.check_api()?;
            return Ok(principal);
        }
        let principal = self.verify_user(client, user, pass, &key).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        cache.insert(key, (principal.clone(), Instant::now()));
        drop(cache);
        principal.check_api()?;
        Ok(principal)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Principal> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (principal, at) = cache.get(key)?;
        (at.elapsed() < CACHE_TTL).then(|| principal.clone())
    }

    /// Checks a user's password against SQL (the dashboard's sign-in; never cached, and the
    /// bootstrap API credential is not a dashboard account).
    pub async fn password(
        &self,
        client: Option<IpAddr>,
        user: &str,
        pass: &str,
    ) -> Result<Principal, AuthError> {
        let key = self.cache_key(user, pass);
        let principal = self.verify_user(client, user, pass, &key).await?;
        if let Err(e) = principal.check_web() {
            // An account that may not sign in here is counted like a wrong password, so that
            // its right password cannot be used to keep argon2 busy from one address.
            if let Some(addr) = client {
                self.throttle.record_failure(addr);
            }
            return Err(e);
        }
        Ok(principal)
    }

    /// Looks the user up and verifies the password, after the client address's verdict and
    /// holding a verifier slot throughout (so neither argon2 nor the user database can be
    /// flooded). Unknown users cost one verification too, so that names are not revealed.
    async fn verify_user(
        &self,
        client: Option<IpAddr>,
        user: &str,
        pass: &str,
        key: &[u8; 32],
    ) -> Result<Principal, AuthError> {
        let Some(db) = &self.db else {
            return Err(AuthError::NotRecognized);
        };
        if let Some(addr) = client {
            // Counted before checking (and forgiven on success), so that concurrent guesses
            // cannot all pass the check before any is counted.
            match self.throttle.attempt(addr) {
                Verdict::Allow => {}
                Verdict::Slow(delay) => tokio::time::sleep(delay).await,
                // A credential that was right before may still be checked from an address
                // others have been guessing from (a shared proxy or NAT): it cannot guess.
                Verdict::Refuse(_) if self.was_right(key) => {}
                Verdict::Refuse(wait) => return Err(AuthError::Throttled(wait)),
            }
        }
        let dummy = self
            .dummy_hash
            .get_or_try_init(|| crate::users::hash_password(SecretString::from("no such user")))
            .await?;
        let slot = self.checker.slot().await?;
        let password = SecretString::from(pass.to_string());
        let found = db.find_user(user).await?;
        let ok = match &found {
            Some((u, hash)) => slot.verify(password, hash.clone()).await? && !u.disabled,
            None => {
                slot.verify(password, dummy.clone()).await?;
                false
            }
        };
        match found {
            Some((u, _)) if ok => {
                if let Some(addr) = client {
                    self.throttle.forgive(addr);
                }
                self.remember_right(*key);
                Ok(Principal {
                    username: u.username,
                    role: u.role,
                    scope: u.scope,
                })
            }
            _ => Err(AuthError::NotRecognized),
        }
    }

    /// Whether this credential (its salted digest) was verified within [`RIGHT_TTL`].
    fn was_right(&self, key: &[u8; 32]) -> bool {
        let right = self.right.lock().unwrap_or_else(|p| p.into_inner());
        right.get(key).is_some_and(|at| at.elapsed() < RIGHT_TTL)
    }

    fn remember_right(&self, key: [u8; 32]) {
        let mut right = self.right.lock().unwrap_or_else(|p| p.into_inner());
        if right.len() >= CACHE_MAX {
            right.retain(|_, at| at.elapsed() < RIGHT_TTL);
        }
        right.insert(key, Instant::now());
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
