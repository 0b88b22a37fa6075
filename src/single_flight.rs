//! One upstream call per key, however many requests wait for it: the key set
//! refresh (one key: the issuer) and introspection (key: the token's hash)
//! both go through [`SingleFlight`].
//!
//! A flight's result is shared only with the requests that joined while it
//! was in the air: the entry leaves the map the moment the call completes,
//! so a request that arrives later starts afresh (after looking at the
//! caches the call filled) and never receives a stored failure. An entry
//! whose every waiter was dropped mid-call (clients hanging up) leaves with
//! the last of them.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

pub(crate) struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// Runs `work` for `key`, or waits for the run already in flight for it
    /// and returns a clone of its result.
    pub(crate) async fn run<F, Fut>(&self, key: K, work: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let share = Share::join(self, key);
        share
            .cell()
            .get_or_init(|| async {
                let value = work().await;
                // Before the waiters wake: from here on, a new request starts
                // a new flight (after the caches this one filled).
                share.land();
                value
            })
            .await
            .clone()
    }

    /// Flights in the air (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One request's seat on a flight.
struct Share<'a, K: Hash + Eq + Clone, V: Clone> {
    owner: &'a SingleFlight<K, V>,
    key: K,
    /// Always `Some` until `drop`, which releases it under the lock.
    cell: Option<Arc<OnceCell<V>>>,
}

impl<'a, K: Hash + Eq + Clone, V: Clone> Share<'a, K, V> {
    fn join(owner: &'a SingleFlight<K, V>, key: K) -> Self {
        let cell = owner.lock().entry(key.clone()).or_default().clone();
        Share {
            owner,
            key,
            cell: Some(cell),
        }
    }

    fn cell(&self) -> &OnceCell<V> {
        self.cell
            .as_ref()
            .expect("a share holds its seat until dropped")
    }

    /// The call completed: take the flight off the board, so later requests
    /// do not get this result.
    fn land(&self) {
        let mut flights = self.owner.lock();
        if let Some(cell) = &self.cell
            && flights.get(&self.key).is_some_and(|c| Arc::ptr_eq(c, cell))
        {
            flights.remove(&self.key);
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for Share<'_, K, V> {
    fn drop(&mut self) {
        let flights = &mut self.owner.lock();
        let Some(cell) = self.cell.take() else {
            return;
        };
        // Seats are taken and given up only under this lock, and ours is
        // given up before the lock is released, so the count is exact: the
        // map's reference plus ours means nobody else waits. (Giving ours up
        // after the lock would let two seats dropped at once each see the
        // other, and leave the entry behind for good.)
        if flights
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &cell))
            && Arc::strong_count(&cell) <= 2
        {
            flights.remove(&self.key);
        }
        drop(cell);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waiters_share_one_call_and_late_comers_start_a_new_one() {
        let flights = Arc::new(SingleFlight::<u8, u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let run = |flights: Arc<SingleFlight<u8, u32>>, calls: Arc<AtomicUsize>| async move {
            flights
                .run(1, || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst) as u32;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    n
                })
                .await
        };
        let waiters: Vec<_> = (0..5)
            .map(|_| tokio::spawn(run(flights.clone(), calls.clone())))
            .collect();
        for w in waiters {
            assert_eq!(w.await.unwrap(), 0);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0, "the flight left when it landed");
        // A later request does not receive the stored result.
        assert_eq!(run(flights.clone(), calls.clone()).await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flight_everybody_abandoned_leaves_the_board() {
        let flights = Arc::new(SingleFlight::<u8, u32>::default());
        let f = flights.clone();
        let waiter = tokio::spawn(async move { f.run(7, std::future::pending::<u32>).await });
        tokio::task::yield_now().await;
        assert_eq!(flights.len(), 1);
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn seats_abandoned_at_once_on_two_threads_leave_nothing_behind() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let flights = Arc::new(SingleFlight::<u32, u32>::default());
            for key in 0..500 {
                let waiters: Vec<_> = (0..2)
                    .map(|_| {
                        let f = flights.clone();
                        tokio::spawn(async move { f.run(key, std::future::pending::<u32>).await })
                    })
                    .collect();
                while flights.len() == 0 {
                    tokio::task::yield_now().await;
                }
                for w in &waiters {
                    w.abort();
                }
                for w in waiters {
                    let _ = w.await;
                }
            }
            assert_eq!(flights.len(), 0, "abandoned flights leaked");
        });
    }
}
