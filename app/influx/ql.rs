//! InfluxQL, built in one place. Every identifier, string literal, regex and time literal
//! that reaches a statement goes through the escaping functions at the top of this file;
//! nothing else in the code base writes InfluxQL text.

use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write as _;

/// `"name"`: InfluxQL's quoted identifier. Backslash, double quote and newline are escaped
/// (InfluxQL's scanner rejects a raw newline inside quotes).
pub fn ident(s: &str) -> String {
    quote(s, '"')
}

/// `'value'`: InfluxQL's string literal, escaped like an identifier but with single quotes.
pub fn string_lit(s: &str) -> String {
    quote(s, '\'')
}

fn quote(s: &str, q: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// `/^(?:a|b)$/`: a regex matching exactly one of `values`, each taken literally.
pub fn regex_any_of<S: AsRef<str>>(values: &[S]) -> String {
    let mut out = String::from("/^(?:");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for c in v.as_ref().chars() {
            match c {
                // The regex delimiter; InfluxQL turns `\/` back into `/`.
                '/' => out.push_str("\\/"),
                '\n' => out.push_str("\\n"),
                c if "\\.+*?()|[]{}^$".contains(c) => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
    out.push_str(")$/");
    out
}

/// `'2017-12-01T00:00:00Z'`: an RFC 3339 time literal, in UTC, nanosecond precision.
pub fn time_lit(t: DateTime<Utc>) -> String {
    format!("'{}'", t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// `3600s`: a duration literal in whole seconds.
pub fn duration_lit(seconds: u64) -> String {
    format!("{seconds}s")
}

/// What a `SELECT` projects.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// `*`: every tag and field (the seed's raw mode).
    All,
    /// `fn("field") AS "alias"`.
    Call {
        func: Func,
        field: String,
        alias: String,
    },
    /// Several calls: `f1("a") AS "x", f2("b") AS "y"` (the hourly rollups).
    Calls(Vec<(Func, String, String)>),
    /// Named fields, e.g. `"value"` (raw samples, tags come from `GROUP BY`).
    Fields(Vec<String>),
    /// `last("field") AS "alias"`: a selector, so the point keeps its own timestamp (the last
    /// sample before a window, for billing's look-back).
    Last { field: String, alias: String },
}

/// The aggregate functions we expose. `Integral` integrates per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Sum,
    Mean,
    Max,
    Min,
    Integral,
    /// Not offered by the API; the hourly rollups keep counts.
    Count,
}

impl Func {
    fn call(self, field: &str) -> String {
        let f = ident(field);
        match self {
            Func::Sum => format!("sum({f})"),
            Func::Mean => format!("mean({f})"),
            Func::Max => format!("max({f})"),
            Func::Min => format!("min({f})"),
            Func::Integral => format!("integral({f}, 1s)"),
            Func::Count => format!("count({f})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Measurement(String),
}

/// One condition of the `WHERE` clause; conditions are joined with `AND`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    TagEq(String, String),
    TagNe(String, String),
    /// The tag equals one of the values (an anchored, escaped regex).
    TagIn(String, Vec<String>),
    TimeGe(DateTime<Utc>),
    TimeLt(DateTime<Utc>),
}

impl Cond {
    /// `time >= from AND time < to` (ns since the epoch), clamped to the times InfluxDB can
    /// name in a literal (a window arithmetic that saturated at i64's ends would otherwise be
    /// refused as overflowing).
    pub fn window(from: i64, to: i64) -> [Cond; 2] {
        let at = |t: i64| DateTime::from_timestamp_nanos(t.clamp(i64::MIN + 2, i64::MAX - 1));
        [Cond::TimeGe(at(from)), Cond::TimeLt(at(to))]
    }

    fn render(&self) -> String {
        match self {
            Cond::TagEq(t, v) => format!("{} = {}", ident(t), string_lit(v)),
            Cond::TagNe(t, v) => format!("{} != {}", ident(t), string_lit(v)),
            Cond::TagIn(t, vs) => format!("{} =~ {}", ident(t), regex_any_of(vs)),
            Cond::TimeGe(at) => format!("time >= {}", time_lit(*at)),
            Cond::TimeLt(at) => format!("time < {}", time_lit(*at)),
        }
    }
}

/// How rows are grouped.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum GroupBy {
    #[default]
    Nothing,
    /// Named tags (in this order).
    Tags(Vec<String>),
    /// Every tag: one group per series.
    AllTags,
}

/// Time buckets: `time(<step>s, <offset>s)` so that buckets start at the window's begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub step_seconds: u64,
    pub offset_seconds: u64,
}

/// A `SELECT` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub projection: Projection,
    pub from: Source,
    pub conditions: Vec<Cond>,
    pub buckets: Option<Buckets>,
    pub group_by: GroupBy,
    pub newest_first: bool,
    pub limit: Option<u32>,
    /// `INTO "measurement"`: InfluxDB writes the result (the hourly rollups).
    pub into: Option<String>,
}

impl Select {
    pub fn new(projection: Projection, from: Source) -> Self {
        Select {
            projection,
            from,
            conditions: Vec::new(),
            buckets: None,
            group_by: GroupBy::Nothing,
            newest_first: false,
            limit: None,
            into: None,
        }
    }

    pub fn to_influxql(&self) -> String {
        let mut q = String::from("SELECT ");
        match &self.projection {
            Projection::All => q.push('*'),
            Projection::Call { func, field, alias } => {
                let _ = write!(q, "{} AS {}", func.call(field), ident(alias));
            }
            Projection::Calls(calls) => {
                let parts: Vec<String> = calls
                    .iter()
                    .map(|(func, field, alias)| format!("{} AS {}", func.call(field), ident(alias)))
                    .collect();
                q.push_str(&parts.join(", "));
            }
            Projection::Fields(fields) => {
                let parts: Vec<String> = fields.iter().map(|f| ident(f)).collect();
                q.push_str(&parts.join(", "));
            }
            Projection::Last { field, alias } => {
                let _ = write!(q, "last({}) AS {}", ident(field), ident(alias));
            }
        }
        if let Some(into) = &self.into {
            let _ = write!(q, " INTO {}", ident(into));
        }
        q.push_str(" FROM ");
        match &self.from {
            Source::Measurement(m) => q.push_str(&ident(m)),
        }
        if !self.conditions.is_empty() {
            let conds: Vec<String> = self.conditions.iter().map(Cond::render).collect();
            let _ = write!(q, " WHERE {}", conds.join(" AND "));
        }
        let mut groups: Vec<String> = Vec::new();
        if let Some(b) = self.buckets {
            groups.push(format!(
                "time({}, {})",
                duration_lit(b.step_seconds),
                duration_lit(b.offset_seconds)
            ));
        }
        match &self.group_by {
            GroupBy::Nothing => {}
            GroupBy::Tags(tags) => groups.extend(tags.iter().map(|t| ident(t))),
            GroupBy::AllTags => groups.push("*".to_string()),
        }
        if !groups.is_empty() {
            let _ = write!(q, " GROUP BY {}", groups.join(", "));
        }
        if self.buckets.is_some() {
            // An empty bucket is a gap, not a zero.
            q.push_str(" fill(none)");
        }
        if self.newest_first {
            q.push_str(" ORDER BY time DESC");
        }
        if let Some(n) = self.limit {
            let _ = write!(q, " LIMIT {n}");
        }
        q
    }
}

/// `SHOW TAG KEYS FROM "measurement"`: the tag keys a measurement's series carry.
pub fn show_tag_keys(measurement: &str) -> String {
    format!("SHOW TAG KEYS FROM {}", ident(measurement))
}

/// `DELETE FROM "measurement" WHERE …`: removes points (rewriting billing rollups).
#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub from: String,
    pub conditions: Vec<Cond>,
}

impl Delete {
    pub fn to_influxql(&self) -> String {
        let mut q = format!("DELETE FROM {}", ident(&self.from));
        if !self.conditions.is_empty() {
            let conds: Vec<String> = self.conditions.iter().map(Cond::render).collect();
            let _ = write!(q, " WHERE {}", conds.join(" AND "));
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// InfluxQL's scanner for a quoted string (influxql/scanner.go `ScanString`), written again
    /// here so the property tests can check that a literal reads back as exactly the input and
    /// ends exactly at its closing quote.
    fn scan_quoted(lit: &str) -> Option<(String, usize)> {
        let mut chars = lit.char_indices();
        let (_, q) = chars.next()?;
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == q => return Some((out, i + c.len_utf8())),
                '\n' => return None,
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    _ => return None,
                },
                c => out.push(c),
            }
        }
        None
    }

    fn hostile() -> impl Strategy<Value = String> {
        proptest::string::string_regex("([a-z\\\\'\"\n;/ =,.*()|^$]|\\PC){0,40}")
            .expect("valid regex")
    }

    proptest! {
        #[test]
        fn string_literals_read_back_as_the_exact_input(s in hostile()) {
            let lit = string_lit(&s);
            prop_assert_eq!(scan_quoted(&lit), Some((s.clone(), lit.len())));
        }

        #[test]
        fn identifiers_read_back_as_the_exact_input(s in hostile()) {
            let lit = ident(&s);
            prop_assert_eq!(scan_quoted(&lit), Some((s.clone(), lit.len())));
        }

        #[test]
        fn a_regex_literal_has_exactly_one_unescaped_closing_slash(s in hostile()) {
            let lit = regex_any_of(&[s]);
            let body = &lit[1..];
            let mut escaped = false;
            let mut ends = Vec::new();
            for (i, c) in body.char_indices() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '/') => ends.push(i),
                    _ => escaped = false,
                }
            }
            prop_assert_eq!(ends, vec![body.len() - 1]);
            prop_assert!(!lit.contains('\n'));
        }
    }

    #[test]
    fn string_literal_escapes_quote_backslash_and_newline() {
        assert_eq!(
            string_lit("default' OR namespace_name != '"),
            r"'default\' OR namespace_name != \''"
        );
        assert_eq!(string_lit("a\\b\nc"), r"'a\\b\nc'");
    }

    #[test]
    fn regex_takes_each_value_literally() {
        assert_eq!(regex_any_of(&["a.b", "c/d"]), r"/^(?:a\.b|c\/d)$/");
    }

    #[test]
    fn an_aggregate_by_tags_with_a_half_open_window_renders_exactly() {
        let begin = Utc.with_ymd_and_hms(2017, 12, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2017, 12, 31, 0, 0, 0).unwrap();
        let mut s = Select::new(
            Projection::Call {
                func: Func::Sum,
                field: "value".into(),
                alias: "sum".into(),
            },
            Source::Measurement("cpu/usage_rate".into()),
        );
        s.conditions = vec![
            Cond::TagEq("type".into(), "pod".into()),
            Cond::TagEq("namespace_name".into(), "cluster-1".into()),
            Cond::TimeGe(begin),
            Cond::TimeLt(end),
        ];
        s.group_by = GroupBy::Tags(vec!["namespace_name".into(), "pod_name".into()]);
        assert_eq!(
            s.to_influxql(),
            "SELECT sum(\"value\") AS \"sum\" FROM \"cpu/usage_rate\" WHERE \"type\" = 'pod' \
             AND \"namespace_name\" = 'cluster-1' AND time >= '2017-12-01T00:00:00Z' \
             AND time < '2017-12-31T00:00:00Z' GROUP BY \"namespace_name\", \"pod_name\""
        );
    }

    #[test]
    fn raw_points_newest_first_with_a_limit_render_exactly() {
        let mut s = Select::new(Projection::All, Source::Measurement("uptime".into()));
        s.conditions = vec![Cond::TagNe("namespace_name".into(), "kube-system".into())];
        s.newest_first = true;
        s.limit = Some(100);
        assert_eq!(
            s.to_influxql(),
            "SELECT * FROM \"uptime\" WHERE \"namespace_name\" != 'kube-system' \
             ORDER BY time DESC LIMIT 100"
        );
    }

    #[test]
    fn integral_per_series_in_buckets_renders_exactly() {
        let mut s = Select::new(
            Projection::Call {
                func: Func::Integral,
                field: "value".into(),
                alias: "integral".into(),
            },
            Source::Measurement("memory/usage".into()),
        );
        s.group_by = GroupBy::AllTags;
        s.buckets = Some(Buckets {
            step_seconds: 3600,
            offset_seconds: 1800,
        });
        assert_eq!(
            s.to_influxql(),
            "SELECT integral(\"value\", 1s) AS \"integral\" FROM \"memory/usage\" \
             GROUP BY time(3600s, 1800s), * fill(none)"
        );
    }

    #[test]
    fn raw_fields_and_a_last_selector_grouped_by_every_tag_render_exactly() {
        let begin = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let mut s = Select::new(
            Projection::Fields(vec!["value".into()]),
            Source::Measurement("cpu/usage".into()),
        );
        s.conditions = vec![
            Cond::TagEq("type".into(), "pod_container".into()),
            Cond::TimeGe(begin),
        ];
        s.group_by = GroupBy::AllTags;
        assert_eq!(
            s.to_influxql(),
            "SELECT \"value\" FROM \"cpu/usage\" WHERE \"type\" = 'pod_container' \
             AND time >= '2026-10-01T00:00:00Z' GROUP BY *"
        );
        s.projection = Projection::Last {
            field: "value".into(),
            alias: "value".into(),
        };
        assert!(s
            .to_influxql()
            .starts_with("SELECT last(\"value\") AS \"value\" FROM \"cpu/usage\" WHERE"));
    }

    #[test]
    fn tag_keys_of_a_measurement_are_asked_with_an_escaped_name() {
        assert_eq!(
            show_tag_keys("cpu/usage\""),
            "SHOW TAG KEYS FROM \"cpu/usage\\\"\""
        );
    }

    #[test]
    fn a_delete_over_a_time_range_renders_exactly() {
        let begin = Utc.with_ymd_and_hms(2026, 10, 1, 7, 0, 0).unwrap();
        let d = Delete {
            from: "billing/pod_hour".into(),
            conditions: vec![
                Cond::TimeGe(begin),
                Cond::TimeLt(begin + chrono::Duration::hours(1)),
            ],
        };
        assert_eq!(
            d.to_influxql(),
            "DELETE FROM \"billing/pod_hour\" WHERE time >= '2026-10-01T07:00:00Z' \
             AND time < '2026-10-01T08:00:00Z'"
        );
    }

    #[test]
    fn time_literals_keep_sub_second_precision() {
        let t = Utc.timestamp_opt(1_512_086_400, 5).unwrap();
        assert_eq!(time_lit(t), "'2017-12-01T00:00:00.000000005Z'");
    }
}
