//! Test machinery compiled into libcore only for its own unit tests (and,
//! for the replica conformance suite, under the `testing` feature): the
//! seeded generator and the faulty file system of the `testkit` crate.
//! Unit tests cannot use `testkit` itself: it links another copy of
//! libcore, whose types are not this one's. These two files depend only on
//! libcore's public API and std, so they are included here as they are.

// The suite uses only part of the generator.
#[allow(dead_code)]
#[path = "../../testkit/src/rng.rs"]
mod rng;

// The unit tests use only part of the faulty file system.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../testkit/src/faulty.rs"]
pub(crate) mod faulty;

pub(crate) use rng::Rng;
