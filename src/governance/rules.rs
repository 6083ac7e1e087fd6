//! FastRules: an ordered rule list compiled for first-match lookup.
//!
//! The topic narrows the search: an exact-topic hash gives, for each topic
//! some rule names exactly, the ordered list of rules that can match it; any
//! other topic falls into one of the segments that the rules' topic ranges
//! cut the id space into, each with its own precomputed list. Each list
//! stops after its first rule that matches everything else, so a lookup
//! tests a handful of rules with branch-free mask compares.
//!
//! Most frames test none: the top byte of the topic picks its segment's
//! list from a 256-entry index (a binary search over the segment bounds
//! only for the few top bytes a bound splits, a hash probe only for top
//! bytes, or blocks of 4,096 ids in split ones, that an exact topic is
//! in), and each list carries a screen, a few bits
//! of the senders, ports and source top bytes its rules require, that
//! rejects a frame no rule of the list can match in a handful of
//! instructions. An empty rule set is one empty list.

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

/// Six bits of a multiplicative hash of `value`, so that ids in a
/// sequence or a stride spread over the 64 bits of a screen.
#[inline(always)]
fn hash6(value: u32) -> u32 {
    value.wrapping_mul(0x9E37_79B1) >> 26
}

/// Words of `RuleSet::exact_topics`.
const EXACT_WORDS: usize = 16;

/// Word and bit standing for `topic` in `RuleSet::exact_topics`.
#[inline(always)]
fn exact_slot(topic: u32) -> (usize, u64) {
    let h = topic.wrapping_mul(0x9E37_79B1) >> 22;
    ((h >> 6) as usize % EXACT_WORDS, 1 << (h & 63))
}

/// A cheap necessary condition for any rule of a candidate list to match:
/// a frame that fails it matches none of them and skips the list. Each
/// rule adds one of its conditions (a sender, a port or a source prefix)
/// as a bit; a rule without one makes the screen pass everything.
#[derive(Clone, Copy, Debug, Default)]
struct Screen {
    /// Bit `hash6(sender)` of the senders rules require.
    senders: u64,
    /// Bit `port % 64` of the ports rules require (of rules without a
    /// sender): ports are small integers, their low bits tell them apart.
    ports: u64,
    /// One bit per top byte of a source address some rule's prefix
    /// covers (of rules with neither sender nor port).
    src_top: [u64; 4],
}

impl Screen {
    /// The screen of one rule (built once per rule, then merged into each
    /// list the rule is on).
    fn of(filter: &Filter) -> Screen {
        let mut screen = Screen::default();
        if filter.sender_mask != 0 {
            screen.senders = 1 << hash6(filter.sender);
        } else if filter.port_mask != 0 {
            screen.ports = 1 << (filter.dst_port % 64);
        } else if filter.src_mask != 0 {
            let top_mask = filter.src_mask >> 24;
            for top in 0..256u32 {
                if (top ^ (filter.src_net >> 24)) & top_mask == 0 {
                    screen.src_top[(top >> 6) as usize] |= 1 << (top & 63);
                }
            }
        } else {
            // A rule without such a condition may match any frame.
            screen.senders = u64::MAX;
        }
        screen
    }

    fn merge(&mut self, other: &Screen) {
        self.senders |= other.senders;
        self.ports |= other.ports;
        for (word, theirs) in self.src_top.iter_mut().zip(other.src_top) {
            *word |= theirs;
        }
    }

    /// Whether some rule the screen was built from may match `key`.
    #[inline(always)]
    fn passes(&self, key: &FrameKey) -> bool {
        let top = key.src_ip >> 24;
        // Shifts wrap at 64, so each is the bit it names.
        let sender = self.senders.wrapping_shr(hash6(key.sender));
        let port = self.ports.wrapping_shr(u32::from(key.dst_port));
        let src = self.src_top[(top >> 6) as usize % 4].wrapping_shr(top);
        (sender | port | src) & 1 != 0
    }
}

