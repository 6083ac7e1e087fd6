//! FastRules: an ordered rule list compiled for first-match lookup.
//!
//! The topic narrows the search: an exact-topic hash gives, for each topic
//! some rule names exactly, the ordered list of rules that can match it; any
//! other topic falls into one of the segments that the rules' topic ranges
//! cut the id space into, each with its own precomputed list. Each list
//! stops after its first rule that matches everything else, so a lookup
//! tests a handful of rules with branch-free mask compares.

use super::hash::IdMap;
use super::limits::ProfileId;
use super::{FrameKey, Route};

/// Most rules a config may hold (rule indices are u16 in candidate lists).
pub const MAX_RULES: usize = 1024;

/// How a rule matches the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicMatch {
    Any,
    Exact(u32),
    /// Inclusive.
    Range(u32, u32),
}

impl TopicMatch {
    fn contains(self, topic: u32) -> bool {
        match self {
            TopicMatch::Any => true,
            TopicMatch::Exact(t) => t == topic,
            TopicMatch::Range(first, last) => (first..=last).contains(&topic),
        }
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Drop,
    Route(Route),
    /// Limit the frame's topic by this profile (a bucket per topic apart
    /// from the topic's configured one), then allow.
    Limit(ProfileId),
}

/// One rule as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub topic: TopicMatch,
    pub sender: Option<u32>,
    /// Network (host order) and prefix length.
    pub src: Option<(u32, u8)>,
    pub dst_port: Option<u16>,
    pub action: RuleAction,
}

/// The non-topic conditions as masks: a field matches when
/// `(value ^ wanted) & mask == 0`, and a zero mask matches anything.
#[derive(Clone, Copy, Debug)]
struct Filter {
    sender: u32,
    sender_mask: u32,
    src_net: u32,
    src_mask: u32,
    dst_port: u16,
    port_mask: u16,
}

impl Filter {
    fn new(rule: &Rule) -> Self {
        let (src_net, src_mask) = match rule.src {
            Some((net, 0)) => (net, 0),
            Some((net, len)) => (net, u32::MAX << (32 - u32::from(len))),
            None => (0, 0),
        };
        Filter {
            sender: rule.sender.unwrap_or(0),
            sender_mask: if rule.sender.is_some() { u32::MAX } else { 0 },
            src_net,
            src_mask,
            dst_port: rule.dst_port.unwrap_or(0),
            port_mask: if rule.dst_port.is_some() { u16::MAX } else { 0 },
        }
    }

    #[inline(always)]
    fn matches(&self, key: &FrameKey) -> bool {
        let sender = (key.sender ^ self.sender) & self.sender_mask;
        let src = (key.src_ip ^ self.src_net) & self.src_mask;
        let port = (key.dst_port ^ self.dst_port) & self.port_mask;
        (sender | src | u32::from(port)) == 0
    }

    fn matches_everything(&self) -> bool {
        self.sender_mask == 0 && self.src_mask == 0 && self.port_mask == 0
    }
}

/// The bit standing for `topic` in `RuleSet::exact_topics`: six bits of a
/// multiplicative hash, so that ids in a sequence or a stride spread out.
#[inline(always)]
fn exact_bit(topic: u32) -> u64 {
    1 << (topic.wrapping_mul(0x9E37_79B1) >> 26)
}

/// A slice of `RuleSet::candidates`.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    len: u32,
}

/// Compiled, read-only rule list.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    filters: Vec<Filter>,
    actions: Vec<RuleAction>,
    /// Candidate lists for topics that some rule names exactly.
    by_topic: IdMap<u32, Span>,
    /// One bit per `exact_bit(topic)` of the topics in `by_topic`: a topic
    /// whose bit is clear (most, with a handful of exact rules) skips the
    /// hash lookup.
    exact_topics: u64,
    /// Start of each topic segment, ascending, first is 0.
    bounds: Vec<u32>,
    segments: Vec<Span>,
    /// Rule indices of all candidate lists, back to back.
    candidates: Vec<u16>,
}

