//! Fuzz target `signature`: see `herald_fuzz::signature`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald_fuzz::signature(data));
