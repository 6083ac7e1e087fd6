//! DPDK telemetry commands (`rte_telemetry_register_cmd`), answered from Rust.
//!
//! Handlers build a [`TelemetryReply`]; the one C callback here turns it into
//! `rte_tel_data`. DPDK's callback carries no user pointer, so handlers are
//! looked up by command name in a process-wide table. They run on DPDK's
//! telemetry threads, never on a worker lcore.

use super::{Eal, TelemetryError, sys};
use std::ffi::{CStr, CString, c_char, c_int};
use std::sync::{Arc, Mutex};

/// Longest key or string value DPDK 22.11 stores (`RTE_TEL_MAX_STRING_LEN` - 1).
const MAX_STRING: usize = sys::RTE_TEL_MAX_STRING_LEN as usize - 1;
/// Most entries one dict holds (`RTE_TEL_MAX_DICT_ENTRIES`).
const MAX_ENTRIES: usize = sys::RTE_TEL_MAX_DICT_ENTRIES as usize;
/// Longest command name DPDK 22.11 accepts (its `MAX_CMD_LEN` is 56, NUL included).
const MAX_COMMAND: usize = 55;

/// One value of a reply. DPDK nests containers one level deep, so a nested
/// dict holds numbers only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TelemetryValue {
    U64(u64),
    Str(String),
    Dict(Vec<(String, u64)>),
}

/// A reply: one JSON object under the command's name, e.g.
/// `{"/tachyon/stats": {"rx_packets": 5, "drops": {"bad_magic": 1}}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TelemetryReply {
    pub entries: Vec<(String, TelemetryValue)>,
}

impl TelemetryReply {
    pub fn push(&mut self, key: impl Into<String>, value: TelemetryValue) {
        self.entries.push((key.into(), value));
    }

    /// The JSON DPDK will print (keys and strings as sanitised), for tests and logs.
    pub fn to_json(&self) -> serde_json::Value {
        let object = self
            .entries
            .iter()
            .take(MAX_ENTRIES)
            .map(|(k, v)| {
                let v = match v {
                    TelemetryValue::U64(n) => (*n).into(),
                    TelemetryValue::Str(s) => sanitize_value(s).into(),
                    TelemetryValue::Dict(d) => serde_json::Value::Object(
                        d.iter().take(MAX_ENTRIES).map(|(k, n)| (sanitize_key(k), (*n).into())).collect(),
                    ),
                };
                (sanitize_key(k), v)
            })
            .collect();
        serde_json::Value::Object(object)
    }
}

type Handler = Arc<dyn Fn(&str) -> TelemetryReply + Send + Sync>;

/// Registered commands and their handlers; the telemetry threads read it.
static HANDLERS: Mutex<Vec<(String, Handler)>> = Mutex::new(Vec::new());

/// Registers `command` (e.g. `/tachyon/stats`) so that telemetry clients such
/// as `dpdk-telemetry.py` can call it; `handler` gets the command's parameter
/// text (empty when none). Registering a command again replaces its handler.
pub fn register_telemetry_command(
    _eal: &Eal,
    command: &str,
    help: &str,
    handler: impl Fn(&str) -> TelemetryReply + Send + Sync + 'static,
) -> Result<(), TelemetryError> {
    let valid = command.starts_with('/')
        && command.len() <= MAX_COMMAND
        && command.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/');
    if !valid {
        return Err(TelemetryError::InvalidName { command: command.to_string(), max: MAX_COMMAND });
    }
    let mut handlers = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(entry) = handlers.iter_mut().find(|(c, _)| c == command) {
        entry.1 = Arc::new(handler);
        return Ok(());
    }
    let help = sanitize_value(help);
    // DPDK may keep these pointers for the life of the process: leak them once per command.
    let c_command: &'static CStr = Box::leak(CString::new(command).expect("checked above").into_boxed_c_str());
    let c_help: &'static CStr = Box::leak(CString::new(help).expect("sanitised").into_boxed_c_str());
    // SAFETY: both strings are NUL-terminated and live forever; dispatch has
    // the telemetry_cb signature and never unwinds into C.
    let rc = unsafe { sys::rte_telemetry_register_cmd(c_command.as_ptr(), Some(dispatch), c_help.as_ptr()) };
    if rc != 0 {
        return Err(TelemetryError::Registration { command: command.to_string(), reason: super::error_text(rc) });
    }
    handlers.push((command.to_string(), Arc::new(handler)));
    Ok(())
}

