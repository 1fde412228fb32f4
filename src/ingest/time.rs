//! Event times: `@timestamp` as Elasticsearch's default date format reads it, and the
//! RFC 3339 text the manifest and reports write.

use super::doc::Value;

/// `@timestamp` in microseconds since the Unix epoch: RFC 3339 / ISO 8601 text (any
/// fraction, `Z` or offset, or no zone meaning UTC) or a number of epoch milliseconds, as
/// Elasticsearch's default date format reads it.
pub fn parse_timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Int(ms) => ms.checked_mul(1000),
        Value::Float(ms) => Some((ms * 1000.0) as i64),
        Value::Str(s) => {
            let s = s.trim();
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_micros());
            }
            for fmt in [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.fZ",
            ] {
                if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                    return Some(t.and_utc().timestamp_micros());
                }
            }
            if let Ok(t) = chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %z") {
                return Some(t.timestamp_micros());
            }
            None
        }
        Value::Bool(_) | Value::List(_) => None,
    }
}

/// Microseconds since the epoch as RFC 3339 UTC with microseconds.
pub fn format_micros(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| us.to_string())
}

/// Microseconds since the epoch the way an ingest `date` processor writes its target:
/// milliseconds (truncated), UTC, `Z`.
pub fn format_millis(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us.div_euclid(1000) * 1000)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| us.to_string())
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_every_seen_form() {
        let want = 1_589_456_031_389_000;
        for s in [
            "2020-05-14T11:33:51.389Z",
            "2020-05-14T11:33:51.389000000Z",
            "2020-05-14T11:33:51.389+00:00",
            "2020-05-14T13:33:51.389+02:00",
            "2020-05-14 11:33:51.389",
        ] {
            assert_eq!(parse_timestamp(&Value::Str(s.into())), Some(want), "{s}");
        }
        assert_eq!(parse_timestamp(&Value::Int(1_589_456_031_389)), Some(want));
        assert_eq!(parse_timestamp(&Value::Str("yesterday".into())), None);
        assert_eq!(
            parse_timestamp(&Value::Str("2020-05-14T11:33:51.3892662Z".into())),
            Some(1_589_456_031_389_266)
        );
    }

    #[test]
    fn zero_filetime_is_1601() {
        assert_eq!(
            parse_timestamp(&Value::Str("1601-01-01T00:00:00Z".into())),
            Some(super::super::file::ZERO_FILETIME_US)
        );
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_millis(1_999), "1970-01-01T00:00:00.001Z");
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
    }
}
