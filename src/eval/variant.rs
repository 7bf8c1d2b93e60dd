//! Weighted variant picks (Unleash's walk over cumulative weights).

use super::bucket::{flagd_bucket, variant_target};
use crate::flags::snapshot::{Hashing, VariantIdx};

/// Picks a variant from `split` (in file order) for a stickiness value, by `hashing`.
pub fn pick(
    split: &[(VariantIdx, u32)],
    total_weight: u32,
    hashing: Hashing,
    group: &str,
    stickiness: &str,
) -> Option<VariantIdx> {
    if total_weight == 0 {
        return None;
    }
    if hashing == Hashing::Flagd {
        // flagd walks the buckets: the first whose cumulative weight exceeds the bucket.
        let bucket = flagd_bucket(group, stickiness, total_weight);
        let mut sum = 0u32;
        return split.iter().find_map(|&(idx, w)| {
            sum += w;
            (bucket < sum).then_some(idx)
        });
    }
    let target = variant_target(group, stickiness, total_weight);
    let mut sum = 0u32;
    split.iter().find_map(|&(idx, w)| {
        sum += w;
        (sum >= target).then_some(idx)
    })
}
