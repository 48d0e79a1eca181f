//! Kubernetes resource quantities (`100m`, `2`, `1.5Gi`, `1e3`) as millicores or bytes.

/// The quantity as a plain number (`"100m"` → 0.1, `"1Ki"` → 1024), or `None` if malformed.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * scale)
}

/// CPU in millicores, rounded up as Kubernetes does (`"1"` → 1000, `"0.1"` → 100).
pub fn millicores(q: &str) -> Option<i64> {
    parse(q).map(|v| (v * 1000.0 - 1e-9).ceil() as i64)
}

/// Bytes (or any plain count, e.g. GPUs), rounded up.
pub fn whole(q: &str) -> Option<i64> {
    parse(q).map(|v| (v - 1e-9).ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_become_millicores() {
        assert_eq!(millicores("100m"), Some(100));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(millicores("1500u"), Some(2));
    }

    #[test]
    fn memory_quantities_become_bytes() {
        assert_eq!(whole("128Mi"), Some(134_217_728));
        assert_eq!(whole("1Gi"), Some(1_073_741_824));
        assert_eq!(whole("1G"), Some(1_000_000_000));
        assert_eq!(whole("1e3"), Some(1000));
        assert_eq!(whole("1.5Ki"), Some(1536));
    }

    #[test]
    fn malformed_quantities_are_none() {
        assert_eq!(whole("lots"), None);
        assert_eq!(whole("12Qi"), None);
        assert_eq!(whole(""), None);
    }
}
