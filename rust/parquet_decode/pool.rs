//! Byte buffers for decoded columns, given back once their user is done with them and handed
//! out again for the next batches.
//!
//! A batch's columns are a few MB of fresh memory. Freed, the allocator gives such blocks
//! back to the system and the next batch faults them in again, page by page, and zeroes them:
//! a fifth of the decoding's CPU (50M rows decoded in 1.35 CPU-s with the memory kept against
//! 1.75 without, on the benchmark extract). Reused, they stay resident.

use std::sync::Mutex;

/// Free buffers, kept up to [`BufferPool::MAX_FREE`] (the buffers of the batches a run has in
/// flight at once: a handful of batches of a few columns each).
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// Free buffers kept at most; more are freed.
    pub const MAX_FREE: usize = 256;

    /// A buffer with room for at least `capacity` bytes: the smallest free one that is large
    /// enough (so that a validity bitmap does not take a column's values buffer), else a new
    /// one. A free buffer keeps the bytes it had, for its next user to write over (zeroing
    /// them cost more than the decoding that follows; see `column::ColumnOut`).
    #[must_use]
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => free.swap_remove(i),
            None => Vec::with_capacity(capacity),
        }
    }

    /// Give a buffer back, as it is, for a later [`BufferPool::take`].
    pub fn give(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.len() < Self::MAX_FREE {
            free.push(buffer);
        }
    }

    /// Free buffers held now.
    #[must_use]
    pub fn free_buffers(&self) -> usize {
        self.free.lock().map_or(0, |f| f.len())
    }
}

#[cfg(test)]
mod tests {
    use super::BufferPool;

    #[test]
    fn reuses_a_large_enough_buffer_and_bounds_what_it_keeps() {
        let pool = BufferPool::default();
        let mut a = pool.take(1000);
        a.extend_from_slice(&[7; 1000]);
        let at = a.as_ptr();
        pool.give(a);
        pool.give(Vec::with_capacity(10));
        pool.give(Vec::new()); // nothing to keep
        assert_eq!(pool.free_buffers(), 2);
        pool.give(Vec::with_capacity(5000));
        let b = pool.take(900); // the smallest large enough
        assert_eq!(b.as_ptr(), at);
        assert_eq!(b.len(), 1000); // its bytes kept, to be written over
        let c = pool.take(9000); // none large enough: a new one
        assert!(c.capacity() >= 9000);
        assert_eq!(pool.free_buffers(), 2);
        for _ in 0..BufferPool::MAX_FREE + 10 {
            pool.give(Vec::with_capacity(1));
        }
        assert_eq!(pool.free_buffers(), BufferPool::MAX_FREE);
    }
}
