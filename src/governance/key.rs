//! Limit keys: the u64 that names one global limit instance (one bucket per
//! id and profile), shared by the workers' tables and the reconciler.
//!
//! Layout: bits 0–31 the topic or sender id; bits 32–47 the profile a
//! `limit` rule imposed, plus one (0 = the id's configured profile), or the
//! profile of an overflow bucket; bit 62 set for senders; bit 63 set for an
//! overflow bucket (shared by the ids that found the table full).

const OVERRIDE_SHIFT: u32 = 32;
const SENDER_BIT: u64 = 1 << 62;
const OVERFLOW_BIT: u64 = 1 << 63;

/// Which of the two limits a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Topic,
    Sender,
}

impl Dimension {
    fn bit(self) -> u64 {
        match self {
            Dimension::Topic => 0,
            Dimension::Sender => SENDER_BIT,
        }
    }
}

/// Key of `id`'s own bucket; `rule_profile` is the profile a `limit` rule
/// put the frame under, which gets a bucket of its own.
#[inline(always)]
pub fn id_key(dim: Dimension, id: u32, rule_profile: Option<u16>) -> u64 {
    dim.bit() | rule_profile.map_or(0, imposed_bits) | u64::from(id)
}

/// The bits `id_key` sets for an imposed `profile` (to or them in per frame
/// rather than convert an Option).
#[inline(always)]
pub fn imposed_bits(profile: u16) -> u64 {
    (u64::from(profile) + 1) << OVERRIDE_SHIFT
}

/// `id_key(dim, id, p)` where `imposed` is 0 or `imposed_bits(p)`.
#[inline(always)]
pub fn id_key_with(dim: Dimension, id: u32, imposed: u64) -> u64 {
    dim.bit() | imposed | u64::from(id)
}

/// Key of the overflow bucket of `profile`.
pub fn overflow_key(dim: Dimension, profile: u16) -> u64 {
    OVERFLOW_BIT | dim.bit() | (u64::from(profile) << OVERRIDE_SHIFT)
}

/// The profile a `limit` rule imposed on an id key, None for the id's own
/// configured profile.
pub fn imposed_profile(key: u64) -> Option<u16> {
    let imposed = (key >> OVERRIDE_SHIFT) as u16;
    imposed.checked_sub(1)
}

/// The dimension `key` belongs to.
pub fn dimension(key: u64) -> Dimension {
    if key & SENDER_BIT != 0 { Dimension::Sender } else { Dimension::Topic }
}

/// The profile of an overflow key, None for an id key.
pub fn overflow_profile(key: u64) -> Option<u16> {
    (key & OVERFLOW_BIT != 0).then_some((key >> OVERRIDE_SHIFT) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_dimension_id_and_profile_apart() {
        let plain = id_key(Dimension::Topic, 7, None);
        let ruled = id_key(Dimension::Topic, 7, Some(0));
        let sender = id_key(Dimension::Sender, 7, None);
        let overflow = overflow_key(Dimension::Sender, 3);
        assert_eq!(plain, 7);
        assert_ne!(plain, ruled);
        assert_ne!(plain, sender);
        assert_eq!(dimension(sender), Dimension::Sender);
        assert_eq!(dimension(ruled), Dimension::Topic);
        assert_eq!(overflow_profile(overflow), Some(3));
        assert_eq!(dimension(overflow), Dimension::Sender);
        assert_eq!(overflow_profile(ruled), None);
        assert_eq!(imposed_profile(ruled), Some(0));
        assert_eq!(imposed_profile(plain), None);
        assert_eq!(id_key(Dimension::Topic, u32::MAX, None) as u32, u32::MAX);
        assert_eq!(id_key_with(Dimension::Topic, 7, imposed_bits(0)), ruled);
        assert_eq!(id_key_with(Dimension::Sender, 7, 0), sender);
    }
}
