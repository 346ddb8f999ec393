//! The one integration-test binary (`cargo test --test cli`): each area of
//! end-to-end tests is a module here, sharing `common`.

mod common;

mod backup_integrity;
mod backup_target;
mod bench_smoke;
mod cli_harness;
mod conformance;
mod doc_examples;
mod fencing;
mod hostile;
mod hot_failover;
mod info_tools;
mod interrupted_creation;
mod load_dump;
mod man_pages;
mod procedures;
mod progress;
mod recover_tool;
mod replicate;
mod replicate_s3;
mod security;
mod zero_tail;
