//! Tests of the whole access method against a `BTreeMap` model, fill
//! factor of sorted loads, page reuse, size limits, and damaged pages.

use super::*;
use crate::storage::page;
use crate::storage::pagestore::MemStore;
use std::collections::BTreeMap;
use std::ops::Bound;

use crate::test_support::Rng;

/// Random bytes, of a random length below `n`.
fn bytes_upto(r: &mut Rng, n: u64) -> Vec<u8> {
    let len = r.below(n) as usize;
    r.bytes(len)
}

fn new_tree(ps: usize) -> MemStore {
    let mut s = MemStore::new(ps);
    create(&mut s, FileId(7)).unwrap();
    s
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn assert_sound(s: &MemStore, model: &Model) {
    let probs = verify(s).unwrap();
    assert!(probs.is_empty(), "verify found {probs:?}");
    let mut scan = Scan::new(s, None).unwrap();
    let mut it = model.iter();
    while let Some((k, v)) = scan.next(s).unwrap() {
        let (mk, mv) = it.next().expect("scan returned more than the model has");
        assert_eq!((&k, v.len()), (mk, mv.len()));
        assert!(v == *mv);
    }
    assert!(it.next().is_none(), "scan ended early");
    let st = stats(s).unwrap();
    assert_eq!(st.nkeys, model.len() as u64);
    assert_eq!(st.entries, model.len() as u64);
    assert_eq!(
        st.internal_pages + st.leaf_pages + st.overflow_pages + st.free_pages + 1,
        st.total_pages
    );
    assert_eq!(
        first(s).unwrap(),
        model.iter().next().map(|(k, v)| (k.clone(), v.clone()))
    );
    assert_eq!(
        last(s).unwrap(),
        model
            .iter()
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone()))
    );
}

fn pair(e: Option<(&Vec<u8>, &Vec<u8>)>) -> Option<(Vec<u8>, Vec<u8>)> {
    e.map(|(k, v)| (k.clone(), v.clone()))
}

fn random_key(r: &mut Rng, ps: usize) -> Vec<u8> {
    let n = r.below(3000);
    match r.below(20) {
        // Short keys, including the empty key and prefixes of each other.
        0..=15 => {
            let len = r.below(5) as usize;
            n.to_be_bytes()[8 - len..].to_vec()
        }
        // Long keys sharing long prefixes; many overflow.
        _ => {
            let mut k = vec![b'a' + (n % 3) as u8; r.below(ps as u64 / 2) as usize];
            k.extend_from_slice(&n.to_be_bytes());
            k
        }
    }
}

fn random_val(r: &mut Rng, ps: usize, big_left: &mut u32) -> Vec<u8> {
    match r.below(100) {
        0 if *big_left > 0 => {
            *big_left -= 1;
            {
                let len = (1 << 20) + r.below(50_000) as usize;
                r.bytes(len)
            }
        }
        1..=70 => bytes_upto(r, 20),
        71..=90 => bytes_upto(r, ps as u64 / 2),
        _ => bytes_upto(r, 3 * ps as u64),
    }
}