/// A candidate list: a slice of `RuleSet::candidates` and its screen.
#[derive(Clone, Copy, Debug, Default)]
struct List {
    start: u32,
    len: u32,
    screen: Screen,
}

/// `RuleSet::by_top_byte` entry of a top byte whose ids span more than one
/// segment (the rest hold the list of their single segment).
const SPLIT: u32 = u32::MAX >> 1;
/// Flag of a `RuleSet::by_top_byte` entry (or, for a top byte with a block
/// table, of a block's entry): some rule names a topic among its ids
/// exactly. Kept on the block where there is one, so that the other ids of
/// a split top byte skip the exact-topic test.
const EXACT_HERE: u32 = 1 << 31;
/// `RuleSet::by_top_byte` entry `BLOCKED + n`: the top byte's ids span
/// several segments and block table `n` (in `RuleSet::blocks`) holds the
/// list of each block of its ids. Lists are numbered far below it.
const BLOCKED: u32 = 1 << 30;
/// A block is 4,096 ids: the low 12 bits of a topic id.
const BLOCK_SHIFT: u32 = 12;
/// Blocks of one top byte's ids (16 KiB of table).
const BLOCKS_PER_TOP: usize = 1 << (24 - BLOCK_SHIFT);
/// Split top bytes that get a block table (256 KiB at most); any further
/// ones keep the binary search. Ids below 2^24 are all one top byte.
const MAX_BLOCK_TABLES: u32 = 16;

/// Where `topic`'s block sits in `RuleSet::blocks` when `top_entry`, the
/// `by_top_byte` entry of its top byte, names a block table.
#[inline(always)]
fn block_index(top_entry: u32, topic: u32) -> Option<usize> {
    // Block-table entries carry no EXACT_HERE flag (their blocks do), so
    // one compare tells them from lists, SPLIT and flagged entries.
    let table = top_entry.wrapping_sub(BLOCKED);
    (table < MAX_BLOCK_TABLES)
        .then(|| table as usize * BLOCKS_PER_TOP + (topic >> BLOCK_SHIFT) as usize % BLOCKS_PER_TOP)
}

/// For each top byte of a topic id, the list of the segment holding all
/// ids with that byte, its block table (BLOCKED + n), or SPLIT. A list or
/// SPLIT entry is flagged EXACT_HERE if some exact topic has the byte; a
/// block table's blocks carry that flag instead.
#[derive(Clone, Debug)]
struct TopByteIndex([u32; 256]);

impl Default for TopByteIndex {
    fn default() -> Self {
        TopByteIndex([SPLIT; 256])
    }
}

