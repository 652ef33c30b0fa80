//! herald-chaos's integration tests: a short soak of the real binaries must pass, an oversized
//! WebSocket frame ends only its own connection, and no
//! secret may reach any service's log, even at `trace`.

mod dos;
mod helpers;
mod secrets;
mod soak;
