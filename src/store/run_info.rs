//! `run.json`: where and how long an experiment last ran (CPU model, cores, device, torch
//! threads, wall-clock seconds), written by `p2sbench run` when the runner returns, so that the
//! report can state the hardware without re-running anything. Results from before this file
//! existed simply lack it; the report says so.

use crate::error::InputError;
use crate::store;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file inside `results/<experiment>/`.
pub const FILE: &str = "run.json";

/// The machine and duration of the latest `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `model name` from /proc/cpuinfo (the architecture where that is unavailable).
    pub cpu_model: String,
    /// Logical cores available to the process.
    pub logical_cores: usize,
    /// The torch device trials ran on (`cpu`, `cuda:0`).
    pub device: String,
    /// Intra-op threads torch used.
    pub torch_threads: i64,
    /// `linux x86_64`-style.
    pub os: String,
    /// Wall-clock seconds of the latest `run` invocation (trials already done are skipped, so a
    /// re-run can be short; the report also sums the per-trial seconds).
    pub wall_seconds: f64,
    /// Seconds since the Unix epoch when the run finished.
    pub finished_unix: u64,
    /// The p2sbench version that ran it.
    pub version: String,
}

/// The CPU model name, from /proc/cpuinfo on Linux.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model") || l.starts_with("Hardware"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unknown {} CPU", std::env::consts::ARCH))
}

impl RunInfo {
    /// Describes this machine for a run on `device` that took `wall_seconds`.
    pub fn capture(device: &str, torch_threads: i64, wall_seconds: f64) -> RunInfo {
        RunInfo {
            cpu_model: cpu_model(),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            device: device.to_string(),
            torch_threads,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            wall_seconds,
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Writes `run.json` into the experiment directory `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        store::write_atomic(&dir.join(FILE), serde_json::to_string_pretty(self)?.as_bytes())
    }

    /// Reads `run.json` from `dir`; `None` when the file does not exist.
    pub fn read(dir: &Path) -> Result<Option<RunInfo>> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| InputError::file(&path, format!("cannot read: {e}")))?;
        let info = serde_json::from_str(&text).map_err(|e| InputError::file(&path, format!("malformed: {e}")))?;
        Ok(Some(info))
    }
}
