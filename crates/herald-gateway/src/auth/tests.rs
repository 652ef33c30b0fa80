//! Registered claims: `nbf`, `iss`, `aud`, and times at the edges of their range.
