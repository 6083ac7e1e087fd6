//! Reads the placement-relevant EAL arguments without starting EAL.
//!
//! `tachyon --plan` must work on a laptop without hugepages or NICs, so the
//! lcore map (`-l`, `-c`, `--lcores`), the main lcore and the device list
//! (`-a`, `--vdev`) are parsed here the way EAL would read them.

use std::collections::BTreeMap;
use std::fmt;

use super::cpulist::parse_cpu_list;
use super::model::{CpuId, Topology};

/// An EAL lcore id (what `rte_lcore_id()` returns), distinct from the CPU it runs on.
pub type LcoreId = u32;

/// A device EAL was told to probe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EalDevice {
    /// `-a 0000:03:00.0[,devargs]`: a PCI device; the address is as given.
    Pci { address: String },
    /// `--vdev net_null0[,args]`: a virtual device, identified by its name.
    Vdev { name: String },
}

/// What EAL was asked for, as far as placement is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EalArgs {
    /// lcore → the CPUs its thread may run on; `None` when no `-l`/`-c`/`--lcores` was given.
    pub lcores: Option<BTreeMap<LcoreId, Vec<CpuId>>>,
    /// The option that set `lcores`, for messages.
    pub lcores_option: Option<String>,
    /// `--main-lcore`, when given.
    pub main_lcore: Option<LcoreId>,
    /// `-a`/`--allow` and `--vdev` devices, in the order given.
    pub devices: Vec<EalDevice>,
}

/// The lcores EAL will run and which of them is the main (control) lcore.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LcoreLayout {
    /// lcore → the CPUs its thread may run on.
    pub lcores: BTreeMap<LcoreId, Vec<CpuId>>,
    /// EAL's main lcore, which runs the control loop.
    pub main_lcore: LcoreId,
    /// False when EAL got no lcore option and would use every CPU.
    pub explicit: bool,
}

/// Why the EAL arguments cannot be used for planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EalArgsError {
    /// An option that needs a value was last on the line.
    MissingValue { option: String },
    /// A lcore list, core mask or lcore map did not parse.
    BadValue { option: String, value: String, problem: String },
    /// Two of `-l`, `-c`, `--lcores` were given; EAL refuses that too.
    ConflictingLcoreOptions { first: String, second: String },
    /// One lcore id was mapped twice in `--lcores`.
    DuplicateLcore { lcore: LcoreId },
    /// `--main-lcore` names an lcore that the lcore options do not enable.
    MainLcoreNotEnabled { main: LcoreId, enabled: Vec<LcoreId> },
    /// The lcore options enable nothing.
    NoLcores,
}

impl fmt::Display for EalArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EalArgsError::MissingValue { option } => {
                write!(f, "EAL option {option} needs a value")
            }
            EalArgsError::BadValue { option, value, problem } => write!(f, "EAL option {option} '{value}': {problem}"),
            EalArgsError::ConflictingLcoreOptions { first, second } => {
                write!(f, "EAL options {first} and {second} both set the lcores; keep only one of them")
            }
            EalArgsError::DuplicateLcore { lcore } => {
                write!(f, "--lcores maps lcore {lcore} twice; give each lcore one CPU set")
            }
            EalArgsError::MainLcoreNotEnabled { main, enabled } => write!(
                f,
                "--main-lcore {main} is not among the enabled lcores {}; add it to -l or pick one of them",
                super::cpulist::format_cpu_list(enabled)
            ),
            EalArgsError::NoLcores => write!(f, "the EAL lcore options enable no lcore"),
        }
    }
}

impl std::error::Error for EalArgsError {}

/// EAL options that take a value, so their value is never mistaken for an option.
const SHORT_OPTIONS_WITH_VALUE: &[char] = &['a', 'b', 'c', 'd', 'l', 'm', 'n', 'r', 'S', 's', 'w'];
const LONG_OPTIONS_WITH_VALUE: &[&str] = &[
    "allow",
    "base-virtaddr",
    "block",
    "file-prefix",
    "force-max-simd-bitwidth",
    "huge-dir",
    "iova-mode",
    "lcores",
    "log-level",
    "main-lcore",
    "master-lcore",
    "mbuf-pool-ops-name",
    "pci-blacklist",
    "pci-whitelist",
    "proc-type",
    "service-corelist",
    "service-coremask",
    "socket-limit",
    "socket-mem",
    "trace",
    "trace-bufsz",
    "trace-dir",
    "trace-mode",
    "vdev",
    "vfio-intr",
    "vfio-vf-token",
];

