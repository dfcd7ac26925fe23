//! The engine's copy of balances and their monitors, so a batch reads neither from storage again:
//! with 10 monitors per balance, reading and parsing them was the largest single cost of a batch,
//! and the balances' point reads were a fifth of the engine's time after that.
//!
//! The copy is right only while this engine is the store's one writer (SQLite: one process per
//! file). Where other processes write too (PostgreSQL), the cache is off and every batch reads the
//! balances and their monitors under row locks, as before.
//!
//! Invariant C1: a cached entry equals what storage holds for that balance (its row and its
//! monitors) as of the last commit. It holds because entries leave the cache for the length of a
//! batch (`take`) and come back only once that batch committed (`commit`); a batch that rolls back
//! simply never returns them, so they are read again the next time. A monitor command on a balance
//! the batch did not touch evicts that balance's entry instead. Only the engine writes balances.

use super::batch::RuleChange;
use crate::domain::balance::Balance;
use crate::domain::monitor::Monitor;
use foldhash::{HashMap, HashMapExt};
use std::collections::BTreeSet;

/// Most balances plus monitors held (about half a KiB each): past it, entries are evicted at
/// random down to three quarters, which bounds memory however many balances there are.
pub const CAPACITY: usize = 300_000;

/// A balance as committed, with its monitors in creation order.
pub struct Entry {
    pub balance: Balance,
    pub monitors: Vec<Monitor>,
}

pub struct BalanceCache {
    enabled: bool,
    by_balance: HashMap<String, Entry>,
    /// Balances plus monitors held, measured against `CAPACITY`.
    weight: usize,
}

fn weight(entry: &Entry) -> usize {
    1 + entry.monitors.len()
}

impl BalanceCache {
    pub fn new(enabled: bool) -> Self {
        BalanceCache { enabled, by_balance: HashMap::new(), weight: 0 }
    }

    /// Removes and returns the cached entry of `balance_id`; `None` if it must be read from storage.
    pub fn take(&mut self, balance_id: &str) -> Option<Entry> {
        let entry = self.by_balance.remove(balance_id)?;
        self.weight -= weight(&entry);
        Some(entry)
    }

    /// Brings every entry in line with ledger-wide rules a batch changed (C1): a new rule without a
    /// window gets a fresh instance on each entry it covers (last: rules follow in creation order,
    /// and its id is the newest), a deleted one loses its instances; after any other change the
    /// cache cannot tell what storage holds, and forgets everything. (The batch's own entries are
    /// lent out meanwhile, and come back as it left them.)
    pub fn follow_rules(&mut self, changes: &[RuleChange]) {
        for change in changes {
            match change {
                RuleChange::Created(rule) => {
                    for entry in self.by_balance.values_mut() {
                        if rule.scope.as_ref().is_some_and(|s| s.covers(&entry.balance)) {
                            entry.monitors.push(rule.instance_on(&entry.balance, None, 0));
                            self.weight += 1;
                        }
                    }
                }
                RuleChange::Deleted(id) => {
                    for entry in self.by_balance.values_mut() {
                        let before = entry.monitors.len();
                        entry.monitors.retain(|m| m.id != *id);
                        self.weight -= before - entry.monitors.len();
                    }
                }
                RuleChange::Other => self.clear(),
            }
        }
    }

    /// Forgets everything: what storage holds is read again. After a batch whose COMMIT may or may
    /// not have happened: it may have changed a rule, whose instances are in any entry.
    pub fn clear(&mut self) {
        self.by_balance.clear();
        self.weight = 0;
    }

    /// Called after a batch committed: `entries` are the balances it touched with their monitors,
    /// as they stand after it; `evicted` are balances whose monitors a command changed: their old
    /// entries go, and only those the batch returns in `entries` come back.
    pub fn commit(&mut self, entries: Vec<Entry>, evicted: &BTreeSet<String>) {
        if !self.enabled {
            return;
        }
        for balance_id in evicted {
            self.take(balance_id);
        }
        for entry in entries {
            self.weight += weight(&entry);
            if let Some(stale) = self.by_balance.insert(entry.balance.id.clone(), entry) {
                self.weight -= weight(&stale);
            }
        }
        if self.weight > CAPACITY {
            // A map's iteration order is arbitrary, so this evicts at random.
            let mut weight_now = self.weight;
            self.by_balance.retain(|_, entry| {
                let keep = weight_now <= CAPACITY / 4 * 3;
                if !keep {
                    weight_now -= weight(entry);
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

    fn entry(balance_id: String) -> Entry {
        let monitor = Monitor {
            id: format!("mon_{balance_id}"),
            balance_id: balance_id.clone(),
            condition: Condition::new("balance", ">", "0", None).expect("a valid condition"),
            description: String::new(),
            call_back_url: String::new(),
            meta_data: Default::default(),
            created_at: "t".into(),
            trigger: Trigger::Every,
            action: crate::domain::monitor::Action::Notify,
            velocity: None,
            transfer: None,
            scope: None,
            state: State::Ok,
            trigger_count: 0,
            last_triggered_at: None,
        };
        let balance = Balance::new(balance_id, "general_ledger_id".into(), "USD".into(), "t".into());
        Entry { balance, monitors: vec![monitor] }
    }

    fn entries(ids: impl Iterator<Item = usize>) -> Vec<Entry> {
        ids.map(|i| entry(format!("b{i}"))).collect()
    }

    #[test]
    fn an_entry_is_lent_for_a_batch_and_returns_only_when_it_commits() {
        let mut cache = BalanceCache::new(true);
        cache.commit(entries(0..1), &BTreeSet::new());
        let lent = cache.take("b0").expect("cached after its commit");
        assert!(cache.take("b0").is_none(), "lent out while a batch runs");
        drop(lent); // the batch rolled back: nothing comes back
        assert!(cache.take("b0").is_none(), "read again from storage next time");
        cache.commit(entries(0..2), &["b1".to_string(), "b2".to_string()].into());
        assert!(cache.take("b1").is_some(), "an entry the batch loaded is current even if a command evicted it");
        assert_eq!(cache.weight, 2, "b0 alone is left: one balance, one monitor");
    }

    #[test]
    fn the_cache_stays_within_its_capacity_and_off_means_off() {
        let mut cache = BalanceCache::new(true);
        for chunk in 0..8 {
            cache.commit(entries(chunk * 50_000..(chunk + 1) * 50_000), &BTreeSet::new());
            assert!(cache.weight <= CAPACITY, "weight {} after chunk {chunk}", cache.weight);
            assert_eq!(cache.weight, cache.by_balance.values().map(weight).sum::<usize>());
        }
        let mut off = BalanceCache::new(false);
        off.commit(entries(0..1), &BTreeSet::new());
        assert!(off.take("b0").is_none());
    }
}
