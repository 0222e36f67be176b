//! Two lanes for the index work of searches, so that a few expensive searches cannot hold every thread or
//! make cheap ones wait behind them.
//!
//! A search runs on tokio's blocking pool (never on an HTTP worker), which grows to hundreds of threads: on
//! its own it would let a client flood the machine with concurrent expensive searches. Each search first
//! takes a permit of its lane: *cheap* searches (exact values, UID lists, ranges, prefixes `abc*`) have many
//! permits; *expensive* ones (inner or several wildcards, fuzzy matching, many values: each an automaton
//! walked over the term dictionary) share a few. Permits are handed out first come, first served (tokio's
//! semaphore is fair), and a permit is held until the index work ends, even when the client has gone, so
//! the bound holds. A search that cannot get a permit within [`QUEUE_BUDGET`] answers 503 (retry later),
//! and one whose index work runs past [`RUN_BUDGET`] answers 503 too (its work finishes in the background
//! within its permit: the bounds on query values keep that short).

use std::sync::Arc;
use std::time::Duration;

use dicomweb_index::{Filter, Matcher};
use tokio::sync::Semaphore;

use crate::{Result, ServiceError};

/// Longest wait for a permit before a search answers 503.
pub const QUEUE_BUDGET: Duration = Duration::from_secs(5);

/// Longest index work a client waits for before a search answers 503.
pub const RUN_BUDGET: Duration = Duration::from_secs(10);

/// More values than this in one search make it expensive.
const CHEAP_VALUES: usize = 8;

pub(crate) struct SearchLanes {
    cheap: Arc<Semaphore>,
    expensive: Arc<Semaphore>,
    expensive_permits: usize,
    queue_budget: Duration,
    run_budget: Duration,
}

impl SearchLanes {
    /// Lanes sized for this machine: four cheap searches per core, and one expensive one per two cores (at
    /// least one), so that expensive searches leave CPU for everything else.
    pub(crate) fn for_this_machine() -> SearchLanes {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        SearchLanes::new(
            (4 * cores).max(4),
            (cores / 2).max(1),
            QUEUE_BUDGET,
            RUN_BUDGET,
        )
    }

    pub(crate) fn new(
        cheap: usize,
        expensive: usize,
        queue_budget: Duration,
        run_budget: Duration,
    ) -> SearchLanes {
        SearchLanes {
            cheap: Arc::new(Semaphore::new(cheap.max(1))),
            expensive: Arc::new(Semaphore::new(expensive.max(1))),
            expensive_permits: expensive.max(1),
            queue_budget,
            run_budget,
        }
    }

    /// Runs the index work of a search with these `filters` in its lane, within the budgets.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        filters: &[Filter],
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let expensive = is_expensive(filters);
        let lane = if expensive {
            &self.expensive
        } else {
            &self.cheap
        };
        let permit = match tokio::time::timeout(self.queue_budget, lane.clone().acquire_owned())
            .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(ServiceError::Internal("the search lanes are closed".into())),
            Err(_) => {
                return Err(ServiceError::Unavailable(if expensive {
                    format!(
                        "{} expensive searches (wildcards inside values, fuzzy matching or many values) are \
                         running and others wait; retry shortly, or search with fewer wildcards",
                        self.expensive_permits
                    )
                } else {
                    "the server is busy with searches; retry shortly".into()
                }));
            }
        };
        let job = tokio::task::spawn_blocking(move || {
            let outcome = work();
            drop(permit);
            outcome
        });
        match tokio::time::timeout(self.run_budget, job).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(ServiceError::Internal(format!("a search failed: {e}"))),
            Err(_) => Err(ServiceError::Unavailable(format!(
                "the search ran longer than {} s and was given up; narrow it (fewer wildcards or values)",
                self.run_budget.as_secs_f32()
            ))),
        }
    }
}

/// Does matching these filters walk automata over the term dictionary (or many of them)?
pub(crate) fn is_expensive(filters: &[Filter]) -> bool {
    let mut values = 0usize;
    let mut expensive = false;
    for filter in filters {
        visit(&filter.matcher, &mut values, &mut expensive);
    }
    expensive || values > CHEAP_VALUES
}

fn visit(matcher: &Matcher, values: &mut usize, expensive: &mut bool) {
    match matcher {
        Matcher::Exact(list) => *values += list.len(),
        Matcher::Wildcard(list) => {
            *values += list.len();
            *expensive |= list.iter().any(|v| !is_prefix_or_plain(v));
        }
        Matcher::PersonName {
            values: list,
            fuzzy,
        } => {
            *values += list.len();
            *expensive |= *fuzzy || list.iter().any(|v| !is_prefix_or_plain(v));
        }
        Matcher::Range { .. } => *values += 1,
        Matcher::AnyOf(matchers) => {
            for matcher in matchers {
                visit(matcher, values, expensive);
            }
        }
    }
}