/// Splits the arguments into (option name, value) pairs the way getopt would.
fn options(args: &[String]) -> Result<Vec<(String, Option<String>)>, EalArgsError> {
    let mut found = Vec::new();
    // A leading word that is not an option is the program name.
    let start = usize::from(args.first().is_some_and(|first| !first.starts_with('-')));
    let mut rest = args[start..].iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let value = if inline.is_some() || !LONG_OPTIONS_WITH_VALUE.contains(&name) {
                inline
            } else {
                Some(rest.next().cloned().ok_or_else(|| EalArgsError::MissingValue { option: format!("--{name}") })?)
            };
            found.push((format!("--{name}"), value));
        } else if let Some(short) = arg.strip_prefix('-') {
            let mut chars = short.chars();
            let Some(letter) = chars.next() else { continue };
            let attached: String = chars.collect();
            let value = if !SHORT_OPTIONS_WITH_VALUE.contains(&letter) {
                None
            } else if !attached.is_empty() {
                Some(attached)
            } else {
                Some(rest.next().cloned().ok_or_else(|| EalArgsError::MissingValue { option: format!("-{letter}") })?)
            };
            found.push((format!("-{letter}"), value));
        }
    }
    Ok(found)
}

/// Parses EAL arguments (with or without the program name; stops at `--`).
pub fn parse_eal_args(args: &[String]) -> Result<EalArgs, EalArgsError> {
    let mut parsed = EalArgs::default();
    for (option, value) in options(args)? {
        let value = value.unwrap_or_default();
        let bad = |problem: String| EalArgsError::BadValue { option: option.clone(), value: value.clone(), problem };
        let lcores = match option.as_str() {
            "-l" => Some(parse_lcore_list(&value).map_err(bad)?),
            "-c" => Some(parse_core_mask(&value).map_err(bad)?),
            "--lcores" => Some(parse_lcore_map(&value).map_err(|error| match error {
                LcoreMapError::Duplicate(lcore) => EalArgsError::DuplicateLcore { lcore },
                LcoreMapError::Syntax(problem) => bad(problem),
            })?),
            "--main-lcore" | "--master-lcore" => {
                parsed.main_lcore = Some(value.trim().parse().map_err(|_| bad("expected an lcore number".into()))?);
                None
            }
            "-a" | "--allow" | "-w" | "--pci-whitelist" => {
                let address = value.split(',').next().unwrap_or_default().to_string();
                parsed.devices.push(EalDevice::Pci { address });
                None
            }
            "--vdev" => {
                let name = value.split(',').next().unwrap_or_default().to_string();
                parsed.devices.push(EalDevice::Vdev { name });
                None
            }
            _ => None,
        };
        if let Some(lcores) = lcores {
            if let Some(first) = &parsed.lcores_option {
                return Err(EalArgsError::ConflictingLcoreOptions { first: first.clone(), second: option });
            }
            if lcores.is_empty() {
                return Err(EalArgsError::NoLcores);
            }
            parsed.lcores = Some(lcores);
            parsed.lcores_option = Some(option);
        }
    }
    Ok(parsed)
}

impl EalArgs {
    /// The lcores EAL will run on `topo`: the given map, or (like EAL) one lcore per CPU.
    pub fn lcore_layout(&self, topo: &Topology) -> Result<LcoreLayout, EalArgsError> {
        let (lcores, explicit) = match &self.lcores {
            Some(lcores) => (lcores.clone(), true),
            None => (topo.all_cpus().into_iter().map(|cpu| (cpu, vec![cpu])).collect(), false),
        };
        let lowest = *lcores.keys().next().ok_or(EalArgsError::NoLcores)?;
        // EAL's default main lcore is the lowest enabled one.
        let main_lcore = self.main_lcore.unwrap_or(lowest);
        if !lcores.contains_key(&main_lcore) {
            return Err(EalArgsError::MainLcoreNotEnabled {
                main: main_lcore,
                enabled: lcores.keys().copied().collect(),
            });
        }
        Ok(LcoreLayout { lcores, main_lcore, explicit })
    }
}

/// `-l 0-3,8`: each lcore runs on the CPU of the same number.
fn parse_lcore_list(value: &str) -> Result<BTreeMap<LcoreId, Vec<CpuId>>, String> {
    if value.contains('@') || value.contains('(') {
        return Err("-l takes a plain list such as 0-3,8; use --lcores for lcore@cpu maps".into());
    }
    let lcores = parse_cpu_list(value).map_err(|error| error.to_string())?;
    Ok(lcores.into_iter().map(|lcore| (lcore, vec![lcore])).collect())
}