impl RuleSet {
    /// Compiles `rules` (at most MAX_RULES) in their order.
    pub fn new(rules: &[Rule]) -> Self {
        assert!(rules.len() <= MAX_RULES, "validated by the config");
        let mut set = RuleSet {
            filters: rules.iter().map(Filter::new).collect(),
            actions: rules.iter().map(|r| r.action).collect(),
            ..RuleSet::default()
        };
        if rules.is_empty() {
            return set;
        }
        let mut bounds = vec![0u32];
        for rule in rules {
            if let TopicMatch::Range(first, last) = rule.topic {
                bounds.push(first);
                if let Some(after) = last.checked_add(1) {
                    bounds.push(after);
                }
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        // A topic that no rule names exactly can only match range and any rules.
        for &start in &bounds {
            let span = set.push_candidates(rules, |t| !matches!(t, TopicMatch::Exact(_)) && t.contains(start));
            set.segments.push(span);
        }
        set.bounds = bounds;
        for rule in rules {
            if let TopicMatch::Exact(topic) = rule.topic
                && !set.by_topic.contains_key(&topic)
            {
                let span = set.push_candidates(rules, |t| t.contains(topic));
                set.by_topic.insert(topic, span);
                set.exact_topics |= exact_bit(topic);
            }
        }
        set
    }

    /// Appends the rules whose topic condition passes `wanted`, in order, up
    /// to the first that matches everything else too.
    fn push_candidates(&mut self, rules: &[Rule], wanted: impl Fn(TopicMatch) -> bool) -> Span {
        let start = self.candidates.len();
        for (i, rule) in rules.iter().enumerate() {
            if wanted(rule.topic) {
                self.candidates.push(i as u16);
                if self.filters[i].matches_everything() {
                    break;
                }
            }
        }
        Span { start: start as u32, len: (self.candidates.len() - start) as u32 }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Index of the first rule matching `key`.
    #[inline]
    pub fn first_match(&self, key: &FrameKey) -> Option<usize> {
        if self.filters.is_empty() {
            return None;
        }
        let exact = if self.exact_topics & exact_bit(key.topic) != 0 { self.by_topic.get(&key.topic) } else { None };
        let span = match exact {
            Some(span) => *span,
            None => self.segment_of(key.topic),
        };
        let start = span.start as usize;
        self.candidates[start..start + span.len as usize]
            .iter()
            .map(|&i| usize::from(i))
            .find(|&i| self.filters[i].matches(key))
    }

    #[inline]
    fn segment_of(&self, topic: u32) -> Span {
        if self.bounds.len() == 1 {
            return self.segments[0];
        }
        // bounds[0] == 0 <= topic, so the point is at least 1.
        self.segments[self.bounds.partition_point(|&b| b <= topic) - 1]
    }

    /// Action of rule `index`.
    #[inline(always)]
    pub fn action(&self, index: usize) -> RuleAction {
        self.actions[index]
    }

    /// Whether some rule imposes a limit profile.
    pub fn has_limit_rules(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, RuleAction::Limit(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: u32, sender: u32, src_ip: u32, dst_port: u16) -> FrameKey {
        FrameKey { topic, sender, msg_count: 1, src_ip, dst_port }
    }

    fn rule(topic: TopicMatch, action: RuleAction) -> Rule {
        Rule { topic, sender: None, src: None, dst_port: None, action }
    }

    const TEN_SLASH_8: u32 = 10 << 24;

    /// The reference semantics: the first rule (in order) matching all fields.
    fn naive(rules: &[Rule], k: &FrameKey) -> Option<usize> {
        rules.iter().position(|r| {
            r.topic.contains(k.topic)
                && r.sender.is_none_or(|s| s == k.sender)
                && r.src.is_none_or(|(net, len)| len == 0 || (k.src_ip ^ net) >> (32 - u32::from(len)) == 0)
                && r.dst_port.is_none_or(|p| p == k.dst_port)
        })
    }

    fn sample_rules() -> Vec<Rule> {
        vec![
            rule(TopicMatch::Exact(7), RuleAction::Drop),
            Rule {
                sender: Some(5),
                src: Some((TEN_SLASH_8, 8)),
                dst_port: Some(47000),
                ..rule(TopicMatch::Range(1000, 1999), RuleAction::Allow)
            },
            Rule { sender: Some(6), ..rule(TopicMatch::Any, RuleAction::Drop) },
            rule(TopicMatch::Range(1500, 2500), RuleAction::Limit(0)),
            Rule { src: Some((0xC0A8_0000, 16)), ..rule(TopicMatch::Exact(1600), RuleAction::Drop) },
            Rule { dst_port: Some(9), ..rule(TopicMatch::Any, RuleAction::Allow) },
        ]
    }

    #[test]
    fn each_match_kind_selects_its_rule() {
        let set = RuleSet::new(&sample_rules());
        let src = TEN_SLASH_8 | 0x02_0304;
        // Exact topic.
        assert_eq!(set.first_match(&key(7, 1, 0, 1)), Some(0));
        // Range + sender + prefix + port, each one failing in turn.
        assert_eq!(set.first_match(&key(1000, 5, src, 47000)), Some(1));
        assert_eq!(set.first_match(&key(1999, 5, src, 47000)), Some(1));
        assert_eq!(set.first_match(&key(2000, 5, src, 47000)), Some(3));
        assert_eq!(set.first_match(&key(999, 5, src, 47000)), None);
        assert_eq!(set.first_match(&key(1000, 4, src, 47000)), None);
        assert_eq!(set.first_match(&key(1000, 5, 11 << 24, 47000)), None);
        assert_eq!(set.first_match(&key(1000, 5, src, 47001)), None);
        // Sender on any topic.
        assert_eq!(set.first_match(&key(3, 6, 0, 0)), Some(2));
        // Port on any topic.
        assert_eq!(set.first_match(&key(3, 1, 0, 9)), Some(5));
    }

    #[test]
    fn first_match_wins_over_later_rules() {
        let set = RuleSet::new(&sample_rules());
        // Topic 1600 from 192.168/16: rule 3 (range limit) comes before rule 4.
        assert_eq!(set.first_match(&key(1600, 1, 0xC0A8_0101, 0)), Some(3));
        // Sender 6 on exact topic 7: rule 0 is earlier than rule 2.
        assert_eq!(set.first_match(&key(7, 6, 0, 0)), Some(0));
        // Sender 6 inside the limit range: rule 2 is earlier than rule 3.
        assert_eq!(set.first_match(&key(1600, 6, 0, 0)), Some(2));
    }

    #[test]
    fn agrees_with_a_linear_scan_everywhere() {
        let rules = sample_rules();
        let set = RuleSet::new(&rules);
        let topics = [0, 6, 7, 8, 999, 1000, 1499, 1500, 1600, 1999, 2000, 2500, 2501, u32::MAX];
        for &topic in &topics {
            for sender in [0, 5, 6] {
                for src in [0, TEN_SLASH_8 | 1, 0xC0A8_0101] {
                    for port in [0, 9, 47000] {
                        let k = key(topic, sender, src, port);
                        assert_eq!(set.first_match(&k), naive(&rules, &k), "{k:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_unconditional_rule_ends_the_candidate_lists() {
        let rules = vec![rule(TopicMatch::Any, RuleAction::Allow), rule(TopicMatch::Exact(1), RuleAction::Drop)];
        let set = RuleSet::new(&rules);
        assert_eq!(set.first_match(&key(1, 0, 0, 0)), Some(0));
        assert_eq!(set.candidates.len(), 2, "one candidate per list");
    }

    #[test]
    fn empty_set_matches_nothing() {
        let set = RuleSet::new(&[]);
        assert!(set.is_empty());
        assert_eq!(set.first_match(&key(1, 2, 3, 4)), None);
    }

    #[test]
    fn range_reaching_the_last_id_is_handled() {
        let set = RuleSet::new(&[rule(TopicMatch::Range(10, u32::MAX), RuleAction::Drop)]);
        assert_eq!(set.first_match(&key(u32::MAX, 0, 0, 0)), Some(0));
        assert_eq!(set.first_match(&key(9, 0, 0, 0)), None);
    }
}