/// A value without wildcards, or with one trailing `*` only (a prefix: a short walk of the dictionary).
fn is_prefix_or_plain(value: &str) -> bool {
    let body = value.strip_suffix('*').unwrap_or(value);
    !body.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicomweb_index::Level;

    fn filter(matcher: Matcher) -> Filter {
        Filter {
            level: Level::Study,
            tag: 0x0010_0010,
            matcher,
            or_empty: false,
        }
    }

    #[test]
    fn exact_values_ranges_and_prefixes_are_cheap_inner_wildcards_fuzzy_and_many_values_are_not() {
        let cheap = [
            Matcher::Exact(vec!["1.2.3".into()]),
            Matcher::Wildcard(vec!["ABC*".into()]),
            Matcher::PersonName {
                values: vec!["doe*".into()],
                fuzzy: false,
            },
            Matcher::Range {
                lower: Some("20240101".into()),
                upper: None,
            },
        ];
        for matcher in cheap {
            assert!(!is_expensive(&[filter(matcher.clone())]), "{matcher:?}");
        }
        let expensive = [
            Matcher::Wildcard(vec!["*ABC".into()]),
            Matcher::Wildcard(vec!["A?C".into()]),
            Matcher::PersonName {
                values: vec!["doe".into()],
                fuzzy: true,
            },
            Matcher::Exact((0..9).map(|i| i.to_string()).collect()),
        ];
        for matcher in expensive {
            assert!(is_expensive(&[filter(matcher.clone())]), "{matcher:?}");
        }
    }

    /// Starts a search with `filter` whose index work runs until `release` is sent; returns once it runs.
    async fn occupy(
        lanes: &Arc<SearchLanes>,
        filter: &Filter,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<()>>,
    ) {
        let (started, running) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (lanes, filter) = (lanes.clone(), filter.clone());
        let blocker = tokio::spawn(async move {
            lanes
                .run(&[filter], move || {
                    let _ = started.send(());
                    let _ = released.recv();
                })
                .await
        });
        running.await.unwrap();
        (release, blocker)
    }

    #[tokio::test]
    async fn cheap_searches_do_not_wait_behind_expensive_ones() {
        let lanes = Arc::new(SearchLanes::new(4, 1, QUEUE_BUDGET, RUN_BUDGET));
        let slow = filter(Matcher::Wildcard(vec!["*x*".into()]));
        let (release, blocker) = occupy(&lanes, &slow).await;
        // The expensive lane is full; a cheap search runs at once.
        let cheap = filter(Matcher::Exact(vec!["1.2".into()]));
        let answer = tokio::time::timeout(Duration::from_secs(2), lanes.run(&[cheap], || 7))
            .await
            .expect("a cheap search is not queued behind an expensive one");
        assert_eq!(answer.unwrap(), 7);
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_expensive_search_that_cannot_get_a_permit_in_time_is_a_503() {
        let short = Duration::from_millis(200);
        let lanes = Arc::new(SearchLanes::new(4, 1, short, RUN_BUDGET));
        let slow = filter(Matcher::Wildcard(vec!["*x*".into()]));
        let (release, blocker) = occupy(&lanes, &slow).await;
        let refused = lanes.run(&[slow], || ()).await;
        assert!(
            matches!(&refused, Err(ServiceError::Unavailable(m)) if m.contains("expensive")),
            "{refused:?}"
        );
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn index_work_past_the_run_budget_is_a_503_and_keeps_its_permit_until_it_ends() {
        let budget = Duration::from_millis(200);
        let lanes = Arc::new(SearchLanes::new(4, 1, budget, budget));
        let slow = filter(Matcher::Wildcard(vec!["*x*".into()]));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let given_up = lanes
            .run(std::slice::from_ref(&slow), move || {
                let _ = released.recv();
            })
            .await;
        assert!(
            matches!(&given_up, Err(ServiceError::Unavailable(m)) if m.contains("longer than")),
            "{given_up:?}"
        );
        // Still running: the lane stays full until it ends.
        assert!(lanes.run(std::slice::from_ref(&slow), || ()).await.is_err());
        release.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(lanes.run(&[slow], || ()).await.is_ok());
    }
}
