//! Answers computed off the async workers and cached: the lenses and the stored-data routes
//! hand their work to [`cached`] or [`blocking`], which run it on the blocking pool under one
//! of a core-count of permits and keep the JSON per (run, epoch, parameters).
//!
//! A request dropped while it waits for a permit (a user scrubbing past an epoch) never runs
//! its work; one that started keeps its permits until it is done, or until it gives back
//! those it turned out not to need ([`Permits::keep_one`]: an NMF fit placed on a GPU). Work
//! that runs on several threads (NMF, similarity) takes one permit per thread, so the lenses
//! together never run more threads than there are cores. The cache holds at most [`CACHE_BYTES`] of answers.
//! It also holds where NMF fits run ([`NmfPlacement`]: the cores or a GPU), the other
//! resource answers are computed with.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use actiscope_protocol::mapper::MapperGraph;
use actiscope_train::nmf::NmfPlacement;
use bytes::Bytes;

use crate::hub::HubError;

/// Bytes of answers the cache keeps at most (JSON, and mapper graphs counted at their JSON's
/// size); the oldest go first.
pub const CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Why an answer could not be given.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The run or epoch is not stored.
    #[error("{0}")]
    NotFound(String),
    /// The parameters do not fit the data.
    #[error("{0}")]
    BadRequest(String),
    /// The request contradicts what is stored (e.g. comparing runs with different probes).
    #[error("{0}")]
    Conflict(String),
    /// Reading the store failed, or a stored blob is corrupt.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The worker thread failed.
    #[error("the analysis worker failed: {0}")]
    Worker(String),
    /// Part of the work is done and kept; asking again goes on from there (HTTP 202).
    #[error("{message}")]
    Pending {
        /// How far it got (for the mapper: the last epoch mapped).
        done: u32,
        /// Where it must get to.
        needed: u32,
        /// What was done, for people.
        message: String,
    },
}

impl AnswerError {
    /// The error for an epoch that is not stored.
    pub fn no_epoch(run_id: i64, epoch: u32) -> Self {
        Self::NotFound(format!("run {run_id} has no stored epoch {epoch}"))
    }
}

/// Answers kept per (run, epoch, parameters), oldest evicted first once they hold more than
/// their byte budget, and the permits that bound how many are computed at once.
pub struct AnswerCache {
    inner: Mutex<CacheInner>,
    /// One per core: a computation starts only with its permits, so requests beyond that
    /// wait, and a request whose client gave up while waiting never starts its work.
    workers: Arc<tokio::sync::Semaphore>,
    permits: usize,
    /// Where NMF fits run.
    nmf_placement: Arc<NmfPlacement>,
}

impl Default for AnswerCache {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_budget(cores, CACHE_BYTES)
    }
}

/// One cached answer: its JSON, and for mapper answers the graph it was made from.
struct Entry {
    json: Bytes,
    graph: Option<Arc<MapperGraph>>,
    /// What it counts against the budget.
    bytes: usize,
}

struct CacheInner {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
    bytes: usize,
    budget_bytes: usize,
}

impl CacheInner {
    fn put(&mut self, key: String, entry: Entry) {
        if entry.bytes > self.budget_bytes {
            return;
        }
        self.bytes += entry.bytes;
        match self.entries.insert(key.clone(), entry) {
            Some(old) => self.bytes = self.bytes.saturating_sub(old.bytes),
            None => self.order.push_back(key),
        }
        while self.bytes > self.budget_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&old) {
                self.bytes = self.bytes.saturating_sub(entry.bytes);
            }
        }
    }
}