fn model_run(ps: usize, seed: u64, batches: usize, ops: usize) {
    // BTREE_SEED varies the runs for a longer hunt.
    let extra: u64 = std::env::var("BTREE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut r = Rng(seed ^ extra.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut s = new_tree(ps);
    let mut m = Model::new();
    let mut big_left = 2;
    for _ in 0..batches {
        for _ in 0..ops {
            let k = random_key(&mut r, ps);
            match r.below(100) {
                0..=54 => {
                    let v = random_val(&mut r, ps, &mut big_left);
                    let replaced = put(&mut s, &k, &v).unwrap();
                    assert_eq!(replaced, m.insert(k, v).is_some());
                }
                55..=79 => {
                    assert_eq!(delete(&mut s, &k).unwrap(), m.remove(&k).is_some());
                }
                _ => {
                    assert_eq!(get(&s, &k).unwrap().as_ref(), m.get(&k));
                    assert_eq!(seek_ge(&s, &k).unwrap(), pair(m.range(k.clone()..).next()));
                    let after = m
                        .range((Bound::Excluded(k.clone()), Bound::Unbounded))
                        .next();
                    assert_eq!(next_after(&s, &k).unwrap(), pair(after));
                    let mut scan = Scan::new(&s, Some(&k)).unwrap();
                    for want in m.range(k.clone()..).take(5) {
                        assert_eq!(scan.next(&s).unwrap(), pair(Some(want)));
                    }
                    assert_eq!(
                        prev_before(&s, &k).unwrap(),
                        pair(m.range(..k.clone()).next_back())
                    );
                }
            }
        }
        assert_sound(&s, &m);
    }
    // Empty the tree: every page but the root leaf must be free again.
    // Random order, so emptied leaves are unlinked at all positions and
    // internal pages lose first, middle and last children.
    let mut keys: Vec<Vec<u8>> = m.keys().cloned().collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, r.below(i as u64 + 1) as usize);
    }
    let quarter = keys.len() / 4 + 1;
    for (i, k) in keys.iter().enumerate() {
        assert!(delete(&mut s, k).unwrap());
        m.remove(k);
        if i % quarter == 0 {
            assert_sound(&s, &m);
        }
    }
    assert_sound(&s, &m);
    let st = stats(&s).unwrap();
    assert_eq!(
        (
            st.levels,
            st.leaf_pages,
            st.internal_pages,
            st.overflow_pages
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(st.free_pages + 2, st.total_pages);
}

#[test]
fn btree_model_512() {
    model_run(512, 0x9E37_79B9_7F4A_7C15, 20, 600);
}

#[test]
fn btree_model_4096() {
    model_run(4096, 0x1234_5678_9ABC_DEF1, 15, 800);
}

#[test]
fn btree_model_65536() {
    model_run(65536, 0xDEAD_BEEF_CAFE_F00D, 8, 800);
}

/// Many small keys in random order at 64 KiB pages, so that even the
/// largest page size gets internal splits.
#[test]
fn btree_many_keys_65536() {
    let mut r = Rng(77);
    let mut s = new_tree(65536);
    let mut m = Model::new();
    for _ in 0..30_000 {
        let k = r.below(1 << 40).to_be_bytes().to_vec();
        let v = bytes_upto(&mut r, 40);
        put(&mut s, &k, &v).unwrap();
        m.insert(k, v);
    }
    assert!(stats(&s).unwrap().levels >= 2);
    assert_sound(&s, &m);
}

fn sorted_load(reverse: bool) {
    let mut s = new_tree(4096);
    let n = 20_000u64;
    for i in 0..n {
        let i = if reverse { n - 1 - i } else { i };
        put(&mut s, &i.to_be_bytes(), &i.to_le_bytes()).unwrap();
    }
    let st = stats(&s).unwrap();
    // Entry: flags 1 + (2 + 8) + (2 + 8) + slot 2 = 23 bytes.
    let per_page = (4096 - node::DATA) / 23;
    let ideal = (n as usize).div_ceil(per_page) as u64;
    assert!(
        st.leaf_pages <= ideal + 1,
        "{} leaves, ideal {ideal}",
        st.leaf_pages
    );
    assert!(verify(&s).unwrap().is_empty());
    assert_eq!(
        get(&s, &777u64.to_be_bytes()).unwrap(),
        Some(777u64.to_le_bytes().to_vec())
    );
}

#[test]
fn btree_sorted_loads_fill_pages() {
    sorted_load(false);
    sorted_load(true);
}

#[test]
fn btree_freed_pages_are_reused() {
    let mut s = new_tree(512);
    for i in 0..2000u32 {
        put(&mut s, &i.to_be_bytes(), &[1u8; 100]).unwrap();
    }
    put(&mut s, b"big", &vec![9u8; 100_000]).unwrap();
    let grown = stats(&s).unwrap().total_pages;
    for i in 0..2000u32 {
        delete(&mut s, &i.to_be_bytes()).unwrap();
    }
    put(&mut s, b"big", b"small now").unwrap();
    let st = stats(&s).unwrap();
    assert_eq!(st.total_pages, grown);
    assert_eq!(st.free_pages + 2, grown);
    for i in 0..2000u32 {
        put(&mut s, &i.to_be_bytes(), &[2u8; 100]).unwrap();
    }
    assert_eq!(stats(&s).unwrap().total_pages, grown);
    assert!(verify(&s).unwrap().is_empty());
}

#[test]
fn btree_size_limits() {
    let mut s = new_tree(4096);
    let big = vec![3u8; MAX_ITEM];
    put(&mut s, b"k", &big).unwrap();
    assert_eq!(get(&s, b"k").unwrap().map(|v| v.len()), Some(MAX_ITEM));
    put(&mut s, &big, b"v").unwrap();
    assert_eq!(get(&s, &big).unwrap(), Some(b"v".to_vec()));
    let too_big = vec![0u8; MAX_ITEM + 1];
    for e in [
        put(&mut s, &too_big, b"").unwrap_err(),
        put(&mut s, b"x", &too_big).unwrap_err(),
    ] {
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("16777217") && m.contains("16777216"))
        );
    }
    assert!(verify(&s).unwrap().is_empty());
    assert!(delete(&mut s, &big).unwrap());
    assert!(delete(&mut s, b"k").unwrap());
    assert_eq!(stats(&s).unwrap().overflow_pages, 0);
}

