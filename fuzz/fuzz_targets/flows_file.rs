#![no_main]
// The entry point and its properties: parley::fuzzing::flows_file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::flows_file(data));
