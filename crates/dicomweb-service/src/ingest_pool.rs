//! A small pool of threads for the CPU work of ingest (parsing a stored instance, writing its DICOM JSON),
//! run at a lower CPU priority than the threads that answer searches and retrieves.
//!
//! Why not tokio's blocking pool: its threads also run searches and file reads, which must not queue behind
//! stores on a busy machine, and a thread's priority can only be lowered for good by an unprivileged process
//! (a nice value that is raised cannot be lowered back without `CAP_SYS_NICE`), so the ingest work needs
//! threads of its own. Why not rayon: its idle workers spin before they sleep, which costs CPU on every task
//! when tasks arrive one per request. The queue is crossbeam's multi-consumer channel (already in the tree
//! through tantivy): a job wakes one idle thread, where a `Mutex` around std's receiver woke two (the thread
//! holding the lock, then the next one to wait on it), a few percent of a small store's CPU.
//!
//! Under load the kernel gives these threads less CPU than the searches' (nice [`INGEST_NICENESS`]); on an
//! idle machine they run at full speed.

use std::panic::AssertUnwindSafe;

/// Nice value of the ingest work: the pool's threads and the catalogue writer (set by the server). The search
/// index's writer uses the same value.
pub const INGEST_NICENESS: i32 = 5;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The ingest pool. Dropping it lets its threads finish the queued jobs and exit.
pub(crate) struct IngestPool {
    jobs: crossbeam_channel::Sender<Job>,
}

/// The job could not run to its end: it panicked (logged), or the pool could not take it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct JobFailed(String);

impl IngestPool {
    /// Starts `threads` threads (at least one) at nice `niceness`.
    pub(crate) fn new(threads: usize, niceness: i32) -> IngestPool {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("dicomweb-ingest-{n}"))
                .spawn(move || {
                    set_thread_niceness(niceness);
                    // Until every sender is gone and the queue is empty.
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                });
            if let Err(error) = started {
                // Fewer threads only cost speed; with none at all, `run` reports every job as failed.
                tracing::error!(%error, "could not start an ingest thread");
            }
        }
        IngestPool { jobs }
    }

    /// A pool sized for this machine, at [`INGEST_NICENESS`]: two threads per core (at least 4). Parsing is
    /// mostly CPU, but a large instance's is also reads of its spool file; the spare threads keep small
    /// stores from queueing behind a few large ones, and idle threads cost nothing.
    pub(crate) fn for_this_machine() -> IngestPool {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        IngestPool::new((2 * cores).max(4), INGEST_NICENESS)
    }

    /// Runs `work` on the pool and returns its result. A panic in `work` is caught and reported as
    /// [`JobFailed`]; the thread goes on with the next job.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobFailed> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                tracing::error!(%message, "an ingest job panicked");
                JobFailed(format!("the work panicked: {message}"))
            });
            // The caller may have gone (its request was dropped): the result is then of no use.
            let _ = reply.send(outcome);
        });
        self.jobs
            .send(job)
            .map_err(|_| JobFailed("the ingest pool has stopped".into()))?;
        result
            .await
            .map_err(|_| JobFailed("the ingest pool dropped the work".into()))?
    }
}

/// Sets the calling thread's nice value (per thread on Linux) unless it is 0; a value that cannot be set is
/// only logged: priority is an optimization.
fn set_thread_niceness(niceness: i32) {
    #[cfg(target_os = "linux")]
    if niceness != 0
        && let Err(error) = rustix::process::setpriority_process(None, niceness)
    {
        tracing::debug!(%error, niceness, "could not lower the priority of an ingest thread");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = niceness;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_pool_threads_and_returns_its_result() {
        let pool = IngestPool::new(2, 0);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("dicomweb-ingest-"));
        assert_eq!(pool.run(|| 6 * 7).await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_pool_goes_on() {
        let pool = IngestPool::new(1, 0);
        let failed = pool.run(|| -> u32 { panic!("bad instance") }).await;
        assert!(failed.unwrap_err().to_string().contains("bad instance"));
        // The only thread survived the panic.
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn pool_threads_run_at_the_asked_niceness() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let pool = IngestPool::new(1, before + 3);
        let inside = pool
            .run(|| rustix::process::getpriority_process(None).unwrap())
            .await
            .unwrap();
        assert_eq!(inside, (before + 3).min(19));
        // The caller's own thread is untouched.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }
}
