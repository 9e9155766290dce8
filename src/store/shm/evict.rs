//! Eviction: CLOCK over a shard's head slots when a put needs room, and the per-vhost count
//! of what it evicted.

use std::sync::atomic::Ordering::Relaxed;

use super::layout::*;
use super::shard::Shard;
use super::ShmStore;

impl Shard<'_> {
    /// CLOCK over the slots handed out so far: evicts unreferenced heads (clearing reference
    /// bits on the way) until `need` slots are free. Returns evictions per vhost via `evicted`,
    /// false on an inconsistency.
    pub(super) fn make_room(&self, need: u32, evicted: &mut Vec<usize>) -> bool {
        let hwm = self.u32_at(H_HWM);
        let mut hand = self.u32_at(H_HAND);
        let mut budget = 2 * u64::from(hwm) + 2;
        while self.free_slots() < need {
            if budget == 0 || hwm == 0 {
                return false;
            }
            budget -= 1;
            if hand >= hwm {
                hand = 0;
            }
            let r = hand + 1;
            let s = self.slot(r);
            if self.u8_at(s + S_KIND) == KIND_HEAD {
                if self.u8_at(s + S_REF) != 0 {
                    self.set_u8(s + S_REF, 0);
                } else {
                    let vhost = self.store.vhost_index(self.u32_at(s + S_VHOST));
                    if !self.drop_entry(r) {
                        return false;
                    }
                    evicted.push(vhost);
                }
            }
            hand += 1;
        }
        self.set_u32(H_HAND, hand);
        true
    }
}

impl ShmStore {
    pub(super) fn count_evictions(&self, evicted: &[usize]) {
        for &v in evicted {
            self.atomic(self.geo.usage_off(v)).fetch_add(1, Relaxed);
        }
    }
}
