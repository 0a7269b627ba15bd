//! Signal names and numbers (`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`).

use super::*;

/// Linux signal names and numbers (x86_64, arm, aarch64, riscv share these).
pub(super) const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// A signal, by name (`"SIGTERM"`, `"TERM"`) or number (`"15"`); `SIGRTMIN+N` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    pub const TERM: Signal = Signal(15);
    pub const KILL: Signal = Signal(9);

    pub fn parse(s: &str) -> Result<Signal, String> {
        let up = s.trim().to_ascii_uppercase();
        if let Ok(n) = up.parse::<i32>() {
            return if (1..=64).contains(&n) {
                Ok(Signal(n))
            } else {
                Err(format!("invalid signal number {n}: must be 1..=64"))
            };
        }
        let full = if up.starts_with("SIG") {
            up.clone()
        } else {
            format!("SIG{up}")
        };
        if let Some(&(_, n)) = SIGNALS.iter().find(|(name, _)| *name == full) {
            return Ok(Signal(n));
        }
        if let Some(off) = full.strip_prefix("SIGRTMIN") {
            let k: i32 = if off.is_empty() {
                0
            } else {
                off.trim_start_matches('+')
                    .parse()
                    .map_err(|_| format!("invalid signal {s:?}"))?
            };
            if (0..=30).contains(&k) {
                return Ok(Signal(34 + k));
            }
        }
        let hint = did_you_mean(&full, SIGNALS.iter().map(|(n, _)| *n));
        Err(format!("unknown signal {s:?}{hint}"))
    }

    pub fn number(self) -> i32 {
        self.0
    }

    pub fn name(self) -> String {
        match SIGNALS.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => (*name).to_string(),
            None if self.0 >= 34 => format!("SIGRTMIN+{}", self.0 - 34),
            None => self.0.to_string(),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
