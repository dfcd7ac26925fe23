//! A dry run's answer, as Blnk writes it (`model/transaction_preview.go`): totals as strings of
//! minor units, a `rejection` carrying the code the real request would have answered. Keel adds
//! `monitors_triggered`.

use super::monitor::MonitorJson;
use super::number::{decimal, integer};
use crate::domain::amount::Precision;
use crate::domain::balance::Balance;
use crate::domain::preview::{BalanceChange, Preview, Role};
use num_bigint::BigInt;
use serde::Serialize;
use serde_json::Number;

#[derive(Serialize, utoipa::ToSchema)]
pub struct PreviewJson {
    /// Always `true`.
    pub dry_run: bool,
    /// A real request would be accepted against the balances as they stand; `false` says why in
    /// `rejection`.
    pub would_apply: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<RejectionJson>,
    /// On `PUT /transactions/inflight/{id}`: `commit` or `void`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    /// The status the transaction would carry once applied (`APPLIED`, `INFLIGHT`, `VOID`); absent
    /// when it would be refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub currency: String,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub amount: Number,
    /// Minor units, as a string.
    pub precise_amount: String,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub precision: Number,
    pub balances: Vec<BalanceProjectionJson>,
    /// A split's legs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub legs: Vec<LegJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// (keel) The monitors the transaction would trigger, as they would stand after it.
    pub monitors_triggered: Vec<MonitorJson>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RejectionJson {
    /// The error code the real request would answer (`TXN_INSUFFICIENT_FUNDS`, …).
    pub code: &'static str,
    /// `insufficient_funds`, `overdraft_limit`, `monitor_guard` (keel) or `other`.
    pub reason: &'static str,
    pub message: String,
    /// (keel) The guard that would refuse it (`monitor_guard`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_id: Option<String>,
}

/// One leg of a split, as Blnk's `LegProjection`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LegJson {
    pub identifier: String,
    /// `source` or `destination`: the side the split divides.
    pub role: &'static str,
    /// Minor units, as a string.
    pub precise_amount: String,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub amount: Number,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Source => "source",
        Role::Destination => "destination",
    }
}

/// One balance before and after, every total a string of minor units.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BalanceProjectionJson {
    /// The balance's id; for an indicator that does not exist yet, the indicator (`@Fees`).
    pub balance_id: String,
    /// `source` or `destination`.
    pub role: &'static str,
    pub currency: String,
    /// An indicator balance a real request would create; projected from zero.
    #[serde(rename = "virtual", skip_serializing_if = "std::ops::Not::not")]
    pub is_virtual: bool,
    pub current_balance: String,
    pub current_available: String,
    pub current_credit_balance: String,
    pub current_debit_balance: String,
    pub current_inflight_debit_balance: String,
    pub current_inflight_credit_balance: String,
    pub resulting_balance: String,
    pub resulting_available: String,
    pub resulting_credit_balance: String,
    pub resulting_debit_balance: String,
    pub resulting_inflight_debit_balance: String,
    pub resulting_inflight_credit_balance: String,
}

/// What the request asked to move, for a preview that was refused (and so has no transaction).
pub struct Asked {
    pub reference: Option<String>,
    pub currency: String,
    pub precise_amount: BigInt,
    pub precision: Precision,
}

