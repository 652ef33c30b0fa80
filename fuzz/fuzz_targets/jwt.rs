//! Fuzz target `jwt`: see `herald_fuzz::jwt`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald_fuzz::jwt(data));
