//! Two independent computations of a measure side by side on scoped threads, when the machine
//! has a second core and the work is large enough to pay for a thread; one after the other
//! otherwise; never more than two at once. (faer is built without rayon here, so its kernels
//! run on one thread each.)

use std::cell::Cell;
use std::sync::OnceLock;

/// Work, in multiply-adds, below which a second thread costs more than it saves.
const PARALLEL_ABOVE: f64 = 4e6;

/// Whether [`join`] would take a second thread for `work` here and now.
pub(super) fn pays(work: f64) -> bool {
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
    cores >= 2 && work >= PARALLEL_ABOVE && !INSIDE.get()
}

/// Runs `a` and `b`, on two threads when `work` (multiply-adds of both together) is large.
pub(super) fn join<A: Send, B: Send>(
    work: f64,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if !pays(work) {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let second = scope.spawn(|| {
            INSIDE.set(true);
            b()
        });
        INSIDE.set(true);
        let first = a();
        INSIDE.set(false);
        match second.join() {
            Ok(second) => (first, second),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

thread_local! {
    /// Set on both threads of a [`join`] while it runs: a join inside one (a grid's halves
    /// each comparing large matrices) runs its two parts in turn instead of taking a third
    /// and fourth thread on two cores.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}
