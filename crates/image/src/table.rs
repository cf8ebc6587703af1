//! `podium image ls` output, laid out exactly as `crictl images` prints it.

use crate::ImageSummary;

/// crictl truncates image ids to this many hex digits.
const SHORT_ID_LEN: usize = 13;
/// crictl's `tabwriter.NewWriter(os.Stdout, 20, 1, 3, ' ', 0)`: columns at least 20
/// wide, three spaces of padding.
const MIN_WIDTH: usize = 20;
const PADDING: usize = 3;

/// Render the rows; the last column is not padded, as tabwriter leaves it.
pub(crate) fn render(images: &[ImageSummary]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "TAG".to_string(),
        "IMAGE ID".to_string(),
        "SIZE".to_string(),
    ]];
    rows.extend(images.iter().map(|image| {
        let hex = image.id.strip_prefix("sha256:").unwrap_or(&image.id);
        [
            image.repository.clone(),
            image.tag.clone(),
            hex.chars().take(SHORT_ID_LEN).collect(),
            human_size(image.size_bytes),
        ]
    }));
    let mut widths = [0usize; 3];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max((cell.chars().count() + PADDING).max(MIN_WIDTH));
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (cell, width) in row.iter().zip(widths) {
            out.push_str(&format!("{cell:<width$}"));
        }
        out.push_str(&row[3]);
        out.push('\n');
    }
    out
}

/// go-units' `HumanSizeWithPrecision(size, 3)`: decimal units and Go's `%.3g`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g3(size), UNITS[unit])
}

/// Go's `%.3g` for a non-negative number: three significant digits, trailing zeros
/// dropped, exponent form once the exponent reaches the precision (`1e+03`).
fn format_g3(value: f64) -> String {
    const PRECISION: i32 = 3;
    if value == 0.0 {
        return "0".to_string();
    }
    // Round to three significant digits first: that decides the exponent (999.7 → 1e+03).
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |digits: &str| -> String {
        if digits.contains('.') {
            digits
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        } else {
            digits.to_string()
        }
    };
    if !(-4..PRECISION).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    } else {
        let decimals = (PRECISION - 1 - exponent).max(0) as usize;
        trim(&format!("{value:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        let cases = [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (18_944, "18.9kB"),
            (2_036_800, "2.04MB"),
            (999_700, "1e+03kB"),
            (5_000_000_000, "5GB"),
            (123_456_789, "123MB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn table_is_laid_out_like_crictl() {
        let images = [ImageSummary {
            repository: "docker.io/library/sample-app".into(),
            tag: "v1".into(),
            id: "sha256:5c4688b02b167d59c68d717a1ff45bba29aef3d2673be919d92ad52cced59970".into(),
            size_bytes: 1_997_660,
        }];
        let expected = "\
IMAGE                          TAG                 IMAGE ID            SIZE
docker.io/library/sample-app   v1                  5c4688b02b167       2MB
";
        assert_eq!(render(&images), expected);
        assert_eq!(
            render(&[]),
            "IMAGE               TAG                 IMAGE ID            SIZE\n"
        );
    }
}
