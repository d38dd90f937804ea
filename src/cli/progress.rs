//! Progress of long commands on standard error: an indicatif bar on a terminal, plain log lines
//! otherwise (a pipe or a journal gets one line per phase and per tenth of the work).

use std::io::IsTerminal as _;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shows progress reports; cheap to call often.
pub(crate) struct ProgressView {
    bar: Option<ProgressBar>,
    last: Mutex<(String, u64)>,
}

impl ProgressView {
    pub(crate) fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len} ({eta})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            last: Mutex::new((String::new(), 0)),
        }
    }

    pub(crate) fn show(&self, message: &str, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let tenth = done.saturating_mul(10).checked_div(total).unwrap_or(0);
        if last.0 != message || last.1 != tenth {
            if total == 0 {
                eprintln!("{message}");
            } else {
                eprintln!("{message}: {done}/{total}");
            }
            *last = (message.to_string(), tenth);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for ProgressView {
    fn default() -> Self {
        Self::new()
    }
}