#[test]
fn btree_verify_reports_damage() {
    let mut s = new_tree(512);
    for i in 0..300u32 {
        put(&mut s, &i.to_be_bytes(), &[5u8; 30]).unwrap();
    }
    assert!(verify(&s).unwrap().is_empty());
    // A wrong key count in the meta page.
    let mut bad = s.clone();
    let mut m = Meta::decode(&bad.pages[0].clone().unwrap()).unwrap();
    m.nkeys += 1;
    m.encode(bad.page_mut(PageNo::META).unwrap());
    assert!(verify(&bad)
        .unwrap()
        .iter()
        .any(|p| p.what.contains("keys")));
    // A page both on the free list and in the tree.
    let mut bad = s.clone();
    let mut m = Meta::decode(&bad.pages[0].clone().unwrap()).unwrap();
    m.free_head = m.root;
    m.encode(bad.page_mut(PageNo::META).unwrap());
    assert!(!verify(&bad).unwrap().is_empty());
    // Two keys swapped inside a leaf.
    let mut bad = s.clone();
    let leaf = Scan::new(&bad, None).unwrap().page().unwrap();
    let b = bad.page_mut(leaf).unwrap();
    let (a, c) = (node::DATA, node::DATA + node::SLOT);
    let (x, y) = (b[a..a + 2].to_vec(), b[c..c + 2].to_vec());
    b[a..a + 2].copy_from_slice(&y);
    b[c..c + 2].copy_from_slice(&x);
    let probs = verify(&bad).unwrap();
    assert!(
        probs
            .iter()
            .any(|p| p.page == leaf && p.what.contains("order")),
        "{probs:?}"
    );
    assert!(Scan::new(&bad, None).is_err());
}

/// Flipping bytes anywhere in any page must give Ok or Err from every
/// operation, never a panic, a hang or an unbounded result.
#[test]
fn btree_damaged_pages_never_panic() {
    for ps in [512usize, 4096] {
        let mut r = Rng(4242 + ps as u64);
        let mut s = new_tree(ps);
        let mut keys = Vec::new();
        for i in 0..400u64 {
            let k = if i % 17 == 0 {
                let mut k = vec![b'k'; ps];
                k.extend_from_slice(&i.to_be_bytes());
                k
            } else {
                i.to_be_bytes().to_vec()
            };
            let v = if i % 13 == 0 {
                r.bytes(3 * ps)
            } else {
                bytes_upto(&mut r, 60)
            };
            put(&mut s, &k, &v).unwrap();
            keys.push(k);
        }
        for k in keys.iter().step_by(5) {
            delete(&mut s, k).unwrap();
        }
        assert!(verify(&s).unwrap().is_empty());
        let npages = s.pages.len() as u64;
        // BTREE_FUZZ_ROUNDS raises the count for a longer hunt.
        let rounds = std::env::var("BTREE_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        for round in 0..rounds {
            let mut bad = s.clone();
            for _ in 0..1 + r.below(6) {
                let pg = r.below(npages) as usize;
                let at = if r.below(3) == 0 {
                    r.below(node::DATA as u64 + 16)
                } else {
                    r.below(ps as u64)
                } as usize;
                let p = std::sync::Arc::make_mut(bad.pages[pg].as_mut().unwrap());
                p[at] ^= 1 << r.below(8);
                if round % 7 == 0 {
                    p[at] = 0xff;
                }
            }
            let _ = verify(&bad);
            let _ = stats(&bad);
            for k in keys.iter().step_by(37) {
                let _ = get(&bad, k);
                let _ = seek_ge(&bad, k);
                let _ = next_after(&bad, k);
                let _ = prev_before(&bad, k);
            }
            let _ = first(&bad);
            let _ = last(&bad);
            if let Ok(mut scan) = Scan::new(&bad, None) {
                let mut n = 0;
                while let Ok(Some(_)) = scan.next(&bad) {
                    n += 1;
                    assert!(n <= 100_000, "scan does not end");
                }
            }
            for (j, k) in keys.iter().enumerate().step_by(29) {
                if j % 2 == 0 {
                    let _ = put(&mut bad, k, &[1u8; 40]);
                } else {
                    let _ = delete(&mut bad, k);
                }
            }
            let _ = verify(&bad);
        }
    }
}

