//! Single-flight: concurrent identical requests share one collection. The
//! first caller spawns the work; callers arriving before it finishes await
//! the same result; the entry is removed when the work ends (even if it
//! panics), so nothing is kept between requests.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared};

use super::error::{Result, StatsError};

type Flight<V> = Shared<BoxFuture<'static, Option<V>>>;
type Flights<K, V> = Arc<Mutex<HashMap<K, (u64, Flight<V>)>>>;

/// Shares in-flight work by key.
pub struct SingleFlight<K, V> {
    flights: Flights<K, V>,
    next_id: AtomicU64,
}

impl<K, V> std::fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").finish_non_exhaustive()
    }
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(0),
        }
    }
}

/// Removes its flight from the map when the work ends or unwinds.
struct Landing<K: Hash + Eq, V> {
    flights: Flights<K, V>,
    key: Option<K>,
    id: u64,
}

impl<K: Hash + Eq, V> Drop for Landing<K, V> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(&key).is_some_and(|(id, _)| *id == self.id) {
            flights.remove(&key);
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `work` for `key`, or joins the run already in flight. The work
    /// runs in its own task, so it finishes even if every caller gives up.
    pub async fn run<F>(&self, key: K, work: F) -> Result<V>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&key) {
                Some((_, flight)) => flight.clone(),
                None => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let landing = Landing {
                        flights: Arc::clone(&self.flights),
                        key: Some(key.clone()),
                        id,
                    };
                    let task = tokio::spawn(async move {
                        let _landing = landing;
                        work.await
                    });
                    let flight = async move { task.await.ok() }.boxed().shared();
                    flights.insert(key, (id, flight.clone()));
                    flight
                }
            }
        };
        flight.await.ok_or(StatsError::Collection)
    }

    /// How many runs are in flight.
    pub fn in_flight(&self) -> usize {
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights = Arc::new(SingleFlight::<u32, usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let calls = (0..10).map(|_| {
            let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
            async move {
                flights
                    .run(1, async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            }
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| *r.as_ref().unwrap() == 1));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0, "nothing kept after the run");
        // A later call runs again.
        assert_eq!(flights.run(1, async { 7 }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn different_keys_run_separately() {
        let flights = SingleFlight::<u32, u32>::default();
        let (a, b) = tokio::join!(flights.run(1, async { 1 }), flights.run(2, async { 2 }));
        assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
    }

    fn boom() -> u32 {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_run_is_an_error_and_is_not_kept() {
        let flights = SingleFlight::<u32, u32>::default();
        let err = flights.run(1, async { boom() }).await.unwrap_err();
        assert!(matches!(err, StatsError::Collection));
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(flights.run(1, async { 3 }).await.unwrap(), 3);
    }
}
