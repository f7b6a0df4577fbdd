//! The signal that stops a server: SIGTERM (what systemd, Kubernetes and `shardlet dev`
//! send) or SIGINT (Ctrl-C). Every binary passes [`shutdown_signal`] to its server, which
//! then stops accepting, lets requests in flight finish within its shutdown grace, and
//! flushes before the process exits 0.

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = interrupt => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = interrupt.await;
        }
    }
    // Nothing is logged here: `shardlet dev` waits on this with its stderr possibly
    // closed by whoever started it, and tracing-subscriber reports a failed write with
    // `eprintln!`, which panics on a closed stderr. Servers log their own stop.
}
