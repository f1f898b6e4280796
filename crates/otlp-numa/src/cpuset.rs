//! [`CpuSet`]: a set of logical CPU ids, read and written as a Linux cpulist.

use std::fmt;
use std::str::FromStr;

use crate::NumaError;

/// The largest CPU id a [`CpuSet`] will parse from text (Linux's own
/// `NR_CPUS` limit is 8192); larger ids in a cpulist are a parse error rather
/// than a giant allocation.
pub const MAX_PARSED_CPU: usize = 1 << 16;

/// A set of logical CPU ids (the `N` of `/sys/devices/system/cpu/cpuN`).
///
/// Stored as a bitmap, iterated in increasing order, and displayed as a
/// Linux cpulist (`0-3,8,10-11`), the format sysfs uses; [`FromStr`] parses
/// the same format.
///
/// ```
/// use otlp_numa::CpuSet;
/// let set: CpuSet = "0-3,8".parse().unwrap();
/// assert_eq!(set.len(), 5);
/// assert!(set.contains(8));
/// assert_eq!(set.to_string(), "0-3,8");
/// let odd: CpuSet = set.iter().filter(|c| c % 2 == 1).collect();
/// assert_eq!(odd.to_string(), "1,3");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    words: Vec<u64>,
}

impl CpuSet {
    /// An empty set.
    pub const fn new() -> Self {
        CpuSet { words: Vec::new() }
    }

    /// A set holding one CPU.
    pub fn single(cpu: usize) -> Self {
        let mut set = CpuSet::new();
        set.insert(cpu);
        set
    }

    /// Adds `cpu`; returns whether it was absent.
    pub fn insert(&mut self, cpu: usize) -> bool {
        let (w, b) = (cpu / 64, cpu % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        !was
    }

    /// Removes `cpu`; returns whether it was present.
    pub fn remove(&mut self, cpu: usize) -> bool {
        let (w, b) = (cpu / 64, cpu % 64);
        match self.words.get_mut(w) {
            Some(word) if *word & (1 << b) != 0 => {
                *word &= !(1 << b);
                self.trim();
                true
            }
            _ => false,
        }
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.words
            .get(cpu / 64)
            .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
    }

    /// Number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The smallest CPU id in the set.
    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    /// The largest CPU id in the set.
    pub fn last(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + 63 - w.leading_zeros() as usize)
    }

    /// The CPUs in increasing order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            words: &self.words,
            index: 0,
            current: self.words.first().copied().unwrap_or(0),
        }
    }

    /// CPUs in either set.
    pub fn union(&self, other: &CpuSet) -> CpuSet {
        let n = self.words.len().max(other.words.len());
        let words = (0..n)
            .map(|i| self.word(i) | other.word(i))
            .collect::<Vec<_>>();
        let mut set = CpuSet { words };
        set.trim();
        set
    }

    /// CPUs in both sets.
    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        let n = self.words.len().min(other.words.len());
        let words = (0..n)
            .map(|i| self.word(i) & other.word(i))
            .collect::<Vec<_>>();
        let mut set = CpuSet { words };
        set.trim();
        set
    }

    /// CPUs in `self` but not in `other`.
    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        let words = (0..self.words.len())
            .map(|i| self.word(i) & !other.word(i))
            .collect::<Vec<_>>();
        let mut set = CpuSet { words };
        set.trim();
        set
    }

    /// Whether every CPU of `self` is in `other`.
    pub fn is_subset(&self, other: &CpuSet) -> bool {
        (0..self.words.len()).all(|i| self.word(i) & !other.word(i) == 0)
    }

    /// Parses a Linux cpulist such as `0-3,8,10-11` (whitespace around the
    /// text and an empty string are accepted; the latter is the empty set).
    ///
    /// # Errors
    /// [`NumaError::Parse`] naming the text when it is malformed, a range is
    /// reversed, or an id exceeds [`MAX_PARSED_CPU`].
    pub fn parse_cpulist(text: &str) -> Result<CpuSet, NumaError> {
        let err = |reason: String| NumaError::Parse {
            what: "cpulist",
            text: text.to_owned(),
            reason,
        };
        let num = |s: &str| -> Result<usize, NumaError> {
            let n: usize = s
                .trim()
                .parse()
                .map_err(|e| err(format!("{s:?} is not a CPU id: {e}")))?;
            if n > MAX_PARSED_CPU {
                return Err(err(format!("CPU id {n} exceeds {MAX_PARSED_CPU}")));
            }
            Ok(n)
        };
        let mut set = CpuSet::new();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(set);
        }
        for part in trimmed.split(',') {
            match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (num(lo)?, num(hi)?);
                    if lo > hi {
                        return Err(err(format!("range {lo}-{hi} is reversed")));
                    }
                    for cpu in lo..=hi {
                        set.insert(cpu);
                    }
                }
                None => {
                    set.insert(num(part)?);
                }
            }
        }
        Ok(set)
    }

    fn word(&self, i: usize) -> u64 {
        self.words.get(i).copied().unwrap_or(0)
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }
}