/// Pages of `ty` in the store, in page order.
fn pages_of(s: &MemStore, ty: page::PageType) -> Vec<PageNo> {
    (0..s.pages.len() as u32)
        .map(PageNo)
        .filter(|&p| page::page_type(&s.page(p).unwrap()) == Some(ty))
        .collect()
}

fn problems_with(s: &MemStore, word: &str) -> bool {
    let probs = verify(s).unwrap();
    assert!(!probs.is_empty(), "damage went unnoticed");
    probs.iter().any(|p| p.what.contains(word)) || panic!("no '{word}' in {probs:?}")
}

#[test]
fn btree_verify_finds_structural_damage() {
    let mut s = new_tree(512);
    for i in 0..400u32 {
        let v = vec![i as u8; if i % 10 == 0 { 1500 } else { 20 }];
        put(&mut s, &i.to_be_bytes(), &v).unwrap();
    }
    for i in 100..200u32 {
        delete(&mut s, &i.to_be_bytes()).unwrap();
    }
    assert!(verify(&s).unwrap().is_empty());
    let st = stats(&s).unwrap();
    assert!(st.free_pages > 2 && st.overflow_pages > 0 && st.levels >= 2);
    let meta = fetch::meta(&s).unwrap();

    // A leaf's right link cut.
    let mut bad = s.clone();
    let leaf = pages_of(&bad, page::PageType::Leaf)[0];
    node::set_next(bad.page_mut(leaf).unwrap(), PageNo::NONE);
    assert!(problems_with(&bad, "sibling"));

    // An overflow page claiming fewer bytes than its chain needs.
    let mut bad = s.clone();
    let ov = pages_of(&bad, page::PageType::Overflow)[0];
    node::set_hi(bad.page_mut(ov).unwrap(), 3);
    assert!(problems_with(&bad, "overflow"));

    // A cycle in the free list.
    let mut bad = s.clone();
    let head = meta.free_head;
    node::set_next(bad.page_mut(head).unwrap(), head);
    assert!(problems_with(&bad, "already used"));

    // A page past the tree and the free list.
    let mut bad = s.clone();
    let mut m = meta;
    m.last_pgno = PageNo(m.last_pgno.0 + 1);
    node::format(
        bad.page_new(m.last_pgno).unwrap(),
        m.last_pgno,
        page::PageType::Free,
        0,
    );
    m.encode(bad.page_mut(PageNo::META).unwrap());
    assert!(problems_with(&bad, "neither in use nor free"));

    // Two children of the root swapped: keys leave their separator range.
    let mut bad = s.clone();
    let b = bad.page_mut(meta.root).unwrap();
    let n = node::nent(b);
    let (o0, o1) = (
        node::slot(b, n, 0).unwrap() + 1,
        node::slot(b, n, 1).unwrap() + 1,
    );
    let (c0, c1) = (b[o0..o0 + 4].to_vec(), b[o1..o1 + 4].to_vec());
    b[o0..o0 + 4].copy_from_slice(&c1);
    b[o1..o1 + 4].copy_from_slice(&c0);
    assert!(problems_with(&bad, "separator"));
}

/// A sink that stores finished pages in a `MemStore`.
struct MemSink<'a>(&'a mut MemStore);

