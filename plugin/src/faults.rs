//! Test hooks: panics injected into named entry points, to prove that a panic inside the plugin
//! never takes the host down.
//!
//! Off unless the environment variable `CONTACT_MS365_INJECT_PANIC` names entry points
//! (comma-separated, e.g. `on_incoming_call,search_phonebook`) when the integration is created.

/// The environment variable that switches the hooks on.
pub const INJECT_PANIC_ENV: &str = "CONTACT_MS365_INJECT_PANIC";

/// Which entry points panic on purpose.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    panic_in: Vec<String>,
}

impl Faults {
    /// Reads the environment once.
    pub fn from_env() -> Self {
        let panic_in = std::env::var(INJECT_PANIC_ENV)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Self { panic_in }
    }

    /// Hooks that panic in the named entry points.
    pub fn panicking_in(entry_points: &[&str]) -> Self {
        Self {
            panic_in: entry_points.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Panics if `entry_point` was named.
    pub fn check(&self, entry_point: &str) {
        if self.panic_in.iter().any(|p| p == entry_point) {
            panic!("injected panic in {entry_point} ({INJECT_PANIC_ENV})");
        }
    }
}
