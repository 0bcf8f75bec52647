#![no_main]
// The entry point and its properties: parley::fuzzing::chat_command.
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::chat_command(data));