/// `-c 0xf`: bit n enables lcore n on CPU n.
fn parse_core_mask(value: &str) -> Result<BTreeMap<LcoreId, Vec<CpuId>>, String> {
    let digits = value.trim();
    let digits = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")).unwrap_or(digits);
    if digits.is_empty() {
        return Err("expected a hexadecimal core mask such as 0xf".into());
    }
    let mut lcores = BTreeMap::new();
    for (position, digit) in digits.chars().rev().enumerate() {
        let nibble = digit.to_digit(16).ok_or_else(|| format!("'{digit}' is not a hexadecimal digit"))?;
        for bit in 0..4 {
            if nibble & (1 << bit) != 0 {
                let lcore = u32::try_from(position * 4 + bit).map_err(|_| "mask too long")?;
                lcores.insert(lcore, vec![lcore]);
            }
        }
    }
    Ok(lcores)
}

enum LcoreMapError {
    Syntax(String),
    Duplicate(LcoreId),
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(value: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, character) in value.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or("a ')' has no matching '('")?;
            }
            ',' if depth == 0 => {
                parts.push(&value[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a '(' is not closed".into());
    }
    parts.push(&value[start..]);
    Ok(parts)
}

/// One side of an `--lcores` element: a number, a range, or a parenthesised group.
/// Returns the numbers and whether they were a group.
fn parse_lcore_set(text: &str) -> Result<(Vec<u32>, bool), String> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('(') {
        let inner = inner.strip_suffix(')').ok_or_else(|| format!("group '{text}' is not closed"))?;
        let numbers = parse_cpu_list(inner).map_err(|error| error.to_string())?;
        if numbers.is_empty() {
            return Err(format!("group '{text}' is empty"));
        }
        return Ok((numbers, true));
    }
    if text.is_empty() {
        return Err("an element is empty".into());
    }
    let numbers = parse_cpu_list(text).map_err(|error| error.to_string())?;
    Ok((numbers, false))
}

