//! Users in SQL (SQLite, and PostgreSQL when KUBEMETER_TEST_POSTGRES_URL is set) calling
//! the API, with roles and namespace scopes.

use crate::helpers::{fresh_sql_databases, owned, pairs, spawn_app_with_users, window};
use kubemeter::api::request::Namespace;
use kubemeter::users::{Db, NewUser, Role, StoreError};
use secrecy::SecretString;
use serde_json::Value;

async fn add(db: &Db, name: &str, role: Role, namespaces: &[&str]) {
    db.create_user(NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        role,
        namespaces: namespaces
            .iter()
            .map(|n| Namespace::parse(n).unwrap())
            .collect(),
        password: SecretString::from(format!("{name}-password")),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn users_call_the_api_with_their_role_and_see_only_their_namespaces() {
    for (label, db) in fresh_sql_databases().await {
        add(&db, "billing", Role::Api, &[]).await;
        add(&db, "team3", Role::Api, &["cluster-3"]).await;
        add(&db, "alice", Role::Viewer, &[]).await;
        let again = db
            .create_user(NewUser {
                username: "billing".into(),
                email: "x@example.com".into(),
                role: Role::Api,
                namespaces: vec![],
                password: SecretString::from("whatever-else"),
            })
            .await;
        assert!(matches!(again, Err(StoreError::UserExists(_))), "{label}");

        let app = spawn_app_with_users(Some(db)).await;
        let as_user = |user: &'static str| {
            let app = &app;
            move |body: String| async move {
                let password = format!("{user}-password");
                let resp = app
                    .post_as("cpu/usage_rate", &body, Some(user), Some(&password))
                    .await;
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            }
        };

        // An API user of every namespace sees them all.
        let (status, rows) = as_user("billing")(window(r#""agg":"all-namespace""#)).await;
        assert_eq!(status, 200, "{label}: {rows}");
        let rows = rows.as_array().unwrap().clone();
        assert_eq!(
            pairs(&rows, "namespace_name", "sum"),
            owned(&[("cluster-3", 180.0), ("default", 960.0)]),
            "{label}"
        );
        // Twice: the second call is served from the credential cache, with the same answer.
        let (status, _) = as_user("billing")(window(r#""agg":"all-namespace""#)).await;
        assert_eq!(status, 200);

        // A user of cluster-3 sees cluster-3 only, in every aggregation.
        let (status, rows) = as_user("team3")(window(r#""agg":"all-namespace""#)).await;
        assert_eq!(status, 200, "{label}: {rows}");
        assert_eq!(
            pairs(rows.as_array().unwrap(), "namespace_name", "sum"),
            owned(&[("cluster-3", 180.0)])
        );
        let (_, rows) = as_user("team3")(window(r#""agg":"all-pod""#)).await;
        assert_eq!(
            pairs(rows.as_array().unwrap(), "pod_name", "sum"),
            owned(&[("nightly-28000000-x7k2p", 180.0)])
        );
        let (_, rows) = as_user("team3")(window(r#""agg":"by-node""#)).await;
        assert_eq!(
            pairs(rows.as_array().unwrap(), "nodename", "sum"),
            owned(&[("node-01", 180.0)])
        );
        let (status, body) = as_user("team3")(window(r#""agg":"pod-by-namespace""#)).await;
        assert_eq!(
            status, 403,
            "{label}: the default namespace is not theirs: {body}"
        );
        assert_eq!(body["code"], 403);
        let (status, rows) = as_user("team3")(window(r#""namespace":"cluster-3""#)).await;
        assert_eq!(status, 200);
        assert!(rows
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["namespace_name"] == "cluster-3"));

        // A viewer may use the dashboard, not the API.
        let (status, body) = as_user("alice")(window("")).await;
        assert_eq!(status, 403, "{label}: {body}");

        // A wrong password and an unknown user are the seed's 401.
        for (user, password) in [("billing", "nope-nope-nope"), ("nobody", "nobody-password")] {
            let resp = app
                .post_as("cpu/usage_rate", "", Some(user), Some(password))
                .await;
            assert_eq!(resp.status(), 401, "{label}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["message"], "Username and password is not recognized");
        }

        // The bootstrap credential keeps working beside the users.
        let rows = app
            .rows("cpu/usage_rate", &window(r#""agg":"all-namespace""#))
            .await;
        assert_eq!(rows.len(), 2, "{label}");
    }
}
