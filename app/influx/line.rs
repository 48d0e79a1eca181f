//! Line protocol encoding: `measurement,tag=v,tag=v value=1i 1512086400000000000`.
//!
//! Escaping follows InfluxDB 1.x: measurements escape commas and spaces; tag keys, tag values
//! and field keys escape commas, equals signs and spaces. Line protocol has no way to carry a
//! newline inside a name, so newlines become the two characters `\n`. A trailing backslash
//! would escape the separator after it, so it is doubled. Empty tag values are left out
//! (InfluxDB rejects them) and non-finite floats are refused (InfluxDB cannot store them).

use std::fmt::Write as _;

/// A field value with InfluxDB's type: integers for counters, bytes and millicores, floats for
/// ratios and most rates (Heapster's choice, which the old dashboards rely on).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LineError {
    #[error("measurement {0:?} has a non-finite value, which InfluxDB cannot store")]
    NonFinite(String),
    #[error("a measurement name must not be empty")]
    EmptyMeasurement,
    #[error("a point of {0:?} needs at least one field")]
    NoFields(String),
}

/// Appends one point (one line, newline-terminated) to `buf`.
/// `tags` with an empty value are skipped. The single field is always named `value`, as in
/// Heapster's schema.
pub fn write_point(
    buf: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    value: Value,
    time_ns: i64,
) -> Result<(), LineError> {
    let mut tagset = String::new();
    for (key, val) in tags {
        push_tag(&mut tagset, key, val);
    }
    write_point_with_tagset(buf, measurement, &tagset, value, time_ns)
}

/// Appends `,key=value` (escaped) to a tag set; an empty key or value is left out.
pub fn push_tag(tagset: &mut String, key: &str, value: &str) {
    if key.is_empty() || value.is_empty() {
        return;
    }
    tagset.push(',');
    escape_into(tagset, key, &[',', '=', ' ']);
    tagset.push('=');
    escape_into(tagset, value, &[',', '=', ' ']);
}

/// A tag set built once with [`push_tag`] from `(key, value)` pairs, sorted by key (InfluxDB
/// indexes sorted tags fastest).
pub fn tagset(tags: &mut [(&str, &str)]) -> String {
    tags.sort_unstable_by_key(|(k, _)| *k);
    let mut out = String::new();
    for (k, v) in tags.iter() {
        push_tag(&mut out, k, v);
    }
    out
}

/// The hot path: one point whose tag set was built (and escaped) beforehand with [`tagset`].
pub fn write_point_with_tagset(
    buf: &mut String,
    measurement: &str,
    tagset: &str,
    value: Value,
    time_ns: i64,
) -> Result<(), LineError> {
    if measurement.is_empty() {
        return Err(LineError::EmptyMeasurement);
    }
    if let Value::Float(f) = value {
        if !f.is_finite() {
            return Err(LineError::NonFinite(measurement.to_string()));
        }
    }
    escape_into(buf, measurement, &[',', ' ']);
    buf.push_str(tagset);
    buf.push_str(" value=");
    // Writing into a String cannot fail.
    let _ = match value {
        Value::Int(i) => write!(buf, "{i}i"),
        Value::Float(f) => write_float(buf, f),
    };
    let _ = write!(buf, " {time_ns}");
    buf.push('\n');
    Ok(())
}

/// A field of a point with several fields (the billing rollups).
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Int(i64),
    Bool(bool),
    /// A string field, quoted; backslashes and double quotes escaped, newlines as `\n`.
    Str(&'a str),
}

/// Appends one point with several named fields to `buf`; `tagset` comes from [`tagset`].
pub fn write_fields(
    buf: &mut String,
    measurement: &str,
    tagset: &str,
    fields: &[(&str, Field)],
    time_ns: i64,
) -> Result<(), LineError> {
    if measurement.is_empty() {
        return Err(LineError::EmptyMeasurement);
    }
    if fields.is_empty() {
        return Err(LineError::NoFields(measurement.to_string()));
    }
    escape_into(buf, measurement, &[',', ' ']);
    buf.push_str(tagset);
    for (i, (key, value)) in fields.iter().enumerate() {
        buf.push(if i == 0 { ' ' } else { ',' });
        escape_into(buf, key, &[',', '=', ' ']);
        buf.push('=');
        match value {
            Field::Int(v) => {
                let _ = write!(buf, "{v}i");
            }
            Field::Bool(b) => {
                let _ = write!(buf, "{b}");
            }
            Field::Str(text) => {
                buf.push('"');
                for c in text.chars() {
                    match c {
                        '"' | '\\' => {
                            buf.push('\\');
                            buf.push(c);
                        }
                        '\n' => buf.push_str("\\n"),
                        c => buf.push(c),
                    }
                }
                buf.push('"');
            }
        }
    }
    let _ = writeln!(buf, " {time_ns}");
    Ok(())
}

