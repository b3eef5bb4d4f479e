//! Feeds arbitrary text to the rule parser: it must never panic, and whatever it accepts must
//! compile and agree with the reference evaluator (`app::policy::fuzz_rule` does the checking).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let repositories = parts.next().unwrap_or_default();
    let tags = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    app::policy::fuzz_rule(repositories, tags, name);
});
