//! Locks shared by the service's threads.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`; a panic in another thread while it held the lock does not make the data unusable
/// (every critical section leaves it consistent), so the poison is ignored.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