/// Floats keep a decimal point so InfluxDB never reads them as integers of another type.
fn write_float(buf: &mut String, f: f64) -> std::fmt::Result {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        write!(buf, "{f:.1}")
    } else {
        write!(buf, "{f}")
    }
}

fn escape_into(buf: &mut String, s: &str, special: &[char]) {
    for c in s.chars() {
        match c {
            '\n' => buf.push_str("\\n"),
            c if special.contains(&c) => {
                buf.push('\\');
                buf.push(c);
            }
            c => buf.push(c),
        }
    }
    if s.ends_with('\\') {
        buf.push('\\');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(m: &str, tags: &[(&str, &str)], v: Value, t: i64) -> String {
        let mut buf = String::new();
        write_point(&mut buf, m, tags, v, t).expect("valid point");
        buf
    }

    #[test]
    fn integer_point_has_the_i_suffix_and_explicit_timestamp() {
        assert_eq!(
            line(
                "cpu/usage_rate",
                &[("namespace_name", "default"), ("type", "pod")],
                Value::Int(175),
                1_512_086_400_000_000_000
            ),
            "cpu/usage_rate,namespace_name=default,type=pod value=175i 1512086400000000000\n"
        );
    }

    #[test]
    fn float_point_always_carries_a_decimal_point() {
        assert_eq!(
            line("cpu/node_utilization", &[], Value::Float(1.0), 5),
            "cpu/node_utilization value=1.0 5\n"
        );
        assert_eq!(line("m", &[], Value::Float(0.25), 5), "m value=0.25 5\n");
        assert_eq!(
            line("m", &[], Value::Float(-3.5e-7), 5),
            "m value=-0.00000035 5\n"
        );
    }

    #[test]
    fn measurement_escapes_commas_and_spaces_but_not_equals() {
        assert_eq!(
            line("a b,c=d", &[], Value::Int(1), 0),
            "a\\ b\\,c=d value=1i 0\n"
        );
    }

    #[test]
    fn tag_keys_and_values_escape_commas_equals_and_spaces() {
        assert_eq!(
            line("m", &[("k y", "a=b,c d")], Value::Int(1), 0),
            "m,k\\ y=a\\=b\\,c\\ d value=1i 0\n"
        );
    }

    #[test]
    fn newlines_cannot_break_a_line_apart() {
        let out = line("m\nx", &[("t", "a\nb")], Value::Int(1), 0);
        assert_eq!(out, "m\\nx,t=a\\nb value=1i 0\n");
        assert_eq!(out.matches('\n').count(), 1);
    }

    #[test]
    fn a_trailing_backslash_does_not_escape_the_separator() {
        assert_eq!(
            line("m", &[("a", "x\\"), ("b", "y")], Value::Int(1), 0),
            "m,a=x\\\\,b=y value=1i 0\n"
        );
    }

    #[test]
    fn empty_tag_values_are_left_out() {
        assert_eq!(
            line("m", &[("a", ""), ("b", "y")], Value::Int(1), 0),
            "m,b=y value=1i 0\n"
        );
    }

    #[test]
    fn non_finite_floats_are_refused() {
        let mut buf = String::new();
        assert!(write_point(&mut buf, "m", &[], Value::Float(f64::NAN), 0).is_err());
        assert!(write_point(&mut buf, "m", &[], Value::Float(f64::INFINITY), 0).is_err());
        assert!(buf.is_empty());
    }

    #[test]
    fn a_prebuilt_tagset_is_sorted_and_escaped_once() {
        let tags = tagset(&mut [("type", "pod"), ("namespace_name", "a b"), ("empty", "")]);
        assert_eq!(tags, ",namespace_name=a\\ b,type=pod");
        let mut buf = String::new();
        write_point_with_tagset(&mut buf, "uptime", &tags, Value::Int(7), 9).unwrap();
        assert_eq!(buf, "uptime,namespace_name=a\\ b,type=pod value=7i 9\n");
    }

    #[test]
    fn several_fields_keep_their_order_and_strings_are_quoted_and_escaped() {
        let mut buf = String::new();
        write_fields(
            &mut buf,
            "billing/pod_hour",
            ",pod_name=web-0",
            &[
                ("cpu_usage_hi", Field::Int(3)),
                ("a b", Field::Int(-1)),
                ("observed", Field::Str("0:5,\"x\\\ny")),
            ],
            7,
        )
        .unwrap();
        assert_eq!(
            buf,
            "billing/pod_hour,pod_name=web-0 cpu_usage_hi=3i,a\\ b=-1i,\
             observed=\"0:5,\\\"x\\\\\\ny\" 7\n"
        );
        assert!(write_fields(&mut buf, "m", "", &[], 0).is_err());
    }

    #[test]
    fn unicode_passes_through_unchanged() {
        assert_eq!(
            line("m", &[("équipe", "données")], Value::Int(-2), 0),
            "m,équipe=données value=-2i 0\n"
        );
    }
}

/// One point read back from line protocol this module wrote (`measurement,tags value=… t`).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub value: Value,
    pub time: i64,
}

