//! Who may call the API. For now the seed's single bootstrap credential
//! (`API_USERNAME`/`API_PASSWORD`), compared in constant time.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("You are not authorized")]
    Missing,
    #[error("Username and password is not recognized")]
    NotRecognized,
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
