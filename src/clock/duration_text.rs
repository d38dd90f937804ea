//! Durations as people write them (`"60s"`, `"1h 30m"`, `"200ms"`, `"2 days"`), read and printed
//! with jiff's "friendly" format: the configuration file, `--timeout` options and messages.

use std::time::Duration;

use jiff::fmt::friendly::SpanPrinter;
use jiff::{Span, SpanRelativeTo};

/// Parses a non-negative duration. Days and weeks count as 24 hours and 7 days (a timeout has no
/// calendar); months and years are refused, being of no fixed length.
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let span: Span = text.parse().map_err(|e| format!("{e}"))?;
    let signed = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| "months and years have no fixed length; write days, hours, minutes or seconds".to_string())?;
    Duration::try_from(signed).map_err(|_| "a duration cannot be negative".to_string())
}

/// Prints `d` the way [`parse`] reads it back (`"1h 30m"`, `"200ms"`).
pub(crate) fn format(d: Duration) -> String {
    static PRINTER: SpanPrinter = SpanPrinter::new();
    let mut out = String::new();
    // Printing to a String cannot fail.
    let _ = PRINTER.print_unsigned_duration(&d, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    /// The syntax the configuration documents and the example files use keeps parsing.
    #[test]
    fn the_configurations_duration_syntax_parses() {
        for (text, want) in [
            ("60s", 60 * S),
            ("10s", 10 * S),
            ("1h", 3600 * S),
            ("10m", 600 * S),
            ("200ms", 200 * MS),
            ("1m 30s", 90 * S),
            ("1h 30m", 5400 * S),
            ("1h30m", 5400 * S),
            (" 3s ", 3 * S),
            ("0s", Duration::ZERO),
            ("2 days", 2 * 86_400 * S),
            ("1d", 86_400 * S),
            ("1w", 7 * 86_400 * S),
            ("5 minutes", 300 * S),
            ("1.5s", 1500 * MS),
            ("500us", Duration::from_micros(500)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn nonsense_negative_and_calendar_units_are_refused() {
        for text in ["soon", "", "5", "-5s", "1 month", "2y", "5 parsecs"] {
            assert!(parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn printed_durations_read_back() {
        for d in [
            Duration::ZERO,
            200 * MS,
            3 * S,
            90 * S,
            5400 * S,
            86_400 * S,
            Duration::from_micros(1500),
        ] {
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(90 * S), "1m 30s");
        assert_eq!(format(200 * MS), "200ms");
    }
}
