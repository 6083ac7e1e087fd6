//! Validation of [`GovernanceConfig`] and compilation into [`Tables`].
//! Every error names the offending key, e.g.
//! `governance.rules[2].next_hop: bad MAC "zz"`.

use super::bucket::{FixedLimit, MAX_BURST};
use super::config::{DefaultAction, GovernanceConfig, IdLimit, LimitSpec, RuleActionKind, RuleConfig};
use super::error::GovernanceConfigError;
use super::hash::IdMap;
use super::limits::{IdProfiles, IdRange, Profile, ProfileId};
use super::reconciler::Reconciler;
use super::rules::{MAX_RULES, Rule, RuleAction, RuleSet, TopicMatch};
use super::shard::Shard;
use super::table::MAX_PROFILES;
use super::tables::Tables;
use super::{Route, syntax};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reconciliation period bounds, microseconds.
pub const RECONCILE_US_RANGE: std::ops::RangeInclusive<u64> = 1000..=10_000;
/// Upper bound of `max_topics` / `max_senders` (each id takes 1.5 slots of
/// 64 bytes per worker: 1.5 GiB a table at this bound).
pub const MAX_TABLE_IDS: u64 = 1 << 24;

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl GovernanceConfig {
    /// Validates and compiles everything a start needs: the shared tables,
    /// one shard per worker (move each to its worker) and the reconciler
    /// (for the control lcore).
    pub fn compile(
        &self,
        tsc_hz: u64,
        n_workers: usize,
    ) -> Result<(Tables, Vec<Shard>, Reconciler), GovernanceConfigError> {
        self.compile_placed(tsc_hz, &vec![None; n_workers])
    }

    /// [`GovernanceConfig::compile`] for one worker per entry of `nodes`,
    /// each worker's bucket tables mapped on its NUMA node.
    pub fn compile_placed(
        &self,
        tsc_hz: u64,
        nodes: &[Option<u32>],
    ) -> Result<(Tables, Vec<Shard>, Reconciler), GovernanceConfigError> {
        let tables = self.compile_tables(tsc_hz)?;
        let (shards, reconciler) = Reconciler::connect_placed(&tables, nodes)?;
        Ok((tables, shards, reconciler))
    }

    /// Validates and compiles only the tables (for a reload: the running
    /// shards and reconciler adopt them when they see the new generation).
    pub fn compile_tables(&self, tsc_hz: u64) -> Result<Tables, GovernanceConfigError> {
        if tsc_hz < 1_000_000 {
            return Err(GovernanceConfigError::new("tsc_hz", format!("{tsc_hz} Hz is too slow a clock")));
        }
        if !RECONCILE_US_RANGE.contains(&self.reconcile_us) {
            return Err(GovernanceConfigError::new(
                "governance.reconcile_us",
                format!("{} is outside 1000–10000", self.reconcile_us),
            ));
        }
        let max_topics = table_size("governance.max_topics", self.max_topics)?;
        let max_senders = table_size("governance.max_senders", self.max_senders)?;

        let mut book = ProfileBook::new(tsc_hz);
        for (name, limit) in &self.profiles {
            book.add_named(name, limit.rate, limit.burst)?;
        }
        let topics = id_profiles(&mut book, "topics", &self.topics, &self.topic_defaults)?;
        let senders = id_profiles(&mut book, "senders", &self.senders, &self.sender_defaults)?;
        if self.rules.len() > MAX_RULES {
            return Err(GovernanceConfigError::new(
                "governance.rules",
                format!("{} rules, at most {MAX_RULES} allowed", self.rules.len()),
            ));
        }
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(&book, &format!("governance.rules[{i}]"), r))
            .collect::<Result<Vec<_>, _>>()?;
        let rules = RuleSet::new(&rules);

        let topic_limits = topics.limits_anything() || rules.has_limit_rules();
        let sender_limits = senders.limits_anything();
        Ok(Tables {
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            tsc_hz,
            reconcile_ticks: (u128::from(self.reconcile_us) * u128::from(tsc_hz) / 1_000_000) as u64,
            max_topics,
            max_senders,
            topic_limits,
            sender_limits,
            some_ids_unlimited: (topic_limits && !topics.limits_every_id())
                || (sender_limits && !senders.limits_every_id()),
            profiles: book.profiles,
            topics,
            senders,
            rules,
            default_drop: self.default_action == DefaultAction::Drop,
        })
    }
}

