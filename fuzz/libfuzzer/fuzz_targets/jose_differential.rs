#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    (wasmesh_fuzz::target("jose_differential").expect("target").run)(data);
});
