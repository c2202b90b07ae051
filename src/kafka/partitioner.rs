//! Partition choice for the `kafka` output, matching the clients upstream configs
//! expect: `fnv1a_hash` as sarama's hash partitioner, `murmur2_hash` as the Java
//! client's default partitioner (so keyed records land where Java producers put them),
//! `random`, `round_robin` and `manual`. Records without a key under the hash
//! partitioners stick to one partition until its batch is sent (the Java client's
//! sticky partitioner, KIP-480), so concurrent key-less records share produce requests.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    #[default]
    Fnv1aHash,
    Murmur2Hash,
    Random,
    RoundRobin,
    Manual,
}

/// Per-shard state a partitioner needs (the round-robin cursor, sticky partitions).
#[derive(Debug, Default)]
pub struct Cursor {
    next: Cell<u32>,
    /// Per topic: the partition key-less records stick to, and how many batches that
    /// partition had sent when it was chosen.
    sticky: RefCell<Vec<(Arc<str>, u32, u64)>>,
}

impl Cursor {
    /// The partition for a key-less record of `topic`: the current sticky one while
    /// its batch is still open (`sent(p)`, the batches partition `p` has sent, is
    /// unchanged), else a new random one.
    fn sticky(&self, topic: &Arc<str>, partitions: u32, sent: impl Fn(u32) -> u64) -> u32 {
        let mut sticky = self.sticky.borrow_mut();
        let i = match sticky.iter().position(|(t, ..)| t == topic) {
            Some(i) => i,
            // No partition yet: `u32::MAX` is never valid, so one is picked below.
            None => {
                sticky.push((topic.clone(), u32::MAX, 0));
                sticky.len() - 1
            }
        };
        let (_, p, at) = &mut sticky[i];
        if *p >= partitions || sent(*p) != *at {
            *p = rand::random::<u32>() % partitions;
            *at = sent(*p);
        }
        *p
    }
}

impl Partitioner {
    /// The partition for a record of `topic` with `key` among `partitions` (> 0).
    /// `Manual` is resolved by the caller (it interpolates `partition`); here it falls
    /// back to 0. A key-less record under a hash partitioner gets the topic's sticky
    /// partition; `sent(p)` is how many batches partition `p` has sent so far.
    pub fn choose(
        self,
        key: Option<&[u8]>,
        topic: &Arc<str>,
        partitions: u32,
        cursor: &Cursor,
        sent: impl Fn(u32) -> u64,
    ) -> u32 {
        debug_assert!(partitions > 0);
        match (self, key) {
            (Partitioner::Fnv1aHash, Some(k)) => fnv1a_partition(k, partitions),
            (Partitioner::Murmur2Hash, Some(k)) => murmur2_partition(k, partitions),
            (Partitioner::RoundRobin, _) => {
                let n = cursor.next.get();
                cursor.next.set(n.wrapping_add(1));
                n % partitions
            }
            (Partitioner::Manual, _) => 0,
            (Partitioner::Fnv1aHash | Partitioner::Murmur2Hash, None) => {
                cursor.sticky(topic, partitions, sent)
            }
            (Partitioner::Random, _) => rand::random::<u32>() % partitions,
        }
    }
}

/// sarama's `hashPartitioner` with FNV-1a 32: `int32(hash) % n`, negated if negative
/// (Go's `%` keeps the dividend's sign, like Rust's).
pub fn fnv1a_partition(key: &[u8], partitions: u32) -> u32 {
    let p = (fnv1a32(key) as i32) % partitions as i32;
    p.unsigned_abs()
}

/// The Java client's `Utils.toPositive(Utils.murmur2(key)) % numPartitions`.
pub fn murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions
}

pub fn fnv1a32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Kafka's `Utils.murmur2` (MurmurHash2, seed 0x9747b28c), as a Java `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Java's switch falls through: 3 then 2 then 1, then one multiply.
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // org.apache.kafka.common.utils.UtilsTest.testMurmur2, the Java client's own
        // vectors (signed Java ints).
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), *want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn murmur2_partition_is_the_java_default_partitioners() {
        // Java: Utils.toPositive(Utils.murmur2(key)) % numPartitions, worked by hand
        // from the vectors above: toPositive(-973932308) = 1173551340, etc.
        assert_eq!(murmur2_partition(b"21", 4), 1173551340 % 4);
        assert_eq!(murmur2_partition(b"21", 7), 1173551340 % 7);
        assert_eq!(murmur2_partition(b"foobar", 12), 1357151166 % 12);
        assert_eq!(murmur2_partition(b"abc", 3), 479470107 % 3);
        assert_eq!(
            murmur2_partition(b"a-little-bit-longer-string", 10),
            661178819 % 10
        );
    }

    #[test]
    fn fnv1a_matches_sarama() {
        // FNV-1a 32 reference values ("" is the offset basis).
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9cf968);
        // int32(0xbf9cf968) = -1080231576; Go: -1080231576 % 4 = 0, % 7 = -1 -> 1.
        assert_eq!(fnv1a_partition(b"foobar", 4), 0);
        assert_eq!(fnv1a_partition(b"foobar", 7), (1080231576 % 7) as u32);
    }

    #[test]
    fn keyless_records_stick_until_the_batch_is_sent() {
        let c = Cursor::default();
        let topic: Arc<str> = Arc::from("t");
        let sent = Cell::new(0u64);
        let first = Partitioner::Fnv1aHash.choose(None, &topic, 8, &c, |_| sent.get());
        for _ in 0..50 {
            assert_eq!(
                Partitioner::Fnv1aHash.choose(None, &topic, 8, &c, |_| sent.get()),
                first
            );
        }
        // After the batch is sent, records move on (to a random partition, which may be
        // the same one: over many batches, more than one partition is used).
        let mut used = std::collections::BTreeSet::new();
        for _ in 0..50 {
            sent.set(sent.get() + 1);
            used.insert(Partitioner::Fnv1aHash.choose(None, &topic, 8, &c, |_| sent.get()));
        }
        assert!(used.len() > 1, "{used:?}");
    }

    #[test]
    fn keyless_and_round_robin() {
        let c = Cursor::default();
        let t: Arc<str> = Arc::from("t");
        let picks: Vec<u32> = (0..5)
            .map(|_| Partitioner::RoundRobin.choose(None, &t, 3, &c, |_| 0))
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1]);
        for _ in 0..100 {
            assert!(Partitioner::Murmur2Hash.choose(None, &t, 4, &c, |_| 0) < 4);
            assert!(Partitioner::Random.choose(Some(b"k"), &t, 4, &c, |_| 0) < 4);
        }
        assert_eq!(
            Partitioner::Murmur2Hash.choose(Some(b"21"), &t, 4, &c, |_| 0),
            murmur2_partition(b"21", 4)
        );
    }
}
