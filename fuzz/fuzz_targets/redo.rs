//! cargo-fuzz target: see `bdbtools_fuzz::redo` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bdbtools_fuzz::redo(data);
});
