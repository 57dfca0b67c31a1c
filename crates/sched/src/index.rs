//! Bucketed sets: items (dense `u32` ids) kept in numbered buckets, each bucket sorted by id, and
//! a bitmask of non-empty buckets so "the first non-empty bucket at or above k" costs a few word
//! scans. The scheduler keeps nodes bucketed by free capacity, NVLink domains and blocks by their
//! count of fully free nodes, and shared GPUs by their free thousandths.
//!
//! A bucket's order depends only on which items it holds, never on the order they came in, so
//! indexes kept up to date for months of changes equal indexes built afresh from the same free
//! capacity, and pick the same items (the highest id first). [`Buckets`] keeps sorted lists
//! (insert and remove: a binary search and a move of the items after it), for the small or rarely
//! changed indexes; [`BitBuckets`] keeps bitmaps, for the node index that changes at every
//! placement and release.

const ABSENT: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Buckets {
    bucket_of: Vec<u32>,
    /// Each sorted by item id.
    lists: Vec<Vec<u32>>,
    non_empty: Vec<u64>,
}

impl Buckets {
    pub(crate) fn new(items: usize, buckets: usize) -> Buckets {
        Buckets {
            bucket_of: vec![ABSENT; items],
            lists: vec![Vec::new(); buckets],
            non_empty: vec![0; buckets.div_ceil(64).max(1)],
        }
    }

    /// Whether no bucket holds an item.
    pub(crate) fn is_empty(&self) -> bool {
        self.non_empty.iter().all(|&w| w == 0)
    }

    /// An empty set of the same size.
    #[cfg(test)]
    pub(crate) fn cleared(&self) -> Buckets {
        Buckets::new(self.bucket_of.len(), self.lists.len())
    }

    pub(crate) fn bucket_count(&self) -> u32 {
        self.lists.len() as u32
    }

    #[cfg(test)]
    pub(crate) fn bucket_of(&self, item: u32) -> Option<u32> {
        let b = self.bucket_of[item as usize];
        (b != ABSENT).then_some(b)
    }

    pub(crate) fn insert(&mut self, item: u32, bucket: u32) {
        debug_assert_eq!(self.bucket_of[item as usize], ABSENT, "item {item} inserted twice");
        let list = &mut self.lists[bucket as usize];
        match list.last() {
            Some(&last) if last > item => {
                let at = list.binary_search(&item).unwrap_err();
                list.insert(at, item);
            }
            _ => list.push(item),
        }
        self.bucket_of[item as usize] = bucket;
        self.non_empty[(bucket / 64) as usize] |= 1u64 << (bucket % 64);
    }

    pub(crate) fn remove(&mut self, item: u32) {
        let bucket = self.bucket_of[item as usize];
        if bucket == ABSENT {
            return;
        }
        let list = &mut self.lists[bucket as usize];
        if list.last() == Some(&item) {
            list.pop();
        } else {
            let at = list.binary_search(&item).expect("bucket holds the item");
            list.remove(at);
        }
        if list.is_empty() {
            self.non_empty[(bucket / 64) as usize] &= !(1u64 << (bucket % 64));
        }
        self.bucket_of[item as usize] = ABSENT;
    }

    /// Puts `item` in `bucket`, inserting or moving it.
    pub(crate) fn set(&mut self, item: u32, bucket: u32) {
        if self.bucket_of[item as usize] == bucket {
            return;
        }
        self.remove(item);
        self.insert(item, bucket);
    }

    /// Moves every item with an id in `lo..hi` from its bucket `k` to bucket `k ^ xor` (items not
    /// in any bucket stay out): one cut and one splice per bucket touched. (The node index, a
    /// [`BitBuckets`], has its own; this one is the reference its test compares with.)
    #[cfg(test)]
    pub(crate) fn toggle_range(&mut self, lo: u32, hi: u32, xor: u32) {
        let mut sources: Vec<u32> = Vec::new();
        for item in lo..hi {
            let b = self.bucket_of[item as usize];
            if b != ABSENT && !sources.contains(&b) {
                sources.push(b);
            }
        }
        let mut runs: Vec<(u32, Vec<u32>)> = Vec::with_capacity(sources.len());
        for b in sources {
            let list = &mut self.lists[b as usize];
            let start = list.partition_point(|&x| x < lo);
            let end = list.partition_point(|&x| x < hi);
            runs.push((b ^ xor, list.drain(start..end).collect()));
            if list.is_empty() {
                self.non_empty[(b / 64) as usize] &= !(1u64 << (b % 64));
            }
        }
        for (dest, run) in runs {
            for &item in &run {
                self.bucket_of[item as usize] = dest;
            }
            let list = &mut self.lists[dest as usize];
            let at = list.partition_point(|&x| x < lo);
            list.splice(at..at, run);
            self.non_empty[(dest / 64) as usize] |= 1u64 << (dest % 64);
        }
    }

