//! The one look of progress bars on stderr (trials, experiments, feature extraction).

use indicatif::{ProgressBar, ProgressStyle};

/// `      prefix [=====>    ] pos/len message (eta …)`.
pub fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
        .expect("a valid template")
        .progress_chars("=> ")
}

/// A bar of `len` steps drawn on stderr, or a hidden one when `visible` is false.
pub fn bar(len: u64, prefix: &'static str, message: impl Into<String>, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_style(style()).with_prefix(prefix);
    bar.set_message(message.into());
    bar
}
