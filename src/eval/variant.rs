//! Weighted variant picks (Unleash's walk over cumulative weights).

use super::bucket::variant_target;
use crate::flags::snapshot::VariantIdx;

/// Picks a variant from `split` (in file order) for a stickiness value.
pub fn pick(split: &[(VariantIdx, u32)], total_weight: u32, group: &str, stickiness: &str) -> Option<VariantIdx> {
    if total_weight == 0 {
        return None;
    }
    let target = variant_target(group, stickiness, total_weight);
    let mut sum = 0u32;
    split.iter().find_map(|&(idx, w)| {
        sum += w;
        (sum >= target).then_some(idx)
    })
}