impl build::PageSink for MemSink<'_> {
    fn put_page(&mut self, no: PageNo, page: &[u8]) -> crate::error::Result<()> {
        self.0.page_new(no)?.copy_from_slice(page);
        Ok(())
    }
}

/// Builds the tree from `pairs` (ascending) until a key is out of order,
/// then puts the rest, as a load does.
fn build_then_put(ps: usize, pairs: &[(Vec<u8>, Vec<u8>)]) -> MemStore {
    let mut s = new_tree(ps);
    let mut b = build::Builder::start(&s).unwrap();
    for (k, v) in pairs {
        if let Some(bb) = b.as_mut() {
            if bb.accepts(k) {
                bb.push(&mut MemSink(&mut s), k, v).unwrap();
                continue;
            }
            finish_build(&mut s, b.take());
        }
        put(&mut s, k, v).unwrap();
    }
    finish_build(&mut s, b);
    s
}

fn finish_build(s: &mut MemStore, b: Option<build::Builder>) {
    let Some(b) = b else { return };
    if let Some(m) = b.finish(&mut MemSink(s)).unwrap() {
        m.encode(s.page_mut(PageNo::META).unwrap());
    }
}

fn put_all(ps: usize, pairs: &[(Vec<u8>, Vec<u8>)]) -> MemStore {
    let mut s = new_tree(ps);
    for (k, v) in pairs {
        put(&mut s, k, v).unwrap();
    }
    s
}

/// The builder's pages are the pages one put per pair makes, byte for
/// byte: a load may switch from one to the other at any pair.
fn assert_same_pages(a: &MemStore, b: &MemStore, ctx: &str) {
    assert_eq!(a.pages.len(), b.pages.len(), "{ctx}: page count");
    for (i, (x, y)) in a.pages.iter().zip(&b.pages).enumerate() {
        let (Some(x), Some(y)) = (x, y) else {
            panic!("{ctx}: page {i} missing in one tree");
        };
        assert!(
            x[page::LSN_END..] == y[page::LSN_END..],
            "{ctx}: page {i} differs"
        );
    }
}

#[test]
fn bulk_build_equals_puts_page_for_page() {
    for ps in [512usize, 4096, 65536] {
        for seed in 0..6u64 {
            let mut r = Rng::new(seed * 31 + ps as u64);
            let mut big = 40u32;
            let mut model: Model = BTreeMap::new();
            let n = if ps == 65536 { 3000 } else { 1500 };
            for _ in 0..n {
                let k = random_key(&mut r, ps);
                let v = random_val(&mut r, ps, &mut big);
                model.insert(k, v);
            }
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
            let ctx = format!("ps {ps} seed {seed}");
            let built = build_then_put(ps, &pairs);
            assert_same_pages(&built, &put_all(ps, &pairs), &ctx);
            assert_sound(&built, &model);
            // Out of order from some point on (a duplicate, then a key
            // from the past): the fallback to puts ends the same way.
            let at = r.below(pairs.len() as u64) as usize;
            let dup = pairs[at / 2].clone();
            pairs.insert(at, (dup.0.clone(), b"again".to_vec()));
            model.insert(dup.0, b"again".to_vec());
            let built = build_then_put(ps, &pairs);
            assert_same_pages(&built, &put_all(ps, &pairs), &format!("{ctx} dup at {at}"));
            assert_sound(&built, &model);
        }
    }
}

#[test]
fn bulk_build_refuses_a_non_empty_tree_and_keeps_an_empty_input_empty() {
    let mut s = new_tree(512);
    put(&mut s, b"a", b"1").unwrap();
    assert!(build::Builder::start(&s).unwrap().is_none());
    let s = new_tree(512);
    let b = build::Builder::start(&s).unwrap().unwrap();
    let mut t = s.clone();
    assert!(b.finish(&mut MemSink(&mut t)).unwrap().is_none());
    assert_same_pages(&s, &t, "empty");
    // Long keys: separators and keys in overflow chains.
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..200u32)
        .map(|i| {
            let mut k = vec![b'x'; 700];
            k.extend_from_slice(format!("{i:05}").as_bytes());
            (k, vec![i as u8; 300])
        })
        .collect();
    assert_same_pages(
        &build_then_put(512, &pairs),
        &put_all(512, &pairs),
        "long keys",
    );
}