fn table_size(key: &str, value: u64) -> Result<usize, GovernanceConfigError> {
    if value == 0 || value > MAX_TABLE_IDS {
        return Err(GovernanceConfigError::new(key, format!("{value} is outside 1–{MAX_TABLE_IDS}")));
    }
    Ok(value as usize)
}

/// Profiles in index order: the named ones, then distinct inline limits.
struct ProfileBook {
    tsc_hz: u64,
    profiles: Vec<Profile>,
    named: HashMap<String, ProfileId>,
    inline: HashMap<(u64, u64), ProfileId>,
}

impl ProfileBook {
    fn new(tsc_hz: u64) -> Self {
        ProfileBook { tsc_hz, profiles: Vec::new(), named: HashMap::new(), inline: HashMap::new() }
    }

    fn add_named(&mut self, name: &str, rate: u64, burst: u64) -> Result<(), GovernanceConfigError> {
        let key = format!("governance.profiles.{name}");
        if name.is_empty() {
            return Err(GovernanceConfigError::new(key, "empty profile name"));
        }
        let id = self.push(&key, key.clone(), rate, burst)?;
        self.named.insert(name.to_owned(), id);
        Ok(())
    }

    fn push(&mut self, key: &str, name: String, rate: u64, burst: u64) -> Result<ProfileId, GovernanceConfigError> {
        if rate == 0 {
            return Err(GovernanceConfigError::new(
                format!("{key}.rate"),
                "must be at least 1 msg/s (use a drop rule to block)",
            ));
        }
        if burst == 0 || burst > MAX_BURST {
            return Err(GovernanceConfigError::new(
                format!("{key}.burst"),
                format!("{burst} is outside 1–{MAX_BURST} msgs"),
            ));
        }
        let fixed = FixedLimit::new(rate, burst, self.tsc_hz)
            .ok_or_else(|| GovernanceConfigError::new(format!("{key}.rate"), format!("{rate} msgs/s is too high")))?;
        if self.profiles.len() >= MAX_PROFILES {
            return Err(GovernanceConfigError::new(key, format!("more than {MAX_PROFILES} distinct limits")));
        }
        self.profiles.push(Profile { name, rate, burst, fixed });
        Ok((self.profiles.len() - 1) as ProfileId)
    }

    fn named(&self, key: &str, name: &str) -> Result<ProfileId, GovernanceConfigError> {
        self.named
            .get(name)
            .copied()
            .ok_or_else(|| GovernanceConfigError::new(key, format!("unknown profile \"{name}\"")))
    }

    /// A limit given as `profile = NAME` or as `rate` + `burst`.
    fn resolve(
        &mut self,
        key: &str,
        profile: Option<&str>,
        rate: Option<u64>,
        burst: Option<u64>,
    ) -> Result<ProfileId, GovernanceConfigError> {
        match (profile, rate, burst) {
            (Some(name), None, None) => self.named(&format!("{key}.profile"), name),
            (None, Some(rate), Some(burst)) => {
                if let Some(&id) = self.inline.get(&(rate, burst)) {
                    return Ok(id);
                }
                let id = self.push(key, key.to_owned(), rate, burst)?;
                self.inline.insert((rate, burst), id);
                Ok(id)
            }
            (Some(_), _, _) => Err(GovernanceConfigError::new(key, "give either profile or rate and burst, not both")),
            (None, Some(_), None) => {
                Err(GovernanceConfigError::new(format!("{key}.burst"), "missing (rate needs a burst)"))
            }
            (None, None, Some(_)) => {
                Err(GovernanceConfigError::new(format!("{key}.rate"), "missing (burst needs a rate)"))
            }
            (None, None, None) => Err(GovernanceConfigError::new(key, "needs profile, or rate and burst")),
        }
    }
}