/// A bulk request's dry run, as Blnk's `BulkTransactionPreview`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkPreviewJson {
    /// Always `true`.
    pub dry_run: bool,
    /// Every item would be accepted.
    pub would_apply: bool,
    /// Whether each item was projected against the items before it (Keel: always, on
    /// `POST /transactions/bulk`; never on the bulk inflight routes, whose items are independent).
    pub cumulative: bool,
    pub atomic: bool,
    /// Each item's preview, in the request's order.
    pub results: Vec<PreviewJson>,
    /// The request's effect on every balance it names (cumulative previews only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub balances: Vec<BalanceProjectionJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl BulkPreviewJson {
    /// A cumulative preview (`POST /transactions/bulk`).
    pub fn new(
        results: Vec<PreviewJson>,
        balances: Vec<BalanceProjectionJson>,
        atomic: bool,
        notes: Vec<String>,
    ) -> BulkPreviewJson {
        let would_apply = results.iter().all(|r| r.would_apply);
        BulkPreviewJson { dry_run: true, would_apply, cumulative: true, atomic, results, balances, notes }
    }

    /// Items projected each on its own (the bulk inflight routes): no combined balances.
    pub fn independent(results: Vec<PreviewJson>, notes: Vec<String>) -> BulkPreviewJson {
        BulkPreviewJson { cumulative: false, ..BulkPreviewJson::new(results, vec![], false, notes) }
    }
}

impl PreviewJson {
    /// `rejection` is the refusal of `preview.result` as the API answers it, if it was refused.
    pub fn new(
        preview: Preview,
        rejection: Option<RejectionJson>,
        operation: Option<&'static str>,
        asked: Asked,
        notes: Vec<String>,
    ) -> PreviewJson {
        let (status, currency, precise_amount, precision) = match &preview.result {
            Ok(t) => (Some(t.status.as_str()), t.currency.clone(), t.precise_amount.clone(), t.precision),
            Err(_) => {
                let currency = match preview.balances.first() {
                    Some(change) if asked.currency.is_empty() => change.before.currency.clone(),
                    _ => asked.currency,
                };
                (None, currency, asked.precise_amount, asked.precision)
            }
        };
        PreviewJson {
            dry_run: true,
            would_apply: rejection.is_none(),
            rejection,
            operation,
            status,
            reference: asked.reference,
            currency,
            amount: decimal(&precision.to_major(&precise_amount)),
            precise_amount: precise_amount.to_string(),
            precision: integer(&precision.value()),
            balances: preview.balances.into_iter().map(BalanceProjectionJson::from).collect(),
            legs: preview
                .legs
                .into_iter()
                .map(|leg| LegJson {
                    identifier: leg.identifier,
                    role: role_name(leg.role),
                    precise_amount: leg.transaction.precise_amount.to_string(),
                    amount: decimal(&leg.transaction.amount()),
                })
                .collect(),
            notes,
            monitors_triggered: preview.monitors_triggered.into_iter().map(MonitorJson::from).collect(),
        }
    }
}

impl From<BalanceChange> for BalanceProjectionJson {
    fn from(change: BalanceChange) -> Self {
        let BalanceChange { role, before, after, is_new_indicator } = change;
        let (now, then) = (Totals::of(&before), Totals::of(&after));
        BalanceProjectionJson {
            balance_id: if is_new_indicator { before.indicator.clone() } else { before.id.clone() },
            role: role_name(role),
            currency: before.currency,
            is_virtual: is_new_indicator,
            current_balance: now.balance,
            current_available: now.available,
            current_credit_balance: now.credit,
            current_debit_balance: now.debit,
            current_inflight_debit_balance: now.inflight_debit,
            current_inflight_credit_balance: now.inflight_credit,
            resulting_balance: then.balance,
            resulting_available: then.available,
            resulting_credit_balance: then.credit,
            resulting_debit_balance: then.debit,
            resulting_inflight_debit_balance: then.inflight_debit,
            resulting_inflight_credit_balance: then.inflight_credit,
        }
    }
}

/// A balance's totals as strings of minor units.
struct Totals {
    balance: String,
    available: String,
    credit: String,
    debit: String,
    inflight_debit: String,
    inflight_credit: String,
}

impl Totals {
    fn of(b: &Balance) -> Totals {
        Totals {
            balance: b.balance().to_string(),
            available: b.available().to_string(),
            credit: b.credit_balance.to_string(),
            debit: b.debit_balance.to_string(),
            inflight_debit: b.inflight_debit_balance.to_string(),
            inflight_credit: b.inflight_credit_balance.to_string(),
        }
    }
}