/// The C callback of every registered command.
unsafe extern "C" fn dispatch(cmd: *const c_char, params: *const c_char, data: *mut sys::rte_tel_data) -> c_int {
    if cmd.is_null() || data.is_null() {
        return -1;
    }
    // SAFETY: DPDK passes the NUL-terminated command it matched, valid for this call.
    let cmd = unsafe { CStr::from_ptr(cmd) }.to_string_lossy();
    let params = if params.is_null() {
        String::new()
    } else {
        // SAFETY: as above, for the (optional) parameter text.
        unsafe { CStr::from_ptr(params) }.to_string_lossy().into_owned()
    };
    let handler = {
        let handlers = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
        handlers.iter().find(|(c, _)| *c == cmd).map(|(_, h)| h.clone())
    };
    let Some(handler) = handler else { return -1 };
    // A panic must not unwind into DPDK's thread: answer with an error instead.
    let Ok(reply) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&params))) else {
        return -1;
    };
    // SAFETY: data is the rte_tel_data DPDK handed to this callback.
    unsafe { fill(data, &reply) }
}

/// Writes `reply` into DPDK's reply structure; 0, or negative errno.
///
/// # Safety
/// `data` must be the valid `rte_tel_data` of a running callback.
unsafe fn fill(data: *mut sys::rte_tel_data, reply: &TelemetryReply) -> c_int {
    // SAFETY: data is valid (caller's contract).
    unsafe { sys::rte_tel_data_start_dict(data) };
    for (key, value) in reply.entries.iter().take(MAX_ENTRIES) {
        let key = CString::new(sanitize_key(key)).expect("sanitised");
        let rc = match value {
            // SAFETY: data is a started dict; key is NUL-terminated and copied by DPDK.
            TelemetryValue::U64(n) => unsafe { sys::rte_tel_data_add_dict_u64(data, key.as_ptr(), *n) },
            TelemetryValue::Str(s) => {
                let s = CString::new(sanitize_value(s)).expect("sanitised");
                // SAFETY: as above; DPDK copies the value too.
                unsafe { sys::rte_tel_data_add_dict_string(data, key.as_ptr(), s.as_ptr()) }
            }
            // SAFETY: data is a started dict.
            TelemetryValue::Dict(numbers) => unsafe { add_nested_dict(data, &key, numbers) },
        };
        if rc != 0 {
            return rc;
        }
    }
    0
}

/// Adds `numbers` as a dict under `key`; DPDK frees the container with the reply.
///
/// # Safety
/// `data` must be a started dict of a running callback.
unsafe fn add_nested_dict(data: *mut sys::rte_tel_data, key: &CStr, numbers: &[(String, u64)]) -> c_int {
    // SAFETY: allocation only; NULL is handled.
    let child = unsafe { sys::rte_tel_data_alloc() };
    if child.is_null() {
        return -(libc::ENOMEM);
    }
    // SAFETY: child was just allocated and is owned here.
    unsafe { sys::rte_tel_data_start_dict(child) };
    for (name, n) in numbers.iter().take(MAX_ENTRIES) {
        let name = CString::new(sanitize_key(name)).expect("sanitised");
        // SAFETY: child is a started dict; the name is copied.
        unsafe { sys::rte_tel_data_add_dict_u64(child, name.as_ptr(), *n) };
    }
    // SAFETY: keep = 0 hands child to DPDK, which frees it with the reply.
    let rc = unsafe { sys::rte_tel_data_add_dict_container(data, key.as_ptr(), child, 0) };
    if rc != 0 {
        // SAFETY: DPDK refused the container, so it is still ours to free.
        unsafe { sys::rte_tel_data_free(child) };
    }
    rc
}

/// DPDK 22.11 accepts only letters, digits, '_' and '/' in keys, and does not
/// escape them in its JSON.
fn sanitize_key(key: &str) -> String {
    let key: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '/' { c } else { '_' }).collect();
    truncate(key)
}

/// DPDK 22.11 copies string values into JSON without escaping: keep them printable and quote-free.
fn sanitize_value(value: &str) -> String {
    let value: String = value.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').collect();
    truncate(value)
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_STRING {
        let mut end = MAX_STRING;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_strings_are_made_safe_for_dpdk_json() {
        assert_eq!(sanitize_key("rule \"a\".b"), "rule__a__b");
        assert_eq!(sanitize_value("say \"hi\"\n\\"), "say hi");
        assert_eq!(sanitize_key(&"x".repeat(300)).len(), MAX_STRING);
        assert_eq!(truncate("é".repeat(100)).len(), 126);
    }

    #[test]
    fn reply_json_mirrors_what_dpdk_prints() {
        let mut r = TelemetryReply::default();
        r.push("rx_packets", TelemetryValue::U64(7));
        r.push("drops", TelemetryValue::Dict(vec![("bad_magic".into(), 1)]));
        r.push("version", TelemetryValue::Str("0.1 \"x\"".into()));
        assert_eq!(r.to_json(), serde_json::json!({"rx_packets": 7, "drops": {"bad_magic": 1}, "version": "0.1 x"}));
    }
}
