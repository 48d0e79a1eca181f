//! What every signed-in page shares: who is signed in, the sign-out form, and the sidebar of
//! metrics (the main ones first, every other one of the catalogue below).

use crate::auth::sessions::Session;
use crate::catalogue::{self, PodLevel};

#[derive(Debug, Clone)]
pub struct NavLink {
    pub label: String,
    pub href: String,
    pub active: bool,
}

pub struct Layout {
    pub title: String,
    pub username: String,
    pub role: &'static str,
    pub csrf_token: String,
    pub main_metrics: Vec<NavLink>,
    pub other_metrics: Vec<NavLink>,
    pub index_active: bool,
    pub billing_active: bool,
    /// The namespaces this user is limited to, for the header (empty: all).
    pub scope_note: String,
}

impl Layout {
    /// `active`: the metric shown; `namespace`: kept when moving to another metric.
    pub fn new(
        title: String,
        session: &Session,
        active: Option<&str>,
        namespace: Option<&str>,
    ) -> Layout {
        let link = |m: &catalogue::Metric| {
            let href = match namespace {
                Some(ns) if m.pod_level != PodLevel::NodeOnly => {
                    format!("/web/stats/{}/{}", m.name, ns)
                }
                _ => format!("/web/stats/{}", m.name),
            };
            NavLink {
                label: m.name.to_string(),
                href,
                active: active == Some(m.name),
            }
        };
        let mut other: Vec<NavLink> = catalogue::METRICS
            .iter()
            .filter(|m| !m.main)
            .map(link)
            .collect();
        other.sort_by(|a, b| a.label.cmp(&b.label));
        let scope_note = match &session.principal.scope {
            crate::users::Scope::All => String::new(),
            crate::users::Scope::Only(list) => list.join(", "),
        };
        Layout {
            title,
            username: session.principal.username.clone(),
            role: session.principal.role.as_str(),
            csrf_token: session.csrf_token.clone(),
            main_metrics: catalogue::main_metrics().map(link).collect(),
            other_metrics: other,
            index_active: active.is_none(),
            billing_active: active == Some(super::billing::BILLING),
            scope_note,
        }
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986's unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&…` from the pairs, or nothing.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("Deployment/web"), "Deployment/web");
        assert_eq!(encode("a b&c=d?é"), "a%20b%26c%3Dd%3F%C3%A9");
        assert_eq!(
            query_string(&[("range", "1h".into()), ("pod", "x y".into())]),
            "?range=1h&pod=x%20y"
        );
        assert_eq!(query_string(&[]), "");
    }
}
