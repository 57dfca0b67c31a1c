//! Bucketed sets: items (dense `u32` ids) kept in numbered buckets, each bucket sorted by id, and
//! a bitmask of non-empty buckets so "the first non-empty bucket at or above k" costs a few word
//! scans. The scheduler keeps nodes bucketed by free capacity, NVLink domains and blocks by their
//! count of fully free nodes, and shared GPUs by their free thousandths.
//!
//! A bucket's order depends only on which items it holds, never on the order they came in, so
//! indexes kept up to date for months of changes equal indexes built afresh from the same free
//! capacity, and pick the same items. Insert and remove are a binary search and a move of the
//! items after it; the scheduler takes from the high end (highest id first), where that move is
//! short.

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
    /// in any bucket stay out). Costs one cut and one splice per bucket touched, where moving the
    /// items one by one would shift each bucket's tail once per item.
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
