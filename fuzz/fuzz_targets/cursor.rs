//! Fuzz target `cursor`: see `herald_fuzz::cursor`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald_fuzz::cursor(data));
