//! The kernel's and EAL's CPU-list notation (`0-3,8,10-11`), both ways.
//!
//! One parser and one printer, so what the report prints can be pasted back
//! into `-l`, `isolcpus=` or `taskset -c` unchanged.

use std::fmt;

/// Why a CPU list could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuListError {
    /// The text that was given.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a CPU list ({}); expected e.g. 0-3,8", self.text, self.problem)
    }
}

impl std::error::Error for CpuListError {}

/// Parses `0-3,8,10-11` into ascending, de-duplicated numbers; empty text is an empty list.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, CpuListError> {
    let fail = |problem: String| CpuListError { text: text.to_string(), problem };
    let mut cpus = Vec::new();
    for item in text.trim().split(',').filter(|item| !item.trim().is_empty()) {
        let item = item.trim();
        let (first, last) = match item.split_once('-') {
            Some((first, last)) => (first.trim(), last.trim()),
            None => (item, item),
        };
        let first: u32 = first.parse().map_err(|_| fail(format!("'{first}' is not a number")))?;
        let last: u32 = last.parse().map_err(|_| fail(format!("'{last}' is not a number")))?;
        if last < first {
            return Err(fail(format!("range {item} runs backwards")));
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Prints numbers in the compact range form, e.g. `[0,1,2,3,8]` → `0-3,8`.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < sorted.len() {
        let start = sorted[index];
        let mut end = start;
        while index + 1 < sorted.len() && sorted[index + 1] == end + 1 {
            index += 1;
            end = sorted[index];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        index += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        assert_eq!(parse_cpu_list("0-3,8,10-11").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list(" 5 ").unwrap(), vec![5]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("3,1,1-2").unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        let error = parse_cpu_list("4-2").unwrap_err();
        assert!(error.to_string().contains("backwards"), "{error}");
        assert!(parse_cpu_list("a-b").is_err());
        assert!(parse_cpu_list("1-").is_err());
    }

    #[test]
    fn formats_compactly_and_round_trips() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
        assert_eq!(format_cpu_list(&[7, 5, 6]), "5-7");
        let cpus = vec![0, 2, 4, 5, 6, 31];
        assert_eq!(parse_cpu_list(&format_cpu_list(&cpus)).unwrap(), cpus);
    }
}