/// Builds the id → profile mapping of `section` ("topics" or "senders").
fn id_profiles(
    book: &mut ProfileBook,
    section: &str,
    entries: &[IdLimit],
    defaults: &Option<LimitSpec>,
) -> Result<IdProfiles, GovernanceConfigError> {
    let default = match defaults {
        Some(spec) => Some(book.resolve(
            &format!("governance.{}_defaults", section.trim_end_matches('s')),
            spec.profile.as_deref(),
            spec.rate,
            spec.burst,
        )?),
        None => None,
    };
    let mut exact: IdMap<u32, ProfileId> = IdMap::default();
    let mut exact_origin: HashMap<u32, usize> = HashMap::new();
    // (range, index of the entry that set it)
    let mut ranges: Vec<(IdRange, usize)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = format!("governance.{section}[{i}]");
        let profile = book.resolve(&key, entry.profile.as_deref(), entry.rate, entry.burst)?;
        match (entry.id, entry.ids.as_deref()) {
            (Some(id), None) => {
                if let Some(first) = exact_origin.insert(id, i) {
                    return Err(GovernanceConfigError::new(
                        format!("{key}.id"),
                        format!("{id} is already set by governance.{section}[{first}]"),
                    ));
                }
                exact.insert(id, profile);
            }
            (None, Some(text)) => {
                let (first, last) =
                    syntax::id_range(text).map_err(|m| GovernanceConfigError::new(format!("{key}.ids"), m))?;
                ranges.push((IdRange { first, last, profile }, i));
            }
            (Some(_), Some(_)) => return Err(GovernanceConfigError::new(key, "give id or ids, not both")),
            (None, None) => return Err(GovernanceConfigError::new(key, "needs id or ids")),
        }
    }
    ranges.sort_by_key(|(r, _)| r.first);
    for pair in ranges.windows(2) {
        let ((a, ai), (b, bi)) = (pair[0], pair[1]);
        if b.first <= a.last {
            let (later, earlier, l, e) = if ai > bi { (ai, bi, a, b) } else { (bi, ai, b, a) };
            return Err(GovernanceConfigError::new(
                format!("governance.{section}[{later}].ids"),
                format!("{}-{} overlaps governance.{section}[{earlier}] ({}-{})", l.first, l.last, e.first, e.last),
            ));
        }
    }
    Ok(IdProfiles::new(exact, ranges.into_iter().map(|(r, _)| r).collect(), default))
}

fn compile_rule(book: &ProfileBook, key: &str, rule: &RuleConfig) -> Result<Rule, GovernanceConfigError> {
    let field = |name: &str| format!("{key}.{name}");
    let topic = match (rule.topic, rule.topics.as_deref()) {
        (None, None) => TopicMatch::Any,
        (Some(t), None) => TopicMatch::Exact(t),
        (None, Some(text)) => {
            let (first, last) = syntax::id_range(text).map_err(|m| GovernanceConfigError::new(field("topics"), m))?;
            TopicMatch::Range(first, last)
        }
        (Some(_), Some(_)) => return Err(GovernanceConfigError::new(key, "give topic or topics, not both")),
    };
    let src = match rule.src.as_deref() {
        Some(text) => Some(syntax::ipv4_prefix(text).map_err(|m| GovernanceConfigError::new(field("src"), m))?),
        None => None,
    };
    let forbid = |name: &str, present: bool| {
        if present {
            Err(GovernanceConfigError::new(field(name), format!("not used by action \"{}\"", action_name(rule.action))))
        } else {
            Ok(())
        }
    };
    let action = match rule.action {
        RuleActionKind::Allow | RuleActionKind::Drop => {
            forbid("port", rule.port.is_some())?;
            forbid("next_hop", rule.next_hop.is_some())?;
            forbid("profile", rule.profile.is_some())?;
            if rule.action == RuleActionKind::Allow { RuleAction::Allow } else { RuleAction::Drop }
        }
        RuleActionKind::Route => {
            forbid("profile", rule.profile.is_some())?;
            let port = rule
                .port
                .ok_or_else(|| GovernanceConfigError::new(field("port"), "missing (route needs an egress port)"))?;
            let text = rule
                .next_hop
                .as_deref()
                .ok_or_else(|| GovernanceConfigError::new(field("next_hop"), "missing (route needs a next-hop MAC)"))?;
            let next_hop = syntax::mac(text).map_err(|m| GovernanceConfigError::new(field("next_hop"), m))?;
            RuleAction::Route(Route { port, next_hop })
        }
        RuleActionKind::Limit => {
            forbid("port", rule.port.is_some())?;
            forbid("next_hop", rule.next_hop.is_some())?;
            let name = rule
                .profile
                .as_deref()
                .ok_or_else(|| GovernanceConfigError::new(field("profile"), "missing (limit needs a profile)"))?;
            RuleAction::Limit(book.named(&field("profile"), name)?)
        }
    };
    Ok(Rule { topic, sender: rule.sender, src, dst_port: rule.dst_port, action })
}