    /// The lowest non-empty bucket numbered `from` or above.
    pub(crate) fn first_at_least(&self, from: u32) -> Option<u32> {
        if from >= self.bucket_count() {
            return None;
        }
        let mut word = (from / 64) as usize;
        let mut bits = self.non_empty[word] & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return Some(word as u32 * 64 + bits.trailing_zeros());
            }
            word += 1;
            if word >= self.non_empty.len() {
                return None;
            }
            bits = self.non_empty[word];
        }
    }

    /// The items of a bucket, by increasing id.
    pub(crate) fn items(&self, bucket: u32) -> &[u32] {
        &self.lists[bucket as usize]
    }

    /// How many items sit in buckets numbered `from` or above.
    #[cfg(test)]
    pub(crate) fn count_at_least(&self, from: u32) -> usize {
        let mut total = 0;
        let mut next = self.first_at_least(from);
        while let Some(b) = next {
            total += self.lists[b as usize].len();
            next = self.first_at_least(b + 1);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_non_empty_bucket_and_moves_items() {
        let mut b = Buckets::new(10, 130);
        b.insert(3, 70);
        b.insert(4, 129);
        b.insert(5, 2);
        assert_eq!(b.first_at_least(0), Some(2));
        assert_eq!(b.first_at_least(3), Some(70));
        assert_eq!(b.first_at_least(71), Some(129));
        assert_eq!(b.count_at_least(3), 2);
        b.set(3, 128);
        assert_eq!(b.first_at_least(3), Some(128));
        b.remove(3);
        b.remove(4);
        assert_eq!(b.first_at_least(3), None);
        assert_eq!(b.bucket_of(5), Some(2));
        assert_eq!(b.bucket_of(3), None);
        assert_eq!(b.first_at_least(500), None);
    }

    #[test]
    fn removal_keeps_positions_consistent() {
        let mut b = Buckets::new(5, 4);
        for i in 0..5 {
            b.insert(i, 1);
        }
        b.remove(0);
        b.remove(3);
        assert_eq!(b.items(1), &[1, 2, 4]);
        for i in [1, 2, 4] {
            b.remove(i);
        }
        assert_eq!(b.first_at_least(0), None);
    }

    #[test]
    fn toggling_a_range_moves_exactly_its_items() {
        let mut b = Buckets::new(10, 8);
        for (item, bucket) in [(0, 1), (2, 5), (3, 5), (4, 7), (5, 1), (6, 5), (9, 5)] {
            b.insert(item, bucket);
        }
        b.toggle_range(2, 7, 2);
        let mut expected = Buckets::new(10, 8);
        for (item, bucket) in [(0, 1), (2, 7), (3, 7), (4, 5), (5, 3), (6, 7), (9, 5)] {
            expected.insert(item, bucket);
        }
        assert_eq!(b, expected);
        assert_eq!(b.items(5), &[4, 9]);
        assert_eq!(b.first_at_least(2), Some(3));
    }

    #[test]
    fn bucket_order_does_not_depend_on_history() {
        let mut a = Buckets::new(6, 3);
        let mut b = Buckets::new(6, 3);
        for i in [5, 1, 3, 0] {
            a.insert(i, 2);
        }
        for i in [0, 1, 2, 3, 5] {
            b.insert(i, 2);
        }
        b.set(2, 0);
        b.remove(2);
        assert_eq!(a.items(2), &[0, 1, 3, 5]);
        assert_eq!(a, b);
    }
}

/// The same sets as [`Buckets`], each bucket a two-level bitmap over item ids (a word of bits per
/// 64 items, and a summary bit per non-zero word), for the hot node index: insert, remove and
/// move cost a few word operations whatever the bucket's size, and a bucket is read from its
/// highest id down. A bucket's bitmap is allocated when it first gets an item.
#[derive(Clone, Debug)]
pub(crate) struct BitBuckets {
    bucket_of: Vec<u32>,
    words: usize,
    bits: Vec<Vec<u64>>,
    summary: Vec<Vec<u64>>,
    counts: Vec<u32>,
    non_empty: Vec<u64>,
}

/// Which buckets hold which items is all there is to compare (the bitmaps follow from it).
impl PartialEq for BitBuckets {
    fn eq(&self, other: &BitBuckets) -> bool {
        self.bucket_of == other.bucket_of && self.counts.len() == other.counts.len()
    }
}

impl Eq for BitBuckets {}

impl BitBuckets {
    pub(crate) fn new(items: usize, buckets: usize) -> BitBuckets {
        BitBuckets {
            bucket_of: vec![ABSENT; items],
            words: items.div_ceil(64),
            bits: vec![Vec::new(); buckets],
            summary: vec![Vec::new(); buckets],
            counts: vec![0; buckets],
            non_empty: vec![0; buckets.div_ceil(64).max(1)],
        }
    }

    #[cfg(test)]
    pub(crate) fn cleared(&self) -> BitBuckets {
        BitBuckets::new(self.bucket_of.len(), self.counts.len())
    }

    fn bucket_count(&self) -> u32 {
        self.counts.len() as u32
    }

    #[cfg(test)]
    pub(crate) fn bucket_of(&self, item: u32) -> Option<u32> {
        let b = self.bucket_of[item as usize];
        (b != ABSENT).then_some(b)
    }

    #[inline]
    fn add_bits(&mut self, bucket: u32, item: u32) {
        let b = bucket as usize;
        if self.bits[b].is_empty() {
            self.bits[b] = vec![0; self.words];
            self.summary[b] = vec![0; self.words.div_ceil(64)];
        }
        let w = (item / 64) as usize;
        self.bits[b][w] |= 1u64 << (item % 64);
        self.summary[b][w / 64] |= 1u64 << (w % 64);
        self.counts[b] += 1;
        self.non_empty[b / 64] |= 1u64 << (b % 64);
    }

    #[inline]
    fn clear_bits(&mut self, bucket: u32, item: u32) {
        let b = bucket as usize;
        let w = (item / 64) as usize;
        self.bits[b][w] &= !(1u64 << (item % 64));
        if self.bits[b][w] == 0 {
            self.summary[b][w / 64] &= !(1u64 << (w % 64));
        }
        self.counts[b] -= 1;
        if self.counts[b] == 0 {
            self.non_empty[b / 64] &= !(1u64 << (b % 64));
        }
    }

    pub(crate) fn remove(&mut self, item: u32) {
        let bucket = self.bucket_of[item as usize];
        if bucket == ABSENT {
            return;
        }
        self.clear_bits(bucket, item);
        self.bucket_of[item as usize] = ABSENT;
    }

    /// Puts `item` in `bucket`, inserting or moving it.
    pub(crate) fn set(&mut self, item: u32, bucket: u32) {
        let was = self.bucket_of[item as usize];
        if was == bucket {
            return;
        }
        if was != ABSENT {
            self.clear_bits(was, item);
        }
        self.add_bits(bucket, item);
        self.bucket_of[item as usize] = bucket;
    }

    /// Moves every item with an id in `lo..hi` from its bucket `k` to bucket `k ^ xor`.
    pub(crate) fn toggle_range(&mut self, lo: u32, hi: u32, xor: u32) {
        for item in lo..hi {
            let b = self.bucket_of[item as usize];
            if b != ABSENT {
                self.set(item, b ^ xor);
            }
        }
    }

    /// The lowest non-empty bucket numbered `from` or above.
    pub(crate) fn first_at_least(&self, from: u32) -> Option<u32> {
        first_set_at_least(&self.non_empty, from, self.bucket_count())
    }

    /// The items of a bucket, highest id first.
    pub(crate) fn items_desc(&self, bucket: u32) -> ItemsDesc<'_> {
        let b = bucket as usize;
        ItemsDesc {
            bits: &self.bits[b],
            summary: &self.summary[b],
            next_summary: self.summary[b].len(),
            s: 0,
            w: 0,
            x: 0,
        }
    }

    /// How many items sit in buckets numbered `from` or above.
    pub(crate) fn count_at_least(&self, from: u32) -> usize {
        let mut total = 0;
        let mut next = self.first_at_least(from);
        while let Some(b) = next {
            total += self.counts[b as usize] as usize;
            next = self.first_at_least(b + 1);
        }
        total
    }
}