/// The measurement of a line, unescaped, without parsing the rest (to skip lines quickly).
pub fn measurement_of(line: &str) -> String {
    let end = unescaped_position(line, &[',', ' ']).unwrap_or(line.len());
    unescape(&line[..end])
}

/// Reads back a point with one field named `value`, as [`write_point`] writes it; `None` for
/// anything else. Unescapes as InfluxDB does (`\,`, `\=`, `\ ` and `\\`).
pub fn parse_point(line: &str) -> Option<Point> {
    let line = line.trim_end_matches('\n');
    let key_end = unescaped_position(line, &[' '])?;
    let (key, rest) = (&line[..key_end], &line[key_end + 1..]);
    let (fields, time) = rest.rsplit_once(' ')?;
    let value = fields.strip_prefix("value=")?;
    let value = match value.strip_suffix('i') {
        Some(int) => Value::Int(int.parse().ok()?),
        None => Value::Float(value.parse().ok()?),
    };
    let mut parts = split_unescaped(key, ',');
    let measurement = unescape(parts.next()?);
    let mut tags = Vec::new();
    for part in parts {
        let eq = unescaped_position(part, &['='])?;
        tags.push((unescape(&part[..eq]), unescape(&part[eq + 1..])));
    }
    Some(Point {
        measurement,
        tags,
        value,
        time: time.parse().ok()?,
    })
}

/// The byte position of the first of `seps` not escaped by a backslash.
fn unescaped_position(s: &str, seps: &[char]) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if seps.contains(&c) {
            return Some(i);
        }
    }
    None
}

fn split_unescaped(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match unescaped_position(r, &[sep]) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&n)) if matches!(n, ',' | '=' | ' ' | '\\') => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn a_point_written_is_read_back_with_its_tags_unescaped() {
        let mut buf = String::new();
        write_point(
            &mut buf,
            "cpu/usage",
            &[("pod_name", "web 1"), ("label_team", "a,b=c")],
            Value::Int(42),
            7,
        )
        .unwrap();
        assert_eq!(measurement_of(&buf), "cpu/usage");
        let p = parse_point(&buf).unwrap();
        assert_eq!(p.measurement, "cpu/usage");
        assert_eq!(
            p.tags,
            vec![
                ("pod_name".to_string(), "web 1".to_string()),
                ("label_team".to_string(), "a,b=c".to_string())
            ]
        );
        assert_eq!((p.value, p.time), (Value::Int(42), 7));
        let f = parse_point("m\\ x value=1.5 9\n").unwrap();
        assert_eq!(
            (f.measurement.as_str(), f.value),
            ("m x", Value::Float(1.5))
        );
        assert!(parse_point("m other=1i 9").is_none());
    }
}
