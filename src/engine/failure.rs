//! One failure type for the rules: a refusal (a rule said no; nothing changed) or a storage
//! error (the batch is rolled back), so a rule carries either with `?`.

use crate::domain::error::DomainError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum Failure {
    Refused(DomainError),
    Store(StoreError),
}

/// What a rule answers.
pub type Ruled<T> = Result<T, Failure>;

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        Failure::Refused(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// Separates the two at the batch's edge: a refusal is the command's answer, a storage error the
/// whole batch's.
pub fn split<T>(ruled: Ruled<T>) -> Result<Result<T, DomainError>, StoreError> {
    match ruled {
        Ok(value) => Ok(Ok(value)),
        Err(Failure::Refused(refused)) => Ok(Err(refused)),
        Err(Failure::Store(error)) => Err(error),
    }
}
