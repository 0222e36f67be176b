//! Requests the HTTP layer cannot read (malformed heads, oversized headers, connections that break mid-request)
//! are the client's fault, yet actix-http logs each one at ERROR (`stream error: ...`), so any client could fill
//! the log with errors. This layer drops those events and logs them as a WARN of its own instead, at most one
//! per [`INTERVAL`], with the count of those left out since the previous one.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// At most one warning about unreadable requests per interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The actix-http module that logs them.
const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// The tracing layer; put it between the level filter and the formatting layer.
#[derive(Debug, Default)]
pub struct ClientErrorsAsWarnings {
    limiter: Mutex<RateLimiter>,
}

impl<S: Subscriber> Layer<S> for ClientErrorsAsWarnings {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let Some(message) = client_error_message(event) else {
            return true;
        };
        let report = self
            .limiter
            .lock()
            .map(|mut limiter| limiter.admit(Instant::now()))
            .unwrap_or(None);
        // Emitted with the lock released; the process-wide subscriber accepts an event from inside another.
        if let Some(left_out) = report {
            tracing::warn!(
                target: "dicomweb::client",
                left_out_since_last_report = left_out,
                "a client sent a request that could not be read ({message}); such requests are answered 400 \
                 (or the connection is closed) and reported at most every {}s",
                INTERVAL.as_secs()
            );
        }
        false
    }
}

/// The message of an actix-http "stream error" event, which is about one client's connection.
fn client_error_message(event: &Event<'_>) -> Option<String> {
    let metadata = event.metadata();
    if *metadata.level() != Level::ERROR || metadata.target() != DISPATCHER {
        return None;
    }
    let mut message = Message::default();
    event.record(&mut message);
    message.0.strip_prefix("stream error: ").map(str::to_owned)
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// Admits the first event and then one per [`INTERVAL`], counting those in between.
#[derive(Debug, Default)]
struct RateLimiter {
    last_report: Option<Instant>,
    left_out: u64,
}

impl RateLimiter {
    /// `Some(events left out since the last report)` if this event is to be reported.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last_report {
            Some(last) if now.saturating_duration_since(last) < INTERVAL => {
                self.left_out += 1;
                None
            }
            _ => {
                self.last_report = Some(now);
                Some(std::mem::take(&mut self.left_out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    /// Records the level and target of every event that reaches it.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(Level, String)>>>);

    impl<S: Subscriber> Layer<S> for Recorder {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let metadata = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push((*metadata.level(), metadata.target().to_owned()));
        }
    }

    #[test]
    fn actix_stream_errors_never_reach_the_log_at_error() {
        let recorder = Recorder::default();
        let subscriber = tracing_subscriber::registry()
            .with(ClientErrorsAsWarnings::default())
            .with(recorder.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
            tracing::error!(target: "actix_http::h1::dispatcher", "Internal server error: unexpected eof");
            tracing::error!(target: "dicomweb", "stream error: ours, not actix's");
        });
        let seen = recorder.0.lock().unwrap().clone();
        // The client's error is gone; server errors stay errors.
        assert_eq!(
            seen,
            [
                (Level::ERROR, "actix_http::h1::dispatcher".to_owned()),
                (Level::ERROR, "dicomweb".to_owned()),
            ]
        );
    }

    #[test]
    fn one_report_per_interval_with_the_count_left_out() {
        let mut limiter = RateLimiter::default();
        let start = Instant::now();
        assert_eq!(limiter.admit(start), Some(0));
        assert_eq!(limiter.admit(start + Duration::from_secs(1)), None);
        assert_eq!(limiter.admit(start + Duration::from_secs(9)), None);
        assert_eq!(limiter.admit(start + INTERVAL), Some(2));
        assert_eq!(limiter.admit(start + INTERVAL), None);
    }
}
