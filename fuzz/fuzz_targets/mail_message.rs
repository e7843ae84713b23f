#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tmuxd::fuzz::mail_message(data));
