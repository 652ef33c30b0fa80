//! Private events: the audience header every service reads the same way.
//!
//! An event for some users only carries their ids (token `sub`s) in the NATS header
//! [`HEADER`], comma-separated, never in its body (proto/subjects.md). Ingest writes it; the
//! gateway filters on it; the state writer stores it with the row the event wrote.

use async_nats::HeaderMap;

/// The NATS header naming a private event's audience: user ids, comma-separated.
pub const HEADER: &str = "Herald-To";

/// The audience in `headers`: `None` when there is no [`HEADER`] (a public event).
///
/// A header that is present always makes the event private: every comma-separated id in it
/// (trimmed, empty ones dropped) counts, so a malformed or empty one addresses nobody rather
/// than everybody. The name is matched in any case (`herald-to` too) for the same reason.
pub fn ids(headers: Option<&HeaderMap>) -> Option<Vec<&str>> {
    let mut ids = Vec::new();
    let mut present = false;
    for (name, values) in headers?.iter() {
        let name: &str = name.as_ref();
        if !name.eq_ignore_ascii_case(HEADER) {
            continue;
        }
        present = true;
        for value in values {
            ids.extend(
                value
                    .as_str()
                    .split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty()),
            );
        }
    }
    present.then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_header_is_private_even_when_it_names_nobody() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, " u-1, u-2 ,,");
        assert_eq!(ids(Some(&headers)), Some(vec!["u-1", "u-2"]));
        let mut empty = HeaderMap::new();
        empty.insert("herald-to", " , ");
        assert_eq!(ids(Some(&empty)), Some(vec![]));
        assert_eq!(ids(Some(&HeaderMap::new())), None);
        assert_eq!(ids(None), None);
    }
}