fn action_name(kind: RuleActionKind) -> &'static str {
    match kind {
        RuleActionKind::Allow => "allow",
        RuleActionKind::Drop => "drop",
        RuleActionKind::Route => "route",
        RuleActionKind::Limit => "limit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1_000_000_000;

    fn parse(text: &str) -> GovernanceConfig {
        #[derive(serde::Deserialize)]
        struct Root {
            governance: GovernanceConfig,
        }
        toml::from_str::<Root>(text).expect("valid TOML").governance
    }

    fn error(text: &str) -> String {
        parse(text).compile_tables(HZ).unwrap_err().to_string()
    }

    const EXAMPLE: &str = r#"
        [governance]
        reconcile_us = 1000
        max_topics = 1048576
        max_senders = 131072
        default_action = "allow"
        [governance.profiles.gold]
        rate = 100000
        burst = 5000
        [governance.topic_defaults]
        rate = 1000000
        burst = 50000
        [[governance.topics]]
        id = 7
        profile = "gold"
        [[governance.topics]]
        ids = "100-199"
        rate = 5000
        burst = 500
        [governance.sender_defaults]
        rate = 50000
        burst = 5000
        [[governance.senders]]
        id = 42
        rate = 1000
        burst = 100
        [[governance.rules]]
        topic = 7
        action = "drop"
        [[governance.rules]]
        topics = "1000-1999"
        sender = 5
        src = "10.0.0.0/8"
        dst_port = 47000
        action = "route"
        port = 1
        next_hop = "02:00:00:00:00:01"
        [[governance.rules]]
        topic = 9
        action = "limit"
        profile = "gold"
    "#;

    #[test]
    fn the_documented_example_compiles() {
        let tables = parse(EXAMPLE).compile_tables(HZ).unwrap();
        assert_eq!(tables.rule_count(), 3);
        assert_eq!(tables.reconcile_ticks(), 1_000_000);
        assert_eq!(tables.capacity(), (1_048_576, 131_072));
        let profiles: Vec<_> = tables.profiles().map(|(n, r, b)| (n.to_owned(), r, b)).collect();
        assert_eq!(profiles[0], ("governance.profiles.gold".to_owned(), 100_000, 5000));
        assert_eq!(tables.topics.profile_of(7), Some(0));
        assert_eq!(tables.topics.profile_of(150).map(|p| tables.profile(p).rate), Some(5000));
        assert_eq!(tables.topics.profile_of(5).map(|p| tables.profile(p).rate), Some(1_000_000));
        assert_eq!(tables.senders.profile_of(42).map(|p| tables.profile(p).burst), Some(100));
        assert!(tables.topic_limits && tables.sender_limits);
        assert!(!tables.is_pass_through());
    }

    #[test]
    fn empty_section_is_pass_through() {
        let tables = parse("[governance]").compile_tables(HZ).unwrap();
        assert!(tables.is_pass_through());
        assert_eq!(tables.capacity(), (1 << 20, 1 << 17));
        assert!(GovernanceConfig::default().compile_tables(HZ).unwrap().is_pass_through());
    }

    #[test]
    fn each_compile_gets_a_new_generation() {
        let config = GovernanceConfig::default();
        let a = config.compile_tables(HZ).unwrap();
        let b = config.compile_tables(HZ).unwrap();
        assert_ne!(a.generation(), b.generation());
    }

    #[test]
    fn identical_inline_limits_share_one_profile() {
        let tables = parse(
            r#"[governance]
            [[governance.topics]]
            id = 1
            rate = 10
            burst = 5
            [[governance.senders]]
            id = 2
            rate = 10
            burst = 5"#,
        )
        .compile_tables(HZ)
        .unwrap();
        assert_eq!(tables.profiles().count(), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("[governance]\nreconcile_us = 500", "governance.reconcile_us: 500 is outside 1000–10000"),
            ("[governance]\nreconcile_us = 10001", "governance.reconcile_us: 10001 is outside 1000–10000"),
            ("[governance]\nmax_topics = 0", "governance.max_topics: 0 is outside 1–16777216"),
            (
                "[governance.profiles.gold]\nrate = 0\nburst = 5",
                "governance.profiles.gold.rate: must be at least 1 msg/s (use a drop rule to block)",
            ),
            (
                "[governance.profiles.gold]\nrate = 5\nburst = 0",
                "governance.profiles.gold.burst: 0 is outside 1–2147483648 msgs",
            ),
            (
                "[[governance.topics]]\nid = 1\nprofile = \"silver\"",
                "governance.topics[0].profile: unknown profile \"silver\"",
            ),
            ("[[governance.topics]]\nid = 1\nrate = 5", "governance.topics[0].burst: missing (rate needs a burst)"),
            ("[[governance.topics]]\nrate = 5\nburst = 5", "governance.topics[0]: needs id or ids"),
            (
                "[[governance.senders]]\nids = \"9-3\"\nrate = 5\nburst = 5",
                "governance.senders[0].ids: inverted id range \"9-3\"",
            ),
            (
                "[[governance.topics]]\nids = \"100-199\"\nrate = 5\nburst = 5\n\
                 [[governance.topics]]\nids = \"150-250\"\nrate = 5\nburst = 5",
                "governance.topics[1].ids: 150-250 overlaps governance.topics[0] (100-199)",
            ),
            (
                "[[governance.topics]]\nids = \"150-250\"\nrate = 5\nburst = 5\n\
                 [[governance.topics]]\nids = \"100-150\"\nrate = 5\nburst = 5",
                "governance.topics[1].ids: 100-150 overlaps governance.topics[0] (150-250)",
            ),
            (
                "[[governance.topics]]\nid = 3\nrate = 5\nburst = 5\n\
                 [[governance.topics]]\nid = 3\nrate = 6\nburst = 5",
                "governance.topics[1].id: 3 is already set by governance.topics[0]",
            ),
            (
                "[governance.topic_defaults]\nprofile = \"nope\"",
                "governance.topic_defaults.profile: unknown profile \"nope\"",
            ),
            (
                "[governance.sender_defaults]\nrate = 5",
                "governance.sender_defaults.burst: missing (rate needs a burst)",
            ),
            (
                "[[governance.rules]]\naction = \"allow\"\n\
                 [[governance.rules]]\naction = \"drop\"\n\
                 [[governance.rules]]\naction = \"route\"\nport = 1\nnext_hop = \"zz\"",
                "governance.rules[2].next_hop: bad MAC \"zz\"",
            ),
            (
                "[[governance.rules]]\naction = \"route\"\nnext_hop = \"02:00:00:00:00:01\"",
                "governance.rules[0].port: missing (route needs an egress port)",
            ),
            (
                "[[governance.rules]]\naction = \"limit\"\nprofile = \"gold\"",
                "governance.rules[0].profile: unknown profile \"gold\"",
            ),
            (
                "[[governance.rules]]\naction = \"drop\"\nport = 3",
                "governance.rules[0].port: not used by action \"drop\"",
            ),
            (
                "[[governance.rules]]\ntopic = 1\ntopics = \"1-2\"\naction = \"drop\"",
                "governance.rules[0]: give topic or topics, not both",
            ),
            (
                "[[governance.rules]]\nsrc = \"10.0.0.1/8\"\naction = \"drop\"",
                "governance.rules[0].src: IPv4 prefix \"10.0.0.1/8\" has host bits set",
            ),
        ];
        for (body, expected) in cases {
            let text =
                if body.starts_with("[governance]") { body.to_string() } else { format!("[governance]\n{body}") };
            assert_eq!(&error(&text), expected, "config:\n{text}");
        }
    }

    #[test]
    fn unknown_fields_and_actions_are_rejected_by_the_parser() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Root {
            governance: GovernanceConfig,
        }
        let unknown = toml::from_str::<Root>("[governance]\nreconcile_ms = 1").unwrap_err();
        assert!(unknown.to_string().contains("unknown field `reconcile_ms`"), "{unknown}");
        let action = toml::from_str::<Root>("[[governance.rules]]\naction = \"reject\"").unwrap_err();
        assert!(action.to_string().contains("unknown variant `reject`"), "{action}");
    }

    #[test]
    fn too_many_rules_are_rejected() {
        let mut config = GovernanceConfig::default();
        let rule = RuleConfig {
            topic: None,
            topics: None,
            sender: None,
            src: None,
            dst_port: None,
            action: RuleActionKind::Allow,
            port: None,
            next_hop: None,
            profile: None,
        };
        config.rules = vec![rule; MAX_RULES + 1];
        let err = config.compile_tables(HZ).unwrap_err();
        assert_eq!(err.key(), "governance.rules");
    }
}