/// `--lcores 0@0,1@1,(2-3)@(4-5),7-8,(0,6)`: DPDK's lcore → CPU-set map.
///
/// `a@b` runs every lcore of `a` on the CPU set `b`; a range without `@` maps each
/// lcore to its own CPU; a group without `@` runs each of its lcores on the whole group.
fn parse_lcore_map(value: &str) -> Result<BTreeMap<LcoreId, Vec<CpuId>>, LcoreMapError> {
    let mut map = BTreeMap::new();
    for element in split_top_level(value).map_err(LcoreMapError::Syntax)? {
        let (lcores, cpus_part) = match element.split_once('@') {
            Some((lcores, cpus)) => (lcores, Some(cpus)),
            None => (element, None),
        };
        let (lcores, grouped) = parse_lcore_set(lcores).map_err(LcoreMapError::Syntax)?;
        let cpus_for = |lcore: u32| -> Result<Vec<CpuId>, LcoreMapError> {
            match cpus_part {
                Some(cpus) => Ok(parse_lcore_set(cpus).map_err(LcoreMapError::Syntax)?.0),
                None if grouped => Ok(lcores.clone()),
                None => Ok(vec![lcore]),
            }
        };
        for &lcore in &lcores {
            if map.insert(lcore, cpus_for(lcore)?).is_some() {
                return Err(LcoreMapError::Duplicate(lcore));
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::model::{CpuNumbering, RegularShape};

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn map(pairs: &[(u32, &[u32])]) -> BTreeMap<u32, Vec<u32>> {
        pairs.iter().map(|(lcore, cpus)| (*lcore, cpus.to_vec())).collect()
    }

    #[test]
    fn dash_l_maps_each_lcore_to_its_own_cpu() {
        let parsed = parse_eal_args(&args("tachyon -l 0-2,5 -n 4 --in-memory")).unwrap();
        assert_eq!(parsed.lcores.unwrap(), map(&[(0, &[0]), (1, &[1]), (2, &[2]), (5, &[5])]));
        assert_eq!(parsed.main_lcore, None);
        let attached = parse_eal_args(&args("-l0-1")).unwrap();
        assert_eq!(attached.lcores.unwrap(), map(&[(0, &[0]), (1, &[1])]));
    }

    #[test]
    fn core_mask_is_hexadecimal_bits() {
        let parsed = parse_eal_args(&args("-c 0x15")).unwrap();
        assert_eq!(parsed.lcores.unwrap(), map(&[(0, &[0]), (2, &[2]), (4, &[4])]));
        let wide = parse_eal_args(&args("-c 100000000")).unwrap();
        assert_eq!(wide.lcores.unwrap(), map(&[(32, &[32])]));
        assert!(matches!(parse_eal_args(&args("-c 0xg")), Err(EalArgsError::BadValue { .. })));
    }

    #[test]
    fn lcores_map_follows_dpdk_grammar() {
        let parsed = parse_eal_args(&args("--lcores 0@0,1@1,(2-3)@(4-5)")).unwrap();
        assert_eq!(parsed.lcores.unwrap(), map(&[(0, &[0]), (1, &[1]), (2, &[4, 5]), (3, &[4, 5])]));
        // The example from DPDK's EAL documentation.
        let documented = parse_eal_args(&args("--lcores=1,2@(5-7),(3-5)@(0,2),(0,6),7-8")).unwrap();
        assert_eq!(
            documented.lcores.unwrap(),
            map(&[
                (0, &[0, 6]),
                (1, &[1]),
                (2, &[5, 6, 7]),
                (3, &[0, 2]),
                (4, &[0, 2]),
                (5, &[0, 2]),
                (6, &[0, 6]),
                (7, &[7]),
                (8, &[8]),
            ])
        );
    }

    #[test]
    fn lcores_map_rejects_duplicates_and_bad_groups() {
        assert_eq!(parse_eal_args(&args("--lcores 1@1,1@2")), Err(EalArgsError::DuplicateLcore { lcore: 1 }));
        assert!(matches!(parse_eal_args(&args("--lcores (1-2@3")), Err(EalArgsError::BadValue { .. })));
        assert!(matches!(parse_eal_args(&args("-l 1@2")), Err(EalArgsError::BadValue { .. })));
    }

    #[test]
    fn main_lcore_and_devices_are_read() {
        let parsed = parse_eal_args(&args(
            "-l 0-3 --main-lcore 3 -a 0000:03:00.0,rxq_cqe_comp_en=1 --allow=0000:03:00.1 \
             --vdev net_null0,size=64 -b 0000:04:00.0 --file-prefix t1",
        ))
        .unwrap();
        assert_eq!(parsed.main_lcore, Some(3));
        assert_eq!(
            parsed.devices,
            vec![
                EalDevice::Pci { address: "0000:03:00.0".into() },
                EalDevice::Pci { address: "0000:03:00.1".into() },
                EalDevice::Vdev { name: "net_null0".into() },
            ]
        );
    }

    #[test]
    fn stops_at_the_application_separator() {
        let parsed = parse_eal_args(&args("-l 0-1 -- --plan -l 5")).unwrap();
        assert_eq!(parsed.lcores.unwrap(), map(&[(0, &[0]), (1, &[1])]));
    }

    #[test]
    fn two_lcore_options_conflict() {
        assert_eq!(
            parse_eal_args(&args("-l 0-1 -c 0x3")),
            Err(EalArgsError::ConflictingLcoreOptions { first: "-l".into(), second: "-c".into() })
        );
    }

    #[test]
    fn missing_value_is_named() {
        assert_eq!(parse_eal_args(&args("-n 4 -l")), Err(EalArgsError::MissingValue { option: "-l".into() }));
    }

    #[test]
    fn layout_defaults_like_eal() {
        let topo = Topology::regular(RegularShape {
            packages: 1,
            nodes_per_package: 1,
            l3_per_node: 1,
            cores_per_l3: 2,
            threads_per_core: 2,
            numbering: CpuNumbering::SiblingsAdjacent,
        });
        let default = parse_eal_args(&[]).unwrap().lcore_layout(&topo).unwrap();
        assert!(!default.explicit);
        assert_eq!(default.main_lcore, 0);
        assert_eq!(default.lcores.len(), 4);

        let given = parse_eal_args(&args("-l 1-3")).unwrap().lcore_layout(&topo).unwrap();
        assert_eq!(given.main_lcore, 1, "lowest enabled lcore is main by default");

        let wrong_main = parse_eal_args(&args("-l 1-3 --main-lcore 0")).unwrap();
        let error = wrong_main.lcore_layout(&topo).unwrap_err();
        assert!(error.to_string().contains("--main-lcore 0"), "{error}");
    }
}