impl AnswerCache {
    /// A cache whose computations share `permits` permits and whose answers hold at most
    /// `budget_bytes`.
    pub fn with_budget(permits: usize, budget_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(CacheInner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                budget_bytes,
            }),
            workers: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
            permits: permits.max(1),
            nmf_placement: Arc::new(NmfPlacement::default()),
        }
    }

    /// This cache with NMF fits placed by `placement` (the default: `auto`).
    #[must_use]
    pub fn with_nmf_placement(mut self, placement: NmfPlacement) -> Self {
        self.nmf_placement = Arc::new(placement);
        self
    }

    /// Where NMF fits run.
    pub fn nmf_placement(&self) -> Arc<NmfPlacement> {
        Arc::clone(&self.nmf_placement)
    }

    /// A cache whose computations share `permits` permits, with the default byte budget.
    pub fn with_permits(permits: usize) -> Self {
        Self::with_budget(permits, CACHE_BYTES)
    }

    /// Permits in all: the most threads the computations run at once.
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// Bytes the cached answers hold now.
    pub fn cached_bytes(&self) -> usize {
        self.inner.lock().map_or(0, |inner| inner.bytes)
    }

    fn answer(&self, key: &str) -> Option<Bytes> {
        Some(self.inner.lock().ok()?.entries.get(key)?.json.clone())
    }

    fn put_answer(&self, key: String, json: Bytes) {
        if let Ok(mut inner) = self.inner.lock() {
            // A mapper answer is kept with its graph already (the next epoch's identities are
            // carried from it): keep that entry.
            if inner.entries.get(&key).is_some_and(|e| e.graph.is_some()) {
                return;
            }
            let bytes = key.len() + json.len();
            inner.put(
                key,
                Entry {
                    json,
                    graph: None,
                    bytes,
                },
            );
        }
    }

    /// The mapper graph cached under `key` (mapper identities are carried from one epoch's
    /// graph to the next, so the graphs themselves are kept beside their JSON).
    pub(crate) fn mapper(&self, key: &str) -> Option<Arc<MapperGraph>> {
        self.inner.lock().ok()?.entries.get(key)?.graph.clone()
    }

    /// Keeps `graph` and its JSON under `key`, counted twice the JSON's size (the graph in
    /// memory is about as large as its JSON).
    pub(crate) fn put_mapper(&self, key: String, graph: Arc<MapperGraph>, json: Bytes) {
        if let Ok(mut inner) = self.inner.lock() {
            let bytes = key.len() + 2 * json.len();
            inner.put(
                key,
                Entry {
                    json,
                    graph: Some(graph),
                    bytes,
                },
            );
        }
    }

    /// Forgets everything about `run_id` (after it is deleted).
    pub fn forget_run(&self, run_id: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            let prefix = format!("{run_id}/");
            inner.entries.retain(|k, _| !k.starts_with(&prefix));
            inner.order.retain(|k| !k.starts_with(&prefix));
            inner.bytes = inner.entries.values().map(|e| e.bytes).sum();
        }
    }
}

/// `value` as JSON bytes.
pub fn json(value: &impl serde::Serialize) -> Result<Bytes, AnswerError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| AnswerError::Worker(e.to_string()))
}

/// Runs `work` on the blocking pool once one of `cache`'s permits is free; the permit is held
/// until the work is done, even if the caller stops waiting. Dropped before it gets a permit,
/// the future runs nothing.
pub async fn blocking<T: Send + 'static>(
    cache: &AnswerCache,
    work: impl FnOnce() -> Result<T, AnswerError> + Send + 'static,
) -> Result<T, AnswerError> {
    blocking_threads(cache, 1, work).await
}

/// [`blocking`] for work that runs on `threads` threads: it waits for that many permits
/// (at most all of them), so the lenses never run more threads than the cache has permits.
pub async fn blocking_threads<T: Send + 'static>(
    cache: &AnswerCache,
    threads: usize,
    work: impl FnOnce() -> Result<T, AnswerError> + Send + 'static,
) -> Result<T, AnswerError> {
    blocking_permits(cache, threads, |_| work()).await
}

/// The permits a computation holds while it runs.
#[derive(Debug)]
pub struct Permits(tokio::sync::OwnedSemaphorePermit);

impl Permits {
    /// Permits held.
    pub fn held(&self) -> usize {
        self.0.num_permits()
    }

