//! Fuzz target `formats`: see `herald_fuzz::formats`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald_fuzz::formats(data));
