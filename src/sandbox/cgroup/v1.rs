//! Limits written the cgroup v1 way: one hierarchy per controller,
//! `memory.limit_in_bytes`, CFS quota and shares, `blkio` throttles; and
//! the device allow-list, which v2 leaves to seccomp and `nodev`.

use super::*;

impl Cgroup {
    pub(super) fn apply_v1(&self, l: &Limits, new: bool) -> Result<(), CgroupError> {
        let num = |v: Option<u64>, max: &str| v.map_or(max.to_string(), |n| n.to_string());
        match l.memory {
            Some(n) => self.write("memory", "memory.limit_in_bytes", &n.to_string(), "memory")?,
            // Unlimited reads as the largest page-aligned count.
            None if !new && self.dir_of("memory").is_some() => {
                self.reset("memory", "memory.limit_in_bytes", "-1", "memory", &|v| {
                    v.parse::<u64>().is_ok_and(|n| n >= 1 << 62)
                })?
            }
            None => {}
        }
        if l.memory_low.is_some() {
            self.write(
                "memory",
                "memory.soft_limit_in_bytes",
                &num(l.memory_low, "-1"),
                "memory_reservation",
            )?;
        }
        match l.pids {
            Some(n) => self.write("pids", "pids.max", &n.to_string(), "pids")?,
            None if !new && self.dir_of("pids").is_some() => {
                self.reset("pids", "pids.max", "max", "pids", &|v| v == "max")?
            }
            None => {}
        }
        let period = CPU_PERIOD.to_string();
        match l.cpus {
            Some(c) => {
                self.write("cpu", "cpu.cfs_period_us", &period, "cpus")?;
                let quota = ((c * CPU_PERIOD as f64).round() as u64).max(1000);
                self.write("cpu", "cpu.cfs_quota_us", &quota.to_string(), "cpus")?;
            }
            None if !new && self.dir_of("cpu").is_some() => {
                // The quota first: with it unlimited, any period is valid.
                self.reset("cpu", "cpu.cfs_quota_us", "-1", "cpus", &|v| v == "-1")?;
                self.reset("cpu", "cpu.cfs_period_us", &period, "cpus", &|v| {
                    v == period
                })?;
            }
            None => {}
        }
        match l.cpu_weight {
            Some(w) => {
                // The inverse of the OCI shares → weight conversion.
                let shares = 2 + (u64::from(w.saturating_sub(1)) * 262_142) / 9_999;
                self.write("cpu", "cpu.shares", &shares.to_string(), "cpu_weight")?;
            }
            None if !new && self.dir_of("cpu").is_some() => {
                self.reset("cpu", "cpu.shares", "1024", "cpu_weight", &|v| v == "1024")?
            }
            None => {}
        }
        if let Some(c) = &l.cpuset {
            self.write("cpuset", "cpuset.cpus", c, "cpuset")?;
        }
        if let Some(w) = l.io_weight {
            self.write(
                "blkio",
                "blkio.weight",
                &(w / 10).clamp(10, 1000).to_string(),
                "io_weight",
            )?;
        }
        for d in &l.io {
            for (file, v) in [
                ("blkio.throttle.read_bps_device", d.read_bps),
                ("blkio.throttle.write_bps_device", d.write_bps),
                ("blkio.throttle.read_iops_device", d.read_iops),
                ("blkio.throttle.write_iops_device", d.write_iops),
            ] {
                self.write(
                    "blkio",
                    file,
                    &format!("{}:{} {}", d.major, d.minor, v.unwrap_or(0)),
                    "io_limits",
                )?;
            }
        }
        Ok(())
    }

    /// v1 only: the device allow-list (`devices` controller): everything
    /// denied but the default devices, `/dev/pts/*`, and `extra` (`c 4:64 rw`).
    pub fn restrict_devices(&self, extra: &[String]) -> Result<(), CgroupError> {
        let (Layout::V1 { .. }, Some(dir)) = (&self.layout, self.dir_of("devices")) else {
            return Ok(());
        };
        self.write("devices", "devices.deny", "a", "devices")?;
        let allow = dir.join("devices.allow");
        // One rule per write, all through one open file.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&allow)
            .map_err(io_err(&allow, "open"))?;
        let defaults = [
            "c 1:3 rwm",    // null
            "c 1:5 rwm",    // zero
            "c 1:7 rwm",    // full
            "c 1:8 rwm",    // random
            "c 1:9 rwm",    // urandom
            "c 5:0 rwm",    // tty
            "c 5:1 rwm",    // console
            "c 5:2 rwm",    // ptmx
            "c 136:* rwm",  // pts
            "c 10:200 rwm", // tun
        ];
        for rule in defaults
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
        {
            use std::io::Write;
            match file.write(rule.as_bytes()) {
                Ok(n) if n == rule.len() => {}
                Ok(_) => {
                    return Err(io_err(&allow, format!("write {rule:?}"))(
                        io::ErrorKind::WriteZero.into(),
                    ));
                }
                Err(e) => return Err(io_err(&allow, format!("write {rule:?}"))(e)),
            }
        }
        Ok(())
    }
}
