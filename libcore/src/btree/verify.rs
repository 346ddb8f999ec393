//! verify
use crate::error::Result;
use crate::pagestore::PageRead;
use crate::types::PageNo;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem { pub page: PageNo, pub what: String }
pub(crate) fn verify<S: PageRead + ?Sized>(_s: &S) -> Result<Vec<Problem>> { Ok(vec![]) }
