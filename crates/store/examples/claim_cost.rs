//! What one claim from the workers' queue costs: queues `N` runs (default 1,000) in a fresh
//! store file, then claims them all one by one (the `UPDATE … RETURNING` a worker runs, plus
//! reading the claimed row) and prints the mean and the median time per claim. Run by
//! `cargo xtask bench-workers`.

use std::time::Instant;

use actiscope_store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("runs.db"))?;
    for i in 0..count {
        store.queue_for_workers(&format!("run {i}"), "{}")?;
    }
    let mut micros = Vec::with_capacity(count);
    let started = Instant::now();
    loop {
        let one = Instant::now();
        if store.claim_for_worker("bench/1/1")?.is_none() {
            break;
        }
        micros.push(one.elapsed().as_secs_f64() * 1e6);
    }
    let total = started.elapsed().as_secs_f64();
    micros.sort_by(f64::total_cmp);
    println!(
        "claims: {} in {total:.3} s; mean {:.1} us, median {:.1} us per claim (SQLite, WAL, one file)",
        micros.len(),
        micros.iter().sum::<f64>() / micros.len().max(1) as f64,
        micros.get(micros.len() / 2).copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