/// The items of one bucket of a [`BitBuckets`], highest id first: summary words from the top,
/// then the set words they mark, then their set bits.
pub(crate) struct ItemsDesc<'a> {
    bits: &'a [u64],
    summary: &'a [u64],
    /// Summary words not yet read are `0..next_summary`.
    next_summary: usize,
    /// Unread bits of the current summary word (at `next_summary`) and of word `w`.
    s: u64,
    w: usize,
    x: u64,
}

impl Iterator for ItemsDesc<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        loop {
            if self.x != 0 {
                let i = 63 - self.x.leading_zeros();
                self.x &= !(1u64 << i);
                return Some((self.w * 64) as u32 + i);
            }
            if self.s != 0 {
                let k = 63 - self.s.leading_zeros();
                self.s &= !(1u64 << k);
                self.w = self.next_summary * 64 + k as usize;
                self.x = self.bits[self.w];
                continue;
            }
            if self.next_summary == 0 {
                return None;
            }
            self.next_summary -= 1;
            self.s = self.summary[self.next_summary];
        }
    }
}

fn first_set_at_least(non_empty: &[u64], from: u32, count: u32) -> Option<u32> {
    if from >= count {
        return None;
    }
    let mut word = (from / 64) as usize;
    let mut bits = non_empty[word] & (!0u64 << (from % 64));
    loop {
        if bits != 0 {
            return Some(word as u32 * 64 + bits.trailing_zeros());
        }
        word += 1;
        if word >= non_empty.len() {
            return None;
        }
        bits = non_empty[word];
    }
}

