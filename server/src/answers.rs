//! Answers computed off the async workers and cached: the lenses and the stored-data routes
//! hand their work to [`cached`] or [`blocking`], which run it on the blocking pool under one
//! of a core-count of permits and keep the JSON per (run, epoch, parameters).
//!
//! A request dropped while it waits for a permit (a user scrubbing past an epoch) never runs
//! its work; one that started keeps its permit until it is done, so at most one computation
//! per core runs at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use actiscope_protocol::mapper::MapperGraph;
use bytes::Bytes;

use crate::hub::HubError;

/// Cached answers kept at most.
const CACHE_ENTRIES: usize = 512;

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
}

impl AnswerError {
    /// The error for an epoch that is not stored.
    pub fn no_epoch(run_id: i64, epoch: u32) -> Self {
        Self::NotFound(format!("run {run_id} has no stored epoch {epoch}"))
    }
}

/// Answers kept per (run, epoch, parameters), oldest evicted first, and the permits that
/// bound how many are computed at once.
pub struct AnswerCache {
    inner: Mutex<CacheInner>,
    /// One per core: a computation starts only with a permit, so requests beyond that wait,
    /// and a request whose client gave up while waiting never starts its work.
    workers: Arc<tokio::sync::Semaphore>,
}

impl Default for AnswerCache {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_permits(cores)
    }
}

#[derive(Default)]
struct CacheInner {
    answers: HashMap<String, Bytes>,
    mappers: HashMap<String, Arc<MapperGraph>>,
    order: VecDeque<String>,
}

impl CacheInner {
    fn remember(&mut self, key: String) {
        self.order.push_back(key);
        while self.order.len() > CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
                self.mappers.remove(&old);
            }
        }
    }
}

impl AnswerCache {
    /// A cache whose computations share `permits` permits.
    pub fn with_permits(permits: usize) -> Self {
        Self {
            inner: Mutex::default(),
            workers: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
        }
    }

    fn answer(&self, key: &str) -> Option<Bytes> {
        self.inner.lock().ok()?.answers.get(key).cloned()
    }

    fn put_answer(&self, key: String, value: Bytes) {
        if let Ok(mut inner) = self.inner.lock()
            && inner.answers.insert(key.clone(), value).is_none()
        {
            inner.remember(key);
        }
    }

    /// The mapper graph cached under `key` (mapper identities are carried from one epoch's
    /// graph to the next, so the graphs themselves are kept beside their JSON).
    pub(crate) fn mapper(&self, key: &str) -> Option<Arc<MapperGraph>> {
        self.inner.lock().ok()?.mappers.get(key).cloned()
    }

    /// Keeps `graph` under `key`.
    pub(crate) fn put_mapper(&self, key: String, graph: Arc<MapperGraph>) {
        if let Ok(mut inner) = self.inner.lock()
            && inner.mappers.insert(key.clone(), graph).is_none()
        {
            inner.remember(key);
        }
    }

    /// Forgets everything about `run_id` (after it is deleted).
    pub fn forget_run(&self, run_id: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            let prefix = format!("{run_id}/");
            inner.answers.retain(|k, _| !k.starts_with(&prefix));
            inner.mappers.retain(|k, _| !k.starts_with(&prefix));
            inner.order.retain(|k| !k.starts_with(&prefix));
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
    let permit = Arc::clone(&cache.workers)
        .acquire_owned()
        .await
        .map_err(|e| AnswerError::Worker(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
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
    if let Some(hit) = cache.answer(&key) {
        return Ok(hit);
    }
    let answer = blocking(cache, work).await?;
    cache.put_answer(key, answer.clone());
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

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
