//! Warm instances of one plugin build, for plugins that opt in with `[limits] reuse = N`.
//!
//! After a request an instance may be parked for the same caller: the same user, or anonymous
//! requests alone. It is taken again only by a request of that caller, so no user's request ever
//! runs in an instance that served another caller. An instance serves at most `reuse` requests,
//! is dropped after `idle` unused, after any failed call, and with its build (a reload drops the
//! build's parked instances with it). How many instances may idle across all plugins is bounded,
//! so warm instances never take the pool's slots from fresh ones.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::CapabilitySet;
use super::state::InstanceState;
use crate::contract::Feature;
use crate::telemetry::metrics::PluginMeters;

/// Who an instance serves: a user's id, or `None` for anonymous requests.
pub type Caller = Option<String>;

/// The parked instances of one plugin build. Cheap to clone; a build that does not opt in keeps none.
pub struct WarmInstances<G: CapabilitySet> {
    inner: Option<Arc<Parking<G>>>,
}

impl<G: CapabilitySet> Clone for WarmInstances<G> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

struct Parking<G: CapabilitySet> {
    reuse: u32,
    idle: Duration,
    budget: IdleBudget,
    meters: PluginMeters,
    /// Oldest parked first.
    parked: Mutex<Vec<Parked<G>>>,
}

/// An instance between two calls, with what it has served.
pub struct WarmInstance<G: CapabilitySet> {
    pub(super) caller: Caller,
    pub(super) store: Store<InstanceState<G>>,
    pub(super) feature: Feature,
    /// Calls it has served.
    pub(super) served: u32,
}

struct Parked<G: CapabilitySet> {
    instance: WarmInstance<G>,
    since: Instant,
    _place: IdlePlace,
}

/// How many instances may idle across every plugin of a runtime: a share of the instance pool.
#[derive(Clone)]
pub struct IdleBudget {
    idle: Arc<AtomicUsize>,
    capacity: usize,
}

/// One place of the idle budget, given back when dropped.
struct IdlePlace(Arc<AtomicUsize>);

impl Drop for IdlePlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl IdleBudget {
    pub fn new(capacity: usize) -> Self {
        Self { idle: Arc::default(), capacity }
    }

    fn place(&self) -> Option<IdlePlace> {
        self.idle
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |idle| (idle < self.capacity).then_some(idle + 1))
            .ok()
            .map(|_| IdlePlace(self.idle.clone()))
    }

    /// Instances idling now, across every plugin.
    pub fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }
}

impl<G: CapabilitySet> WarmInstances<G> {
    /// Keeps none: every call gets a fresh instance.
    pub fn none() -> Self {
        Self { inner: None }
    }

    /// Parks instances for up to `reuse` calls each, dropping them after `idle` unused; with
    /// `reuse` of 1, keeps none. Inside a tokio runtime, a sweeper drops idle ones on time.
    pub fn new(reuse: u32, idle: Duration, budget: IdleBudget, meters: PluginMeters) -> Self {
        if reuse <= 1 {
            return Self::none();
        }
        let parking = Arc::new(Parking { reuse, idle, budget, meters, parked: Mutex::default() });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&parking)));
        }
        Self { inner: Some(parking) }
    }

    /// Whether instances are kept between calls.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The most recently parked instance that served `caller`, if one is still fresh.
    pub(super) fn take(&self, caller: &Caller) -> Option<WarmInstance<G>> {
        let parking = self.inner.as_ref()?;
        let (taken, expired) = {
            let mut parked = parking.parked.lock().expect("parked instances");
            let expired = parking.expire(&mut parked);
            let at = parked.iter().rposition(|p| p.instance.caller == *caller);
            (at.map(|at| parked.remove(at)), expired)
        };
        drop(expired);
        let taken = taken?;
        parking.meters.warm_parked(-1);
        Some(taken.instance)
    }

    /// Parks `instance` after a call that succeeded, unless it has served its share or the idle
    /// budget is spent (then it is dropped).
    pub(super) fn park(&self, instance: WarmInstance<G>) {
        let Some(parking) = &self.inner else { return };
        if instance.served >= parking.reuse {
            return;
        }
        let Some(place) = parking.budget.place() else { return };
        let parked = Parked { instance, since: Instant::now(), _place: place };
        parking.parked.lock().expect("parked instances").push(parked);
        parking.meters.warm_parked(1);
    }

    /// Drops every parked instance (the build is being retired).
    pub fn clear(&self) {
        if let Some(parking) = &self.inner {
            let dropped = std::mem::take(&mut *parking.parked.lock().expect("parked instances"));
            parking.meters.warm_parked(-(dropped.len() as i64));
        }
    }

    /// Instances parked now.
    pub fn parked(&self) -> usize {
        self.inner.as_ref().map_or(0, |parking| parking.parked.lock().expect("parked instances").len())
    }
}

impl<G: CapabilitySet> Parking<G> {
    /// Removes the instances idle for longer than `idle`; the caller drops them outside the lock.
    fn expire(&self, parked: &mut Vec<Parked<G>>) -> Vec<Parked<G>> {
        let fresh_from = parked.partition_point(|p| p.since.elapsed() >= self.idle);
        let expired: Vec<_> = parked.drain(..fresh_from).collect();
        self.meters.warm_parked(-(expired.len() as i64));
        expired
    }
}

impl<G: CapabilitySet> Drop for Parking<G> {
    fn drop(&mut self) {
        let parked = self.parked.get_mut().map(|parked| parked.len()).unwrap_or_default();
        self.meters.warm_parked(-(parked as i64));
    }
}

/// Drops idle instances on time for as long as their build is loaded.
async fn sweep<G: CapabilitySet>(parking: Weak<Parking<G>>) {
    let period = parking.upgrade().map(|p| (p.idle / 2).max(Duration::from_millis(50)));
    let Some(period) = period else { return };
    loop {
        tokio::time::sleep(period).await;
        let Some(parking) = parking.upgrade() else { return };
        let expired = parking.expire(&mut parking.parked.lock().expect("parked instances"));
        drop(expired);
    }
}
