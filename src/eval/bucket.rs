//! Unleash-compatible murmur3 bucketing. Fixed forever: a user's bucket must never move.
//!
//! The hashed key is `"{group}:{stickiness}"` (UTF-8), hashed with murmur3 x86 32-bit. It is fed
//! to a streaming hasher as three byte slices, so no string is built per evaluation.

use std::hash::Hasher as _;

/// Seed for percentage buckets.
pub const ROLLOUT_SEED: u32 = 0;
/// Seed for variant picks (Unleash's variant seed).
pub const VARIANT_SEED: u32 = 86_028_157;

/// murmur3 x86 32-bit of a byte string.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    mur3::murmurhash3_x86_32(bytes, seed)
}

/// murmur3 x86 32-bit of `"{group}:{stickiness}"`.
pub fn hash_key(group: &str, stickiness: &str, seed: u32) -> u32 {
    let mut hasher = mur3::Hasher32::with_seed(seed);
    hasher.write(group.as_bytes());
    hasher.write(b":");
    hasher.write(stickiness.as_bytes());
    hasher.finish32()
}

/// The rollout bucket, 1..=100. A context is inside a percentage `p` iff `bucket <= p`.
pub fn bucket(group: &str, stickiness: &str) -> u32 {
    hash_key(group, stickiness, ROLLOUT_SEED) % 100 + 1
}

/// The variant target, 1..=total_weight. `total_weight` must be positive.
pub fn variant_target(group: &str, stickiness: &str, total_weight: u32) -> u32 {
    hash_key(group, stickiness, VARIANT_SEED) % total_weight.max(1) + 1
}

/// flagd's fractional bucket, 0..total_weight: murmur3 x86 32-bit, seed 0, of
/// `"{group}{stickiness}"` (no separator) as unsigned, scaled by `(hash * total) >> 32`.
pub fn flagd_bucket(group: &str, stickiness: &str, total_weight: u32) -> u32 {
    let mut hasher = mur3::Hasher32::with_seed(0);
    hasher.write(group.as_bytes());
    hasher.write(stickiness.as_bytes());
    let hash = u64::from(hasher.finish32());
    u32::try_from((hash * u64::from(total_weight)) >> 32).expect("below total_weight")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(flag key, targeting key, total weight, bucket)`.
    const GOLDEN_FLAGD: &[(&str, &str, u32, u32)] = &[
        ("headerColor", "user-1", 100, 57),
        ("headerColor", "user-2", 100, 82),
        ("headerColor", "jon@company.com", 100, 50),
        ("color-palette-experiment", "user@company.com", 4, 3),
        ("color-palette-experiment", "user-42", 4, 3),
        ("new-welcome-banner", "x", 3, 0),
        ("ab", "ü😀", 1000, 73),
    ];

    /// Golden values computed outside this code from flagd's algorithm (a separate murmur3
    /// x86_32 implementation over `flagKey + targetingKey`, seed 0, `(hash * total) >> 32`).
    #[test]
    fn golden_flagd_buckets() {
        for (flag, key, total, bucket) in GOLDEN_FLAGD {
            assert_eq!(flagd_bucket(flag, key, *total), *bucket, "{flag}{key} of {total}");
        }
    }

    #[test]
    fn golden_murmur3_vectors() {
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_32(b"The quick brown fox jumps over the lazy dog", 0), 0x2e4f_f723);
    }

    #[test]
    fn chained_key_equals_concatenated_key() {
        for (g, s) in [("AB12A", "122"), ("", ""), ("g", "ü-ß-😀"), ("long-group-name", "x")] {
            let joined = format!("{g}:{s}");
            assert_eq!(hash_key(g, s, 0), murmur3_32(joined.as_bytes(), 0));
            assert_eq!(hash_key(g, s, VARIANT_SEED), murmur3_32(joined.as_bytes(), VARIANT_SEED));
        }
    }

    #[test]
    fn agrees_with_the_reference_murmur3_crate() {
        for text in ["", "a", "ab", "abc", "abcd", "abcde", "new_payment_flow:user-42", "ü😀"] {
            let mut source = text.as_bytes();
            let reference = murmur3::murmur3_32(&mut source, VARIANT_SEED).expect("slice read");
            assert_eq!(murmur3_32(text.as_bytes(), VARIANT_SEED), reference, "{text:?}");
        }
    }

    #[test]
    fn golden_buckets() {
        assert_eq!(bucket("AB12A", "122"), 23);
        assert_eq!(bucket("AB12A", "155"), 100);
        assert_eq!(bucket("Feature.flexibleRollout.10", "174"), 10);
        assert_eq!(bucket("Feature.flexibleRollout.10", "499"), 32);
    }

    #[test]
    fn golden_variant_targets() {
        assert_eq!(variant_target("Feature.Variants.C", "232", 99), 18);
        assert_eq!(variant_target("Feature.Variants.C", "607", 99), 58);
        assert_eq!(variant_target("Feature.Variants.C", "656", 99), 94);
    }
}
