//! Users in SQL (sqlx; SQLite by default, PostgreSQL for several replicas), with argon2id
//! password hashes computed off the async threads.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::path::Path;

use crate::api::request::Namespace;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url} (DATABASE_URL)")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply the SQL migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    #[error("the SQL database failed")]
    Sql(#[from] sqlx::Error),
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
    Api,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            "api" => Some(Role::Api),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
            Role::Api => "api",
        }
    }
}

/// The namespaces a user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Only(Vec<String>),
}

impl Scope {
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(list) => list.iter().any(|n| n == namespace),
        }
    }

    fn to_column(&self) -> String {
        match self {
            Scope::All => String::new(),
            Scope::Only(list) => list.join(","),
        }
    }

    pub(crate) fn from_column(s: &str) -> Scope {
        if s.trim().is_empty() {
            Scope::All
        } else {
            Scope::Only(s.split(',').map(|n| n.trim().to_string()).collect())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub email: String,
    pub role: Role,
    pub scope: Scope,
    pub disabled: bool,
}

pub struct NewUser {
    pub username: String,
    pub email: String,
    pub role: Role,
    pub namespaces: Vec<Namespace>,
    pub password: SecretString,
}

/// The SQL database of users (and, later, sessions and export runs).
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
}

/// `sqlite://<data dir>/kubemeter.db`, created if missing.
pub fn default_url(data_dir: &Path) -> String {
    format!("sqlite://{}/kubemeter.db?mode=rwc", data_dir.display())
}

impl Db {
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = Path::new(file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                // Never echo a password that may be in the URL.
                url: redact(url),
                source,
            })?;
        Ok(Db { pool })
    }

    /// Applies the migrations in `migrations/` (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Runs one statement that returns nothing (administration, tests).
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        // Callers pass statements they wrote, never user input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The pool, for the stores of other areas (sessions, export runs).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn create_user(&self, new: NewUser) -> Result<(), StoreError> {
        let hash = hash_password(new.password).await?;
        let namespaces: Vec<String> = new
            .namespaces
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        let scope = if namespaces.is_empty() {
            Scope::All
        } else {
            Scope::Only(namespaces)
        };
        let result = sqlx::query(
            "INSERT INTO users (username, email, password_hash, role, namespaces, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6)",
        )
        .bind(&new.username)
        .bind(&new.email)
        .bind(&hash)
        .bind(new.role.as_str())
        .bind(scope.to_column())
        .bind(chrono::Utc::now().timestamp())
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::UserExists(new.username))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The user and their password hash.
    pub async fn find_user(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT username, email, password_hash, role, namespaces, disabled FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        let user = User {
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            scope: Scope::from_column(&row.try_get::<String, _>("namespaces")?),
            disabled: row.try_get::<i64, _>("disabled")? != 0,
        };
        Ok(Some((user, row.try_get("password_hash")?)))
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// argon2id with the crate's default (OWASP-recommended) parameters, on a blocking thread.
pub async fn hash_password(password: SecretString) -> Result<String, StoreError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| StoreError::Hash(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_logged_without_their_password() {
        assert_eq!(
            redact("postgres://u:hunter2@db:5432/k"),
            "postgres://…@db:5432/k"
        );
        assert_eq!(
            redact("sqlite://data/kubemeter.db"),
            "sqlite://data/kubemeter.db"
        );
    }

    #[test]
    fn an_empty_namespace_column_means_every_namespace() {
        assert_eq!(Scope::from_column(""), Scope::All);
        let only = Scope::from_column("a,b");
        assert!(only.allows("b") && !only.allows("c"));
    }
}
