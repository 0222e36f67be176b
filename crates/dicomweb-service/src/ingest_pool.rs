//! A small pool of threads for the CPU work of ingest (parsing a stored instance, writing its DICOM JSON),
//! run at a lower CPU priority than the threads that answer searches and retrieves.
//!
//! Why not tokio's blocking pool: its threads also run searches and file reads, which must not queue behind
//! stores on a busy machine, and a thread's priority can only be lowered for good by an unprivileged process
//! (a nice value that is raised cannot be lowered back without `CAP_SYS_NICE`), so the ingest work needs
//! threads of its own. Why not rayon: its idle workers spin before they sleep, which costs CPU on every task
//! when tasks arrive one per request. Why a `Mutex` and a `Condvar` rather than a channel: a job wakes exactly
//! one idle thread, which blocks at once when the queue is empty. crossbeam's channel (used before) also wakes
//! one, but an idle receiver first spins and calls `sched_yield` before it sleeps: 13% of these threads' CPU
//! at 8 storing clients, 3% of the server's. A `Mutex` around std's receiver woke two threads per job (the
//! one holding the lock, then the next one waiting for it).
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
    queue: std::sync::Arc<Queue>,
}

/// The jobs waiting for a thread, and whether the pool was dropped.
struct Queue {
    state: std::sync::Mutex<QueueState>,
    /// Signalled once per job queued (one idle thread wakes), and to every thread when the pool is dropped.
    ready: std::sync::Condvar,
}

struct QueueState {
    jobs: std::collections::VecDeque<Job>,
    closed: bool,
    /// Threads running: when none could start, jobs fail at once instead of waiting for ever.
    threads: usize,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A job never runs under the lock, so a poisoned lock still guards a consistent queue.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next job, blocking while there is none; `None` once the pool is dropped and the queue is empty.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn push(&self, job: Job) -> Result<(), JobFailed> {
        let mut state = self.lock();
        if state.threads == 0 {
            return Err(JobFailed("the ingest pool has no thread".into()));
        }
        state.jobs.push_back(job);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }
}

impl Drop for IngestPool {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

/// The job could not run to its end: it panicked (logged), or the pool could not take it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct JobFailed(String);

impl IngestPool {
    /// Starts `threads` threads (at least one) at nice `niceness`.
    pub(crate) fn new(threads: usize, niceness: i32) -> IngestPool {
        let queue = std::sync::Arc::new(Queue {
            state: std::sync::Mutex::new(QueueState {
                jobs: std::collections::VecDeque::new(),
                closed: false,
                threads: 0,
            }),
            ready: std::sync::Condvar::new(),
        });
        let mut started_threads = 0;
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("dicomweb-ingest-{n}"))
                .spawn(move || {
                    set_thread_niceness(niceness);
                    // Until the pool is dropped and the queue is empty.
                    while let Some(job) = queue.next() {
                        job();
                    }
                });
            match started {
                Ok(_) => started_threads += 1,
                // Fewer threads only cost speed; with none at all, `run` reports every job as failed.
                Err(error) => tracing::error!(%error, "could not start an ingest thread"),
            }
        }
        queue.lock().threads = started_threads;
        IngestPool { queue }
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
        self.queue.push(job)?;
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
