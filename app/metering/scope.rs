//! Who may see what: the one place a caller's [`Scope`] becomes part of a query.

use crate::influx::ql::Cond;
use crate::users::Scope;

use super::series::NAMESPACE;

/// The conditions that keep a query inside `scope`; `None` when the scope allows no namespace
/// at all (then there is nothing to read, and nothing is read).
pub fn conditions(scope: &Scope) -> Option<Vec<Cond>> {
    match scope {
        Scope::All => Some(Vec::new()),
        Scope::Only(allowed) if allowed.is_empty() => None,
        Scope::Only(allowed) => Some(vec![Cond::TagIn(NAMESPACE.into(), allowed.clone())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_caller_reads_only_its_namespaces_and_an_empty_scope_reads_nothing() {
        assert_eq!(conditions(&Scope::All), Some(vec![]));
        assert_eq!(conditions(&Scope::Only(vec![])), None);
        assert_eq!(
            conditions(&Scope::Only(vec!["team-a".into()])),
            Some(vec![Cond::TagIn(
                "namespace_name".into(),
                vec!["team-a".into()]
            )])
        );
    }
}
