#![no_main]
// libFuzzer's panic hook aborts before unwinding; `OnnxModel::from_bytes` catches tract's panics
// and reports them as errors about the file, which is the behaviour to fuzz. A failed check of
// the harness still aborts (libfuzzer-sys aborts on any panic that leaves the target).
static QUIET_PANICS: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    p2sbench_fuzz::onnx(data);
});
