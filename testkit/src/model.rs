//! What the model-checking tests compare an environment against: its
//! databases as ordered maps.

use libcore::{scan, Env};
use std::collections::BTreeMap;

/// Every database of an environment, by name, with its pairs in key order.
pub type Contents = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// The contents of every database of `env` (panics on any error: a test
/// helper).
pub fn contents(env: &Env) -> Contents {
    let mut out = Contents::new();
    for name in env.db_names() {
        let db = env.open_db(&name).unwrap();
        let mut m = BTreeMap::new();
        scan(env, &db, |k, v| {
            m.insert(k.to_vec(), v.to_vec());
            Ok(())
        })
        .unwrap();
        out.insert(name, m);
    }
    out
}
