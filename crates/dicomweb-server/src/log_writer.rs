//! Log lines written to stderr in batches by a thread of their own.
//!
//! An HTTP worker that logs (an access line per request among others) only appends its line to a buffer in
//! memory; a thread writes the buffer out every [`FLUSH_INTERVAL`]. So a worker makes no system call to log
//! and never waits on a slow reader of stderr (a pipe to a log collector that falls behind), and the writer
//! thread wakes a fixed number of times a second however many lines there are. `tracing-appender`'s
//! non-blocking writer does the first but wakes its thread for every line (about two more context switches
//! per request here), which is why this is written by hand.
//!
//! Nothing is dropped: once [`MAX_BUFFERED_BYTES`] wait, the line that finds the buffer full writes it out
//! itself (a slow stderr then slows logging callers, as a plain `stderr` writer would). What is buffered is
//! written when the [`LogFlushGuard`] is dropped, at the end of `main`; a `kill -9` loses at most the lines
//! of the last interval.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How often the writer thread writes what was logged meanwhile.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(25);

/// The most bytes kept waiting; a line that finds this many writes them out itself.
pub const MAX_BUFFERED_BYTES: usize = 1 << 20;

struct Shared {
    state: Mutex<State>,
    /// Where lines go. Locked while the state is held (state first, always), so batches keep their order.
    out: Mutex<Box<dyn Write + Send>>,
    /// [`MAX_BUFFERED_BYTES`], or less in tests.
    limit: usize,
    /// Wakes the writer thread early, to stop.
    stop: Condvar,
}

struct State {
    buffer: Vec<u8>,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn out(&self) -> std::sync::MutexGuard<'_, Box<dyn Write + Send>> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes `bytes` to `out`, ignoring failures: a log line that cannot be written has nowhere else to go.
fn write_out(out: &mut (impl Write + ?Sized), bytes: &[u8]) {
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// A [`MakeWriter`] for `tracing_subscriber::fmt` whose lines go to stderr in batches (see the module docs).
#[derive(Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

/// Stops the writer thread and writes what is still buffered, when dropped.
pub struct LogFlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchedStderr {
    /// Starts the writer thread; keep the guard until the last line is logged.
    pub fn start() -> io::Result<(BatchedStderr, LogFlushGuard)> {
        Self::start_with(io::stderr(), MAX_BUFFERED_BYTES)
    }

    fn start_with<W: Write + Send + 'static>(
        out: W,
        limit: usize,
    ) -> io::Result<(BatchedStderr, LogFlushGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: Vec::new(),
                stopping: false,
            }),
            stop: Condvar::new(),
            out: Mutex::new(Box::new(out)),
            limit,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("dicomweb-log".into())
                .spawn(move || {
                    let mut batch = Vec::new();
                    loop {
                        let state = shared.lock();
                        let (mut state, _) = shared
                            .stop
                            .wait_timeout_while(state, FLUSH_INTERVAL, |s| !s.stopping)
                            .unwrap_or_else(PoisonError::into_inner);
                        std::mem::swap(&mut state.buffer, &mut batch);
                        let stopping = state.stopping;
                        // Taken before the state is released: a line that overflows meanwhile is written after
                        // this batch, not before it.
                        let mut out = shared.out();
                        drop(state);
                        if !batch.is_empty() {
                            write_out(&mut *out, &batch);
                            batch.clear();
                        }
                        drop(out);
                        if stopping {
                            return;
                        }
                    }
                })?
        };
        Ok((
            BatchedStderr {
                shared: shared.clone(),
            },
            LogFlushGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

impl Drop for LogFlushGuard {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.stop.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One log event's writer: `tracing_subscriber::fmt` formats the event's line in a buffer of its own and hands
/// it over in one `write_all`, appended whole to the shared buffer.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if state.stopping {
            // After the guard: written at once, so that no line is lost.
            write_out(&mut *self.shared.out(), bytes);
            return Ok(bytes.len());
        }
        if state.buffer.len() + bytes.len() > self.shared.limit {
            // The writer thread is behind (stderr is slow): write out here, under the lock, so lines keep their
            // order and logging slows down instead of growing memory.
            let mut out = self.shared.out();
            write_out(&mut *out, &state.buffer);
            state.buffer.clear();
            write_out(&mut *out, bytes);
            return Ok(bytes.len());
        }
        state.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes a test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn text(captured: &Captured) -> String {
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_written_within_an_interval_in_order_and_the_rest_when_the_guard_drops() {
        let out = Captured::default();
        let (writer, guard) = BatchedStderr::start_with(out.clone(), MAX_BUFFERED_BYTES).unwrap();
        writer.make_writer().write_all(b"first\n").unwrap();
        writer.make_writer().write_all(b"second\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while text(&out).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "written within an interval"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(text(&out), "first\nsecond\n");

        writer.make_writer().write_all(b"last\n").unwrap();
        drop(guard);
        assert_eq!(
            text(&out),
            "first\nsecond\nlast\n",
            "the guard writes what waits"
        );
    }

    #[test]
    fn lines_from_many_threads_all_arrive_whole() {
        let out = Captured::default();
        // A small buffer: most lines find it full and are written by their own thread.
        let (writer, guard) = BatchedStderr::start_with(out.clone(), 64).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let line = format!("thread {t} line {i}\n");
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let written = text(&out);
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 8000);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..2000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, expected, "each thread's lines whole and in order");
        }
    }
}
