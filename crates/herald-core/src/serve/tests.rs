//! Unit tests of the server.
