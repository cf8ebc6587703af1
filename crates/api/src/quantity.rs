//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`) as numbers.

/// Split a quantity into its number and suffix.
fn split(q: &str) -> (&str, &str) {
    let q = q.trim();
    let end = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    // "1e3" is an exponent, but "1E" (exa) is a suffix: an exponent needs digits after it.
    if let Some(i) = q[..end].find(['e', 'E']) {
        if q[i + 1..end].is_empty() {
            return (&q[..i], &q[i..]);
        }
    }
    (&q[..end], &q[end..])
}

fn scale(suffix: &str) -> Option<f64> {
    Some(match suffix {
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
        _ => return None,
    })
}

/// The quantity's value in base units.
pub fn value(q: &str) -> Option<f64> {
    let (number, suffix) = split(q);
    let n: f64 = number.parse().ok()?;
    Some(n * scale(suffix)?)
}

/// CPU in millicores, rounded up as upstream's `MilliValue`.
pub fn cpu_millis(q: &str) -> Option<i64> {
    // Round away float noise first: 0.7 * 1000.0 is 700.0000000000001, not 700.
    value(q).map(|v| ((v * 1000.0 * 1e6).round() / 1e6).ceil() as i64)
}

/// Memory in bytes, rounded up.
pub fn memory_bytes(q: &str) -> Option<i64> {
    value(q).map(|v| v.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("100m"), Some(100));
        assert_eq!(cpu_millis("700m"), Some(700));
        assert_eq!(cpu_millis("0.7"), Some(700));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(memory_bytes("128Mi"), Some(128 * 1024 * 1024));
        assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(memory_bytes("1e3"), Some(1000));
        assert_eq!(memory_bytes("1Ki"), Some(1024));
        assert_eq!(value("bogus"), None);
        assert_eq!(value("5x"), None);
    }
}
