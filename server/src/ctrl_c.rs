//! Ctrl-C in `actiscope train` and `actiscope import`: the first press asks to stop after the
//! epoch in flight (every stored epoch is kept), a second one aborts at once (exit 130).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

/// Installs the handler on a thread of its own; the flag it returns turns true on the first
/// Ctrl-C.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = Arc::clone(&stop);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nCtrl-C: stopping after the epoch in flight (press again to abort)");
            handler_stop.store(true, Ordering::SeqCst);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    Ok(stop)
}
