//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`) parsed exactly:
//! decimal mantissa, decimal exponent or SI / binary suffix, in integer arithmetic so
//! `700m` is 700 millicores and not 701 (floating point rounds 0.7 × 1000 up).

/// A parsed quantity: `mantissa × 10^exp10 × 1024^exp1024`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp1024: u32,
}

/// Largest value kept: beyond this everything saturates (no node has 10^30 bytes).
const LIMIT: i128 = 10i128.pow(30);

impl Quantity {
    /// Parse the quantity grammar of apimachinery's `resource.ParseQuantity`.
    pub fn parse(text: &str) -> Option<Quantity> {
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, rest) = s.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !fraction.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let mut mantissa: i128 = 0;
        let mut exp10: i32 = 0;
        for (i, c) in whole.bytes().chain(fraction.bytes()).enumerate() {
            if mantissa < LIMIT {
                mantissa = mantissa * 10 + i128::from(c - b'0');
                if i >= whole.len() {
                    exp10 -= 1;
                }
            } else if i < whole.len() {
                exp10 += 1;
            }
        }
        let (suffix_exp10, exp1024) = match rest {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 1),
            "Mi" => (0, 2),
            "Gi" => (0, 3),
            "Ti" => (0, 4),
            "Pi" => (0, 5),
            "Ei" => (0, 6),
            exponent if exponent.starts_with(['e', 'E']) => (
                exponent[1..]
                    .parse::<i32>()
                    .ok()
                    .filter(|e| e.abs() <= 40)?,
                0,
            ),
            _ => return None,
        };
        Some(Quantity {
            mantissa: if negative { -mantissa } else { mantissa },
            exp10: exp10 + suffix_exp10,
            exp1024,
        })
    }

    /// The value × 10^`scale`, rounded up to an integer (upstream `ScaledValue` rounding).
    fn scaled_ceil(&self, scale: i32) -> i64 {
        let mut value = self.mantissa;
        for _ in 0..self.exp1024 {
            value = value.saturating_mul(1024).clamp(-LIMIT, LIMIT);
        }
        let exp = self.exp10 + scale;
        if exp >= 0 {
            for _ in 0..exp {
                value = value.saturating_mul(10).clamp(-LIMIT, LIMIT);
            }
        } else {
            let divisor = 10i128.pow(exp.unsigned_abs().min(38));
            value = value.div_euclid(divisor) + i128::from(value.rem_euclid(divisor) != 0);
        }
        value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// In thousandths, rounded up (upstream `MilliValue`): CPU in millicores.
    pub fn milli_value(&self) -> i64 {
        self.scaled_ceil(3)
    }

    /// Whether two quantities are equal in value however written (`1Gi` and `1073741824`),
    /// as upstream's `Quantity.Cmp` is 0: compared in nano-units, the finest suffix.
    pub fn same_value(&self, other: &Quantity) -> bool {
        self.scaled_ceil(9) == other.scaled_ceil(9)
    }

    /// In units, rounded up (upstream `Value`): bytes, pods.
    pub fn value(&self) -> i64 {
        self.scaled_ceil(0)
    }
}

/// CPU in millicores.
pub fn cpu_millis(text: &str) -> Option<i64> {
    Quantity::parse(text).map(|q| q.milli_value())
}

/// Memory (or any count) in units.
pub fn units(text: &str) -> Option<i64> {
    Quantity::parse(text).map(|q| q.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        for (text, millis) in [
            ("100m", 100),
            ("700m", 700),
            ("0.5", 500),
            ("0.7", 700),
            ("1.1", 1100),
            ("2", 2000),
            ("1e3", 1_000_000),
            ("1.5k", 1_500_000),
            ("1u", 1),
            ("250000n", 1),
            (".5", 500),
            ("+3", 3000),
        ] {
            assert_eq!(cpu_millis(text), Some(millis), "{text}");
        }
    }

    #[test]
    fn memory() {
        for (text, bytes) in [
            ("128Mi", 128 << 20),
            ("1G", 1_000_000_000),
            ("1e3", 1000),
            ("1E3", 1000),
            ("1Ki", 1024),
            ("1.5Gi", 3 << 29),
            ("1E", 10i64.pow(18)),
            ("0.1", 1),
            ("12", 12),
            ("5e-1", 1),
        ] {
            assert_eq!(units(text), Some(bytes), "{text}");
        }
    }

    #[test]
    fn rejects_what_the_api_rejects() {
        for text in ["", "bogus", "5x", "1.2.3", "Mi", "1e", "1ee3", "1Ki2", "."] {
            assert_eq!(Quantity::parse(text), None, "{text}");
        }
    }

    #[test]
    fn equal_values_written_differently_are_the_same() {
        let q = |t| Quantity::parse(t).unwrap();
        assert!(q("1Gi").same_value(&q("1073741824")));
        assert!(q("500m").same_value(&q("0.5")));
        assert!(!q("500m").same_value(&q("501m")));
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        assert_eq!(units("999999999999999999999999999999999Ei"), Some(i64::MAX));
        assert_eq!(cpu_millis("1e40"), Some(i64::MAX));
    }
}
