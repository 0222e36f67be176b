//! Memory of a process, from `/proc/<pid>/status` (Linux): current resident set (VmRSS, split into anonymous,
//! file-backed and shared memory), its high-water mark (VmHWM) and a background sampler.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sizes in KiB, as the kernel reports them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
    pub shmem_kib: u64,
}

pub fn read_status(pid: u32) -> Result<Status> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse_status(&text))
}

fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let kib = value
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or(0);
        match key {
            "VmRSS" => status.rss_kib = kib,
            "VmHWM" => status.hwm_kib = kib,
            "RssAnon" => status.anon_kib = kib,
            "RssFile" => status.file_kib = kib,
            "RssShmem" => status.shmem_kib = kib,
            _ => {}
        }
    }
    status
}

/// Resets the process's VmHWM to its current VmRSS (Linux 4.0+), so that the next reading is the peak since now.
pub fn reset_peak(pid: u32) -> Result<()> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").with_context(|| format!("writing 5 to {path}"))
}

/// What a [`Sampler`] saw.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// The sample with the largest VmRSS.
    pub peak: Status,
    /// (seconds since the sampler started, VmRSS in KiB, RssAnon in KiB, RssFile in KiB)
    pub series: Vec<(f64, u64, u64, u64)>,
}

/// Reads a process's status every `interval` on a thread of its own until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Samples>,
}

impl Sampler {
    pub fn start(pid: u32, interval: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Samples::default();
            loop {
                // A process that is gone simply yields no more samples.
                if let Ok(status) = read_status(pid) {
                    if status.rss_kib >= samples.peak.rss_kib {
                        samples.peak = status;
                    }
                    samples.series.push((
                        started.elapsed().as_secs_f64(),
                        status.rss_kib,
                        status.anon_kib,
                        status.file_kib,
                    ));
                }
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(interval);
            }
            samples
        });
        Sampler { stop, handle }
    }

    /// Stops sampling (after one last sample) and returns what was seen.
    pub fn finish(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let text = "Name:\tdicomweb\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\nRssAnon:\t   40000 kB\n\
                    RssFile:\t   25000 kB\nRssShmem:\t     432 kB\nThreads:\t9\n";
        let status = parse_status(text);
        assert_eq!(
            (
                status.hwm_kib,
                status.rss_kib,
                status.anon_kib,
                status.file_kib,
                status.shmem_kib
            ),
            (123456, 65432, 40000, 25000, 432)
        );
    }

    #[test]
    fn samples_this_process() {
        let sampler = Sampler::start(std::process::id(), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(20));
        let samples = sampler.finish();
        assert!(!samples.series.is_empty());
        assert!(samples.peak.rss_kib > 0);
        // The kernel folds per-thread RSS counters into VmHWM lazily, so with other tests allocating on other
        // threads a sampled VmRSS may run ahead of VmHWM by a little.
        let hwm_kib = read_status(std::process::id()).unwrap().hwm_kib;
        assert!(hwm_kib + 4096 >= samples.peak.rss_kib);
    }
}
