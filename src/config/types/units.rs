//! Durations (`"250ms"`, `"1m30s"`) and sizes (`"64M"`, a number of bytes).

use super::*;

/// A duration written as `"250ms"`, `"10s"`, `"5m"`, `"1h"` or a sum like `"1m30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || {
            format!(
                "invalid duration {s:?}: expected a number and a unit, like \"250ms\", \"10s\", \"5m\" or \"1h\""
            )
        };
        let t = s.trim();
        if t == "0" {
            return Ok(Duration(StdDuration::ZERO));
        }
        if t.is_empty() {
            return Err(bad());
        }
        let mut total: u128 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let nanos_per: u128 = match &rest[..unit_len] {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "d" => 86_400_000_000_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = n
                .checked_mul(nanos_per)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(|| format!("duration {s:?} is too long"))?;
        }
        // A year is plenty for any timeout or interval here.
        if total > 366 * 86_400_000_000_000 {
            return Err(format!("duration {s:?} is too long (at most 366d)"));
        }
        let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
        let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| bad())?;
        Ok(Duration(StdDuration::new(secs, nanos)))
    }

    pub fn from_secs(s: u64) -> Duration {
        Duration(StdDuration::from_secs(s))
    }

    pub fn from_millis(ms: u64) -> Duration {
        Duration(StdDuration::from_millis(ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        if n == 0 {
            return f.write_str("0s");
        }
        let units: [(u128, &str); 7] = [
            (86_400_000_000_000, "d"),
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        let mut rest = n;
        for (per, unit) in units {
            if rest >= per {
                write!(f, "{}{unit}", rest / per)?;
                rest %= per;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes: `"64M"`, `"1G"`, `"512k"` (powers of 1024) or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let bad = || {
            format!(
                "invalid size {s:?}: expected a number with an optional unit k, M, G or T, like \"64M\""
            )
        };
        let t = s.trim();
        let digits_end = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        if num.is_empty() {
            return Err(bad());
        }
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = if num.contains('.') {
            let x: f64 = num.parse().map_err(|_| bad())?;
            let b = x * mult as f64;
            if !b.is_finite() || b >= u64::MAX as f64 {
                return Err(format!("size {s:?} is too large"));
            }
            b.round() as u64
        } else {
            let n: u64 = num
                .parse()
                .map_err(|_| format!("size {s:?} is too large"))?;
            n.checked_mul(mult)
                .ok_or_else(|| format!("size {s:?} is too large"))?
        };
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "k")] {
            if b != 0 && b % (1u64 << shift) == 0 {
                return write!(f, "{}{unit}", b >> shift);
            }
        }
        write!(f, "{b}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}
