//! Every table's columns, described once. From these the SQL layer derives each table's SELECT list,
//! INSERT and UPDATE for both dialects (`sql.rs`), and each record's parameters and row mapper: a
//! new column is one line here (and the migrations that add it); the compiler then asks for the
//! field where the record is read back.

use super::codec::{Codec, Column, Cursor, Value};
use super::StoreResult;
use crate::domain::amount::Precision;
use crate::domain::api_key::ApiKey;
use crate::domain::api_key::Scope;
use crate::domain::balance::Balance;
use crate::domain::endpoint::{Endpoint, EndpointDelivery, EventTypes, Headers, HookType};
use crate::domain::event::{Attempt, Delivery, Event, EventKind};
use crate::domain::identity::Identity;
use crate::domain::ledger::Ledger;
use crate::domain::monitor::{
    Action, AutoTransfer, Condition, Field, LedgerScope, Monitor, Operator, RuleState, State, Trigger,
};
use crate::domain::snapshot::BalanceSnapshot;
use crate::domain::transaction::{Status, Transaction};
use crate::domain::velocity::{CheckpointLog, Velocity, Window};
use num_bigint::BigInt;
use serde_json::Map;
use std::collections::BTreeSet;

/// A domain value stored as one row of one table.
pub trait Record: Sized {
    const TABLE: &'static str;
    /// In the order of the SELECT list and of `values`; the first is the key.
    const COLUMNS: &'static [Column];
    /// The written columns' values (every column but `seq`), in order.
    fn values(&self) -> Vec<Value<'_>>;
    /// Reads a row selected with this table's SELECT list.
    fn read(cursor: &mut Cursor<'_>) -> StoreResult<Self>;
}

/// A `Record` impl from one column list: `column: Type = field.of.record`, in the table's order.
/// Where each column is a field of the same name or written `column: Type = field`, the record is
/// read back field by field; a record with nested fields says how it is assembled from the decoded
/// columns (`read row => …`).
macro_rules! record {
    ($record:ident in $table:literal { $($column:ident: $codec:ty = $field:ident,)* }) => {
        record!(@impl $record, $table, [$($column: $codec = $field,)*],
            |cursor| Ok($record { $($field: <$codec as Codec>::decode(cursor)?),* }));
    };
    (
        $record:ident in $table:literal { $($column:ident: $codec:ty = $($path:ident).+,)* }
        read $row:ident => $read:expr
    ) => {
        record!(@impl $record, $table, [$($column: $codec = $($path).+,)*], |cursor| {
            struct Row { $($column: $codec),* }
            // Fields are evaluated in the order written: the columns', left to right.
            let $row = Row { $($column: <$codec as Codec>::decode(cursor)?),* };
            Ok($read)
        });
    };
    (@impl $record:ident, $table:literal, [$($column:ident: $codec:ty = $($path:ident).+,)*], $read:expr) => {
        impl Record for $record {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [Column] =
                &[$(Column { name: stringify!($column), kind: <$codec as Codec>::KIND }),*];

            fn values(&self) -> Vec<Value<'_>> {
                let mut values = Vec::with_capacity(Self::COLUMNS.len());
                $(if stringify!($column) != super::codec::SEQUENCE {
                    values.push(Codec::encode(&self.$($path).+));
                })*
                values
            }

            fn read(cursor: &mut Cursor<'_>) -> StoreResult<Self> {
                let read: fn(&mut Cursor<'_>) -> StoreResult<Self> = $read;
                read(cursor)
            }
        }
    };
}

/// The columns of a table, by its name (for the SQL templates' `{table}` lists).
pub fn columns_of(table: &str) -> Option<&'static [Column]> {
    fn of<R: Record>() -> (&'static str, &'static [Column]) {
        (R::TABLE, R::COLUMNS)
    }
    let tables = [of::<Ledger>(), of::<Balance>(), of::<Transaction>(), of::<Monitor>(), of::<Event>()];
    let more = [of::<Attempt>(), of::<ApiKey>(), of::<CheckpointChunk>(), of::<LedgerRule>(), of::<RuleState>()];
    let webhooks = [of::<Endpoint>(), of::<EndpointDelivery>(), of::<Identity>(), of::<BalanceSnapshot>()];
    tables.into_iter().chain(more).chain(webhooks).find(|(name, _)| *name == table).map(|(_, c)| c)
}

record! {
    Ledger in "ledgers" {
        ledger_id: String = id,
        name: String = name,
        created_at: String = created_at,
        meta_data: Map<String, serde_json::Value> = meta_data,
    }
}

record! {
    Balance in "balances" {
        balance_id: String = id,
        ledger_id: String = ledger_id,
        identity_id: String = identity_id,
        indicator: String = indicator,
        currency: String = currency,
        credit_balance: BigInt = credit_balance,
        debit_balance: BigInt = debit_balance,
        inflight_credit_balance: BigInt = inflight_credit_balance,
        inflight_debit_balance: BigInt = inflight_debit_balance,
        version: i64 = version,
        created_at: String = created_at,
        meta_data: Map<String, serde_json::Value> = meta_data,
        has_rule_states: bool = has_rule_states,
        recent_checkpoints: CheckpointLog = checkpoints,
    }
}