/// Iterator over the CPUs of a [`CpuSet`], in increasing order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    words: &'a [u64],
    index: usize,
    current: u64,
}

impl Iterator for Iter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        loop {
            if self.current != 0 {
                let bit = self.current.trailing_zeros() as usize;
                self.current &= self.current - 1;
                return Some(self.index * 64 + bit);
            }
            self.index += 1;
            self.current = *self.words.get(self.index)?;
        }
    }
}

impl<'a> IntoIterator for &'a CpuSet {
    type Item = usize;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = CpuSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<usize> for CpuSet {
    fn extend<I: IntoIterator<Item = usize>>(&mut self, iter: I) {
        for cpu in iter {
            self.insert(cpu);
        }
    }
}

impl FromStr for CpuSet {
    type Err = NumaError;
    fn from_str(s: &str) -> Result<Self, NumaError> {
        CpuSet::parse_cpulist(s)
    }
}

impl fmt::Display for CpuSet {
    /// Writes the set as a cpulist: `0-3,8`; the empty set writes nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut iter = self.iter().peekable();
        let mut first = true;
        while let Some(lo) = iter.next() {
            let mut hi = lo;
            while iter.peek() == Some(&(hi + 1)) {
                hi += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if hi == lo {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for text in ["", "0", "0-3", "0-3,8", "1,3,5", "0-64,127-129", "200"] {
            let set: CpuSet = text.parse().unwrap();
            assert_eq!(set.to_string(), text);
        }
        let set: CpuSet = " 3, 1-2 ,0\n".parse().unwrap();
        assert_eq!(set.to_string(), "0-3");
        assert_eq!(set.len(), 4);
    }

    #[test]
    fn parse_rejects_garbage() {
        for text in ["x", "1-", "-1", "3-1", "1,,2", "99999999"] {
            let err = text.parse::<CpuSet>().unwrap_err();
            assert!(matches!(err, NumaError::Parse { .. }), "{text}: {err}");
            assert!(err.to_string().contains("cpulist"), "{err}");
        }
    }

    #[test]
    fn set_operations() {
        let a: CpuSet = "0-7".parse().unwrap();
        let b: CpuSet = "4-11".parse().unwrap();
        assert_eq!(a.union(&b).to_string(), "0-11");
        assert_eq!(a.intersection(&b).to_string(), "4-7");
        assert_eq!(a.difference(&b).to_string(), "0-3");
        assert!(a.intersection(&b).is_subset(&a));
        assert!(!a.is_subset(&b));
        assert_eq!(b.first(), Some(4));
        assert_eq!(b.last(), Some(11));
        let mut c = CpuSet::single(130);
        assert!(c.contains(130) && !c.contains(129));
        assert!(c.remove(130));
        assert!(c.is_empty());
        assert_eq!(c, CpuSet::new());
        assert_eq!(c.last(), None);
    }
}
