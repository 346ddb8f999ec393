//! cargo-fuzz target: see `bdbtools_fuzz::log_record` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bdbtools_fuzz::log_record(data);
});
