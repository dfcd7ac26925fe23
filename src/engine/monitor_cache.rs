//! The engine's copy of the monitors, by balance, so a batch does not read and parse every touched
//! balance's monitors from storage again (with 10 monitors per balance, that read was the largest
//! single cost of a batch).
//!
//! The copy is right only while this engine is the store's one writer (SQLite: one process per
//! file). Where other processes write too (PostgreSQL), the cache is off and every batch reads the
//! monitors under its balance locks, as before.
//!
//! Invariant C1: a cached list equals what storage holds for that balance as of the last commit.
//! It holds because lists leave the cache for the length of a batch (`take`) and come back only
//! once that batch committed (`commit`); a batch that rolls back simply never returns them, so
//! they are read again the next time. A monitor command on a balance the batch did not touch
//! evicts that balance's list instead.

use crate::domain::monitor::Monitor;
use std::collections::{BTreeSet, HashMap};

/// Most balances plus monitors held (a monitor takes about half a KiB): past it, lists are evicted
/// at random down to three quarters, which bounds memory however many balances there are.
const CAPACITY: usize = 300_000;

pub struct MonitorCache {
    enabled: bool,
    by_balance: HashMap<String, Vec<Monitor>>,
    /// Balances plus monitors held, measured against `CAPACITY`.
    weight: usize,
}

fn weight(list: &[Monitor]) -> usize {
    1 + list.len()
}

impl MonitorCache {
    pub fn new(enabled: bool) -> Self {
        MonitorCache { enabled, by_balance: HashMap::new(), weight: 0 }
    }

    /// Removes and returns the cached list of `balance_id`; `None` if it must be read from storage.
    pub fn take(&mut self, balance_id: &str) -> Option<Vec<Monitor>> {
        let list = self.by_balance.remove(balance_id)?;
        self.weight -= weight(&list);
        Some(list)
    }

    /// Called after a batch committed: `lists` are the monitors of the balances it touched, as
    /// they stand after it; `evicted` are balances whose monitors changed without being loaded.
    pub fn commit(&mut self, lists: HashMap<String, Vec<Monitor>>, evicted: &BTreeSet<String>) {
        if !self.enabled {
            return;
        }
        for balance_id in evicted {
            self.take(balance_id);
        }
        for (balance_id, list) in lists {
            self.weight += weight(&list);
            if let Some(stale) = self.by_balance.insert(balance_id, list) {
                self.weight -= weight(&stale);
            }
        }
        if self.weight > CAPACITY {
            // A map's iteration order is arbitrary, so this evicts at random.
            let mut weight_now = self.weight;
            self.by_balance.retain(|_, list| {
                let keep = weight_now <= CAPACITY / 4 * 3;
                if !keep {
                    weight_now -= weight(list);
                }
                keep
            });
            self.weight = weight_now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::monitor::{Condition, State, Trigger};

    fn monitor(balance_id: &str) -> Monitor {
        Monitor {
            id: format!("mon_{balance_id}"),
            balance_id: balance_id.into(),
            condition: Condition::new("balance", ">", "0", None).expect("a valid condition"),
            description: String::new(),
            call_back_url: String::new(),
            meta_data: Default::default(),
            created_at: "t".into(),
            trigger: Trigger::Every,
            state: State::Ok,
            trigger_count: 0,
            last_triggered_at: None,
        }
    }

    fn lists(ids: impl Iterator<Item = usize>) -> HashMap<String, Vec<Monitor>> {
        ids.map(|i| (format!("b{i}"), vec![monitor(&format!("b{i}"))])).collect()
    }

    #[test]
    fn a_list_is_lent_for_a_batch_and_returns_only_when_it_commits() {
        let mut cache = MonitorCache::new(true);
        cache.commit(lists(0..1), &BTreeSet::new());
        let lent = cache.take("b0").expect("cached after its commit");
        assert!(cache.take("b0").is_none(), "lent out while a batch runs");
        drop(lent); // the batch rolled back: nothing comes back
        assert!(cache.take("b0").is_none(), "read again from storage next time");
        cache.commit(lists(0..2), &["b1".to_string(), "b2".to_string()].into());
        assert!(cache.take("b1").is_some(), "a list the batch loaded is current even if a command evicted it");
        assert_eq!(cache.weight, 2, "b0 alone is left: one balance, one monitor");
    }

    #[test]
    fn the_cache_stays_within_its_capacity_and_off_means_off() {
        let mut cache = MonitorCache::new(true);
        for chunk in 0..8 {
            cache.commit(lists(chunk * 50_000..(chunk + 1) * 50_000), &BTreeSet::new());
            assert!(cache.weight <= CAPACITY, "weight {} after chunk {chunk}", cache.weight);
            assert_eq!(cache.weight, cache.by_balance.values().map(|l| weight(l)).sum::<usize>());
        }
        let mut off = MonitorCache::new(false);
        off.commit(lists(0..1), &BTreeSet::new());
        assert!(off.take("b0").is_none());
    }
}
