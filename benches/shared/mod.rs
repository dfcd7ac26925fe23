//! What both benchmarks build their workloads from.

use keel::domain::amount::Precision;
use keel::engine::NewTransaction;
use num_bigint::BigInt;

/// A transfer of `amount` minor units, applied at once, without overdraft.
pub fn transfer(source: &str, destination: &str, amount: u64, reference: String) -> NewTransaction {
    NewTransaction {
        precise_amount: BigInt::from(amount),
        precision: Precision::ONE,
        reference,
        description: String::new(),
        currency: "USD".into(),
        source: source.into(),
        destination: destination.into(),
        allow_overdraft: false,
        overdraft_limit: BigInt::ZERO,
        effective_date: None,
        scheduled_for: None,
        inflight_expiry_date: None,
        inflight_commit_date: None,
        inflight: false,
        skip_queue: true,
        meta_data: Default::default(),
    }
}