/// A small deterministic generator so the crate's unit tests need no randomness crate.
#[cfg(test)]
pub(crate) struct Lcg(pub(crate) u64);

#[cfg(test)]
impl Lcg {
    pub(crate) fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[cfg(test)]
mod bit_tests {
    use super::*;

    pub(crate) use crate::index::Lcg;

    #[test]
    fn bitmaps_hold_the_same_sets_as_sorted_lists() {
        let (items, buckets) = (5000u32, 40u32);
        let mut lists = Buckets::new(items as usize, buckets as usize);
        let mut bits = BitBuckets::new(items as usize, buckets as usize);
        let mut rng = Lcg(11);
        for step in 0..20_000 {
            match rng.next(10) {
                0 => {
                    let item = rng.next(u64::from(items)) as u32;
                    lists.remove(item);
                    bits.remove(item);
                }
                1 => {
                    let lo = rng.next(u64::from(items)) as u32;
                    let hi = (lo + 1 + rng.next(300) as u32).min(items);
                    let xor = 1 + rng.next(3) as u32;
                    lists.toggle_range(lo, hi, xor);
                    bits.toggle_range(lo, hi, xor);
                }
                _ => {
                    let item = rng.next(u64::from(items)) as u32;
                    let bucket = rng.next(u64::from(buckets - 4)) as u32;
                    lists.set(item, bucket);
                    bits.set(item, bucket);
                }
            }
            if step % 997 == 0 {
                for b in 0..buckets {
                    let mut want: Vec<u32> = lists.items(b).to_vec();
                    want.reverse();
                    assert_eq!(bits.items_desc(b).collect::<Vec<_>>(), want, "bucket {b} at step {step}");
                    assert_eq!(bits.first_at_least(b), lists.first_at_least(b));
                    assert_eq!(bits.count_at_least(b), lists.count_at_least(b));
                }
            }
        }
        assert!(bits.bucket_of.iter().zip(0..).all(|(&b, i)| lists.bucket_of(i) == (b != ABSENT).then_some(b)));
    }
}