/// Compiled, read-only rule list.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    filters: Vec<Filter>,
    actions: Vec<RuleAction>,
    /// Candidate lists: one per segment, one per exactly named topic.
    lists: Vec<List>,
    /// List of each topic that some rule names exactly.
    by_topic: IdMap<u32, u32>,
    /// One bit per `exact_slot(topic)` of the topics in `by_topic`: a topic
    /// whose bit is clear (nearly all, with a handful of exact rules)
    /// skips the hash lookup.
    exact_topics: [u64; EXACT_WORDS],
    /// Start of each topic segment, ascending, first is 0.
    bounds: Vec<u32>,
    /// List of each segment.
    segments: Vec<u32>,
    /// The segment search skipped for most topics.
    by_top_byte: TopByteIndex,
    /// Block tables of split top bytes, BLOCKS_PER_TOP entries each: the
    /// list of the segment holding the whole block, or SPLIT where a
    /// segment starts inside the block.
    blocks: Vec<u32>,
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
        let screens: Vec<Screen> = set.filters.iter().map(Screen::of).collect();
        // No early return for an empty set: its one segment gets an empty
        // list, whose screen passes nothing.
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
            let list = set.push_list(rules, &screens, |t| !matches!(t, TopicMatch::Exact(_)) && t.contains(start));
            set.segments.push(list);
        }
        set.bounds = bounds;
        assert!(set.lists.len() < BLOCKED as usize, "lists: at most one per bound and exact topic");
        let mut tables = 0;
        for top in 0..256u32 {
            set.by_top_byte.0[top as usize] = match set.segment_of_ids(top << 24, 24) {
                Some(list) => list,
                None if tables < MAX_BLOCK_TABLES => {
                    for block in 0..BLOCKS_PER_TOP as u32 {
                        let first = top << 24 | block << BLOCK_SHIFT;
                        let list = set.segment_of_ids(first, BLOCK_SHIFT).unwrap_or(SPLIT);
                        set.blocks.push(list);
                    }
                    tables += 1;
                    BLOCKED + tables - 1
                }
                None => SPLIT,
            };
        }
        for rule in rules {
            if let TopicMatch::Exact(topic) = rule.topic
                && !set.by_topic.contains_key(&topic)
            {
                let list = set.push_list(rules, &screens, |t| t.contains(topic));
                set.by_topic.insert(topic, list);
                let (word, bit) = exact_slot(topic);
                set.exact_topics[word] |= bit;
                match block_index(set.by_top_byte.0[(topic >> 24) as usize], topic) {
                    Some(block) => set.blocks[block] |= EXACT_HERE,
                    None => set.by_top_byte.0[(topic >> 24) as usize] |= EXACT_HERE,
                }
            }
        }
        set
    }

    /// The list of the one segment holding all `2^bits` ids from `first`
    /// on, None when a segment starts among them.
    fn segment_of_ids(&self, first: u32, bits: u32) -> Option<u32> {
        let segment = self.segment_search(first);
        (segment == self.segment_search(first | ((1 << bits) - 1))).then(|| self.segments[segment])
    }

    /// Appends a list of the rules whose topic condition passes `wanted`,
    /// in order, up to the first that matches everything else too, with the
    /// merged `screens` of its rules; returns its index.
    fn push_list(&mut self, rules: &[Rule], screens: &[Screen], wanted: impl Fn(TopicMatch) -> bool) -> u32 {
        let start = self.candidates.len();
        let mut screen = Screen::default();
        for (i, rule) in rules.iter().enumerate() {
            if wanted(rule.topic) {
                self.candidates.push(i as u16);
                screen.merge(&screens[i]);
                if self.filters[i].matches_everything() {
                    break;
                }
            }
        }
        let len = (self.candidates.len() - start) as u32;
        self.lists.push(List { start: start as u32, len, screen });
        (self.lists.len() - 1) as u32
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Index of the first rule matching `key`.
    #[inline(always)]
    pub fn first_match(&self, key: &FrameKey) -> Option<usize> {
        let list = self.lists.get(self.list_of(key.topic) as usize)?;
        if !list.screen.passes(key) {
            return None;
        }
        let start = list.start as usize;
        let candidates = self.candidates.get(start..start + list.len as usize)?;
        candidates.iter().map(|&i| usize::from(i)).find(|&i| self.filters[i].matches(key))
    }

    /// The candidate list of `topic`.
    #[inline(always)]
    fn list_of(&self, topic: u32) -> u32 {
        let mut entry = self.by_top_byte.0[(topic >> 24) as usize];
        // Lists sit below BLOCKED; block tables, SPLIT and flagged entries
        // above: a top byte with one list and no exact topic (the common
        // case) costs one compare.
        if entry < BLOCKED {
            return entry;
        }
        if let Some(block) = block_index(entry, topic) {
            entry = self.blocks.get(block).copied().unwrap_or(SPLIT);
        }
        if entry & EXACT_HERE != 0 {
            let (word, bit) = exact_slot(topic);
            if self.exact_topics[word] & bit != 0
                && let Some(&list) = self.by_topic.get(&topic)
            {
                return list;
            }
            entry &= !EXACT_HERE;
        }
        match entry {
            SPLIT => self.segment_list(topic),
            list => list,
        }
    }

    /// The list of `topic`'s segment, by binary search.
    fn segment_list(&self, topic: u32) -> u32 {
        self.segments.get(self.segment_search(topic)).copied().unwrap_or(SPLIT)
    }

    /// Index of the segment holding `topic`.
    fn segment_search(&self, topic: u32) -> usize {
        // bounds[0] == 0 <= topic, so the point is at least 1.
        self.bounds.partition_point(|&b| b <= topic).saturating_sub(1)
    }

    /// Action of rule `index`.
    #[inline(always)]
    pub fn action(&self, index: usize) -> RuleAction {
        self.actions[index]
    }

    /// Route of rule `index` if it is a `route` rule.
    #[inline(always)]
    pub fn route(&self, index: usize) -> Option<Route> {
        match self.actions.get(index) {
            Some(RuleAction::Route(route)) => Some(*route),
            _ => None,
        }
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
        for topic in [0, 1, 0x0100_0000, u32::MAX] {
            assert_eq!(set.first_match(&key(topic, 2, 3, 4)), None);
        }
        assert!(!set.lists[set.list_of(1) as usize].screen.passes(&key(1, 2, 3, 4)), "screened out");
    }

    /// SplitMix64, for reproducible random rule sets.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = self.0;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        }

        fn below(&mut self, n: u64) -> u32 {
            (self.next() % n) as u32
        }

        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[self.below(from.len() as u64) as usize]
        }
    }

    /// Few distinct values per field, so that rules and keys meet often;
    /// topics near top-byte boundaries, so that ranges split them.
    const TOPICS: [u32; 8] = [0, 5, 0x00FF_FFFF, 0x0100_0000, 0x0180_0000, 0x7FFF_FFFF, 0xFF00_0001, u32::MAX];
    const SENDERS: [u32; 4] = [0, 1, 7, 0xFFFF_FFFF];
    const SOURCES: [u32; 5] = [0, 0x0A01_0203, 0x0AFF_0000, 0xC0A8_0101, 0x8000_0000];
    const PORTS: [u16; 3] = [0, 47000, 47001];

    fn random_rule(rng: &mut Rng) -> Rule {
        let near = |rng: &mut Rng| rng.pick(&TOPICS).wrapping_add(rng.below(3)).wrapping_sub(1);
        let topic = match rng.below(4) {
            0 => TopicMatch::Any,
            1 => TopicMatch::Exact(near(rng)),
            _ => {
                let (a, b) = (near(rng), near(rng));
                TopicMatch::Range(a.min(b), a.max(b))
            }
        };
        let action = match rng.below(3) {
            0 => RuleAction::Allow,
            1 => RuleAction::Drop,
            _ => RuleAction::Limit(0),
        };
        Rule {
            topic,
            sender: (rng.below(3) == 0).then(|| rng.pick(&SENDERS)),
            src: (rng.below(3) == 0).then(|| (rng.pick(&SOURCES), rng.pick(&[0, 1, 4, 8, 9, 16, 32]))),
            dst_port: (rng.below(4) == 0).then(|| rng.pick(&PORTS)),
            action,
        }
    }

    #[test]
    fn random_rule_sets_agree_with_a_linear_scan() {
        let mut rng = Rng(7);
        let mut matched = 0;
        for _ in 0..300 {
            let rules: Vec<Rule> = (0..1 + rng.below(12)).map(|_| random_rule(&mut rng)).collect();
            let set = RuleSet::new(&rules);
            for _ in 0..300 {
                let topic = rng.pick(&TOPICS).wrapping_add(rng.below(5)).wrapping_sub(2);
                let k = key(topic, rng.pick(&SENDERS), rng.pick(&SOURCES) ^ (rng.below(2) << 24), rng.pick(&PORTS));
                let expected = naive(&rules, &k);
                assert_eq!(set.first_match(&k), expected, "{k:?} against {rules:#?}");
                matched += usize::from(expected.is_some());
            }
        }
        // Both outcomes are common: the screens are exercised both ways.
        assert!((20_000..70_000).contains(&matched), "{matched} of 90000 keys matched");
    }

    /// Ranges inside split top bytes: blocks wholly inside a segment take
    /// their list from the block table, blocks where a segment starts and
    /// top bytes beyond the last block table search; all agree with a scan.
    #[test]
    fn block_tables_agree_with_a_linear_scan() {
        let mut rules: Vec<Rule> = [(80_000, 80_099), (95_000, 95_999), (4096, 8191), (100_000, 1_000_000)]
            .into_iter()
            .map(|(a, b)| rule(TopicMatch::Range(a, b), RuleAction::Drop))
            .collect();
        // One range in each of 20 more top bytes: more split top bytes than block tables.
        rules.extend(
            (1..=20u32).map(|top| rule(TopicMatch::Range(top << 24 | 5000, top << 24 | 70_000), RuleAction::Allow)),
        );
        rules.push(rule(TopicMatch::Exact(424_242), RuleAction::Drop));
        let set = RuleSet::new(&rules);
        assert_eq!(
            set.blocks.len(),
            MAX_BLOCK_TABLES as usize * BLOCKS_PER_TOP,
            "one table per split top byte, up to the cap"
        );
        assert_eq!(set.by_top_byte.0[20] & !EXACT_HERE, SPLIT, "beyond the cap: binary search");
        assert_eq!(set.by_top_byte.0[0], BLOCKED, "the exact topic flags its block, not its top byte");
        let flagged: Vec<usize> = (0..BLOCKS_PER_TOP).filter(|&b| set.blocks[b] & EXACT_HERE != 0).collect();
        assert_eq!(flagged, [424_242 >> BLOCK_SHIFT]);
        let mut rng = Rng(11);
        let mut topics: Vec<u32> =
            set.bounds.iter().flat_map(|&b| (0..5).map(move |d| b.wrapping_add(d).wrapping_sub(2))).collect();
        topics.extend((0..20_000).map(|_| rng.below(1_100_000)));
        topics.extend((0..20_000).map(|_| (rng.below(22) << 24) | rng.below(1 << 24)));
        for topic in topics {
            let k = key(topic, 0, 0, 0);
            assert_eq!(set.first_match(&k), naive(&rules, &k), "topic {topic:#x}");
        }
    }

    #[test]
    fn a_screen_skips_lists_no_frame_field_can_satisfy() {
        let rules = vec![
            Rule { sender: Some(7), ..rule(TopicMatch::Any, RuleAction::Drop) },
            Rule { dst_port: Some(47001), ..rule(TopicMatch::Any, RuleAction::Drop) },
            Rule { src: Some((0xC0A8_0000, 16)), ..rule(TopicMatch::Any, RuleAction::Drop) },
        ];
        let set = RuleSet::new(&rules);
        let list = set.lists[set.list_of(12) as usize];
        assert!(!list.screen.passes(&key(12, 1, 0x0A00_0001, 47000)));
        assert!(list.screen.passes(&key(12, 7, 0x0A00_0001, 47000)), "sender");
        assert!(list.screen.passes(&key(12, 1, 0x0A00_0001, 47001)), "port");
        assert!(list.screen.passes(&key(12, 1, 0xC0FF_0001, 47000)), "top byte of the prefix");
    }

    #[test]
    fn range_reaching_the_last_id_is_handled() {
        let set = RuleSet::new(&[rule(TopicMatch::Range(10, u32::MAX), RuleAction::Drop)]);
        assert_eq!(set.first_match(&key(u32::MAX, 0, 0, 0)), Some(0));
        assert_eq!(set.first_match(&key(9, 0, 0, 0)), None);
    }
}
