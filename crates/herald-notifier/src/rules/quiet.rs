//! Quiet hours: a daily window in which a target gets nothing; what arrives then is held
//! (redelivered when the window ends) and usually goes out as one digest.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use time::{
    OffsetDateTime, Time, UtcOffset, format_description::BorrowedFormatItem,
    macros::format_description,
};

const HM: &[BorrowedFormatItem<'static>] = format_description!("[hour]:[minute]");
const OFFSET: &[BorrowedFormatItem<'static>] =
    format_description!("[offset_hour sign:mandatory]:[offset_minute]");

/// `quiet_hours = { start = "22:00", end = "07:00", utc_offset = "+01:00" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// When the quiet window starts, local time `HH:MM`.
    #[serde(deserialize_with = "hm")]
    pub start: Time,
    /// When it ends, local time `HH:MM` (before `start` means it ends the next day).
    #[serde(deserialize_with = "hm")]
    pub end: Time,
    /// The local time's offset from UTC, `+HH:MM`. Default `+00:00`.
    #[serde(default = "utc", deserialize_with = "offset")]
    pub utc_offset: UtcOffset,
}

fn utc() -> UtcOffset {
    UtcOffset::UTC
}

fn hm<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
    let s = String::deserialize(d)?;
    Time::parse(&s, HM).map_err(|_| serde::de::Error::custom(format!("{s:?} is not HH:MM")))
}

fn offset<'de, D: Deserializer<'de>>(d: D) -> Result<UtcOffset, D::Error> {
    let s = String::deserialize(d)?;
    UtcOffset::parse(&s, OFFSET)
        .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an offset like +01:00")))
}

impl QuietHours {
    /// If `now` is inside the window, how long until it ends.
    pub fn remaining(&self, now: OffsetDateTime) -> Option<Duration> {
        let local = now.to_offset(self.utc_offset);
        let t = local.time();
        let inside = if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        };
        if !inside {
            return None;
        }
        let mut end = local.replace_time(self.end);
        if end <= local {
            end += time::Duration::days(1);
        }
        Duration::try_from(end - local).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn q(src: &str) -> QuietHours {
        toml::from_str(src).unwrap()
    }

    #[test]
    fn windows_across_midnight_and_offsets() {
        let night = q("start = \"22:00\"\nend = \"07:00\"\nutc_offset = \"+01:00\"");
        // 21:30 UTC is 22:30 local: quiet until 07:00 local, 8.5 h later.
        assert_eq!(
            night.remaining(datetime!(2026-11-23 21:30 UTC)),
            Some(Duration::from_secs(8 * 3600 + 1800))
        );
        assert_eq!(
            night.remaining(datetime!(2026-11-23 05:59 UTC)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(night.remaining(datetime!(2026-11-23 06:00 UTC)), None);
        let lunch = q("start = \"12:00\"\nend = \"13:00\"");
        assert_eq!(
            lunch.remaining(datetime!(2026-11-23 12:15 UTC)),
            Some(Duration::from_secs(45 * 60))
        );
        assert_eq!(lunch.remaining(datetime!(2026-11-23 13:00 UTC)), None);
    }

    #[test]
    fn bad_times_are_rejected() {
        assert!(toml::from_str::<QuietHours>("start = \"25:00\"\nend = \"07:00\"").is_err());
        assert!(toml::from_str::<QuietHours>("start = \"22:00\"\nend = \"7\"").is_err());
        assert!(
            toml::from_str::<QuietHours>(
                "start = \"22:00\"\nend = \"07:00\"\nutc_offset = \"CET\""
            )
            .is_err()
        );
    }
}
