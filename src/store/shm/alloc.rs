//! Slots within a shard: the free stack and the never-used ones above the high-water mark,
//! unlinking an entry and freeing its chain, and reading a chain back. Called under the shard's
//! lock; a `false` or `None` answer means the shard is inconsistent and the caller resets it.

use std::sync::atomic::Ordering::Relaxed;

use super::layout::*;
use super::shard::Shard;

impl Shard<'_> {
    /// Unlinks head slot `r` from its bucket and frees its chain, uncounting it. False when the
    /// structure is inconsistent (the caller resets the shard).
    pub(super) fn drop_entry(&self, r: u32) -> bool {
        let s = self.slot(r);
        let h = self.u64_at(s + S_HASH);
        let b = self.bucket_off(h);
        let next = self.u32_at(s + S_CHAIN);
        let mut at = self.u32_at(b);
        if at == r {
            self.set_u32(b, next);
        } else {
            let mut steps = 0;
            loop {
                if !self.valid(at) || steps > self.geo().slots {
                    return false;
                }
                let sa = self.slot(at);
                let n = self.u32_at(sa + S_CHAIN);
                if n == r {
                    self.set_u32(sa + S_CHAIN, next);
                    break;
                }
                at = n;
                steps += 1;
            }
        }
        let chunks = self.u8_at(s + S_CHUNKS) as u32;
        let vhost = self.store.vhost_index(self.u32_at(s + S_VHOST));
        // Free the chain: head first, then continuations.
        let mut cur = r;
        for n in 0..chunks.max(1) {
            if !self.valid(cur) || cur > self.u32_at(H_HWM) {
                return false;
            }
            let cs = self.slot(cur);
            let want = if n == 0 { KIND_HEAD } else { KIND_CONT };
            if self.u8_at(cs + S_KIND) != want {
                return false;
            }
            let following = self.u32_at(cs + S_NEXT);
            self.push_free(cur);
            cur = following;
        }
        let entries = self.row(vhost, 0);
        entries.store(entries.load(Relaxed).saturating_sub(1), Relaxed);
        let bytes = self.row(vhost, 1);
        let cost = u64::from(chunks.max(1)) * SLOT as u64;
        bytes.store(bytes.load(Relaxed).saturating_sub(cost), Relaxed);
        true
    }

    fn push_free(&self, r: u32) {
        let s = self.slot(r);
        self.set_u8(s + S_KIND, KIND_FREE);
        self.set_u32(s + S_NEXT, self.u32_at(H_FREE));
        self.set_u32(H_FREE, r);
        self.set_u32(H_FREE_COUNT, self.u32_at(H_FREE_COUNT).saturating_add(1));
    }

    /// A free slot: a freed one, else the next never-used one. `None` on an inconsistency.
    pub(super) fn pop_free(&self) -> Option<u32> {
        let r = self.u32_at(H_FREE);
        if r == NONE {
            let hwm = self.u32_at(H_HWM);
            if hwm >= self.geo().slots || self.u32_at(H_FREE_COUNT) != 0 {
                return None;
            }
            self.set_u32(H_HWM, hwm + 1);
            let r = hwm + 1;
            self.set_u8(self.slot(r) + S_KIND, KIND_CONT);
            return Some(r);
        }
        if !self.valid(r)
            || r > self.u32_at(H_HWM)
            || self.u8_at(self.slot(r) + S_KIND) != KIND_FREE
            || self.u32_at(H_FREE_COUNT) == 0
        {
            return None;
        }
        self.set_u32(H_FREE, self.u32_at(self.slot(r) + S_NEXT));
        // Marked in use at once, so a free stack looped by garbage cannot hand it out twice.
        self.set_u8(self.slot(r) + S_KIND, KIND_CONT);
        self.set_u32(H_FREE_COUNT, self.u32_at(H_FREE_COUNT) - 1);
        Some(r)
    }

    /// Copies the chain of head slot `r` out. `None` when the chain is inconsistent.
    pub(super) fn read_value(&self, r: u32) -> Option<Vec<u8>> {
        let s = self.slot(r);
        let len = self.u32_at(s + S_LEN) as usize;
        let chunks = self.u8_at(s + S_CHUNKS) as usize;
        if chunks != chunks_for(len) {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        let first = len.min(HEAD_PAYLOAD);
        // SAFETY: HEAD_HDR + first <= SLOT, inside the slot.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(self.ptr(s + HEAD_HDR), first) });
        let mut cur = self.u32_at(s + S_NEXT);
        while out.len() < len {
            if !self.valid(cur) {
                return None;
            }
            let cs = self.slot(cur);
            if self.u8_at(cs + S_KIND) != KIND_CONT {
                return None;
            }
            let n = (len - out.len()).min(CONT_PAYLOAD);
            // SAFETY: CONT_HDR + n <= SLOT, inside the slot.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(self.ptr(cs + CONT_HDR), n)
            });
            cur = self.u32_at(cs + S_NEXT);
        }
        Some(out)
    }
}
