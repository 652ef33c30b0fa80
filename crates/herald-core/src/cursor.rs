//! Cursors: where a client is in the event stream.
//!
//! A cursor is the `HERALD_EVENTS` stream sequence plus the stream's *epoch*, written
//! `<seq>-<epoch>` (e.g. `18234-7f3a09c1`). The epoch is derived from the stream's creation
//! time, so a cursor from a deleted-and-recreated stream is recognised instead of being
//! silently applied to unrelated sequence numbers.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// A stream epoch: 32 bits derived from the stream's creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The epoch of a stream created at `created`.
    pub fn from_created(created: OffsetDateTime) -> Self {
        let nanos = created.unix_timestamp_nanos();
        let digest = Sha256::digest(nanos.to_be_bytes());
        Self(u32::from_be_bytes([
            digest[0], digest[1], digest[2], digest[3],
        ]))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A position in `HERALD_EVENTS`: the last sequence a client has seen, and the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The stream sequence of the last event delivered (0 = before the first event).
    pub seq: u64,
    /// The epoch of the stream the sequence belongs to.
    pub epoch: Epoch,
}

/// Why a string is not a cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not of the form `<seq>-<epoch>`.
    #[error("a cursor looks like `<sequence>-<epoch>`, e.g. `42-7f3a09c1`")]
    Malformed,
}

impl Cursor {
    /// A cursor at `seq` in the stream of `epoch`.
    pub fn new(seq: u64, epoch: Epoch) -> Self {
        Self { seq, epoch }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.seq, self.epoch)
    }
}

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, epoch) = s.split_once('-').ok_or(CursorError::Malformed)?;
        let digits = |v: &str, max: usize, hex: bool| {
            !v.is_empty()
                && v.len() <= max
                && v.bytes().all(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
        };
        if !digits(seq, 20, false) || !digits(epoch, 8, true) {
            return Err(CursorError::Malformed);
        }
        Ok(Self {
            seq: seq.parse().map_err(|_| CursorError::Malformed)?,
            epoch: Epoch(u32::from_str_radix(epoch, 16).map_err(|_| CursorError::Malformed)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = Cursor::new(18234, Epoch(0x7f3a_09c1));
        assert_eq!(c.to_string(), "18234-7f3a09c1");
        assert_eq!("18234-7f3a09c1".parse::<Cursor>().unwrap(), c);
        assert_eq!("0-0".parse::<Cursor>().unwrap(), Cursor::new(0, Epoch(0)));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "-",
            "12",
            "12-",
            "-ab",
            "x-ab",
            "12-xyz",
            "12-123456789",
            "+1-ab",
            "1 -ab",
            "99999999999999999999999-ab",
            "1-ab-cd",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn epochs_differ_for_different_creation_times() {
        let a = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_000_000).unwrap();
        let b = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_000_001).unwrap();
        assert_ne!(Epoch::from_created(a), Epoch::from_created(b));
        assert_eq!(Epoch::from_created(a), Epoch::from_created(a));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Cursor>();
        }

        #[test]
        fn display_parse_round_trip(seq in proptest::num::u64::ANY, e in proptest::num::u32::ANY) {
            let c = Cursor::new(seq, Epoch(e));
            proptest::prop_assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        }
    }
}
