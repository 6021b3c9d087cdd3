//! Helpers the benchmarks share: settings from the environment, medians of interleaved rounds,
//! and the Python side of a comparison (a script in the set-up's venv timing steps on request).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// (median, min, max) of `v`.
pub fn summary(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    let median = if s.len() % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 };
    (median, s[0], s[s.len() - 1])
}

/// A Python process (the set-up's venv, or `P2SBENCH_PYTHON`) running `script`, which prints
/// "ready" once set up and then answers each line "STEPS" with the seconds per step of STEPS
/// timed steps, so that the caller can interleave its own measurements with these.
pub struct PythonTimer {
    child: std::process::Child,
    replies: BufReader<std::process::ChildStdout>,
}

impl PythonTimer {
    pub fn start(script: &str, args: &[String]) -> Result<PythonTimer, String> {
        let cache = std::env::var("P2SBENCH_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/p2sbench", std::env::var("HOME").unwrap_or_default()));
        let python = std::env::var("P2SBENCH_PYTHON").unwrap_or_else(|_| format!("{cache}/venv/bin/python"));
        let mut child = Command::new(&python)
            .arg(script)
            .args(args)
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        let mut replies = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        replies.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            return Err(format!("{script} did not start"));
        }
        Ok(PythonTimer { child, replies })
    }

    pub fn seconds_per_step(&mut self, steps: usize) -> f64 {
        writeln!(self.child.stdin.as_mut().expect("piped"), "{steps}").expect("the Python process reads");
        let mut line = String::new();
        self.replies.read_line(&mut line).expect("the Python process answers");
        line.trim().parse().expect("seconds")
    }
}

impl Drop for PythonTimer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