record! {
    Transaction in "transactions" {
        transaction_id: String = id,
        parent_transaction: Option<String> = parent,
        precise_amount: BigInt = precise_amount,
        precision_exponent: Precision = precision,
        reference: String = reference,
        description: String = description,
        currency: String = currency,
        source: String = source,
        destination: String = destination,
        source_balance_id: String = source_balance_id,
        destination_balance_id: String = destination_balance_id,
        status: Status = status,
        allow_overdraft: bool = allow_overdraft,
        inflight: bool = inflight,
        created_at: String = created_at,
        meta_data: Map<String, serde_json::Value> = meta_data,
        overdraft_limit: BigInt = overdraft_limit,
        effective_date: Option<String> = effective_date,
        group_id: Option<String> = group,
        scheduled_for: Option<String> = scheduled_for,
        inflight_expiry_date: Option<String> = inflight_expiry_date,
        inflight_commit_date: Option<String> = inflight_commit_date,
    }
}

record! {
    Identity in "identities" {
        identity_id: String = id,
        identity_type: String = identity_type,
        organization_name: String = organization_name,
        category: String = category,
        first_name: String = first_name,
        last_name: String = last_name,
        other_names: String = other_names,
        gender: String = gender,
        email_address: String = email_address,
        phone_number: String = phone_number,
        nationality: String = nationality,
        street: String = street,
        country: String = country,
        state: String = state,
        post_code: String = post_code,
        city: String = city,
        dob: Option<String> = dob,
        created_at: String = created_at,
        meta_data: Map<String, serde_json::Value> = meta_data,
        tokenized_fields: BTreeSet<String> = tokenized,
    }
}

record! {
    Monitor in "balance_monitors" {
        monitor_id: String = id,
        balance_id: String = balance_id,
        field: Field = condition.field,
        operator: Operator = condition.operator,
        value: String = condition.value,
        precision_exponent: Precision = condition.precision,
        precise_value: BigInt = condition.precise_value,
        description: String = description,
        call_back_url: String = call_back_url,
        meta_data: Map<String, serde_json::Value> = meta_data,
        created_at: String = created_at,
        trigger_mode: Trigger = trigger,
        state: State = state,
        trigger_count: i64 = trigger_count,
        last_triggered_at: Option<String> = last_triggered_at,
        reset_value: Option<String> = condition.reset_value,
        reset_precise_value: Option<BigInt> = condition.reset_precise_value,
        action: Action = action,
        window_length: Option<Window> = condition.window,
        velocity: Option<Velocity> = velocity,
        auto_transfer: Option<AutoTransfer> = transfer,
    } read r => Monitor {
        id: r.monitor_id,
        balance_id: r.balance_id,
        condition: Condition {
            field: r.field,
            operator: r.operator,
            value: r.value,
            precision: r.precision_exponent,
            precise_value: r.precise_value,
            reset_value: r.reset_value,
            reset_precise_value: r.reset_precise_value,
            window: r.window_length,
        },
        description: r.description,
        call_back_url: r.call_back_url,
        meta_data: r.meta_data,
        created_at: r.created_at,
        trigger: r.trigger_mode,
        action: r.action,
        state: r.state,
        trigger_count: r.trigger_count,
        last_triggered_at: r.last_triggered_at,
        velocity: r.velocity,
        transfer: r.auto_transfer,
        scope: None,
    }
}

/// A ledger-wide monitor as stored: its definition and its scope, without state (each balance's is
/// a `RuleState` of its own).
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRule {
    pub monitor: Monitor,
    pub scope: LedgerScope,
}

impl LedgerRule {
    /// The row of a rule (`monitor.scope` is `Some`).
    pub fn of(monitor: &Monitor) -> LedgerRule {
        let scope = monitor.scope.clone().expect("a ledger-wide monitor has its scope");
        LedgerRule { monitor: Monitor { scope: None, ..monitor.clone() }, scope }
    }

    /// The rule as the engine and the API see it: no balance, armed, never triggered.
    pub fn into_monitor(self) -> Monitor {
        Monitor { scope: Some(self.scope), ..self.monitor }
    }
}

