//! One request at a time per upload, and the policy for a stale writer.
//!
//! Policy: a request for an upload (HEAD, PATCH, DELETE, or an idempotent creation returning
//! it) first *interrupts* a PATCH still streaming into that upload, then waits for the lock.
//! The interrupted PATCH stops reading its body, keeps and counts the bytes it already
//! appended (or, with a checksum, discards its unverified chunk), records the new offset,
//! answers 409 and releases the lock. So a client that lost its connection and asks HEAD
//! gets the true offset at once instead of waiting for a half-open connection to time out;
//! no acknowledged byte is ever lost; and since the lock is the only one a request waits on
//! while holding nothing else, there is no lock-order cycle and no deadlock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedMutexGuard, watch};

#[derive(Debug)]
struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Bumped by every request that wants the upload; a writer watches it.
    interrupt: watch::Sender<u64>,
}

/// The per-upload locks of the server.
#[derive(Debug, Default)]
pub struct UploadLocks {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// Held while a request works on an upload.
#[derive(Debug)]
pub struct UploadGuard {
    locks: Arc<UploadLocks>,
    id: String,
    slot: Arc<Slot>,
    interrupted: watch::Receiver<u64>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl UploadLocks {
    /// Interrupts the current writer of `id`, if any, then waits for the upload's lock.
    pub async fn acquire(self: &Arc<Self>, id: &str) -> UploadGuard {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .entry(id.to_string())
                .or_insert_with(|| {
                    Arc::new(Slot {
                        lock: Arc::new(tokio::sync::Mutex::new(())),
                        interrupt: watch::channel(0).0,
                    })
                })
                .clone()
        };
        slot.interrupt.send_modify(|g| *g = g.wrapping_add(1));
        // Subscribed after our own bump, so only later requests count as interrupting us.
        let interrupted = slot.interrupt.subscribe();
        let guard = slot.lock.clone().lock_owned().await;
        UploadGuard {
            locks: self.clone(),
            id: id.to_string(),
            slot,
            interrupted,
            _guard: Some(guard),
        }
    }
}

impl UploadLocks {
    /// The lock of `id` if nobody holds it, without interrupting anyone (for the expiry
    /// sweeper, which must not cut a long upload that is making progress).
    pub fn try_acquire(self: &Arc<Self>, id: &str) -> Option<UploadGuard> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .entry(id.to_string())
                .or_insert_with(|| {
                    Arc::new(Slot {
                        lock: Arc::new(tokio::sync::Mutex::new(())),
                        interrupt: watch::channel(0).0,
                    })
                })
                .clone()
        };
        let guard = slot.lock.clone().try_lock_owned().ok();
        let interrupted = slot.interrupt.subscribe();
        // Built even when the lock is busy so that Drop forgets an unused slot.
        let upload = UploadGuard {
            locks: self.clone(),
            id: id.to_string(),
            slot,
            interrupted,
            _guard: guard,
        };
        upload._guard.is_some().then_some(upload)
    }
}

impl UploadGuard {
    /// Resolves when a newer request for the same upload wants it.
    pub async fn interrupted(&mut self) {
        // The sender lives in `self.slot`, so `changed` cannot fail while we hold it; if it
        // somehow did, never resolving is the safe reading (no interruption).
        if self.interrupted.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        // Release the lock before deciding whether the slot is still needed.
        self._guard.take();
        let mut slots = self.locks.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Two references (the map's and ours) mean nobody else waits: forget the slot so the
        // map does not grow with every upload ever seen.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.id);
        }
    }
}
