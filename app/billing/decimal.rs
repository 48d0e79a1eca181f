//! Exact fixed-point arithmetic for quantities and money.
//!
//! Quantities are integers in base units (millicore-ns, byte-ns, …); prices are integers in
//! micro-units of the currency. Anything shown is `n / d` rounded once, half to even (banker's
//! rounding: no upward drift when many lines are rounded), computed without floating point so
//! the same input prints the same digits on every machine.

/// An exact sum of fractions `a × b / d` over one denominator `d`, kept as `whole + num / d`
/// with `num < d`, so long sums never overflow the way a single big product would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FracSum {
    whole: u128,
    num: u128,
    den: u128,
}

impl FracSum {
    pub fn new(den: u128) -> FracSum {
        FracSum {
            whole: 0,
            num: 0,
            den: den.max(1),
        }
    }

    /// Adds `a × b / den`. Exact as long as `den × b` fits in `u128` (callers bound `b`).
    pub fn add_product(&mut self, a: u128, b: u128) {
        let d = self.den;
        self.whole = self.whole.saturating_add((a / d).saturating_mul(b));
        self.num += (a % d).saturating_mul(b) % d;
        self.whole = self.whole.saturating_add((a % d).saturating_mul(b) / d);
        self.whole = self.whole.saturating_add(self.num / d);
        self.num %= d;
    }

    /// The sum rounded to an integer, half to even.
    pub fn round_half_even(&self) -> u128 {
        let twice = self.num * 2;
        let up = twice > self.den || (twice == self.den && self.whole % 2 == 1);
        self.whole + u128::from(up)
    }
}

/// `a × b / d` rounded half to even.
pub fn mul_div_round(a: u128, b: u128, d: u128) -> u128 {
    let mut s = FracSum::new(d);
    s.add_product(a, b);
    s.round_half_even()
}

/// `n / per` as a decimal with exactly `decimals` places, rounded half to even.
pub fn fixed(n: u128, per: u128, decimals: u32) -> String {
    let scale = 10u128.pow(decimals);
    let scaled = mul_div_round(n, scale, per);
    if decimals == 0 {
        return scaled.to_string();
    }
    format!(
        "{}.{:0width$}",
        scaled / scale,
        scaled % scale,
        width = decimals as usize
    )
}

/// Parses a non-negative decimal such as `"0.031"` or `"12"` into units of `10^-decimals`.
/// The error is the reason, for the caller to put in a sentence.
pub fn parse_decimal(s: &str, decimals: u32) -> Result<u128, String> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits(int) || !digits(frac) {
        return Err(format!("{s:?} is not a decimal number such as \"0.031\""));
    }
    if frac.len() > decimals as usize {
        return Err(format!("{s:?} has more than {decimals} decimal places"));
    }
    let scale = 10u128.pow(decimals);
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| format!("{s:?} is too large"))?
    };
    let frac_units: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>()
            .map_err(|_| format!("{s:?} is not a decimal number"))?
            * 10u128.pow(decimals - frac.len() as u32)
    };
    int.checked_mul(scale)
        .and_then(|v| v.checked_add(frac_units))
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_to_even() {
        assert_eq!(mul_div_round(5, 1, 2), 2); // 2.5 → 2
        assert_eq!(mul_div_round(7, 1, 2), 4); // 3.5 → 4
        assert_eq!(mul_div_round(26, 1, 10), 3); // 2.6 → 3
        assert_eq!(mul_div_round(24, 1, 10), 2); // 2.4 → 2
        assert_eq!(fixed(1, 3, 6), "0.333333");
        assert_eq!(fixed(2, 3, 2), "0.67");
        assert_eq!(fixed(5, 1000, 2), "0.00"); // 0.005 → 0.00 (even)
        assert_eq!(fixed(15, 1000, 2), "0.02"); // 0.015 → 0.02 (even)
        assert_eq!(fixed(7, 1, 0), "7");
    }

    #[test]
    fn fractions_sum_exactly_without_overflow() {
        // Three thirds are one, not 0.999…: sums keep the remainder.
        let mut s = FracSum::new(3);
        for _ in 0..3 {
            s.add_product(1, 1);
        }
        assert_eq!(s.round_half_even(), 1);
        // A product beyond u128 (1e30 × 1e12) still divides exactly.
        let d = 1_000_000_000_000u128;
        assert_eq!(mul_div_round(10u128.pow(30), d, d), 10u128.pow(30));
    }

    #[test]
    fn decimals_parse_exactly_or_say_why_not() {
        assert_eq!(parse_decimal("0.031", 6), Ok(31_000));
        assert_eq!(parse_decimal("12", 6), Ok(12_000_000));
        assert_eq!(parse_decimal(".5", 6), Ok(500_000));
        assert!(parse_decimal("0.0000001", 6)
            .unwrap_err()
            .contains("more than 6"));
        assert!(parse_decimal("-1", 6).is_err());
        assert!(parse_decimal("1e3", 6).is_err());
        assert!(parse_decimal("", 6).is_err());
    }
}
