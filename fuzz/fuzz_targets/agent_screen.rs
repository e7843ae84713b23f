#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tmuxd::fuzz::agent_screen(data));
