//! The Berkeley DB text formats the tools read and print: the dump format
//! (`dump`), `db_printlog`'s record layout (`printlog`), and the time
//! formats (`timefmt` for ctime-style output, `timespec` for
//! `db_recover -t`). Used by the operations and the tools only.

pub mod dump;
pub mod printlog;
pub mod timefmt;
pub mod timespec;
