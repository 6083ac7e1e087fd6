//! What a generator run actually produced, tallied as it goes, so tests and
//! the appliance's stats can be compared against ground truth rather than
//! against the requested shares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::malformed::PARSER_REASONS;
use super::model::FrameKind;

/// Frames and the messages (records) they carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub frames: u64,
    pub messages: u64,
}

/// Totals of one run. Topic and sender tallies cover valid frames only: a
/// malformed packet is counted once, under its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub frames_total: u64,
    pub valid_frames: u64,
    pub malformed_frames: u64,
    /// Records in valid frames.
    pub messages: u64,
    /// Sum of packet lengths as written, all frames.
    pub bytes_total: u64,
    /// Keyed by topic_id; topics that drew no frame are absent.
    pub topics: BTreeMap<u32, Counts>,
    /// Keyed by sender_id; senders that drew no frame are absent.
    pub senders: BTreeMap<u32, Counts>,
    /// Keyed by PROTOCOL.md reason name; all twelve parser reasons present.
    pub malformed: BTreeMap<String, u64>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            frames_total: 0,
            valid_frames: 0,
            malformed_frames: 0,
            messages: 0,
            bytes_total: 0,
            topics: BTreeMap::new(),
            senders: BTreeMap::new(),
            malformed: PARSER_REASONS.iter().map(|r| (r.name().to_owned(), 0)).collect(),
        }
    }
}

impl Summary {
    /// Counts one generated packet of `len` bytes.
    pub fn record(&mut self, kind: &FrameKind, len: usize) {
        self.frames_total += 1;
        self.bytes_total += len as u64;
        match *kind {
            FrameKind::Valid { topic_id, sender_id, msg_count, .. } => {
                let messages = u64::from(msg_count);
                self.valid_frames += 1;
                self.messages += messages;
                for counts in [self.topics.entry(topic_id).or_default(), self.senders.entry(sender_id).or_default()] {
                    counts.frames += 1;
                    counts.messages += messages;
                }
            }
            FrameKind::Malformed(reason) => {
                self.malformed_frames += 1;
                *self.malformed.entry(reason.name().to_owned()).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::reason::DropReason;

    #[test]
    fn tallies_valid_and_malformed_apart() {
        let mut s = Summary::default();
        let valid = |topic_id, sender_id, msg_count| FrameKind::Valid { topic_id, sender_id, seq: 0, msg_count };
        s.record(&valid(1, 10, 3), 100);
        s.record(&valid(1, 11, 2), 90);
        s.record(&valid(2, 10, 1), 80);
        s.record(&FrameKind::Malformed(DropReason::BadMagic), 70);
        assert_eq!((s.frames_total, s.valid_frames, s.malformed_frames), (4, 3, 1));
        assert_eq!((s.messages, s.bytes_total), (6, 340));
        assert_eq!(s.topics[&1], Counts { frames: 2, messages: 5 });
        assert_eq!(s.topics[&2], Counts { frames: 1, messages: 1 });
        assert_eq!(s.senders[&10], Counts { frames: 2, messages: 4 });
        assert_eq!(s.malformed["bad_magic"], 1);
        assert_eq!(s.malformed["not_ipv4"], 0);
        assert_eq!(s.malformed.len(), 12);
    }

    #[test]
    fn json_round_trips() {
        let mut s = Summary::default();
        s.record(&FrameKind::Valid { topic_id: 7, sender_id: 8, seq: 0, msg_count: 2 }, 64);
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""topics":{"7":{"frames":1,"messages":2}}"#), "{text}");
        assert_eq!(serde_json::from_str::<Summary>(&text).unwrap(), s);
    }
}
