//! Wall-clock time for the shell (the pure modules take `now_ms` as an argument).

/// Milliseconds since the Unix epoch; 0 if the clock reads before it.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