    /// Gives back all but one permit, for work that turned out to need one thread (an NMF fit
    /// placed on a GPU): other answers may use the cores at once. The work must then run
    /// on one thread.
    pub fn keep_one(&mut self) {
        let extra = self.0.num_permits().saturating_sub(1);
        drop(self.0.split(extra));
    }
}

/// [`blocking_threads`] for work that may give permits back while it runs ([`Permits`]).
pub async fn blocking_permits<T: Send + 'static>(
    cache: &AnswerCache,
    threads: usize,
    work: impl FnOnce(&mut Permits) -> Result<T, AnswerError> + Send + 'static,
) -> Result<T, AnswerError> {
    let wanted = u32::try_from(threads.clamp(1, cache.permits)).unwrap_or(1);
    let permit = Arc::clone(&cache.workers)
        .acquire_many_owned(wanted)
        .await
        .map_err(|e| AnswerError::Worker(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let mut permits = Permits(permit);
        work(&mut permits)
    })
    .await
    .map_err(|e| AnswerError::Worker(e.to_string()))?
}

/// The cached answer under `key`, or else `work`'s, computed as [`blocking`] computes and then
/// cached under `key`.
pub async fn cached(
    cache: &AnswerCache,
    key: String,
    work: impl FnOnce() -> Result<Bytes, AnswerError> + Send + 'static,
) -> Result<Bytes, AnswerError> {
    cached_threads(cache, key, 1, work).await
}

/// [`cached`] for work that runs on `threads` threads (see [`blocking_threads`]).
pub async fn cached_threads(
    cache: &AnswerCache,
    key: String,
    threads: usize,
    work: impl FnOnce() -> Result<Bytes, AnswerError> + Send + 'static,
) -> Result<Bytes, AnswerError> {
    cached_permits(cache, key, threads, |_| work()).await
}

