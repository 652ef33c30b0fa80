//! Integration tests of the load generator's own parts, against a real nats-server.
//! (The SSE side is exercised end to end by `just bench-quick`, which needs the gateway's
//! release binary.)

mod peer;