record! {
    LedgerRule in "ledger_monitors" {
        monitor_id: String = monitor.id,
        ledger_id: String = scope.ledger_id,
        currency: Option<String> = scope.currency,
        balance_meta_data: Map<String, serde_json::Value> = scope.balance_meta_data,
        field: Field = monitor.condition.field,
        operator: Operator = monitor.condition.operator,
        value: String = monitor.condition.value,
        precision_exponent: Precision = monitor.condition.precision,
        precise_value: BigInt = monitor.condition.precise_value,
        reset_value: Option<String> = monitor.condition.reset_value,
        reset_precise_value: Option<BigInt> = monitor.condition.reset_precise_value,
        window_length: Option<Window> = monitor.condition.window,
        description: String = monitor.description,
        call_back_url: String = monitor.call_back_url,
        meta_data: Map<String, serde_json::Value> = monitor.meta_data,
        created_at: String = monitor.created_at,
        trigger_mode: Trigger = monitor.trigger,
        action: Action = monitor.action,
        auto_transfer: Option<AutoTransfer> = monitor.transfer,
    } read r => LedgerRule {
        monitor: Monitor {
            id: r.monitor_id,
            balance_id: String::new(),
            condition: Condition {
                field: r.field,
                operator: r.operator,
                value: r.value,
                precision: r.precision_exponent,
                precise_value: r.precise_value,
                reset_value: r.reset_value,
                reset_precise_value: r.reset_precise_value,
                window: r.window_length,
            },
            description: r.description,
            call_back_url: r.call_back_url,
            meta_data: r.meta_data,
            created_at: r.created_at,
            trigger: r.trigger_mode,
            action: r.action,
            state: State::Ok,
            trigger_count: 0,
            last_triggered_at: None,
            velocity: None,
            transfer: r.auto_transfer,
            scope: None,
        },
        scope: LedgerScope { ledger_id: r.ledger_id, currency: r.currency, balance_meta_data: r.balance_meta_data },
    }
}

record! {
    RuleState in "ledger_monitor_states" {
        balance_id: String = balance_id,
        monitor_id: String = monitor_id,
        state: State = state,
        trigger_count: i64 = trigger_count,
        last_triggered_at: Option<String> = last_triggered_at,
        velocity: Option<Velocity> = velocity,
    }
}

record! {
    Event in "events" {
        event_id: String = id,
        event_type: EventKind = kind,
        body: String = body,
        url: Option<String> = url,
        monitor_id: Option<String> = monitor_id,
        transaction_id: Option<String> = transaction_id,
        created_at: String = created_at,
        status: Delivery = delivery,
        attempts: u32 = attempts,
        next_attempt_at: i64 = next_attempt_at,
        last_error: Option<String> = last_error,
        delivered_at: Option<String> = delivered_at,
        // SQLite: the rowid (one writer appends, so it follows commit order). PostgreSQL: `seq`,
        // taken under the locks of the balances the event is about, so for each balance it
        // follows commit order too.
        seq: i64 = sequence,
    }
}

record! {
    Attempt in "event_attempts" {
        event_id: String = event_id,
        attempt: u32 = attempt,
        attempted_at: String = attempted_at,
        status_code: Option<u16> = status_code,
        error: Option<String> = error,
        duration_ms: i64 = duration_ms,
        endpoint_id: Option<String> = endpoint_id,
    }
}

record! {
    Endpoint in "webhook_endpoints" {
        endpoint_id: String = id,
        url: String = url,
        event_types: EventTypes = event_types,
        secret: String = secret,
        headers: Headers = headers,
        active: bool = active,
        description: String = description,
        created_at: String = created_at,
        updated_at: String = updated_at,
        name: String = name,
        hook_type: Option<HookType> = hook,
        timeout_ms: Option<i64> = timeout_ms,
        max_attempts: Option<u32> = max_attempts,
        last_run: Option<String> = last_run,
        last_success: Option<bool> = last_success,
    }
}

record! {
    EndpointDelivery in "endpoint_deliveries" {
        endpoint_id: String = endpoint_id,
        event_id: String = event_id,
        event_type: EventKind = event_type,
        status: Delivery = status,
        attempts: u32 = attempts,
        next_attempt_at: i64 = next_attempt_at,
        last_error: Option<String> = last_error,
        delivered_at: Option<String> = delivered_at,
    }
}

record! {
    ApiKey in "api_keys" {
        key_id: String = id,
        name: String = name,
        owner: String = owner,
        scopes: Vec<Scope> = scopes,
        key_hash: String = key_hash,
        created_at: String = created_at,
        expires_at: Option<String> = expires_at,
        revoked_at: Option<String> = revoked_at,
    }
}

/// A stored chunk of a balance's checkpoints, for its velocity monitors (`domain::velocity`):
/// keyed by the version of its last one, so the chunk holding the checkpoint after a window's
/// base is the first whose version is higher than the base's.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointChunk {
    pub balance_id: String,
    pub version: i64,
    pub entries: CheckpointLog,
}

record! {
    CheckpointChunk in "checkpoint_chunks" {
        balance_id: String = balance_id,
        version: i64 = version,
        entries: CheckpointLog = entries,
    }
}

record! {
    BalanceSnapshot in "balance_snapshots" {
        balance_id: String = balance_id,
        snapshot_at: String = at,
        credit_balance: BigInt = credit_balance,
        debit_balance: BigInt = debit_balance,
    }
}
