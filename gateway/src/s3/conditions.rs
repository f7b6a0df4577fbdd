//! Conditional requests (RFC 9110 §13.2.2 order, which is also S3's behaviour):
//! If-Match, then If-Unmodified-Since (only without If-Match), then If-None-Match, then
//! If-Modified-Since (only without If-None-Match). Times compare at whole seconds, the
//! resolution of HTTP dates.

use s3s::dto::{ETagCondition, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    /// 304 for GET/HEAD.
    NotModified,
    /// 412.
    PreconditionFailed,
}

#[derive(Debug, Default, Clone)]
pub struct Preconditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since_unix_seconds: Option<i64>,
    pub if_unmodified_since_unix_seconds: Option<i64>,
}

pub fn unix_seconds(timestamp: &Timestamp) -> i64 {
    time::OffsetDateTime::from(timestamp.clone()).unix_timestamp()
}

fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        // Weak comparison is what S3 does for If-None-Match; our ETags are strong.
        ETagCondition::ETag(given) => given.value() == crate::object::etag::bare(etag),
    }
}

/// Evaluates the preconditions against the current object (its quoted ETag and its
/// last-modified time).
pub fn evaluate(
    preconditions: &Preconditions<'_>,
    etag: &str,
    last_modified_unix_seconds: i64,
) -> Verdict {
    if let Some(condition) = preconditions.if_match {
        if !matches(condition, etag) {
            return Verdict::PreconditionFailed;
        }
    } else if let Some(since) = preconditions.if_unmodified_since_unix_seconds {
        if last_modified_unix_seconds > since {
            return Verdict::PreconditionFailed;
        }
    }
    if let Some(condition) = preconditions.if_none_match {
        if matches(condition, etag) {
            return Verdict::NotModified;
        }
    } else if let Some(since) = preconditions.if_modified_since_unix_seconds {
        if last_modified_unix_seconds <= since {
            return Verdict::NotModified;
        }
    }
    Verdict::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;

    const ETAG: &str = "\"abc\"";
    const MODIFIED: i64 = 1_000;

    fn tag(value: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(value.to_string()))
    }

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(
            evaluate(&Preconditions::default(), ETAG, MODIFIED),
            Verdict::Proceed
        );
    }

    #[test]
    fn if_match_fails_on_another_etag_and_passes_on_ours_or_any() {
        let other = tag("other");
        let ours = tag("abc");
        let fail = Preconditions {
            if_match: Some(&other),
            ..Default::default()
        };
        assert_eq!(evaluate(&fail, ETAG, MODIFIED), Verdict::PreconditionFailed);
        let pass = Preconditions {
            if_match: Some(&ours),
            ..Default::default()
        };
        assert_eq!(evaluate(&pass, ETAG, MODIFIED), Verdict::Proceed);
        let any = ETagCondition::Any;
        let pass = Preconditions {
            if_match: Some(&any),
            ..Default::default()
        };
        assert_eq!(evaluate(&pass, ETAG, MODIFIED), Verdict::Proceed);
    }

    #[test]
    fn if_none_match_on_our_etag_is_not_modified() {
        let ours = tag("abc");
        let other = tag("zzz");
        let hit = Preconditions {
            if_none_match: Some(&ours),
            ..Default::default()
        };
        assert_eq!(evaluate(&hit, ETAG, MODIFIED), Verdict::NotModified);
        let miss = Preconditions {
            if_none_match: Some(&other),
            ..Default::default()
        };
        assert_eq!(evaluate(&miss, ETAG, MODIFIED), Verdict::Proceed);
    }

    #[test]
    fn dates_compare_at_seconds() {
        let before = Preconditions {
            if_unmodified_since_unix_seconds: Some(MODIFIED - 1),
            ..Default::default()
        };
        assert_eq!(
            evaluate(&before, ETAG, MODIFIED),
            Verdict::PreconditionFailed
        );
        let same = Preconditions {
            if_unmodified_since_unix_seconds: Some(MODIFIED),
            ..Default::default()
        };
        assert_eq!(evaluate(&same, ETAG, MODIFIED), Verdict::Proceed);
        let not_since = Preconditions {
            if_modified_since_unix_seconds: Some(MODIFIED),
            ..Default::default()
        };
        assert_eq!(evaluate(&not_since, ETAG, MODIFIED), Verdict::NotModified);
        let since = Preconditions {
            if_modified_since_unix_seconds: Some(MODIFIED - 1),
            ..Default::default()
        };
        assert_eq!(evaluate(&since, ETAG, MODIFIED), Verdict::Proceed);
    }

    #[test]
    fn s3_combinations() {
        // If-Match true + If-Unmodified-Since false: 200 (the date is ignored).
        let ours = tag("abc");
        let both = Preconditions {
            if_match: Some(&ours),
            if_unmodified_since_unix_seconds: Some(MODIFIED - 10),
            ..Default::default()
        };
        assert_eq!(evaluate(&both, ETAG, MODIFIED), Verdict::Proceed);
        // If-None-Match false (matches) + If-Modified-Since true: 304.
        let both = Preconditions {
            if_none_match: Some(&ours),
            if_modified_since_unix_seconds: Some(MODIFIED - 10),
            ..Default::default()
        };
        assert_eq!(evaluate(&both, ETAG, MODIFIED), Verdict::NotModified);
        // If-Match fails before anything else is looked at.
        let other = tag("zzz");
        let both = Preconditions {
            if_match: Some(&other),
            if_none_match: Some(&ours),
            ..Default::default()
        };
        assert_eq!(evaluate(&both, ETAG, MODIFIED), Verdict::PreconditionFailed);
    }
}