/// [`cached_threads`] for work that may give permits back while it runs ([`Permits`]).
pub async fn cached_permits(
    cache: &AnswerCache,
    key: String,
    threads: usize,
    work: impl FnOnce(&mut Permits) -> Result<Bytes, AnswerError> + Send + 'static,
) -> Result<Bytes, AnswerError> {
    if let Some(hit) = cache.answer(&key) {
        return Ok(hit);
    }
    let answer = blocking_permits(cache, threads, work).await?;
    cache.put_answer(key, answer.clone());
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_that_keeps_one_permit_gives_the_others_back_at_once() {
        let cache = Arc::new(AnswerCache::with_permits(4));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let held = Arc::clone(&cache);
        let running = tokio::spawn(async move {
            blocking_permits(&held, 4, move |permits| {
                assert_eq!(permits.held(), 4);
                permits.keep_one();
                assert_eq!(permits.held(), 1);
                let _ = release.send(());
                // Runs on until the test has checked the cache's permits.
                let _ = finished.recv_timeout(Duration::from_secs(10));
                Ok(())
            })
            .await
        });
        released.await.unwrap();
        // Three permits are free while the work still runs: three one-thread answers fit.
        assert_eq!(cache.workers.available_permits(), 3);
        done.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert_eq!(cache.workers.available_permits(), 4);
    }

    #[tokio::test]
    async fn work_that_waited_for_a_permit_never_runs_once_its_request_is_gone() {
        let cache = AnswerCache::with_permits(1);
        let busy = Arc::clone(&cache.workers).acquire_owned().await.unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let waiting = blocking(&cache, move || {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        // The client gives up while the only permit is taken.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiting)
                .await
                .is_err()
        );
        drop(busy);
        // The next request gets the permit and runs; the abandoned one never does.
        assert_eq!(blocking(&cache, || Ok(7)).await.unwrap(), 7);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn started_work_keeps_its_permit_until_it_is_done() {
        let cache = AnswerCache::with_permits(1);
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let started = blocking(&cache, move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        // The client gives up after the work started.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), started)
                .await
                .is_err()
        );
        assert_eq!(cache.workers.available_permits(), 0, "still computing");
        let next = blocking(&cache, || Ok(())).await;
        assert!(next.is_ok());
        assert!(done.load(Ordering::SeqCst), "the next one waited for it");
    }

    #[tokio::test]
    async fn work_on_several_threads_takes_a_permit_for_each() {
        let cache = Arc::new(AnswerCache::with_permits(2));
        let one = Arc::clone(&cache.workers).acquire_owned().await.unwrap();
        // Two threads' worth cannot start while one permit is taken.
        let two_threads = blocking_threads(&cache, 2, || Ok(()));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), two_threads)
                .await
                .is_err()
        );
        drop(one);
        // Asking for more threads than permits takes them all, and does not wait forever.
        let running = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&running);
        let watcher = Arc::clone(&cache);
        let result = blocking_threads(&cache, 16, move || {
            flag.store(true, Ordering::SeqCst);
            Ok(watcher.workers.available_permits())
        })
        .await;
        assert_eq!(result.unwrap(), 0, "all permits held while it ran");
        assert!(running.load(Ordering::SeqCst));
        assert_eq!(cache.workers.available_permits(), 2);
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_byte_budget_oldest_out_first() {
        let cache = AnswerCache::with_budget(1, 1000);
        let answer = |byte: u8| Bytes::from(vec![byte; 290]);
        for (i, key) in ["1/1/a", "1/2/a", "1/3/a", "1/4/a"].into_iter().enumerate() {
            let byte = u8::try_from(i).unwrap();
            cached(&cache, key.to_owned(), move || Ok(answer(byte)))
                .await
                .unwrap();
            assert!(cache.cached_bytes() <= 1000, "{}", cache.cached_bytes());
        }
        // Three fit (3 x 295 bytes); the first went.
        assert_eq!(cache.cached_bytes(), 3 * 295);
        assert!(cache.answer("1/1/a").is_none());
        assert_eq!(cache.answer("1/4/a"), Some(answer(3)));
        // One answer larger than the whole budget is served, not kept.
        let huge = cached(&cache, "1/5/a".to_owned(), || {
            Ok(Bytes::from(vec![0; 5000]))
        })
        .await;
        assert_eq!(huge.unwrap().len(), 5000);
        assert!(cache.answer("1/5/a").is_none());
        assert_eq!(cache.cached_bytes(), 3 * 295);
        cache.forget_run(1);
        assert_eq!(cache.cached_bytes(), 0);
    }

    #[tokio::test]
    async fn a_mapper_answer_keeps_the_graph_the_next_epoch_is_carried_from() {
        let cache = Arc::new(AnswerCache::with_permits(1));
        let graph = Arc::new(MapperGraph {
            params: actiscope_protocol::mapper::MapperParams::default(),
            instance_count: 0,
            nodes: Vec::new(),
            edges: Vec::new(),
        });
        // As the mapper lens does: the work keeps the graph under the answer's own key, then
        // `cached` stores the answer.
        let worker = Arc::clone(&cache);
        let answer = cached(&cache, "1/2/mapper".to_owned(), move || {
            let json = Bytes::from_static(b"{}");
            worker.put_mapper("1/2/mapper".to_owned(), graph, json.clone());
            Ok(json)
        })
        .await;
        assert!(answer.is_ok());
        assert!(
            cache.mapper("1/2/mapper").is_some(),
            "storing the answer dropped the graph"
        );
    }

    #[tokio::test]
    async fn a_cached_answer_is_served_without_running_the_work_again() {
        let cache = AnswerCache::with_permits(1);
        let first = cached(&cache, "1/2/x".to_owned(), || Ok(Bytes::from_static(b"a"))).await;
        assert_eq!(first.unwrap(), Bytes::from_static(b"a"));
        let again = cached(&cache, "1/2/x".to_owned(), || {
            Err(AnswerError::Worker("recomputed".to_owned()))
        })
        .await;
        assert_eq!(again.unwrap(), Bytes::from_static(b"a"));
        cache.forget_run(1);
        let forgotten = cached(&cache, "1/2/x".to_owned(), || {
            Err(AnswerError::Worker("recomputed".to_owned()))
        })
        .await;
        assert!(
            forgotten.is_err(),
            "a forgotten run's answers are computed anew"
        );
    }
}
